#!/usr/bin/env python3
"""How scgi-manager scales with its number of workers, measured on real
processes. Standard library only; run it after a release build:

  python3 tests/bench/scale_bench.py [--bin build/bin] [--pools 50] [--workers 10]

Starts one scgi-manager with --pools pools of --workers scgi-sample-workers
each (socket = inherit, each pool with its own listen port, metrics on), then
measures:

  ready     seconds from the manager's start until every worker is ready
            (scgictl status polled every 50 ms)
  idle CPU  the manager's own CPU time (user + system, /proc/PID/stat) over
            --idle seconds with no traffic, as a share of one core
  status    wall time of `scgictl --json status` (all pools), median of 5
  scrape    wall time of one GET /metrics, median of 5, and its size

The targets (issue "Architecture"): 500 workers in 50 pools ready within 5 s,
the idle manager under 2 % of one core, status and scrape under 250 ms.
Every process started is stopped by its PID; every wait has a deadline.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


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
    raise RuntimeError("no free port of 127.0.0.1 left")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (not its children)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def write_config(work: Path, bin_dir: Path, pools: int, workers: int) -> tuple[Path, int]:
    metrics = free_port()
    lines = [f'[manager]\ncontrol_socket = "{work / "scgi.sock"}"\n'
             f'max_workers_per_pool = {max(workers, 1)}\n'
             f'[metrics]\nlisten = "127.0.0.1:{metrics}"\n']
    for p in range(pools):
        lines.append(
            f'[[pool]]\nname = "p{p}"\nlisten = "127.0.0.1:{free_port()}"\n'
            f'command = ["{bin_dir / "scgi-sample-worker"}"]\nworkers = {workers}\n'
            # Run as root, the workers may stay root: a benchmark, not a deployment.
            'allow_root = true\n')
    config = work / "scgi.toml"
    config.write_text("".join(lines))
    return config, metrics


def scgictl_status(bin_dir: Path, work: Path) -> tuple[float, dict]:
    started = time.monotonic()
    out = subprocess.run([str(bin_dir / "scgictl"), "--socket", str(work / "scgi.sock"), "--json",
                          "status"], capture_output=True, text=True, timeout=30)
    took = time.monotonic() - started
    return took, (json.loads(out.stdout) if out.returncode == 0 and out.stdout else {})


def scrape(port: int) -> tuple[float, int]:
    started = time.monotonic()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
        size = len(response.read())
    return time.monotonic() - started, size


def ready_workers(status: dict) -> int:
    return sum(1 for pool in status.get("pools", []) for worker in pool.get("workers", [])
               if worker.get("state") == "ready")


def measure(bin_dir: Path, pools: int, workers: int, idle: float) -> dict:
    total = pools * workers
    with tempfile.TemporaryDirectory(prefix="scale-bench-") as folder:
        work = Path(folder)
        config, metrics = write_config(work, bin_dir, pools, workers)
        log = open(work / "manager.log", "w")
        started = time.monotonic()
        manager = subprocess.Popen([str(bin_dir / "scgi-manager"), "--config", str(config)],
                                   stdout=subprocess.DEVNULL, stderr=log)
        try:
            deadline = started + 120
            ready_after = None
            while time.monotonic() < deadline and manager.poll() is None:
                _, status = scgictl_status(bin_dir, work)
                if ready_workers(status) >= total:
                    ready_after = time.monotonic() - started
                    break
                time.sleep(0.05)
            if ready_after is None:
                raise RuntimeError(f"not {total} ready workers within 120 s; see the manager's "
                                   f"log:\n{(work / 'manager.log').read_text()[-3000:]}")
            time.sleep(2)  # let start-up work settle before measuring idleness
            before = cpu_seconds(manager.pid)
            time.sleep(idle)
            idle_share = (cpu_seconds(manager.pid) - before) / idle
            status_times = [scgictl_status(bin_dir, work)[0] for _ in range(5)]
            scrapes = [scrape(metrics) for _ in range(5)]
            return {
                "workers": total,
                "pools": pools,
                "ready_s": ready_after,
                "idle_cpu_share": idle_share,
                "status_ms": statistics.median(status_times) * 1000,
                "scrape_ms": statistics.median(t for t, _ in scrapes) * 1000,
                "scrape_bytes": scrapes[-1][1],
            }
        finally:
            manager.send_signal(signal.SIGTERM)
            try:
                manager.wait(timeout=60)
            except subprocess.TimeoutExpired:
                manager.kill()
                manager.wait()
            log.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    here = Path(__file__).resolve().parent
    parser.add_argument("--bin", default=str(here.parent.parent / "build" / "bin"))
    parser.add_argument("--pools", type=int, default=50)
    parser.add_argument("--workers", type=int, default=10, help="workers per pool")
    parser.add_argument("--idle", type=float, default=10, help="seconds of idleness measured")
    args = parser.parse_args()
    result = measure(Path(args.bin), args.pools, args.workers, args.idle)
    print(f"{result['workers']} workers in {result['pools']} pools: ready in "
          f"{result['ready_s']:.2f} s, idle manager {100 * result['idle_cpu_share']:.1f} % of a "
          f"core, scgictl status {result['status_ms']:.0f} ms, /metrics "
          f"{result['scrape_ms']:.0f} ms ({result['scrape_bytes']} bytes)")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
