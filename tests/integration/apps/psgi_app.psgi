# A PSGI application for uWSGI's psgi plugin, used by the real-server tests.
#
#   uwsgi --plugin psgi --scgi-socket 127.0.0.1:PORT --psgi psgi_app.psgi ...
#
# The same three endpoints as wsgi_app.py, config.ru and scgi_perl_app.pl:
#   /echo        200, the request body byte for byte (read whole first: Debian's
#                nginx 1.22 stops reading a response while it still sends the
#                body), with X-Body-Sha256 of what arrived
#   /env         200, NAME=value lines for the variables in @env_names it got
#   /sleep?ms=N  200 after N milliseconds
# Every answer names the worker's pid in X-Worker-Pid.
use strict;
use warnings;

use Digest::SHA qw(sha256_hex);
use Time::HiRes qw(sleep);

# What /env reports, in this order, when present.
my @env_names = qw(REQUEST_METHOD REQUEST_URI QUERY_STRING CONTENT_LENGTH HTTP_X_DUP
  HTTP_X_REQUEST_START HTTP_TRACEPARENT SCGI_QUEUE_WAIT_US);

# Exactly CONTENT_LENGTH bytes from psgi.input: never rely on EOF.
sub read_body {
  my ($env) = @_;
  my $length = $env->{CONTENT_LENGTH} || 0;
  my $body   = '';
  while (length($body) < $length) {
    my $got = $env->{'psgi.input'}->read(my $chunk, $length - length($body));
    die 'request ended ' . ($length - length($body)) . " bytes before CONTENT_LENGTH\n"
      unless $got;
    $body .= $chunk;
  }
  return $body;
}

sub text_answer {
  my ($text) = @_;
  return [200, ['Content-Type' => 'text/plain', 'Content-Length' => length($text),
                'X-Worker-Pid' => $$], [$text]];
}

my $app = sub {
  my ($env) = @_;
  # nginx's scgi_params send no PATH_INFO (DOCUMENT_URI instead), and uWSGI
  # does not make one up: route on REQUEST_URI's path when it is missing.
  my $path = $env->{PATH_INFO} || (($env->{REQUEST_URI} // '') =~ m{^([^?]*)})[0];
  my $body = read_body($env);
  if ($path eq '/echo') {
    return [200, ['Content-Type' => 'application/octet-stream',
                  'Content-Length' => length($body), 'X-Body-Sha256' => sha256_hex($body),
                  'X-Worker-Pid' => $$], [$body]];
  }
  if ($path eq '/env') {
    return text_answer(join '', map { "$_=$env->{$_}\n" } grep { exists $env->{$_} } @env_names);
  }
  if ($path eq '/sleep') {
    my ($ms) = ($env->{QUERY_STRING} // '') =~ /(?:^|&)ms=(\d+)/;
    sleep(($ms // 0) / 1000);
    return text_answer("slept\n");
  }
  return [404, ['Content-Type' => 'text/plain', 'X-Worker-Pid' => $$], ["not found\n"]];
};
