#!/usr/bin/perl
# A sample SCGI application in Perl on Debian's libscgi-perl (SCGI.pm), the
# Perl twin of hello.py.
#
# It listens where scgi-manager tells it: on the socket handed over as fd 3
# (socket = "inherit": LISTEN_FDS=1 and LISTEN_PID, systemd's convention), or
# on --port PORT (127.0.0.1) / --unix PATH (socket = "port" / "unix"). One
# request at a time; each gets a small text answer naming the worker, with an
# X-Worker-Pid header; a request body is echoed after that line;
# ?sleep_ms=N waits N ms before answering. SIGTERM ends it at once when idle,
# else after the request in progress.
#
# What SCGI.pm leaves to the application (see SCGI-PEERS.md, libscgi-perl):
# it reads only the header, so the body is read here, with Perl's buffered
# read() (the header read may already have buffered part of the body, which
# sysread() would miss); it die()s on a header it rejects (CONTENT_LENGTH not
# first, no SCGI=1, a broken netstring) and on a connection that closes
# without a byte (a readiness probe or a health check), so each request runs
# in an eval; and it never answers or closes: the response, and the close
# that ends it, are ours. Its default non-blocking mode would have to be
# polled: blocking => 1.
use strict;
use warnings;

use Getopt::Long qw(GetOptions);
use IO::Socket::INET;
use IO::Socket::UNIX;
use Socket qw(SOL_SOCKET SO_ACCEPTCONN);
use Time::HiRes qw(time sleep);
use SCGI;

use constant LISTEN_FDS_START => 3;    # systemd's SD_LISTEN_FDS_START

sub fatal {
  print STDERR "hello.pl: @_\n";
  exit 1;
}

sub listening_socket {
  my ($port, $unix) = @_;
  if (defined $port) {
    return IO::Socket::INET->new(
      LocalAddr => '127.0.0.1',
      LocalPort => $port,
      Proto     => 'tcp',
      Listen    => 128,
      ReuseAddr => 1,
    ) || fatal("cannot listen on 127.0.0.1:$port: $@");
  }
  if (defined $unix) {
    return IO::Socket::UNIX->new(Local => $unix, Listen => 128)
      || fatal("cannot listen on $unix: $@");
  }
  if (($ENV{LISTEN_FDS} // '') eq '1' && ($ENV{LISTEN_PID} // '') eq $$) {
    # A generic IO::Socket: accept() hands out connections of the same class,
    # whatever the family (TCP or Unix) of the socket the manager bound.
    my $socket = IO::Socket->new_from_fd(LISTEN_FDS_START, 'r+')
      || fatal("cannot open fd 3: $!");
    my $listening = getsockopt($socket, SOL_SOCKET, SO_ACCEPTCONN);
    fatal('fd 3 is not a listening socket') unless $listening && unpack('i', $listening);
    return $socket;
  }
  fatal('no socket: give --port or --unix, or run it under scgi-manager '
      . '(socket = "inherit" passes fd 3 with LISTEN_FDS=1)');
}

# Reads the header and exactly CONTENT_LENGTH body bytes. Returns (env, body),
# () for a connection that closed without a byte, or dies saying what is wrong.
sub read_request {
  my ($request) = @_;
  my $ok = eval { $request->read_env };
  unless ($ok) {
    return () if $@ =~ /^cannot read env length/ && eof($request->connection);
    die $@ =~ s/ at \S+ line \d+\.\n//r . "\n";
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
  my ($connection, $status, $text) = @_;
  print {$connection} "Status: $status\r\n",
    "Content-Type: text/plain\r\n",
    'Content-Length: ', length($text), "\r\n",
    "X-Worker-Pid: $$\r\n",
    "\r\n", $text;
}

sub query_param {
  my ($env, $name) = @_;
  # SCGI.pm drops pairs whose value is empty: QUERY_STRING may be missing.
  for my $pair (split /&/, $env->{QUERY_STRING} // '') {
    my ($key, $value) = split /=/, $pair, 2;
    return $value if $key eq $name;
  }
  return undef;
}

sub main {
  my ($port, $unix);
  GetOptions('port=i' => \$port, 'unix=s' => \$unix)
    or fatal('usage: hello.pl [--port PORT | --unix PATH]');
  my $server = listening_socket($port, $unix);
  my $scgi   = SCGI->new($server, blocking => 1);

  $SIG{PIPE} = 'IGNORE';    # a client that left makes print fail, not the worker die
  # SIGTERM keeps its default action (the end) while the worker waits in
  # accept(), and only sets a flag during a request, which then finishes. A
  # flag alone loses a race: Perl runs a handler between operations, so a
  # SIGTERM landing after the loop's test and before accept() left the worker
  # blocked until the manager's SIGKILL (about 1 rolling restart in 6).
  my $stopping = 0;

  my $worker = sprintf '%s[%s]', $ENV{SCGI_POOL} // 'hello', $ENV{SCGI_WORKER} // '-';
  until ($stopping) {
    my $request = $scgi->accept;
    unless ($request) {
      next if $!{EINTR} || $!{ECONNABORTED};
      fatal("accept: $!");
    }
    local $SIG{TERM} = sub { $stopping = 1 };
    my $connection = $request->connection;
    my ($env, $body) = eval { read_request($request) };
    if (my $error = $@) {
      warn "hello.pl: bad request: $error";
      answer($connection, '400 Bad Request', "bad request: $error");
    } elsif ($env) {
      my $sleep_ms = query_param($env, 'sleep_ms') // 0;
      if ($sleep_ms =~ /^\d+$/ && $sleep_ms > 0) {
        # sleep() returns early on a signal: wait out the rest.
        my $until = time + $sleep_ms / 1000;
        while ((my $left = $until - time) > 0) { sleep $left }
      }
      answer($connection, '200 OK',
        sprintf("hello from %s pid %d: %s %s, %d body bytes\n%s",
          $worker, $$, $env->{REQUEST_METHOD} // '-', $env->{REQUEST_URI} // '-',
          length($body), $body));
    }
    $request->close;    # the end of the response: SCGI has no other
  }
  return 0;
}

exit main();
