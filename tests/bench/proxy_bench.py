#!/usr/bin/env python3
"""The benchmark behind tests/bench/run-bench.sh (which installs, builds and
raises limits, then runs this). Standard library only.

Modes (--mode, comma-separated, or "all"):
  throughput    the same 4 scgi-sample-workers behind each target:
                  direct               no proxy: the 4 workers share one listening socket
                  scgi-proxy (t=1, 2)  concurrency = 1, metrics and access log off
                  haproxy leastconn    mode tcp, balance leastconn, no maxconn
                  haproxy maxconn 1    the same with maxconn 1 per server (HAProxy queues)
                  nginx least_conn     stream module, least_conn with a shared zone
                two closed-loop workloads (fast; mixed 98 % fast / 2 % sleep_ms=20),
                --runs runs of --duration per cell, interleaved (run 1 of every cell,
                then run 2, ...) so that a burst of load from elsewhere spreads
                over all targets; the MEDIAN of each figure is reported.
  idle          10,000 idle client connections to scgi-proxy (silent, then half a
                header): its VmRSS before and after, and that it still serves.
  instructions  callgrind on scgi-proxy and on haproxy, N then 2N requests each:
                (Ir(2N) - Ir(N)) / N = user-space instructions per proxied request.

Every process started is recorded in STATE_DIR/pids (so run-bench.sh's EXIT
trap can stop leftovers) and stopped by its PID: SIGTERM, then SIGKILL.
Every wait is bounded by a deadline.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORKERS = 4
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
MIX_FAST = "/fast"
MIX_SLOW = "/slow?sleep_ms=20"
NGINX_STREAM_MODULE = Path("/usr/lib/nginx/modules/ngx_stream_module.so")


class BenchError(Exception):
    """A failure a person can act on; printed without a traceback."""


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def loadavg() -> tuple[float, float, float]:
    parts = Path("/proc/loadavg").read_text().split()
    return float(parts[0]), float(parts[1]), float(parts[2])


def free_port() -> int:
    """A port free on 127.0.0.1 right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- Processes: started, recorded, stopped by PID. ----


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])


class Processes:
    def __init__(self, state_dir: Path):
        self.state_dir = state_dir
        self.pid_file = state_dir / "pids"
        self.procs: list[Proc] = []

    def _write_pids(self) -> None:
        tmp = self.pid_file.with_suffix(".tmp")
        tmp.write_text("".join(f"{p.pid}\n" for p in self.procs if p.alive()))
        tmp.replace(self.pid_file)

    def start(self, name: str, argv: list[str], pass_fds: tuple[int, ...] = (),
              env: dict[str, str] | None = None) -> Proc:
        log_path = self.state_dir / f"{name}.log"
        with open(log_path, "ab") as out:
            popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                     pass_fds=pass_fds, env=env)
        proc = Proc(name, popen, log_path)
        self.procs.append(proc)
        self._write_pids()
        return proc

    def stop(self, proc: Proc, grace_s: float = 10.0, sig: int = signal.SIGTERM) -> int | None:
        """`sig` (SIGTERM unless said), up to grace_s for the exit, then SIGKILL."""
        if proc.alive():
            try:
                os.kill(proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                proc.popen.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                log(f"{proc.name} (pid {proc.pid}) still up {grace_s:.0f}s after signal {sig}: "
                    "SIGKILL")
                os.kill(proc.pid, signal.SIGKILL)
                proc.popen.wait(timeout=10)
        if proc in self.procs:
            self.procs.remove(proc)
        self._write_pids()
        return proc.popen.returncode

    def stop_all(self) -> None:
        for proc in reversed(list(self.procs)):
            try:
                self.stop(proc, grace_s=5.0)
            except Exception as error:  # keep stopping the others
                log(f"stopping {proc.name} (pid {proc.pid}): {error}")


def wait_accepting(port: int, proc: Proc | None, timeout_s: float) -> None:
    """Until 127.0.0.1:port accepts a connection (closed at once, no byte sent)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise BenchError(f"{proc.name} exited with {proc.popen.returncode} before it "
                             f"listened on {port}:\n{proc.log_tail()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.05)
    tail = proc.log_tail() if proc else ""
    raise BenchError(f"nothing accepts on 127.0.0.1:{port} after {timeout_s:.0f}s\n{tail}")


def process_tree(pid: int) -> list[int]:
    """pid and its descendants (nginx's master forks its workers)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, []))
    return tree


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of these processes (all their threads), in seconds."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / CLK_TCK


def vm_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM... of /proc/PID/status, in bytes."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        m = re.match(r"(Vm\w+):\s+(\d+) kB", line)
        if m:
            out[m.group(1)] = int(m.group(2)) * 1024
    return out


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


# ---- The targets. ----


@dataclass
class Target:
    key: str
    label: str
    port: int
    proc: Proc | None  # None: nothing between client and workers
    note: str = ""


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.bin = Path(args.bin_dir)
        self.state = Path(args.state_dir)
        self.procs = Processes(self.state)
        self.worker_ports: list[int] = []
        self.targets: list[Target] = []
        self.direct_socket: socket.socket | None = None

    def binary(self, name: str) -> str:
        path = self.bin / name
        if not os.access(path, os.X_OK):
            raise BenchError(f"{path} is missing: build it, or give --bin-dir")
        return str(path)

    # Workers, each on its own port: the backends of every proxy.
    def start_port_workers(self) -> None:
        if self.worker_ports:
            return
        for i in range(WORKERS):
            port = free_port()
            proc = self.procs.start(f"worker{i + 1}", [self.binary("scgi-sample-worker"),
                                                         "--port", str(port)])
            wait_accepting(port, proc, 10)
            self.worker_ports.append(port)
        log(f"workers on ports {self.worker_ports}")

    # Workers sharing one socket: the "direct" target.
    def start_direct(self) -> Target:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(socket.SOMAXCONN)
        port = sock.getsockname()[1]
        self.direct_socket = sock  # kept open: the workers' listen queue lives on
        first = None
        for i in range(WORKERS):
            proc = self.procs.start(
                f"direct-worker{i + 1}",
                [sys.executable, str(HERE / "socket_activate.py"), "--fd", str(sock.fileno()),
                 "--", self.binary("scgi-sample-worker")],
                pass_fds=(sock.fileno(),))
            first = first or proc
        # The socket listens already; wait until every worker has logged that it took it.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            started = [p for p in self.procs.procs if p.name.startswith("direct-worker")]
            dead = [p for p in started if not p.alive()]
            if dead:
                raise BenchError(f"{dead[0].name} exited:\n{dead[0].log_tail()}")
            if all("inherited fd 3" in p.log_path.read_text(errors="replace") for p in started):
                break
            time.sleep(0.05)
        else:
            raise BenchError("the direct workers did not take the inherited socket in 10s")
        wait_accepting(port, first, 10)
        return Target("direct", "direct (no proxy, shared socket)", port, None)

    def scgi_proxy_config(self, port: int, threads: int, client_timeout: str = "10s") -> Path:
        backends = ", ".join(f'"127.0.0.1:{p}"' for p in self.worker_ports)
        path = self.state / f"scgi-proxy-t{threads}-{port}.toml"
        path.write_text(f"""# scgi-proxy for the benchmark: written by proxy_bench.py
[proxy]
threads = {threads}
access_log = ""
shutdown_timeout = "5s"

[metrics]
listen = ""

[[pool]]
name = "bench"
listen = "127.0.0.1:{port}"
backends = [{backends}]
concurrency = 1
queue_size = 4096
queue_timeout = "30s"
client_timeout = "{client_timeout}"
connect_timeout = "5s"
request_timeout = "60s"
{self.args.pool_keys}
""")
        return path

    def start_scgi_proxy(self, threads: int, client_timeout: str = "10s",
                         wrapper: list[str] | None = None, ready_s: float = 10) -> Target:
        port = free_port()
        config = self.scgi_proxy_config(port, threads, client_timeout)
        argv = (wrapper or []) + [self.binary("scgi-proxy"), "--config", str(config)]
        proc = self.procs.start(f"scgi-proxy-t{threads}-{port}", argv)
        wait_accepting(port, proc, ready_s)
        return Target(f"scgi-proxy-t{threads}", f"scgi-proxy (threads={threads})", port, proc)

    def haproxy_config(self, port: int, maxconn_1: bool, nbthread: int) -> Path:
        server_opts = " maxconn 1" if maxconn_1 else ""
        servers = "\n".join(f"    server w{i + 1} 127.0.0.1:{p}{server_opts}"
                            for i, p in enumerate(self.worker_ports))
        path = self.state / f"haproxy-{port}.cfg"
        path.write_text(f"""# HAProxy for the benchmark: written by proxy_bench.py
global
    nbthread {nbthread}
    maxconn 4000  # far above the 16 connections of a run; fits ulimit -n

defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout queue 30s

listen scgi
    bind 127.0.0.1:{port}
    balance leastconn
{servers}
""")
        return path

    def start_haproxy(self, maxconn_1: bool, nbthread: int, wrapper: list[str] | None = None,
                      ready_s: float = 10) -> Target:
        port = free_port()
        config = self.haproxy_config(port, maxconn_1, nbthread)
        haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
        check = subprocess.run([haproxy, "-c", "-q", "-f", str(config)], capture_output=True,
                               text=True, timeout=30)
        if check.returncode != 0:
            raise BenchError(f"haproxy -c {config}: {check.stdout}{check.stderr}")
        # -db: foreground, no daemon, no master: the PID we hold is HAProxy itself.
        proc = self.procs.start(f"haproxy-{port}", (wrapper or []) + [haproxy, "-db", "-f",
                                                                      str(config)])
        wait_accepting(port, proc, ready_s)
        key = "haproxy-maxconn1" if maxconn_1 else "haproxy"
        label = "HAProxy leastconn + maxconn 1" if maxconn_1 else "HAProxy leastconn"
        return Target(key, label, port, proc, f"nbthread {nbthread}")

    def start_nginx(self, workers: int) -> Target:
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        built = subprocess.run([nginx, "-V"], capture_output=True, text=True, timeout=30).stderr
        static_stream = "--with-stream " in built + " " and "--with-stream=dynamic" not in built
        load = ""
        if not static_stream:
            if not NGINX_STREAM_MODULE.exists():
                raise BenchError(f"{NGINX_STREAM_MODULE} is missing: apt-get install "
                                 "libnginx-mod-stream")
            load = f"load_module {NGINX_STREAM_MODULE};\n"
        port = free_port()
        prefix = self.state / f"nginx-{port}"
        prefix.mkdir()
        servers = "\n".join(f"        server 127.0.0.1:{p};" for p in self.worker_ports)
        config = prefix / "nginx.conf"
        config.write_text(f"""# nginx stream proxy for the benchmark: written by proxy_bench.py
{load}worker_processes {workers};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{
    worker_connections 4000;
}}
stream {{
    upstream workers {{
        least_conn;
        zone workers 64k;  # shared by the worker processes: one least_conn view, as HAProxy's
{servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        proxy_pass workers;
        proxy_connect_timeout 5s;
        proxy_timeout 60s;
    }}
}}
""")
        base = [nginx, "-p", f"{prefix}/", "-e", f"{prefix}/error.log", "-c", str(config)]
        check = subprocess.run(base + ["-t", "-q"], capture_output=True, text=True, timeout=30)
        if check.returncode != 0:
            raise BenchError(f"nginx -t {config}: {check.stdout}{check.stderr}")
        proc = self.procs.start(f"nginx-{port}", base + ["-g", "daemon off;"])
        wait_accepting(port, proc, 10)
        return Target("nginx", "nginx stream least_conn", port, proc,
                      f"worker_processes {workers}")

    # ---- scgi-load ----

    def load(self, port: int, duration: str | None = None, requests: int | None = None,
             mix: str | None = None, connections: int | None = None, seed: int = 1,
             timeout: str = "10s") -> dict:
        argv = [self.binary("scgi-load"), "--connect", f"127.0.0.1:{port}",
                "--connections", str(connections or self.args.connections),
                "--threads", str(self.args.load_threads), "--seed", str(seed),
                "--timeout", timeout, "--json"]
        if duration:
            argv += ["--duration", duration]
        if requests:
            argv += ["--requests", str(requests)]
        argv += ["--mix", mix] if mix else ["--path", MIX_FAST]
        # Bounded: scgi-load stops itself at duration + its own grace; this is a backstop.
        limit = (parse_seconds(duration) if duration else 600) + 60
        run = subprocess.run(argv, capture_output=True, text=True, timeout=limit)
        if run.returncode != 0 or not run.stdout.strip():
            raise BenchError(f"scgi-load failed ({run.returncode}): {run.stderr.strip()}")
        return json.loads(run.stdout.strip().splitlines()[-1])

    def stop_all(self) -> None:
        self.procs.stop_all()
        if self.direct_socket is not None:
            self.direct_socket.close()
            self.direct_socket = None


def parse_seconds(text: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)", text)
    if not m:
        raise BenchError(f"duration {text!r}: use e.g. 500ms, 10s, 2m")
    value = float(m.group(1))
    return value / 1000 if m.group(2) == "ms" else value * 60 if m.group(2) == "m" else value


# ---- Throughput and latency ----

WORKLOADS = [
    ("fast", None, "fast: tiny responses"),
    ("mixed", f"98:{MIX_FAST};2:{MIX_SLOW}", "mixed: 98 % fast, 2 % sleep_ms=20"),
]


@dataclass
class Cell:
    runs: list[dict] = field(default_factory=list)

    def median(self, key) -> float:
        return statistics.median(key(r) for r in self.runs)


def summarize_run(result: dict, cpu_s: float | None, load1: float) -> dict:
    lat = result["latency_ms"]
    classes = {c["name"]: c for c in result.get("classes", [])}
    fast = classes.get(MIX_FAST)
    return {
        "rps": result["throughput_rps"],
        "requests": result["requests"],
        "p50": lat["p50"], "p90": lat["p90"], "p99": lat["p99"], "p99_9": lat["p99_9"],
        "max": lat["max"],
        "fast_p99": fast["latency_ms"]["p99"] if fast else None,
        "errors": result["errors"],
        "error_kinds": {k: v for k, v in result.get("error_kinds", {}).items() if v},
        "proxy_cpu_s": cpu_s,
        "cpu_us_per_request": cpu_s * 1e6 / max(1, result["requests"]) if cpu_s is not None
        else None,
        "load1": load1,
        "raw": result,
    }


def run_throughput(bench: Bench, report: list[str], raw: dict) -> None:
    args = bench.args
    bench.start_port_workers()
    targets = [bench.start_direct()]
    for threads in args.proxy_threads:
        targets.append(bench.start_scgi_proxy(threads))
    targets.append(bench.start_haproxy(False, args.haproxy_threads))
    targets.append(bench.start_haproxy(True, args.haproxy_threads))
    targets.append(bench.start_nginx(args.nginx_workers))

    log("warm-up: 1 s of the fast workload per target")
    for t in targets:
        bench.load(t.port, duration="1s")

    cells: dict[tuple[str, str], Cell] = {}
    loads = []
    total = args.runs * len(WORKLOADS) * len(targets)
    done = 0
    for run in range(args.runs):
        # Each run starts one target further on, so no target always follows the same one.
        order = targets[run % len(targets):] + targets[:run % len(targets)]
        for wl_key, mix, _ in WORKLOADS:
            for t in order:
                done += 1
                pids = process_tree(t.proc.pid) if t.proc else []
                cpu0 = cpu_seconds(pids)
                result = bench.load(t.port, duration=args.duration, mix=mix, seed=run + 1)
                cpu_s = cpu_seconds(pids) - cpu0 if t.proc else None
                load1 = loadavg()[0]
                loads.append(load1)
                s = summarize_run(result, cpu_s, load1)
                cells.setdefault((t.key, wl_key), Cell()).runs.append(s)
                log(f"[{done}/{total}] run {run + 1} {wl_key:5} {t.label:34} "
                    f"{s['rps']:9.0f} req/s  p99 {s['p99']:7.3f} ms  errors {s['errors']}"
                    f"  load {load1:.2f}")
                time.sleep(0.3)

    # threads=1 or 2: the one with the higher median fast throughput is reported.
    proxy_keys = [t.key for t in targets if t.key.startswith("scgi-proxy")]
    best = max(proxy_keys, key=lambda k: cells[(k, "fast")].median(lambda r: r["rps"]))
    others = [k for k in proxy_keys if k != best]
    shown = [t for t in targets if t.key not in others]
    by_key = {t.key: t for t in targets}

    report.append(f"### Throughput and latency\n")
    report.append(
        f"{WORKERS} `scgi-sample-worker`s (single-threaded), closed loop, "
        f"{args.connections} connections (`scgi-load`, {args.load_threads} thread"
        f"{'s' if args.load_threads != 1 else ''}), one connection per request; median of "
        f"{args.runs} runs × {args.duration} per cell, cells interleaved. Same 2-core machine "
        f"for the load generator, the proxy and the workers. 1-minute load average during the "
        f"runs: {min(loads):.2f}–{max(loads):.2f}. "
        f"scgi-proxy: `concurrency = 1`, metrics and access log off, reported with "
        f"`{by_key[best].label.split('(')[1].rstrip(')')}` (the better of "
        f"{', '.join('threads=' + k[-1] for k in proxy_keys)}). HAProxy "
        f"{haproxy_version()}: `mode tcp`, `balance leastconn`, {by_key['haproxy'].note}. "
        f"nginx {nginx_version()}: stream `least_conn` with a shared `zone`, "
        f"{by_key['nginx'].note}. *CPU µs/req* is the proxy's own user+system CPU time "
        f"divided by the requests it served.\n")

    for wl_key, _, wl_title in WORKLOADS:
        mixed = wl_key == "mixed"
        ref_haproxy = cells[("haproxy", wl_key)].median(lambda r: r["rps"])
        ref_direct = cells[("direct", wl_key)].median(lambda r: r["rps"])
        head = ["target", "req/s", "vs HAProxy", "vs direct", "p50 ms", "p99 ms", "p99.9 ms"]
        if mixed:
            head.append("fast-class p99 ms")
        head += ["CPU µs/req", "errors per run"]
        report.append(f"#### {wl_title}\n")
        report.append("| " + " | ".join(head) + " |")
        report.append("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
        for t in shown:
            c = cells[(t.key, wl_key)]
            rps = c.median(lambda r: r["rps"])
            row = [t.label, f"{rps:,.0f}", f"{rps / ref_haproxy:.2f}", f"{rps / ref_direct:.2f}",
                   f"{c.median(lambda r: r['p50']):.3f}", f"{c.median(lambda r: r['p99']):.3f}",
                   f"{c.median(lambda r: r['p99_9']):.3f}"]
            if mixed:
                row.append(f"{c.median(lambda r: r['fast_p99']):.3f}")
            if t.proc:
                row.append(f"{c.median(lambda r: r['cpu_us_per_request']):.1f}")
            else:
                row.append("–")
            row.append(", ".join(str(r["errors"]) for r in c.runs))
            report.append("| " + " | ".join(row) + " |")
        report.append("")
    for k in others:
        f, m = cells[(k, "fast")], cells[(k, "mixed")]
        report.append(
            f"Also measured, not in the tables: {by_key[k].label}: fast "
            f"{f.median(lambda r: r['rps']):,.0f} req/s (p99 {f.median(lambda r: r['p99']):.3f} ms), "
            f"mixed {m.median(lambda r: r['rps']):,.0f} req/s (p99 "
            f"{m.median(lambda r: r['p99']):.3f} ms, fast-class p99 "
            f"{m.median(lambda r: r['fast_p99']):.3f} ms), errors "
            f"{', '.join(str(r['errors']) for r in f.runs + m.runs)}.\n")
    bad = [(k, w, r) for (k, w), c in cells.items() for r in c.runs if r["errors"]]
    if bad:
        report.append("**Errors:** " + "; ".join(
            f"{by_key[k].label} {w}: {r['errors']} ({json.dumps(r['error_kinds'])})"
            for k, w, r in bad) + "\n")
    else:
        report.append("Errors: 0 in every run.\n")

    raw["throughput"] = {f"{k}/{w}": [{x: y for x, y in r.items()} for r in c.runs]
                         for (k, w), c in cells.items()}
    for t in targets:
        if t.proc:
            bench.procs.stop(t.proc)


def haproxy_version() -> str:
    out = subprocess.run([shutil.which("haproxy") or "haproxy", "-v"], capture_output=True,
                         text=True, timeout=30).stdout
    m = re.search(r"version (\S+)", out)
    return m.group(1) if m else "?"


def nginx_version() -> str:
    out = subprocess.run([shutil.which("nginx") or "nginx", "-v"], capture_output=True,
                         text=True, timeout=30).stderr
    m = re.search(r"nginx/(\S+)", out)
    return m.group(1) if m else "?"


# ---- Idle connections ----

HALF_HEADER = b"70:CONTENT_LENGTH\x000\x00SCGI\x001\x00REQUEST_METHOD\x00GE"  # of 70 bytes


def open_idle(port: int, count: int, payload: bytes) -> list[socket.socket]:
    socks = []
    deadline = time.monotonic() + 120
    try:
        for _ in range(count):
            if time.monotonic() > deadline:
                raise BenchError(f"opening {count} connections took over 120 s")
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            if payload:
                s.sendall(payload)
            socks.append(s)
    except BaseException:
        for s in socks:
            s.close()
        raise
    return socks


def run_idle(bench: Bench, report: list[str], raw: dict) -> None:
    args = bench.args
    bench.start_port_workers()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.idle_connections + 200
    if soft < need:
        raise BenchError(f"ulimit -n is {soft}; {args.idle_connections} idle connections need "
                         f"{need} (run-bench.sh raises it when the hard limit allows)")
    rows = []
    for kind, payload in (("silent (connect, send nothing)", b""),
                          ("half a header (45 of 73 bytes)", HALF_HEADER)):
        t = bench.start_scgi_proxy(args.idle_proxy_threads, client_timeout="10m")
        pid = t.proc.pid
        time.sleep(0.5)
        # One request first, so that buffers a first request allocates count in "before".
        bench.load(t.port, requests=100, connections=4)
        before = vm_status(pid)
        fds_before = open_fds(pid)
        socks = open_idle(t.port, args.idle_connections, payload)
        try:
            deadline = time.monotonic() + 60
            while open_fds(pid) < fds_before + args.idle_connections and time.monotonic() < deadline:
                time.sleep(0.2)
            accepted = open_fds(pid) - fds_before
            time.sleep(1.0)
            after = vm_status(pid)
            served = bench.load(t.port, duration="2s", connections=16)
            after_load = vm_status(pid)
            still_open = sum(1 for s in socks if s.fileno() >= 0)
        finally:
            for s in socks:
                s.close()
        bench.procs.stop(t.proc)
        mib = 1024 * 1024
        row = {
            "kind": kind, "connections": args.idle_connections, "accepted": accepted,
            "rss_before_mib": before["VmRSS"] / mib, "rss_after_mib": after["VmRSS"] / mib,
            "rss_after_load_mib": after_load["VmRSS"] / mib, "hwm_mib": after_load["VmHWM"] / mib,
            "kib_per_conn": (after["VmRSS"] - before["VmRSS"]) / 1024 / args.idle_connections,
            "load_rps": served["throughput_rps"], "load_errors": served["errors"],
            "load_p99": served["latency_ms"]["p99"], "still_open": still_open,
        }
        rows.append(row)
        log(f"idle {kind}: RSS {row['rss_before_mib']:.1f} -> {row['rss_after_mib']:.1f} MiB "
            f"({row['kib_per_conn']:.2f} KiB/conn), accepted {accepted}, "
            f"then {row['load_rps']:.0f} req/s with {row['load_errors']} errors")

    report.append("### Idle connections\n")
    report.append(
        f"{args.idle_connections:,} client connections held open to scgi-proxy "
        f"(`threads = {args.idle_proxy_threads}`, `client_timeout = \"10m\"`); VmRSS of the "
        f"proxy from `/proc/PID/status`. *Before* is after start-up and 100 requests; *after* "
        f"once the proxy holds every connection; then 2 s of the fast workload (16 connections) "
        f"run beside the idle ones. Target: < 64 MiB.\n")
    head = ["idle connections", "accepted", "RSS before", "RSS after", "per connection",
            "RSS after load", "peak (VmHWM)", "served beside them", "target < 64 MiB"]
    report.append("| " + " | ".join(head) + " |")
    report.append("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
    for r in rows:
        ok = "met" if max(r["rss_after_mib"], r["rss_after_load_mib"]) < 64 else "**missed**"
        report.append(
            f"| {r['connections']:,} {r['kind']} | {r['accepted']:,} | {r['rss_before_mib']:.1f} MiB"
            f" | {r['rss_after_mib']:.1f} MiB | {r['kib_per_conn']:.2f} KiB"
            f" | {r['rss_after_load_mib']:.1f} MiB | {r['hwm_mib']:.1f} MiB"
            f" | {r['load_rps']:,.0f} req/s, p99 {r['load_p99']:.2f} ms, {r['load_errors']} errors"
            f" | {ok} |")
    report.append("")
    raw["idle"] = rows


# ---- Instructions per request ----


def callgrind_total(path: Path) -> int:
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise BenchError(f"no summary line in {path}")


def run_instructions(bench: Bench, report: list[str], raw: dict) -> None:
    args = bench.args
    bench.start_port_workers()
    valgrind = shutil.which("valgrind")
    if not valgrind:
        raise BenchError("valgrind is missing: apt-get install valgrind")
    # callgrind_control -z / -d (through vgdb) zero the counters once the proxy is up and
    # dump them once the load is done, so start-up, whose cost varies from run to run
    # under valgrind (HAProxy's by several million), stays out of the count.
    control = shutil.which("callgrind_control")
    n = args.instr_requests
    results = {}
    for key, label in (("scgi-proxy", f"scgi-proxy (threads={args.instr_threads})"),
                       ("haproxy", f"HAProxy leastconn (nbthread {args.instr_threads})")):
        totals, windowed = {}, True
        for count in (n, 2 * n):
            out = bench.state / f"callgrind.{key}.{count}.out"
            wrapper = [valgrind, "--tool=callgrind", f"--callgrind-out-file={out}",
                       "--dump-line=no", "--compress-strings=no"]
            if key == "scgi-proxy":
                t = bench.start_scgi_proxy(args.instr_threads, wrapper=wrapper, ready_s=120)
            else:
                t = bench.start_haproxy(False, args.instr_threads, wrapper=wrapper, ready_s=120)
            time.sleep(2.0)  # start-up may go on after the socket listens
            zeroed = control is not None and subprocess.run(
                [control, "-z", str(t.proc.pid)], capture_output=True, timeout=60).returncode == 0
            started = time.monotonic()
            result = bench.load(t.port, requests=count, connections=4, timeout="60s")
            took = time.monotonic() - started
            dumped = zeroed and subprocess.run(
                [control, "-d", str(t.proc.pid)], capture_output=True, timeout=60).returncode == 0
            # HAProxy: SIGUSR1 is its graceful stop (SIGTERM kills it at once); both
            # leave callgrind time to write its totals.
            code = bench.procs.stop(t.proc, grace_s=120,
                                    sig=signal.SIGUSR1 if key == "haproxy" else signal.SIGTERM)
            if result["errors"]:
                raise BenchError(f"{label} under callgrind: {result['errors']} errors "
                                 f"({result.get('error_kinds')})")
            window = out.with_name(out.name + ".1")
            if dumped and window.exists():
                totals[count] = callgrind_total(window)
            else:
                windowed = False
                log(f"callgrind_control failed: counting {label} from start to exit")
                totals[count] = callgrind_total(out)
            log(f"callgrind {label}: {count} requests in {took:.1f}s, Ir {totals[count]:,} "
                f"(exit {code})")
        per = (totals[2 * n] - totals[n]) / n
        results[key] = {"label": label, "ir_n": totals[n], "ir_2n": totals[2 * n],
                        "per_request": per, "fixed": totals[n] - per * n, "windowed": windowed}

    report.append("### Instructions per request\n")
    report.append(
        f"`valgrind --tool=callgrind` on each proxy, serving N = {n:,} and then 2N requests of "
        f"the fast workload from `scgi-load` (4 connections, 4 sample workers) in two separate "
        f"runs. The counters are zeroed once the proxy is up and dumped when the load ends "
        f"(`callgrind_control -z` / `-d`); instructions per request = (Ir(2N) − Ir(N)) / N, "
        f"which also cancels what the window costs regardless of N. User-space instructions "
        f"only: the kernel's share (system calls, loopback TCP) is not counted, and valgrind "
        f"counts every iteration of a `rep stos`/`rep movs` (memset, memcpy) as one "
        f"instruction. Both proxies on one thread (valgrind runs one thread at a time).\n")
    report.append("| proxy | Ir, N requests | Ir, 2N requests | instructions per request | "
                  "fixed part | vs HAProxy |")
    report.append("|---|---:|---:|---:|---:|---:|")
    ref = results["haproxy"]["per_request"]
    for r in results.values():
        note = "" if r["windowed"] else " (start to exit)"
        report.append(f"| {r['label']}{note} | {r['ir_n']:,} | {r['ir_2n']:,} | "
                      f"{r['per_request']:,.0f} | {r['fixed']:,.0f} | {r['per_request'] / ref:.2f} |")
    report.append("")
    raw["instructions"] = results


# ---- Main ----


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin-dir", required=True)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--mode", default="all")
    parser.add_argument("--duration", default="10s")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--load-threads", type=int, default=1)
    parser.add_argument("--proxy-threads", default="1,2")
    parser.add_argument("--haproxy-threads", type=int, default=2)
    parser.add_argument("--nginx-workers", type=int, default=2)
    parser.add_argument("--idle-connections", type=int, default=10000)
    parser.add_argument("--idle-proxy-threads", type=int, default=2)
    parser.add_argument("--instr-requests", type=int, default=2000)
    parser.add_argument("--instr-threads", type=int, default=1)
    parser.add_argument("--out", default="")
    parser.add_argument("--pool-keys", default="",
                        help="more lines for scgi-proxy's [[pool]], e.g. 'queue_time = false'")
    args = parser.parse_args()
    args.proxy_threads = [int(x) for x in args.proxy_threads.split(",") if x]
    modes = ["throughput", "idle", "instructions"] if args.mode == "all" else args.mode.split(",")
    for m in modes:
        if m not in ("throughput", "idle", "instructions"):
            parser.error(f"--mode {m}: use throughput, idle, instructions or all")
    parse_seconds(args.duration)

    # SIGTERM / SIGHUP end the run like Ctrl-C: the finally below stops everything.
    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    bench = Bench(args)
    report: list[str] = []
    raw: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "args": vars(args)}
    load_start = loadavg()
    report.append(f"## Benchmark ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores; "
                  f"load average at start {load_start[0]:.2f} {load_start[1]:.2f} "
                  f"{load_start[2]:.2f})\n")
    try:
        for mode in modes:
            log(f"mode {mode}, load average {' '.join(f'{x:.2f}' for x in loadavg())}")
            {"throughput": run_throughput, "idle": run_idle,
             "instructions": run_instructions}[mode](bench, report, raw)
    except BenchError as error:
        log(f"error: {error}")
        return 1
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        bench.stop_all()
    load_end = loadavg()
    report.append(f"Load average at the end: {load_end[0]:.2f} {load_end[1]:.2f} "
                  f"{load_end[2]:.2f}.\n")
    raw["loadavg"] = {"start": load_start, "end": load_end}
    text = "\n".join(report)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
        Path(args.out + ".json").write_text(json.dumps(raw, indent=1, default=str) + "\n")
        log(f"wrote {args.out} and {args.out}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
