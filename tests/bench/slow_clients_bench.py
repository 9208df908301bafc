#!/usr/bin/env python3
"""Throughput of a pool beside slow clients, against the same pool alone.

Starts --workers scgi-sample-workers behind scgi-proxy, then, --runs times,
interleaved: scgi-load alone (the baseline) and scgi-load beside --slow
attackers, one per worker by default. An attacker either trickles a request
body one byte every 3 s ("body") or reads a large response 1 KiB every 500 ms
("read"); when the proxy closes it, it connects again at once, as a real
attacker would. Prints each run's ratio (loaded / baseline throughput) and the
median. The promise (docs/security.md): as many attackers as workers cost the
others at most 10 % of their throughput.

  python3 tests/bench/slow_clients_bench.py                       # body, 3 runs of 5 s
  python3 tests/bench/slow_clients_bench.py --kind read --pool-keys 'response_buffer = "16MiB"'
  python3 tests/bench/slow_clients_bench.py --proxy /path/to/older/scgi-proxy

Standard library only; every process is stopped by its PID, every wait bounded.
"""
from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_accepting(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing accepts on 127.0.0.1:{port} after {timeout} s")


def scgi_request(uri: str, query: str, body: bytes = b"", method: str = "GET") -> bytes:
    pairs = [(b"CONTENT_LENGTH", str(len(body)).encode()), (b"SCGI", b"1"),
             (b"REQUEST_METHOD", method.encode()), (b"REQUEST_URI", uri.encode()),
             (b"QUERY_STRING", query.encode())]
    block = b"".join(name + b"\0" + value + b"\0" for name, value in pairs)
    return str(len(block)).encode() + b":" + block + b"," + body


class Attacker(threading.Thread):
    """One slow client, reconnecting whenever the proxy closes it."""

    def __init__(self, port: int, kind: str, stop: threading.Event):
        super().__init__(daemon=True)
        self.port, self.kind, self.stop_event = port, kind, stop
        self.connections = 0

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.connections += 1
                self.once()
            except OSError:
                pass
            self.stop_event.wait(0.05)

    def once(self) -> None:
        with socket.socket() as s:
            if self.kind == "read":
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(("127.0.0.1", self.port))
            if self.kind == "body":
                request = scgi_request("/upload", "", b"b" * 100, "POST")
                s.sendall(request[:-100])
                for i in range(100):
                    if self.stop_event.wait(3.0):
                        return
                    s.sendall(request[len(request) - 100 + i:][:1])
                s.recv(1)  # then wait for the answer (or the close)
            else:
                s.sendall(scgi_request("/big", f"size={8 << 20}"))
                s.setblocking(False)
                while not self.stop_event.wait(0.5):
                    try:
                        if not s.recv(1024):
                            return
                    except BlockingIOError:
                        pass


def run_load(load: Path, port: int, duration: str) -> float:
    out = subprocess.run([str(load), "--connect", f"127.0.0.1:{port}", "--connections", "8",
                          "--duration", duration, "--json", "--timeout", "10s"],
                         capture_output=True, text=True, timeout=120)
    report = json.loads(out.stdout[out.stdout.index("{"):])
    if report["errors"]:
        print(f"  errors: {report['errors']} {json.dumps(report['error_kinds'])}", file=sys.stderr)
    return report["throughput_rps"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build-dir", default=str(HERE.parent.parent / "build"))
    parser.add_argument("--proxy", help="scgi-proxy binary (default: BUILD_DIR/bin/scgi-proxy)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--slow", type=int, help="attackers (default: one per worker)")
    parser.add_argument("--kind", choices=["body", "read"], default="body")
    parser.add_argument("--duration", default="5s")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pool-keys", default="", help="more [[pool]] lines, e.g. 'client_timeout = \"30s\"'")
    args = parser.parse_args()
    bin_dir = Path(args.build_dir) / "bin"
    proxy_binary = args.proxy or str(bin_dir / "scgi-proxy")
    slow = args.workers if args.slow is None else args.slow

    processes: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="slow-bench-") as tmp:
        try:
            ports = [free_port() for _ in range(args.workers)]
            for port in ports:
                processes.append(subprocess.Popen(
                    [str(bin_dir / "scgi-sample-worker"), "--port", str(port)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                wait_accepting(port)
            listen = free_port()
            config = Path(tmp) / "proxy.toml"
            backends = ", ".join(f'"127.0.0.1:{p}"' for p in ports)
            config.write_text(f'[proxy]\nthreads = 1\n[metrics]\nlisten = ""\n[[pool]]\nname = "app"\n'
                              f'listen = "127.0.0.1:{listen}"\nbackends = [{backends}]\n'
                              f'{args.pool_keys}\n')
            processes.append(subprocess.Popen([proxy_binary, "--config", str(config)],
                                              stdout=subprocess.DEVNULL,
                                              stderr=open(Path(tmp) / "proxy.log", "w")))
            wait_accepting(listen)
            load = bin_dir / "scgi-load"
            ratios = []
            for run in range(1, args.runs + 1):
                baseline = run_load(load, listen, args.duration)
                stop = threading.Event()
                attackers = [Attacker(listen, args.kind, stop) for _ in range(slow)]
                for attacker in attackers:
                    attacker.start()
                time.sleep(1.0)  # each is past its header by now
                loaded = run_load(load, listen, args.duration)
                stop.set()
                for attacker in attackers:
                    attacker.join(timeout=10)
                ratio = loaded / baseline if baseline else 0.0
                ratios.append(ratio)
                print(f"run {run}: baseline {baseline:.0f} req/s, beside {slow} {args.kind} "
                      f"attackers {loaded:.0f} req/s, ratio {ratio:.3f}")
            print(f"median ratio over {args.runs} runs: {statistics.median(ratios):.3f}")
        finally:
            for process in reversed(processes):
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
