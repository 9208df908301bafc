"""The stack behind deploy/grafana/scgi-dashboard.json, run for real on
loopback: scgi-manager with pools of scgi-sample-worker, Debian's Prometheus
scraping its /metrics every second, and scgi-load runs against the pools.
Shared by dashboard_test.py (every panel's query returns data) and
dashboard_render.py (docs/dashboard.png). Standard library only.

Every process is started as a Popen and stopped by its PID; every wait has a
deadline.
"""
from __future__ import annotations

import json
import math
import os
import random
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

SCRAPE_INTERVAL_S = 1


def free_port() -> int:
    """A port in the range the integration tests use, free when checked."""
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    for _ in range(200):
        port = rng.randrange(20000, 32000)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port in 20000-32000")


def stop_process(process: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL if it has not exited in `timeout` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def wait_for(condition, timeout: float, what: str, interval: float = 0.2):
    """Polls `condition` until it returns something truthy; raises after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


@dataclass
class Pool:
    """One [[pool]] of sample workers; `keys` are more TOML lines for it."""
    name: str
    keys: str = "workers = 3"
    port: int = field(default_factory=free_port)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass
class Binaries:
    manager: Path
    sample_worker: Path
    load: Path
    prometheus: Path = Path("/usr/bin/prometheus")  # Debian's prometheus package

    @classmethod
    def in_dir(cls, bin_dir: Path, prometheus: Path) -> "Binaries":
        return cls(bin_dir / "scgi-manager", bin_dir / "scgi-sample-worker", bin_dir / "scgi-load",
                   prometheus)


class Stack:
    """scgi-manager + Prometheus in `work`; use as a context manager so that
    everything it started is stopped however the block ends."""

    def __init__(self, binaries: Binaries, work: Path, pools: list[Pool]):
        self.binaries = binaries
        self.work = work
        self.pools = pools
        self.metrics_port = free_port()
        self.prometheus_port = free_port()
        self.manager: subprocess.Popen | None = None
        self.prometheus: subprocess.Popen | None = None
        self.loads: list[subprocess.Popen] = []

    # -- starting and stopping ------------------------------------------------

    def __enter__(self) -> "Stack":
        try:
            self._start_manager()
            self._start_prometheus()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for load in self.loads:
            stop_process(load, timeout=5)
        if self.manager is not None:
            workers = self.worker_pids() if self.manager.poll() is None else []
            stop_process(self.manager, timeout=20)  # it stops its workers first
            # Workers run in their own sessions: if the manager had to be
            # killed, they would outlive it.
            for pid in workers:
                if self._is_our_worker(pid):
                    os.kill(pid, signal.SIGKILL)
        if self.prometheus is not None:
            stop_process(self.prometheus)

    def _manager_config(self) -> str:
        lines = [
            "[manager]",
            f'control_socket = "{self.work / "scgi.sock"}"',
            'shutdown_timeout = "3s"',
            "[proxy]",
            "threads = 2",
            "[metrics]",
            f'listen = "127.0.0.1:{self.metrics_port}"',
        ]
        for pool in self.pools:
            # --name lets worker_pids() tell the pools' workers apart.
            lines += [
                "[[pool]]",
                f'name = "{pool.name}"',
                f'listen = "{pool.address}"',
                f'command = ["{self.binaries.sample_worker}", "--name", "{pool.name}"]',
                'env = { PATH = "/usr/local/bin:/usr/bin:/bin" }',
                'stop_timeout = "2s"',
                # Run as root, the workers may stay root: a test stack, not a deployment.
                "allow_root = true",
                pool.keys,
            ]
        return "\n".join(lines) + "\n"

    def _start_manager(self) -> None:
        config = self.work / "scgi.toml"
        config.write_text(self._manager_config())
        self.manager = subprocess.Popen(
            [str(self.binaries.manager), "--config", str(config)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(self.work / "manager.log", "wb"))
        wait_for(lambda: self._manager_alive() and self.scrape(), 20, "scgi-manager's /metrics")
        for pool in self.pools:
            wait_for(lambda: self._manager_alive() and self.ready_workers(pool.name) > 0, 20,
                     f"a ready worker in pool {pool.name}")

    def _manager_alive(self) -> bool:
        if self.manager.poll() is not None:
            log = (self.work / "manager.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"scgi-manager exited with {self.manager.returncode}:\n{log}")
        return True

    def _start_prometheus(self) -> None:
        config = self.work / "prometheus.yml"
        # JSON is YAML: no YAML library needed to write it.
        config.write_text(json.dumps({
            "global": {"scrape_interval": f"{SCRAPE_INTERVAL_S}s",
                       "evaluation_interval": f"{SCRAPE_INTERVAL_S}s"},
            "scrape_configs": [{
                "job_name": "scgi",
                "metrics_path": "/metrics",
                "static_configs": [{"targets": [f"127.0.0.1:{self.metrics_port}"],
                                    "labels": {"service": "scgi-manager"}}],
            }],
        }, indent=2))
        self.prometheus = subprocess.Popen(
            [str(self.binaries.prometheus), f"--config.file={config}",
             f"--storage.tsdb.path={self.work / 'prometheus-data'}",
             f"--web.listen-address=127.0.0.1:{self.prometheus_port}",
             "--log.level=warn"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(self.work / "prometheus.log", "wb"))

        def ready() -> bool:
            if self.prometheus.poll() is not None:
                log = (self.work / "prometheus.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"prometheus exited with {self.prometheus.returncode}:\n{log}")
            return self._http_ok(f"http://127.0.0.1:{self.prometheus_port}/-/ready")

        wait_for(ready, 30, "Prometheus to be ready")
        # Its scrape loop starts a few seconds after it is ready (targets are
        # synced on a 5 s tick): load sent before then would go unseen.
        wait_for(lambda: self.query('up{job="scgi"} == 1').get("data", {}).get("result"), 30,
                 "Prometheus's first scrape of scgi-manager", interval=0.5)

    @staticmethod
    def _http_ok(url: str) -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    # -- the manager ------------------------------------------------------------

    def scrape(self) -> str:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                        timeout=2) as response:
                return response.read().decode()
        except OSError:
            return ""

    def ready_workers(self, pool: str) -> float:
        match = re.search(rf'^scgi_workers{{pool="{pool}",state="ready"}} (\S+)$', self.scrape(),
                          re.MULTILINE)
        return float(match.group(1)) if match else 0

    def _is_our_worker(self, pid: int) -> bool:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return argv[0] == str(self.binaries.sample_worker).encode()

    def worker_pids(self, pool: str | None = None) -> list[int]:
        """The manager's children (its workers), all or those of `pool`."""
        pids = []
        try:
            tasks = list(Path(f"/proc/{self.manager.pid}/task").iterdir())
        except OSError:  # the manager has exited
            return []
        for task in tasks:
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for pid in map(int, children):
                try:
                    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                if pool is None or (b"--name" in argv
                                    and argv[argv.index(b"--name") + 1].decode() == pool):
                    pids.append(pid)
        return sorted(pids)

    def kill_worker(self, pool: str) -> int:
        """SIGKILLs one worker of `pool` (the manager restarts it); its pid."""
        pids = wait_for(lambda: self.worker_pids(pool), 10, f"a worker of {pool}")
        os.kill(pids[0], signal.SIGKILL)
        return pids[0]

    # -- load -------------------------------------------------------------------

    def start_load(self, pool: Pool, duration: str, mix: str, connections: int = 8,
                   rate: float | None = None, seed: int = 1) -> subprocess.Popen:
        argv = [str(self.binaries.load), "--connect", pool.address, "--duration", duration,
                "--connections", str(connections), "--mix", mix, "--timeout", "10s",
                "--seed", str(seed), "--json"]
        if rate is not None:
            argv += ["--rate", str(rate)]
        load = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        self.loads.append(load)
        return load

    # -- Prometheus's HTTP API ----------------------------------------------------

    def api(self, path: str, params: dict) -> dict:
        """GET /api/v1/PATH; the decoded answer, also for a 4xx (its error says why)."""
        url = (f"http://127.0.0.1:{self.prometheus_port}/api/v1/{path}?"
               + urllib.parse.urlencode(params))
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            return json.load(error)

    def query(self, expr: str, at: float | None = None) -> dict:
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        return self.api("query", params)

    def query_range(self, expr: str, start: float, end: float, step: float) -> dict:
        return self.api("query_range", {"query": expr, "start": f"{start:.3f}",
                                        "end": f"{end:.3f}", "step": f"{step:g}"})


# -- the dashboard's queries ------------------------------------------------------

def dashboard_panels(dashboard: dict) -> list[dict]:
    """Every panel that is not a row, including those inside collapsed rows."""
    panels = []
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            panels.extend(panel.get("panels", []))
        else:
            panels.append(panel)
    return panels


def grafana_variables(pool_regex: str, rate_interval: str, interval: str) -> dict[str, str]:
    """What Grafana puts in place of the variables a query may use."""
    return {"pool": pool_regex, "__rate_interval": rate_interval, "__interval": interval,
            "__range": "1m"}


def substitute(expr: str, variables: dict[str, str]) -> str:
    """Replaces $name and ${name}; an unknown variable is left as it is (and then
    fails to parse in Prometheus)."""
    def value(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        return variables.get(name, match.group(0))
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, expr)


def legend(template: str, labels: dict[str, str]) -> str:
    """Grafana's legendFormat: {{label}} becomes the series' label value."""
    text = re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template)
    return " ".join(text.split()) or json.dumps(labels)


def finite(value: str) -> bool:
    return math.isfinite(float(value))
