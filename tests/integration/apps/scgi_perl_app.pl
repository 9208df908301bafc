#!/usr/bin/perl
# An SCGI server on Debian's libscgi-perl (SCGI.pm), used by the real-server
# tests: scgi_perl_app.pl --port PORT (scgi-manager's socket = "port").
#
# The same three endpoints as wsgi_app.py, psgi_app.psgi and config.ru:
#   /echo        200, the request body byte for byte, with X-Body-Sha256
#   /env         200, NAME=value lines for the variables in @env_names it got
#   /sleep?ms=N  200 after N milliseconds
# Every answer names the worker's pid in X-Worker-Pid. One request at a time;
# SIGTERM ends it at once when idle, else after the request in progress.
#
# SCGI.pm only parses the header (see deploy/examples/workers/hello.pl, which
# takes its socket the same way, and SCGI-PEERS.md): the body is read here
# with Perl's buffered read() (the header read may have buffered part of it),
# each request runs in an eval (SCGI.pm die()s on a header it rejects and on
# the manager's readiness probe, a connection closed without a byte), the
# answer and the close that ends it are ours, and blocking => 1 (its default
# non-blocking mode would have to be polled). It drops pairs whose value is
# empty, so an empty QUERY_STRING is absent from /env.
use strict;
use warnings;

use Digest::SHA qw(sha256_hex);
use Getopt::Long qw(GetOptions);
use IO::Socket::INET;
use Time::HiRes qw(time sleep);
use SCGI;

# What /env reports, in this order, when present.
my @env_names = qw(REQUEST_METHOD REQUEST_URI QUERY_STRING CONTENT_LENGTH HTTP_X_DUP
  HTTP_X_REQUEST_START HTTP_TRACEPARENT SCGI_QUEUE_WAIT_US);

# (env, body) of one request; () for a connection closed without a byte.
sub read_request {
  my ($request) = @_;
  unless (eval { $request->read_env }) {
    return () if $@ =~ /^cannot read env length/ && eof($request->connection);
    die $@;
  }
  my $env    = $request->env;
  my $length = $env->{CONTENT_LENGTH};
  my $body   = '';
  while (length($body) < $length) {
    my $got = read($request->connection, $body, $length - length($body), length($body));
    die "request ended inside its body\n" unless $got;
  }
  return ($env, $body);
}

sub answer {
  my ($connection, $status, $type, $body, @headers) = @_;
  binmode $connection;
  print {$connection} "Status: $status\r\nContent-Type: $type\r\n",
    'Content-Length: ', length($body), "\r\nX-Worker-Pid: $$\r\n",
    map({ "$_\r\n" } @headers), "\r\n", $body;
}

sub respond {
  my ($connection, $env, $body) = @_;
  my ($path) = ($env->{REQUEST_URI} // '') =~ m{^([^?]*)};
  if ($path eq '/echo') {
    return answer($connection, '200 OK', 'application/octet-stream', $body,
      'X-Body-Sha256: ' . sha256_hex($body));
  }
  if ($path eq '/env') {
    return answer($connection, '200 OK', 'text/plain',
      join '', map { "$_=$env->{$_}\n" } grep { exists $env->{$_} } @env_names);
  }
  if ($path eq '/sleep') {
    my ($ms) = ($env->{QUERY_STRING} // '') =~ /(?:^|&)ms=(\d+)/;
    # sleep() returns early on a signal: wait out the rest.
    my $until = time + ($ms // 0) / 1000;
    while ((my $left = $until - time) > 0) { sleep $left }
    return answer($connection, '200 OK', 'text/plain', "slept\n");
  }
  return answer($connection, '404 Not Found', 'text/plain', "not found\n");
}

my $port;
GetOptions('port=i' => \$port) && defined $port
  or die "usage: scgi_perl_app.pl --port PORT\n";
my $server = IO::Socket::INET->new(
  LocalAddr => '127.0.0.1',
  LocalPort => $port,
  Proto     => 'tcp',
  Listen    => 128,
  ReuseAddr => 1,
) or die "scgi_perl_app.pl: cannot listen on 127.0.0.1:$port: $@\n";
my $scgi = SCGI->new($server, blocking => 1);

$SIG{PIPE} = 'IGNORE';    # a client that left makes print fail, not the server die

# SIGTERM keeps its default action (the end) while the server waits in
# accept(), and only sets a flag during a request, which then finishes. A flag
# alone would lose the race with accept(): Perl runs a handler between
# operations, so a SIGTERM that lands after the loop's test and before the
# accept() call leaves the process blocked until the manager's SIGKILL
# (seen about once in 6 rolling restarts).
my $stopping = 0;
until ($stopping) {
  my $request = $scgi->accept;
  unless ($request) {
    next if $!{EINTR} || $!{ECONNABORTED};
    die "scgi_perl_app.pl: accept: $!\n";
  }
  local $SIG{TERM} = sub { $stopping = 1 };
  my ($env, $body) = eval { read_request($request) };
  if (my $error = $@) {
    warn "scgi_perl_app.pl: bad request: $error";
    answer($request->connection, '400 Bad Request', 'text/plain', "bad request: $error");
  } elsif ($env) {
    respond($request->connection, $env, $body);
  }
  $request->close;    # the end of the response: SCGI has no other
}
