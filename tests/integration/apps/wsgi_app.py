"""A WSGI application for uWSGI's python3 plugin, used by the real-server tests.

    uwsgi --plugin python3 --scgi-socket 127.0.0.1:PORT --wsgi-file wsgi_app.py ...

The same three endpoints as psgi_app.psgi, config.ru and scgi_perl_app.pl:
  /echo        200, the request body byte for byte (read whole first: Debian's
               nginx 1.22 stops reading a response while it still sends the
               body), with X-Body-Sha256 of what arrived
  /env         200, NAME=value lines for the variables in ENV_NAMES it got
  /sleep?ms=N  200 after N milliseconds
Every answer names the worker's pid in X-Worker-Pid.

SIGUSR1 prints every thread's stack to stderr (faulthandler), which
scgi-manager's slow log collects with slow_request_signal = "SIGUSR1". uWSGI
installs its own SIGUSR1 handler (it prints the worker's request counters)
after it has imported the application, so the handler registered at import
is replaced; the first request registers it again, in the worker as it runs.
"""
import faulthandler
import hashlib
import os
import signal
import sys
import time
import urllib.parse

faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)

# What /env reports, in this order, when present.
ENV_NAMES = ("REQUEST_METHOD", "REQUEST_URI", "QUERY_STRING", "CONTENT_LENGTH", "HTTP_X_DUP",
             "HTTP_X_REQUEST_START", "HTTP_TRACEPARENT", "SCGI_QUEUE_WAIT_US")


_stacks_on_sigusr1 = False


def print_stacks_on_sigusr1():
    """Takes SIGUSR1 back from uWSGI, once. register() alone would do nothing, as
    faulthandler believes its handler is still installed: unregister() first."""
    global _stacks_on_sigusr1
    if not _stacks_on_sigusr1:
        faulthandler.unregister(signal.SIGUSR1)
        faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)
        _stacks_on_sigusr1 = True


def read_body(environ):
    """Exactly CONTENT_LENGTH bytes: never rely on EOF (SCGI has none before the answer)."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    stream = environ["wsgi.input"]
    chunks, left = [], length
    while left > 0:
        chunk = stream.read(min(left, 1 << 20))
        if not chunk:
            raise ValueError(f"request ended {left} bytes before CONTENT_LENGTH {length}")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def application(environ, start_response):
    print_stacks_on_sigusr1()
    # nginx's scgi_params send no PATH_INFO (DOCUMENT_URI instead), and uWSGI
    # does not make one up: route on REQUEST_URI's path when it is missing.
    path = environ.get("PATH_INFO") or urllib.parse.urlsplit(environ.get("REQUEST_URI", "")).path
    headers = [("X-Worker-Pid", str(os.getpid()))]
    if path == "/echo":
        body = read_body(environ)
        headers += [("Content-Type", "application/octet-stream"),
                    ("Content-Length", str(len(body))),
                    ("X-Body-Sha256", hashlib.sha256(body).hexdigest())]
        start_response("200 OK", headers)
        return [body]
    if path == "/env":
        read_body(environ)
        text = "".join(f"{name}={environ[name]}\n" for name in ENV_NAMES if name in environ)
    elif path == "/sleep":
        read_body(environ)
        query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
        time.sleep(int(query.get("ms", ["0"])[0]) / 1000)
        text = "slept\n"
    else:
        start_response("404 Not Found", headers + [("Content-Type", "text/plain")])
        return [b"not found\n"]
    payload = text.encode("latin-1")
    start_response("200 OK", headers + [("Content-Type", "text/plain"),
                                        ("Content-Length", str(len(payload)))])
    return [payload]
