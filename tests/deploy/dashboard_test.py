#!/usr/bin/env python3
"""Every query of the Grafana dashboard returns data from a real Prometheus.

Checks the dashboard's shape first (the DS_PROMETHEUS input, the datasource
and pool variables, every panel with targets that filter pool=~"$pool"), then
runs scgi-manager with a pool of sample workers, Debian's Prometheus scraping
it every second, and scgi-load sending a mix of fast, missing (404), slow,
stuck (504) and dropped (502) requests that also fill the queue (503); one
worker is killed with SIGKILL so that restarts are counted. Then each panel's
queries, with Grafana's variables filled in, are evaluated through
/api/v1/query at a moment of the load: each must succeed and return at least
one series with a finite value. A misspelled metric returns nothing and fails.

Usage: dashboard_test.py MANAGER_BIN SAMPLE_WORKER_BIN LOAD_BIN
           [--prometheus /usr/bin/prometheus] [--dashboard FILE]
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
from dashboard_stack import (Binaries, Pool, Stack, dashboard_panels, finite,  # noqa: E402
                             grafana_variables, substitute, wait_for)

DEFAULT_DASHBOARD = Path(__file__).resolve().parents[2] / "deploy/grafana/scgi-dashboard.json"
DATASOURCE_UIDS = ("${datasource}", "$datasource")
LOAD_SECONDS = 10
# What Grafana would use with a 1 s scrape interval and a short time range.
RATE_INTERVAL = "15s"
INTERVAL = "5s"


def shape_errors(dashboard: dict) -> list[str]:
    """What would make the dashboard fail to import, or to work once imported."""
    errors = []
    inputs = dashboard.get("__inputs", [])
    if not any(i.get("name") == "DS_PROMETHEUS" and i.get("type") == "datasource"
               and i.get("pluginId") == "prometheus" for i in inputs):
        errors.append("__inputs has no DS_PROMETHEUS datasource input of plugin prometheus")
    if "${DS_PROMETHEUS}" not in json.dumps(dashboard):
        errors.append("nothing uses ${DS_PROMETHEUS}: importing would not ask for the datasource")

    variables = {v.get("name"): v for v in dashboard.get("templating", {}).get("list", [])}
    datasource = variables.get("datasource", {})
    if datasource.get("type") != "datasource" or datasource.get("query") != "prometheus":
        errors.append('no template variable "datasource" of type datasource, query prometheus')
    pool = variables.get("pool", {})
    pool_query = pool.get("query")
    if isinstance(pool_query, dict):
        pool_query = pool_query.get("query")
    if (pool.get("type") != "query"
            or pool_query != "label_values(scgi_requests_total, pool)"
            or not pool.get("multi") or not pool.get("includeAll")
            or pool.get("datasource", {}).get("uid") not in DATASOURCE_UIDS):
        errors.append('variable "pool" must be a multi-value query variable with All, '
                      'label_values(scgi_requests_total, pool), on ${datasource}')

    rows = [p.get("title") for p in dashboard.get("panels", []) if p.get("type") == "row"]
    for wanted in ("Traffic", "Queue", "Backends", "Workers", "Pools"):
        if wanted not in rows:
            errors.append(f"no row titled {wanted!r} (rows: {rows})")

    ids = set()
    panels = dashboard_panels(dashboard)
    if not panels:
        errors.append("the dashboard has no panels")
    for panel in panels:
        name = f"panel {panel.get('title')!r}"
        if panel.get("id") in ids:
            errors.append(f"{name}: id {panel.get('id')} is used twice")
        ids.add(panel.get("id"))
        grid = panel.get("gridPos", {})
        if not all(k in grid for k in "hwxy") or grid["x"] + grid["w"] > 24:
            errors.append(f"{name}: gridPos {grid} is not within the 24-column grid")
        if panel.get("datasource", {}).get("uid") not in DATASOURCE_UIDS:
            errors.append(f"{name}: its datasource is not the ${{datasource}} variable")
        if not panel.get("fieldConfig", {}).get("defaults", {}).get("unit"):
            errors.append(f"{name}: no unit")
        targets = panel.get("targets") or []
        if not targets:
            errors.append(f"{name}: no targets")
        for target in targets:
            expr = target.get("expr", "")
            if not expr.strip():
                errors.append(f"{name}: target {target.get('refId')} has no expr")
            if target.get("datasource", {}).get("uid", DATASOURCE_UIDS[0]) not in DATASOURCE_UIDS:
                errors.append(f"{name}: target {target.get('refId')} names another datasource")
            # Each metric must be narrowed to the chosen pools, else the
            # pool variable would not apply to that series.
            for metric, selector in re.findall(r"\b(scgi_\w+)(\{[^}]*\})?", expr):
                if 'pool=~"$pool"' not in selector:
                    errors.append(f'{name}: {metric} in {expr!r} is not filtered by pool=~"$pool"')
    return errors


def run_stack(binaries: Binaries, dashboard: dict) -> list[str]:
    """Starts the stack, loads it, and evaluates every target; the failures."""
    pool = Pool("app", keys="\n".join([
        "workers = 3",
        "concurrency = 1",
        "queue_size = 64",
        'queue_timeout = "400ms"',
        'request_timeout = "1s"',
        'restart_backoff = ["100ms", "1s"]',
    ]))
    mix = ";".join([
        "84:/?sleep_ms=5",
        "8:/missing?status=404",
        "4:/slow?sleep_ms=300",
        "2:/stuck?sleep_ms=1500",  # past request_timeout: 504, the worker is recycled
        "2:/drop?close=1",         # closed without an answer: 502
    ])
    with tempfile.TemporaryDirectory(prefix="dashboard-test-") as work, \
            Stack(binaries, Path(work), [pool]) as stack:
        load_start = time.time()
        load = stack.start_load(pool, f"{LOAD_SECONDS}s", mix, connections=8)
        time.sleep(3)
        killed = stack.kill_worker("app")
        print(f"killed worker pid {killed} of pool app with SIGKILL")
        # A moment while the load still runs, with a full rate interval behind it.
        evaluate_at = load_start + LOAD_SECONDS - 1

        def scraped_past_evaluation() -> bool:
            answer = stack.query('max(timestamp(scgi_queue_length{pool="app"}))')
            result = answer.get("data", {}).get("result", [])
            return bool(result) and float(result[0]["value"][1]) > evaluate_at + 1

        wait_for(scraped_past_evaluation, LOAD_SECONDS + 20, "Prometheus to scrape past the load")
        samples = stack.query('count_over_time(scgi_queue_length{pool="app"}[15s])', evaluate_at)
        result = samples.get("data", {}).get("result") or [{"value": [0, "0"]}]
        count = result[0]["value"][1]
        if float(count) < 5:
            raise RuntimeError(f"Prometheus has only {count} samples of the last 15 s of load")
        load.wait(30)
        print(f"scgi-load: {load.stdout.read().decode(errors='replace')[:300]}")

        failures = []
        variables = grafana_variables("app", RATE_INTERVAL, INTERVAL)
        for panel in dashboard_panels(dashboard):
            for target in panel.get("targets", []):
                expr = substitute(target.get("expr", ""), variables)
                where = f"panel {panel.get('title')!r} target {target.get('refId')}: {expr}"
                answer = stack.query(expr, evaluate_at)
                if answer.get("status") != "success":
                    failures.append(f"{where}\n    Prometheus: {answer.get('error')}")
                    continue
                result = answer["data"]["result"]
                if not result:
                    failures.append(f"{where}\n    returned no series (a metric or label that "
                                    "does not exist?)")
                elif not any(finite(series["value"][1]) for series in result):
                    failures.append(f"{where}\n    returned only NaN/Inf: {result}")
                else:
                    print(f"ok  {panel.get('title')} [{target.get('refId')}]: {len(result)} series")
        return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("manager", type=Path)
    parser.add_argument("sample_worker", type=Path)
    parser.add_argument("load", type=Path)
    parser.add_argument("--prometheus", type=Path, default=Path("/usr/bin/prometheus"))
    parser.add_argument("--dashboard", type=Path, default=DEFAULT_DASHBOARD)
    args = parser.parse_args()

    dashboard = json.loads(args.dashboard.read_text())
    errors = shape_errors(dashboard)
    if errors:
        print(f"FAIL: {args.dashboard}:\n  " + "\n  ".join(errors))
        return 1
    targets = sum(len(p.get("targets", [])) for p in dashboard_panels(dashboard))
    print(f"{args.dashboard.name}: {len(dashboard_panels(dashboard))} panels, {targets} queries")

    started = time.monotonic()
    try:
        failures = run_stack(
            Binaries(args.manager, args.sample_worker, args.load, args.prometheus), dashboard)
    except (RuntimeError, TimeoutError) as error:
        print(f"FAIL: the stack did not run as it should: {error}")
        return 1
    print(f"{targets - len(failures)} passed, {len(failures)} failed "
          f"({time.monotonic() - started:.0f}s)")
    if failures:
        print("FAIL: these dashboard queries return no data from a real Prometheus:\n  "
              + "\n  ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
