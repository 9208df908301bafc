"""What the deploy tests need of a client on loopback: ports that are free,
and one SCGI request."""
import os
import socket

# Below the ephemeral range (32768-60999), where a client's own connection
# could take a port between our probe and the server's bind.
FIRST_PORT = 20000
LAST_PORT = 32000


def free_port(after=None):
    """A port free on 127.0.0.1 now, in the range the other tests use; `after`
    continues past a port taken before (it is not held open)."""
    first = FIRST_PORT + os.getpid() % 9000 if after is None else after + 7
    for port in range(first, LAST_PORT, 7):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise SystemExit("FAIL: no free port")


def free_ports(count):
    ports = [free_port()]
    while len(ports) < count:
        ports.append(free_port(after=ports[-1]))
    return ports


def scgi_get(port, timeout, uri="/"):
    """One GET to the SCGI server on 127.0.0.1:port; the whole reply (at most
    1 MiB). Raises OSError when it cannot connect or times out."""
    headers = {"CONTENT_LENGTH": "0", "SCGI": "1", "REQUEST_METHOD": "GET",
               "REQUEST_URI": uri, "QUERY_STRING": "", "SERVER_PROTOCOL": "HTTP/1.1"}
    body = b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in headers.items())
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(str(len(body)).encode() + b":" + body + b",")
        reply = b""
        while len(reply) < 1 << 20:
            chunk = conn.recv(65536)
            if not chunk:
                break
            reply += chunk
    return reply


def status_line(reply):
    """`Status: 200 OK` of a reply, or what came instead."""
    return reply.split(b"\r\n", 1)[0].decode(errors="replace")
