#!/usr/bin/env python3
"""Upgrades in place under load, measured on real processes. Standard library
only; run it after a release build (cmake --preset release && cmake --build
--preset release):

  python3 tests/bench/upgrade_bench.py [--daemon proxy|manager] [--runs 3] [--json]

Starts the daemon on free ports of 127.0.0.1: scgi-proxy in front of
--workers scgi-sample-workers (each on its own port), or scgi-manager running
a pool of them. scgi-load drives an open loop at --rate requests per second
(latency counted from each request's scheduled start, so a request that waited
in the backlog during a switch shows it) and keeps every request
(--request-log). After --lead seconds, --upgrades upgrades follow, --spacing
seconds apart: SIGUSR2 (or `scgictl upgrade` with --via scgictl), then the
daemon's log says "took over" (or "upgrade failed").

A request is "during an upgrade" when its scheduled start lies between the
moment the upgrade was asked for and the log line of its outcome, plus
--margin (the log's timestamps have millisecond resolution, and a request
started just after the line may still meet the tail of the switch). Reported:
failed requests (all, and during upgrades), latency p50 / p99 / p99.9 / max of
the successful requests during and outside upgrades, the switch time of each
upgrade (from the request to the "took over" line) and how long the front
doors were paused (from the "approved; pausing" line to "took over"), whether
the daemon kept its PID (and, for the manager, its workers' PIDs). Figures are
medians over --runs; the worst run's failures are reported beside them.

Every process started is stopped by its PID; every wait has a deadline.
--expect-no-failures makes the exit status 1 unless every request succeeded
and every upgrade took over (the CTest smoke run uses it).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Bounds: a mistyped argument must not start an hour-long run.
MAX_RUNS = 20
MAX_UPGRADES = 50
MAX_RATE = 20_000
MAX_RUN_SECONDS = 600

TOOK_OVER = re.compile(r"took over")
FAILED = re.compile(r"upgrade failed|cannot replace itself")
PAUSING = re.compile(r"approved; pausing")


class BenchError(Exception):
    pass


_given_ports: set[int] = set()


def free_port() -> int:
    """A free port of 127.0.0.1, never one this run has handed out already."""
    for _ in range(1000):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _given_ports:
            _given_ports.add(port)
            return port
    raise BenchError("no free port of 127.0.0.1 left")


def stamp(line: str) -> float:
    """Seconds since the epoch of a log line's leading UTC timestamp."""
    text = line.split(" ", 1)[0]
    parsed = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")
    return parsed.replace(tzinfo=timezone.utc).timestamp()


def wait_accepting(port: int, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.02)
    raise BenchError(f"nothing accepts on 127.0.0.1:{port} after {deadline_s} s")


class DaemonLog:
    """A daemon's stderr, read line by line on a thread of its own, copied to
    a file, and waited on by pattern (no polling: each line wakes the
    waiters)."""

    def __init__(self, stream, path: Path):
        self.lines: list[str] = []
        self.changed = threading.Condition()
        self.file = open(path, "w")
        self.reader = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.reader.start()

    def _read(self, stream) -> None:
        for raw in stream:
            line = raw.decode(errors="replace").rstrip("\n")
            self.file.write(line + "\n")
            self.file.flush()
            with self.changed:
                self.lines.append(line)
                self.changed.notify_all()
        with self.changed:
            self.lines.append("")  # end of the stream: wakes the waiters one last time
            self.changed.notify_all()

    def count(self) -> int:
        with self.changed:
            return len(self.lines)

    def wait_for(self, pattern: re.Pattern, after: int, timeout_s: float) -> str | None:
        """The first line from index `after` on that matches, waiting up to timeout_s."""
        deadline = time.monotonic() + timeout_s
        seen = after
        with self.changed:
            while True:
                for line in self.lines[seen:]:
                    if pattern.search(line):
                        return line
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0 or not self.reader.is_alive():
                    return None
                self.changed.wait(left)

    def since(self, after: int) -> list[str]:
        with self.changed:
            return list(self.lines[after:])

    def tail(self, n: int = 30) -> str:
        with self.changed:
            return "\n".join(self.lines[-n:])

    def close(self) -> None:
        self.reader.join(timeout=5)
        self.file.close()


class Processes:
    """Every process this run started, stopped by its PID, newest first."""

    def __init__(self, work: Path):
        self.work = work
        self.started: list[tuple[str, subprocess.Popen]] = []
        self.log_files = []

    def start(self, name: str, argv: list[str], **kwargs) -> subprocess.Popen:
        kwargs.setdefault("stdout", subprocess.DEVNULL)
        if "stderr" not in kwargs:
            self.log_files.append(open(self.work / f"{name}.log", "w"))
            kwargs["stderr"] = self.log_files[-1]
        process = subprocess.Popen(argv, **kwargs)
        self.started.append((name, process))
        return process

    def stop_all(self) -> None:
        for _, process in reversed(self.started):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for _, process in reversed(self.started):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        for file in self.log_files:
            file.close()


@dataclass
class Daemon:
    name: str  # "scgi-proxy" or "scgi-manager"
    process: subprocess.Popen
    log: DaemonLog
    listen: int
    control_socket: Path | None = None


def binary(bin_dir: Path, name: str) -> str:
    path = bin_dir / name
    if not os.access(path, os.X_OK):
        raise BenchError(f"{path} is missing: build it (release preset), or give --bin")
    return str(path)


def start_daemon(procs: Processes, argv: list[str], name: str, ready: re.Pattern,
                 work: Path) -> tuple[subprocess.Popen, DaemonLog]:
    process = procs.start(name, argv, stderr=subprocess.PIPE)
    log = DaemonLog(process.stderr, work / f"{name}.log")
    if log.wait_for(ready, 0, 20) is None:
        raise BenchError(f"{name} did not say it runs within 20 s:\n{log.tail()}")
    return process, log


def start_proxy(args, bin_dir: Path, work: Path, procs: Processes) -> Daemon:
    ports = []
    for i in range(args.workers):
        port = free_port()
        procs.start(f"worker{i + 1}", [binary(bin_dir, "scgi-sample-worker"), "--port", str(port)])
        ports.append(port)
    for port in ports:
        wait_accepting(port, 10)
    listen = free_port()
    backends = ", ".join(f'"127.0.0.1:{p}"' for p in ports)
    config = work / "proxy.toml"
    config.write_text(f"""# scgi-proxy for the upgrade benchmark: written by upgrade_bench.py
[proxy]
access_log = ""
shutdown_timeout = "5s"

[metrics]
listen = ""

[[pool]]
name = "bench"
listen = "127.0.0.1:{listen}"
backends = [{backends}]
concurrency = 1
queue_size = 4096
queue_timeout = "30s"
connect_timeout = "5s"
request_timeout = "60s"
""")
    process, log = start_daemon(procs, [binary(bin_dir, "scgi-proxy"), "--config", str(config)],
                                "scgi-proxy", re.compile(r"scgi-proxy running"), work)
    return Daemon("scgi-proxy", process, log, listen)


def start_manager(args, bin_dir: Path, work: Path, procs: Processes) -> Daemon:
    listen = free_port()
    control_socket = work / "scgi.sock"
    config = work / "scgi.toml"
    config.write_text(
        "# scgi-manager for the upgrade benchmark: written by upgrade_bench.py\n"
        f'[manager]\ncontrol_socket = "{control_socket}"\n'
        # No fixed port: another manager may hold the default 9100.
        '[metrics]\nlisten = ""\n'
        f'[[pool]]\nname = "bench"\nlisten = "127.0.0.1:{listen}"\n'
        f'command = ["{binary(bin_dir, "scgi-sample-worker")}"]\nworkers = {args.workers}\n'
        # Run as root, the workers may stay root: a benchmark, not a deployment.
        "allow_root = true\n")
    process, log = start_daemon(procs,
                                [binary(bin_dir, "scgi-manager"), "--config", str(config)],
                                "scgi-manager", re.compile(r"scgi-manager running"), work)
    daemon = Daemon("scgi-manager", process, log, listen, control_socket)
    deadline = time.monotonic() + 20
    while len(worker_pids(bin_dir, daemon)) < args.workers:
        if time.monotonic() > deadline or process.poll() is not None:
            raise BenchError(f"not {args.workers} ready workers after 20 s:\n{log.tail()}")
        time.sleep(0.05)
    return daemon


def worker_pids(bin_dir: Path, daemon: Daemon) -> list[int]:
    """The manager's ready workers, by `scgictl --json status`."""
    out = subprocess.run([binary(bin_dir, "scgictl"), "--socket", str(daemon.control_socket),
                          "--json", "status"], capture_output=True, text=True, timeout=10)
    if out.returncode != 0 or not out.stdout:
        return []
    pools = json.loads(out.stdout).get("pools", [])
    return sorted(w["pid"] for p in pools for w in p["workers"] if w["state"] == "ready")


@dataclass
class Upgrade:
    asked: float  # Unix seconds: the signal sent, or scgictl started
    ended: float  # the outcome's log line
    took_over: bool
    paused: float | None  # the "approved; pausing" log line
    outcome: str  # the outcome's log line, or what scgictl said when it failed

    @property
    def switch_ms(self) -> float:
        return (self.ended - self.asked) * 1000

    @property
    def pause_ms(self) -> float | None:
        return None if self.paused is None else (self.ended - self.paused) * 1000


def upgrade(args, bin_dir: Path, daemon: Daemon) -> Upgrade:
    mark = daemon.log.count()
    asked = time.time()
    control = None
    if args.via == "scgictl":
        control = subprocess.Popen(
            [binary(bin_dir, "scgictl"), "--socket", str(daemon.control_socket), "upgrade"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    else:
        os.kill(daemon.process.pid, signal.SIGUSR2)
    outcome = daemon.log.wait_for(re.compile(f"{TOOK_OVER.pattern}|{FAILED.pattern}"), mark,
                                  args.upgrade_timeout)
    said = ""
    if control is not None:
        try:
            said, _ = control.communicate(timeout=args.upgrade_timeout)
        except subprocess.TimeoutExpired:
            control.kill()
            said, _ = control.communicate()
            said += " (scgictl upgrade did not return)"
    if outcome is None:
        raise BenchError(f"upgrade: no outcome in {daemon.name}'s log within "
                         f"{args.upgrade_timeout} s {said.strip()}:\n{daemon.log.tail()}")
    pausing = next((l for l in daemon.log.since(mark) if PAUSING.search(l)), None)
    took_over = bool(TOOK_OVER.search(outcome)) and (control is None or control.returncode == 0)
    return Upgrade(asked, stamp(outcome), took_over, stamp(pausing) if pausing else None,
                   outcome if not said or took_over else said.strip())


@dataclass
class Request:
    start: float  # Unix seconds, scheduled
    latency_ms: float
    ok: bool


def read_requests(path: Path) -> list[Request]:
    requests = []
    for line in path.read_text().splitlines():
        start, latency, outcome = line.split()
        requests.append(Request(float(start), float(latency), outcome == "ok"))
    return requests


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest rank: the smallest value with a share q of the samples at or below it."""
    if not sorted_values:
        return float("nan")
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def latency_figures(requests: list[Request]) -> dict:
    values = sorted(r.latency_ms for r in requests if r.ok)
    return {"requests": len(requests), "failed": sum(1 for r in requests if not r.ok),
            "p50_ms": percentile(values, 0.5), "p99_ms": percentile(values, 0.99),
            "p99_9_ms": percentile(values, 0.999),
            "max_ms": values[-1] if values else float("nan")}


def one_run(args, bin_dir: Path, work: Path) -> dict:
    procs = Processes(work)
    daemon = None
    try:
        start = start_manager if args.daemon == "manager" else start_proxy
        daemon = start(args, bin_dir, work, procs)
        workers_before = worker_pids(bin_dir, daemon) if args.daemon == "manager" else []
        length = args.lead + args.upgrades * args.spacing + args.tail
        request_log = work / "requests.log"
        load = procs.start("scgi-load", [
            binary(bin_dir, "scgi-load"), "--connect", f"127.0.0.1:{daemon.listen}",
            "--rate", str(args.rate), "--duration", f"{round(length * 1000)}ms",
            "--query", args.query, "--timeout", "10s", "--json",
            "--request-log", str(request_log)], stdout=subprocess.PIPE)
        began = time.monotonic()
        upgrades = []
        for i in range(args.upgrades):
            # Spaced from the load's start, not from the last outcome: a slow
            # switch does not shift the later ones.
            time.sleep(max(0.0, began + args.lead + i * args.spacing - time.monotonic()))
            upgrades.append(upgrade(args, bin_dir, daemon))
        try:
            out, _ = load.communicate(timeout=length + 60)
        except subprocess.TimeoutExpired:
            raise BenchError("scgi-load did not end 60 s after its planned end")
        if load.returncode != 0:
            raise BenchError(f"scgi-load failed ({load.returncode}): "
                             f"{(work / 'scgi-load.log').read_text()[-2000:]}")
        summary = json.loads(out)
        requests = read_requests(request_log)
        if len(requests) != summary["requests"]:
            raise BenchError(f"the request log holds {len(requests)} requests, scgi-load "
                             f"counted {summary['requests']}")
        # The outcome's line was written within the millisecond its timestamp names.
        windows = [(u.asked, u.ended + 0.001 + args.margin) for u in upgrades]
        during = [r for r in requests if any(a <= r.start <= b for a, b in windows)]
        outside = [r for r in requests if not any(a <= r.start <= b for a, b in windows)]
        pid_kept = daemon.process.poll() is None
        result = {
            "requests": len(requests),
            "failed": sum(1 for r in requests if not r.ok),
            "failed_during": sum(1 for r in during if not r.ok),
            "during": latency_figures(during),
            "outside": latency_figures(outside),
            "upgrades_took_over": sum(1 for u in upgrades if u.took_over),
            # Of the upgrades that took over; the log's timestamps are cut to the
            # millisecond, so each figure is up to 1 ms short.
            "switch_ms": [round(u.switch_ms, 1) for u in upgrades if u.took_over],
            "pause_ms": [round(u.pause_ms, 1) for u in upgrades
                         if u.took_over and u.pause_ms is not None],
            "pid_kept": pid_kept,
            "failed_upgrades": [u.outcome for u in upgrades if not u.took_over],
        }
        if args.daemon == "manager":
            result["worker_pids_kept"] = pid_kept and worker_pids(bin_dir, daemon) == workers_before
        return result
    except BenchError as error:
        raise BenchError(f"{error}\n(state kept in {work})") from None
    finally:
        procs.stop_all()
        if daemon is not None:
            daemon.log.close()


def median(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return statistics.median(values) if values else float("nan")


def summarize(args, runs: list[dict]) -> dict:
    def side(name: str) -> dict:
        return {key: median([r[name][key] for r in runs]) for key in runs[0][name]}

    switches = [s for r in runs for s in r["switch_ms"]]
    pauses = [p for r in runs for p in r["pause_ms"]]
    summary = {
        "daemon": args.daemon,
        "via": args.via,
        "workers": args.workers,
        "rate": args.rate,
        "query": args.query,
        "upgrades_per_run": args.upgrades,
        "spacing_s": args.spacing,
        "margin_s": args.margin,
        "runs": len(runs),
        "requests": median([r["requests"] for r in runs]),
        "failed": median([r["failed"] for r in runs]),
        "failed_during": median([r["failed_during"] for r in runs]),
        "most_failed_in_a_run": max(r["failed"] for r in runs),
        "during": side("during"),
        "outside": side("outside"),
        "switch_ms_median": median(switches),
        "switch_ms_max": max(switches) if switches else float("nan"),
        "pause_ms_median": median(pauses),
        "pause_ms_max": max(pauses) if pauses else float("nan"),
        "upgrades_took_over": sum(r["upgrades_took_over"] for r in runs),
        "upgrades_asked": args.upgrades * len(runs),
        "pid_kept": all(r["pid_kept"] for r in runs),
        "per_run": runs,
    }
    if args.daemon == "manager":
        summary["worker_pids_kept"] = all(r["worker_pids_kept"] for r in runs)
    return summary


def ms(value: float, width: int = 0) -> str:
    return f"{'–' if math.isnan(value) else f'{value:.2f}':>{width}}"


def without_nan(value):
    """The summary as strict JSON: a figure with no sample (nan) becomes null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: without_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_nan(v) for v in value]
    return value


def print_table(summary: dict) -> None:
    def row(name: str, figures: dict) -> str:
        return (f"  {name:<16} {figures['requests']:>9.0f} {figures['failed']:>7.0f} "
                f"{ms(figures['p50_ms'], 8)} {ms(figures['p99_ms'], 8)} "
                f"{ms(figures['p99_9_ms'], 9)} {ms(figures['max_ms'], 8)}")

    via = "SIGUSR2" if summary["via"] == "signal" else "scgictl upgrade"
    lines = [
        f"scgi-{summary['daemon']}, {summary['workers']} sample workers, open loop "
        f"{summary['rate']:g} req/s (query \"{summary['query']}\"), {summary['upgrades_per_run']} "
        f"upgrades ({via}) {summary['spacing_s']:g} s apart per run; median of "
        f"{summary['runs']} run{'s' if summary['runs'] != 1 else ''}",
        "",
        f"  {'requests':<16} {'count':>9} {'failed':>7} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'p99.9 ms':>9} {'max ms':>8}",
        row("during upgrades", summary["during"]),
        row("outside", summary["outside"]),
        "",
        f"failed requests   {summary['failed']:.0f} of {summary['requests']:.0f} "
        f"({summary['failed_during']:.0f} during upgrades; most in one run: "
        f"{summary['most_failed_in_a_run']})",
        f"upgrades          {summary['upgrades_took_over']} of {summary['upgrades_asked']} took "
        f"over; same PID: {'yes' if summary['pid_kept'] else 'NO'}"
        + (f"; same worker PIDs: {'yes' if summary['worker_pids_kept'] else 'NO'}"
           if "worker_pids_kept" in summary else ""),
        f"switch            asked → \"took over\": median {ms(summary['switch_ms_median'])} ms, "
        f"max {ms(summary['switch_ms_max'])} ms",
        f"front doors       paused → \"took over\": median {ms(summary['pause_ms_median'])} ms, "
        f"max {ms(summary['pause_ms_max'])} ms",
    ]
    for i, run in enumerate(summary["per_run"], 1):
        lines.append(f"run {i}: failed {run['failed']} ({run['failed_during']} during), "
                     f"switch ms {' / '.join(f'{s:.0f}' for s in run['switch_ms']) or '–'}, "
                     f"max during {ms(run['during']['max_ms'])} ms, "
                     f"outside {ms(run['outside']['max_ms'])} ms")
        for reason in run["failed_upgrades"]:
            lines.append(f"  upgrade failed: {reason}")
    print("\n".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", default=str(HERE.parent.parent / "build" / "bin"), type=Path,
                        help="where the release build's binaries are (default build/bin)")
    parser.add_argument("--daemon", choices=["proxy", "manager"], default="proxy")
    parser.add_argument("--via", choices=["signal", "scgictl"], default="signal",
                        help="how to ask for an upgrade (scgictl: the manager only)")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rate", type=float, default=500, help="requests per second")
    parser.add_argument("--query", default="sleep_ms=2",
                        help="the sample worker's query: what each request does")
    parser.add_argument("--upgrades", type=int, default=5, help="per run")
    parser.add_argument("--spacing", type=float, default=2.0, help="seconds between upgrades")
    parser.add_argument("--lead", type=float, default=1.0,
                        help="seconds of load before the first upgrade")
    parser.add_argument("--tail", type=float, default=1.0,
                        help="seconds of load after the last upgrade's slot")
    parser.add_argument("--margin", type=float, default=0.1,
                        help="seconds after the outcome's log line still counted as during")
    parser.add_argument("--upgrade-timeout", type=float, default=30,
                        help="seconds to wait for an upgrade's outcome")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--expect-no-failures", action="store_true",
                        help="exit 1 unless every request succeeded and every upgrade took over")
    args = parser.parse_args()

    if args.via == "scgictl" and args.daemon != "manager":
        parser.error("--via scgictl needs --daemon manager (scgi-proxy has no control socket)")
    if not 1 <= args.runs <= MAX_RUNS:
        parser.error(f"--runs must be 1 to {MAX_RUNS}")
    if not 1 <= args.upgrades <= MAX_UPGRADES:
        parser.error(f"--upgrades must be 1 to {MAX_UPGRADES}")
    if not 0 < args.rate <= MAX_RATE:
        parser.error(f"--rate must be above 0 and at most {MAX_RATE}")
    if args.workers < 1 or args.spacing <= 0 or min(args.lead, args.tail, args.margin) < 0:
        parser.error("--workers and --spacing must be positive, --lead, --tail, --margin not "
                     "negative")
    if args.lead + args.upgrades * args.spacing + args.tail > MAX_RUN_SECONDS:
        parser.error(f"a run would last over {MAX_RUN_SECONDS} s")

    bin_dir = args.bin.resolve()
    runs = []
    try:
        for i in range(args.runs):
            work = Path(tempfile.mkdtemp(prefix="scgi-upgrade-bench."))
            runs.append(one_run(args, bin_dir, work))
            shutil.rmtree(work, ignore_errors=True)  # kept when the run failed
            if not args.json:
                print(f"run {i + 1} of {args.runs} done", file=sys.stderr)
    except BenchError as error:
        print(f"upgrade_bench: {error}", file=sys.stderr)
        return 2
    summary = summarize(args, runs)
    if args.json:
        print(json.dumps(without_nan(summary)))
    else:
        print_table(summary)
    if args.expect_no_failures:
        clean = (summary["most_failed_in_a_run"] == 0 and
                 summary["upgrades_took_over"] == summary["upgrades_asked"] and
                 summary["pid_kept"] and summary.get("worker_pids_kept", True))
        return 0 if clean else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
