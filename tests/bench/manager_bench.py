#!/usr/bin/env python3
"""Supervision figures of scgi-manager, measured on real processes. Standard
library only; run it after a release build (cmake --preset release && cmake
--build --preset release):

  python3 tests/bench/manager_bench.py [--bin build/bin] [--runs 3]

  replace   4 sample workers (socket = inherit) under closed-loop load
            (8 connections, sleep_ms=2); a different worker is killed with
            SIGKILL every 2 s. Time from the exit to the replacement being ready
            (from the manager's log), and the requests that failed.
  recycle   the same pool with max_requests = 200 (and then max_rss) under
            load: how many recycles, and the requests that failed (must be 0).
  growth    a dynamic pool (min 1, max 8, concurrency 1) that suddenly gets
            16 connections of sleep_ms=100: time from the first request to the
            first "growing" decision and until 8 workers are ready.

Medians over --runs. Every process started is stopped by its PID; every wait
has a deadline.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stamp(line: str) -> float:
    """Seconds since the epoch of a log line's leading UTC timestamp."""
    text = line.split(" ", 1)[0]
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()


class Manager:
    def __init__(self, bin_dir: Path, work: Path, pool_keys: str):
        self.listen = free_port()
        self.metrics = free_port()
        self.socket = work / "scgi.sock"
        self.log = work / "manager.log"
        config = work / "scgi.toml"
        config.write_text(
            f'[manager]\ncontrol_socket = "{self.socket}"\n'
            f'[metrics]\nlisten = "127.0.0.1:{self.metrics}"\n'
            f'[[pool]]\nname = "app"\nlisten = "127.0.0.1:{self.listen}"\n'
            f'command = ["{bin_dir / "scgi-sample-worker"}"]\n'
            # Run as root, the workers may stay root: a benchmark, not a deployment.
            f'allow_root = true\n{pool_keys}\n')
        self.bin_dir = bin_dir
        self.process = subprocess.Popen(
            [str(bin_dir / "scgi-manager"), "--config", str(config)],
            stdout=subprocess.DEVNULL, stderr=open(self.log, "w"))

    def status(self) -> dict:
        out = subprocess.run(
            [str(self.bin_dir / "scgictl"), "--socket", str(self.socket), "--json", "status", "app"],
            capture_output=True, text=True, timeout=10)
        return json.loads(out.stdout) if out.returncode == 0 else {}

    def workers(self, state: str = "ready") -> list[dict]:
        pools = self.status().get("pools", [])
        return [w for p in pools for w in p["workers"] if w["state"] == state]

    def wait_ready(self, count: int, timeout: float = 20) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.workers()) >= count:
                return time.time()
            time.sleep(0.01)
        raise RuntimeError(f"not {count} ready workers after {timeout} s: {self.log.read_text()}")

    def lines(self) -> list[str]:
        return self.log.read_text(errors="replace").splitlines()

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def load(bin_dir: Path, port: int, seconds: float, query: str, connections: int = 8):
    return subprocess.Popen(
        [str(bin_dir / "scgi-load"), "--connect", f"127.0.0.1:{port}", "--connections",
         str(connections), "--duration", f"{seconds}s", "--query", query, "--json",
         "--timeout", "10s"],
        stdout=subprocess.PIPE, text=True)


def report(process) -> dict:
    out, _ = process.communicate(timeout=120)
    return json.loads(out[out.index("{"):])


def replace_run(bin_dir: Path, work: Path) -> dict:
    manager = Manager(bin_dir, work, "workers = 4")
    try:
        manager.wait_ready(4)
        running = load(bin_dir, manager.listen, 9, "sleep_ms=2")
        for i in range(4):
            time.sleep(2)
            # A different slot each time: each restart is that slot's first,
            # so it waits restart_backoff[0] (100 ms), not a doubled delay.
            victim = sorted(manager.workers(), key=lambda w: w["index"])[i]["pid"]
            os.kill(victim, signal.SIGKILL)
        result = report(running)
        manager.wait_ready(4)
        ended = {}
        times = []
        for line in manager.lines():
            m = re.search(r"app\[(\d+)\]: pid \d+ ended unexpectedly", line)
            if m:
                ended[m.group(1)] = stamp(line)
            m = re.search(r"app\[(\d+)\]: pid \d+ ready after", line)
            if m and m.group(1) in ended:
                times.append((stamp(line) - ended.pop(m.group(1))) * 1000)
        return {"replace_ms": statistics.median(times), "kills": len(times),
                "requests": result["requests"], "errors": result["errors"]}
    finally:
        manager.stop()


def recycle_run(bin_dir: Path, work: Path, keys: str, query: str) -> dict:
    manager = Manager(bin_dir, work, "workers = 4\n" + keys)
    try:
        manager.wait_ready(4)
        result = report(load(bin_dir, manager.listen, 8, query))
        recycles = sum(1 for line in manager.lines() if "starting its replacement" in line)
        return {"recycles": recycles, "requests": result["requests"], "errors": result["errors"]}
    finally:
        manager.stop()


def growth_run(bin_dir: Path, work: Path) -> dict:
    manager = Manager(bin_dir, work,
                      "min_workers = 1\nmax_workers = 8\nidle_timeout = \"60s\"")
    try:
        manager.wait_ready(1)
        started = time.time()
        # 16 connections need more than max_workers: the pool grows to its bound.
        running = load(bin_dir, manager.listen, 6, "sleep_ms=100", connections=16)
        all_ready = manager.wait_ready(8, timeout=30)
        result = report(running)
        first = next(stamp(l) for l in manager.lines() if "growing to" in l)
        return {"first_growth_ms": (first - started) * 1000,
                "to_8_ready_ms": (all_ready - started) * 1000,
                "requests": result["requests"], "errors": result["errors"]}
    finally:
        manager.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin", default="build/bin", type=Path)
    parser.add_argument("--runs", default=3, type=int)
    args = parser.parse_args()
    bin_dir = args.bin.resolve()
    cells = {
        "replace (SIGKILL every 2 s)": lambda w: replace_run(bin_dir, w),
        "recycle max_requests = 200": lambda w: recycle_run(bin_dir, w, "max_requests = 200",
                                                            "sleep_ms=2"),
        "recycle max_rss = 48MiB": lambda w: recycle_run(bin_dir, w, "max_rss = \"48MiB\"",
                                                         "grow_kb=64&sleep_ms=2"),
        "growth 1 → 8 workers": lambda w: growth_run(bin_dir, w),
    }
    for name, run in cells.items():
        results = []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory(prefix="scgi-manager-bench.") as work:
                results.append(run(Path(work)))
        keys = results[0].keys()
        medians = {k: statistics.median(r[k] for r in results) for k in keys}
        worst_errors = max(r["errors"] for r in results)
        print(f"{name}: " + ", ".join(f"{k} {v:.0f}" if isinstance(v, float) else f"{k} {v}"
                                      for k, v in medians.items())
              + f" (median of {args.runs}; most errors in one run: {worst_errors})")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
