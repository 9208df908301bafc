#!/usr/bin/env python3
"""A sample SCGI application in Python's standard library only.

It listens where scgi-manager tells it: on the socket handed over as fd 3
(socket = "inherit": LISTEN_FDS=1 and LISTEN_PID, systemd's convention), or on
--port PORT / --unix PATH (socket = "port" / "unix"). One request at a time;
each gets a small text answer naming the worker (after sleep_ms=N in the
query string, N milliseconds). SIGTERM ends it after the request in progress;
SIGUSR1 prints every thread's stack to stderr (faulthandler), which
scgi-manager's slow log collects with slow_request_signal = "SIGUSR1".
"""
import argparse
import faulthandler
import os
import signal
import socket
import sys
import time
import urllib.parse

LISTEN_FDS_START = 3


def listening_socket(args):
    if args.port is not None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", args.port))
        sock.listen(128)
        return sock
    if args.unix is not None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(args.unix)
        sock.listen(128)
        return sock
    if os.environ.get("LISTEN_FDS") == "1" and os.environ.get("LISTEN_PID") == str(os.getpid()):
        return socket.socket(fileno=LISTEN_FDS_START)
    sys.exit("hello.py: no socket: give --port or --unix, or run it under scgi-manager "
             "(socket = \"inherit\" passes fd 3 with LISTEN_FDS=1)")


def read_request(conn):
    """Reads one SCGI request: the header netstring, then CONTENT_LENGTH bytes."""
    data = b""
    while b":" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return None, None
        data += chunk
        if b":" not in data[:21] and len(data) > 20:
            raise ValueError("netstring length too long")
    length_text, rest = data.split(b":", 1)
    if not length_text.isdigit():
        raise ValueError("bad netstring length")
    length = int(length_text)
    while len(rest) < length + 1:
        chunk = conn.recv(65536)
        if not chunk:
            raise ValueError("request ended inside its header")
        rest += chunk
    block, comma, body = rest[:length], rest[length:length + 1], rest[length + 1:]
    if comma != b",":
        raise ValueError("header netstring not followed by ','")
    fields = block.split(b"\0")[:-1]
    env = {}
    for name, value in zip(fields[0::2], fields[1::2]):
        env[name.decode("latin-1")] = value.decode("latin-1")
    content_length = int(env.get("CONTENT_LENGTH", "0"))
    while len(body) < content_length:
        chunk = conn.recv(min(65536, content_length - len(body)))
        if not chunk:
            raise ValueError("request ended inside its body")
        body += chunk
    return env, body[:content_length]


def answer(conn, status, text):
    payload = text.encode()
    conn.sendall(b"Status: %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                 b"X-Worker-Pid: %d\r\n\r\n%s"
                 % (status.encode(), len(payload), os.getpid(), payload))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int)
    parser.add_argument("--unix")
    args = parser.parse_args()
    server = listening_socket(args)

    stopping = False

    def stop(_signum, _frame):
        nonlocal stopping
        stopping = True
        server.close()  # wakes accept(); the request in progress, if any, finishes

    signal.signal(signal.SIGTERM, stop)
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    worker = "%s[%s]" % (os.environ.get("SCGI_POOL", "hello"), os.environ.get("SCGI_WORKER", "-"))
    while not stopping:
        try:
            conn, _ = server.accept()
        except OSError:
            break
        with conn:
            try:
                env, body = read_request(conn)
                if env is None:
                    continue  # a connection that sent nothing: a health check
                query = urllib.parse.parse_qs(env.get("QUERY_STRING", ""))
                sleep_ms = int(query.get("sleep_ms", ["0"])[0])
                if sleep_ms > 0:
                    time.sleep(sleep_ms / 1000)
                answer(conn, "200 OK", "hello from %s pid %d: %s %s, %d body bytes\n" % (
                    worker, os.getpid(), env.get("REQUEST_METHOD", "-"),
                    env.get("REQUEST_URI", "-"), len(body)))
            except (ValueError, OSError) as error:
                try:
                    answer(conn, "400 Bad Request", "bad request: %s\n" % error)
                except OSError:
                    pass


if __name__ == "__main__":
    main()
