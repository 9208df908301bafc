# A Rack application for uWSGI's rack plugin, used by the real-server tests.
#
#   uwsgi --plugin rack_ruby31 --scgi-socket 127.0.0.1:PORT --rack config.ru ...
#
# The same three endpoints as wsgi_app.py, psgi_app.psgi and scgi_perl_app.pl:
#   /echo        200, the request body byte for byte (read whole first: Debian's
#                nginx 1.22 stops reading a response while it still sends the
#                body), with X-Body-Sha256 of what arrived
#   /env         200, NAME=value lines for the variables in ENV_NAMES it got
#   /sleep?ms=N  200 after N milliseconds
# Every answer names the worker's pid in X-Worker-Pid.
require 'digest'

# What /env reports, in this order, when present.
ENV_NAMES = %w[REQUEST_METHOD REQUEST_URI QUERY_STRING CONTENT_LENGTH HTTP_X_DUP
               HTTP_X_REQUEST_START HTTP_TRACEPARENT SCGI_QUEUE_WAIT_US].freeze

# Exactly CONTENT_LENGTH bytes from rack.input, as binary: never rely on EOF.
def read_body(env)
  length = env['CONTENT_LENGTH'].to_i
  body = String.new(capacity: length, encoding: Encoding::BINARY)
  while body.bytesize < length
    chunk = env['rack.input'].read(length - body.bytesize)
    raise "request ended #{length - body.bytesize} bytes before CONTENT_LENGTH" if chunk.nil? || chunk.empty?
    body << chunk
  end
  body
end

def text_answer(text)
  [200, { 'Content-Type' => 'text/plain', 'Content-Length' => text.bytesize.to_s,
          'X-Worker-Pid' => Process.pid.to_s }, [text]]
end

run(lambda do |env|
  body = read_body(env)
  # nginx's scgi_params send no PATH_INFO (DOCUMENT_URI instead), and uWSGI
  # does not make one up: route on REQUEST_URI's path when it is missing.
  path = env['PATH_INFO'].to_s.empty? ? env['REQUEST_URI'].to_s.split('?', 2).first : env['PATH_INFO']
  case path
  when '/echo'
    [200, { 'Content-Type' => 'application/octet-stream', 'Content-Length' => body.bytesize.to_s,
            'X-Body-Sha256' => Digest::SHA256.hexdigest(body), 'X-Worker-Pid' => Process.pid.to_s },
     [body]]
  when '/env'
    text_answer(ENV_NAMES.select { |name| env.key?(name) }.map { |name| "#{name}=#{env[name]}\n" }.join)
  when '/sleep'
    sleep(env['QUERY_STRING'].to_s[/(?:^|&)ms=(\d+)/, 1].to_i / 1000.0)
    text_answer("slept\n")
  else
    [404, { 'Content-Type' => 'text/plain', 'X-Worker-Pid' => Process.pid.to_s }, ["not found\n"]]
  end
end)
