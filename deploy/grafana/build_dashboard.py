#!/usr/bin/env python3
"""Writes scgi-dashboard.json, the Grafana dashboard of scgi-manager and
scgi-proxy, from the readable list of rows and panels below. Edit the list,
then run it:

  python3 deploy/grafana/build_dashboard.py            # rewrites scgi-dashboard.json
  python3 deploy/grafana/build_dashboard.py --check    # exit 1 if the file is stale

Every query filters pool=~"$pool" and uses only the metrics of docs/design.md
("Metrics"); tests/deploy/dashboard_test.py evaluates each one against a real
Prometheus scraping a real scgi-manager. Standard library only.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DASHBOARD_PATH = Path(__file__).with_name("scgi-dashboard.json")

# Panels name the datasource through the template variable, so the dashboard
# works imported (Grafana fills ${DS_PROMETHEUS} in as the variable's default)
# and provisioned (the variable falls back to the default Prometheus).
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

PANEL_HEIGHT = 8
GRID_WIDTH = 24


def target(expr: str, legend: str) -> dict:
    return {"expr": expr, "legend": legend}


def rate(metric: str, by: str, extra_matchers: str = "") -> str:
    """sum by (BY) of a counter's per-second rate over Grafana's rate interval."""
    return (f'sum by ({by}) (rate({metric}{{pool=~"$pool"{extra_matchers}}}'
            f"[$__rate_interval]))")


def quantile(q: float, histogram: str) -> str:
    return (f"histogram_quantile({q}, sum by (pool, le) "
            f'(rate({histogram}_bucket{{pool=~"$pool"}}[$__rate_interval])))')


def timeseries(title: str, unit: str, targets: list[dict], description: str, width: int = 6,
               stacked: bool = False, limit_series: str = "", axis_label: str = "",
               max_value: float | None = None) -> dict:
    """A time series panel. Series whose legend ends with `limit_series` are
    drawn as dashed lines, neither stacked nor filled: ceilings to compare the
    others with."""
    return {"kind": "timeseries", "title": title, "unit": unit, "targets": targets,
            "description": description, "width": width, "stacked": stacked,
            "limit_series": limit_series, "axis_label": axis_label, "max": max_value}


def stat(title: str, targets: list[dict], description: str, width: int = 6,
         mappings: dict[str, tuple[str, str]] | None = None, unit: str = "none",
         neutral: bool = False) -> dict:
    """A stat panel showing each series' last value; `mappings` turns values
    into a word and a colour. Without `neutral`, 1 and above is red."""
    return {"kind": "stat", "title": title, "unit": unit, "targets": targets,
            "description": description, "width": width, "mappings": mappings or {},
            "neutral": neutral}


# The dashboard, top to bottom: rows of panels, each laid out left to right.
ROWS: list[tuple[str, list[dict]]] = [
    ("Traffic", [
        timeseries(
            "Requests per second by status", "reqps",
            [target(rate("scgi_requests_total", "pool, code"), "{{pool}} {{code}}")],
            "Answers the clients got, by HTTP status, including the proxy's own "
            "400/413/502/503/504.", stacked=True),
        timeseries(
            "5xx ratio", "percentunit",
            [target(rate("scgi_requests_total", "pool", ', code=~"5.."') + "\n  / "
                    + rate("scgi_requests_total", "pool"), "{{pool}}")],
            "Share of answers that are 5xx: 502 worker failed, 503 queue full or "
            "timed out, 504 worker too slow. The ScgiHighErrorRatio alert fires above 5 %.",
            max_value=1),
        timeseries(
            "Request latency p50 / p95 / p99", "s",
            [target(quantile(q, "scgi_request_duration_seconds"), f"{{{{pool}}}} p{int(q * 100)}")
             for q in (0.5, 0.95, 0.99)],
            "Time from the request's arrival to the last byte of its answer, queue "
            "wait included."),
        timeseries(
            "Bytes per second in / out", "Bps",
            [target(rate("scgi_bytes_total", "pool, direction"), "{{pool}} {{direction}}")],
            "Request bytes from clients (in) and response bytes to them (out)."),
    ]),
    ("Queue", [
        timeseries(
            "Queue length", "short",
            [target('sum by (pool) (scgi_queue_length{pool=~"$pool"})', "{{pool}}")],
            "Requests waiting for a free worker. At queue_size (Pools row) new "
            "requests get 503 at once."),
        timeseries(
            "Queue wait p50 / p99", "s",
            [target(quantile(q, "scgi_queue_wait_seconds"), f"{{{{pool}}}} p{int(q * 100)}")
             for q in (0.5, 0.99)],
            "How long requests waited for a worker. High: add workers or find a "
            "stuck one. The ScgiQueueWaitHigh alert fires on p99 above 0.5 s."),
        timeseries(
            "Oldest waiting request", "s",
            [target('max by (pool) (scgi_queue_oldest_seconds{pool=~"$pool"})', "{{pool}}")],
            "Age of the request at the head of the queue; it gets 503 at queue_timeout."),
        timeseries(
            "Rejected by reason", "reqps",
            [target(rate("scgi_rejected_total", "pool, reason"), "{{pool}} {{reason}}")],
            "Requests never sent to a worker: bad_request, too_large, queue_full, "
            "queue_timeout, client_closed (the client gave up while queued).",
            stacked=True),
    ]),
    ("Backends", [
        timeseries(
            "In flight per backend", "short",
            [target('sum by (pool, backend) (scgi_requests_in_flight{pool=~"$pool"})',
                    "{{pool}} {{backend}}"),
             target('max by (pool) (scgi_backend_concurrency_limit{pool=~"$pool"})',
                    "{{pool}} concurrency limit")],
            "Requests each backend serves now; at its concurrency (dashed) further "
            "requests wait in the pool's queue.", limit_series=" limit"),
        timeseries(
            "Backends up", "short",
            [target('sum by (pool) (scgi_backend_up{pool=~"$pool"})', "{{pool}} up"),
             target('count by (pool) (scgi_backend_up{pool=~"$pool"})', "{{pool}} total")],
            "Backends that accept connections, of all the pool knows (dashed). One "
            "down: connects fail, the balancer skips it and probes it until it accepts "
            "again; the ScgiBackendDown alert and scgictl status name it.",
            limit_series=" total"),
        timeseries(
            "Backend errors by kind", "ops",
            [target(rate("scgi_backend_errors_total", "pool, kind"), "{{pool}} {{kind}}")],
            "connect: could not connect (retried on another backend); reset: the "
            "backend closed mid-exchange; timeout: nothing for request_timeout.",
            stacked=True),
        timeseries(
            "Retries", "reqps",
            [target(rate("scgi_retries_total", "pool"), "{{pool}}")],
            "Requests sent to another backend after a failed connect (nothing had "
            "been sent yet)."),
    ]),
    ("Workers", [
        timeseries(
            "Workers by state", "short",
            [target('sum by (pool, state) (scgi_workers{pool=~"$pool"})', "{{pool}} {{state}}")],
            "starting, ready (routed to), draining, stopping, backoff (waiting to be "
            "restarted), stopped (by hand).", stacked=True),
        timeseries(
            "Restarts by reason", "short",
            [target(f'60 * {rate("scgi_worker_restarts_total", "pool, reason")}',
                    "{{pool}} {{reason}}")],
            "Workers replaced, per minute: exit and signal (died), health (stuck past "
            "request_timeout), recycle (max_requests, max_lifetime, max_rss: planned).",
            stacked=True, axis_label="restarts / min"),
        timeseries(
            "Resident memory per worker", "bytes",
            [target('max by (pool, worker) (scgi_worker_resident_memory_bytes{pool=~"$pool"})',
                    "{{pool}} worker {{worker}}")],
            "RSS of each worker process. A steady climb is a leak: set max_rss to "
            "recycle it."),
        timeseries(
            "CPU per worker", "percentunit",
            [target(rate("scgi_worker_cpu_seconds_total", "pool, worker"),
                    "{{pool}} worker {{worker}}")],
            "Share of one core each worker uses (user + system)."),
    ]),
    ("Pools", [
        stat(
            "Failing pools",
            [target('max by (pool) (scgi_pool_failing{pool=~"$pool"})', "{{pool}}")],
            "FAILING: the pool's workers keep dying or failing to start. The manager "
            "keeps retrying at the backoff ceiling; see scgictl status and scgictl logs.",
            mappings={"0": ("OK", "green"), "1": ("FAILING", "red")}),
        stat(
            "Queue size",
            [target('max by (pool) (scgi_queue_capacity{pool=~"$pool"})', "{{pool}}")],
            "The pool's queue_size: requests that may wait for a worker before new "
            "ones get 503 at once.", neutral=True),
        timeseries(
            "Ready workers and limits", "short",
            [target('sum by (pool) (scgi_workers{pool=~"$pool", state="ready"})', "{{pool}} ready"),
             target('max by (pool, bound) (scgi_pool_workers_limit{pool=~"$pool"})',
                    "{{pool}} {{bound}} limit")],
            "Ready workers against the pool's min_workers and max_workers (dashed; "
            "equal for a fixed size).", width=12, limit_series=" limit"),
    ]),
]


def grafana_targets(targets: list[dict]) -> list[dict]:
    return [{"datasource": DATASOURCE, "editorMode": "code", "expr": t["expr"],
             "legendFormat": t["legend"], "range": True, "refId": chr(ord("A") + i)}
            for i, t in enumerate(targets)]


def timeseries_panel(spec: dict) -> dict:
    custom = {
        "axisLabel": spec["axis_label"], "drawStyle": "line", "fillOpacity": 10,
        "lineWidth": 1, "showPoints": "never", "spanNulls": False,
        "stacking": {"group": "A", "mode": "normal" if spec["stacked"] else "none"},
    }
    defaults = {"custom": custom, "min": 0, "unit": spec["unit"]}
    if spec["max"] is not None:
        defaults["max"] = spec["max"]
    overrides = []
    if spec["limit_series"]:
        # A ceiling is a dashed line, never stacked or filled.
        overrides.append({
            "matcher": {"id": "byRegexp", "options": f".*{spec['limit_series']}$"},
            "properties": [
                {"id": "custom.lineStyle", "value": {"dash": [10, 10], "fill": "dash"}},
                {"id": "custom.fillOpacity", "value": 0},
                {"id": "custom.stacking", "value": {"group": "A", "mode": "none"}},
            ],
        })
    return {
        "type": "timeseries",
        "fieldConfig": {"defaults": defaults, "overrides": overrides},
        "options": {
            "legend": {"calcs": [], "displayMode": "list", "placement": "bottom",
                       "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def stat_panel(spec: dict) -> dict:
    options = {value: {"color": color, "index": i, "text": text}
               for i, (value, (text, color)) in enumerate(spec["mappings"].items())}
    steps = ([{"color": "blue", "value": None}] if spec["neutral"] else
             [{"color": "green", "value": None}, {"color": "red", "value": 1}])
    return {
        "type": "stat",
        "fieldConfig": {
            "defaults": {
                "mappings": [{"options": options, "type": "value"}] if options else [],
                "thresholds": {"mode": "absolute", "steps": steps},
                "unit": spec["unit"],
            },
            "overrides": [],
        },
        "options": {
            "colorMode": "background", "graphMode": "none", "justifyMode": "auto",
            "orientation": "auto", "textMode": "value_and_name",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        },
    }


def panels() -> list[dict]:
    """Rows and their panels with ids and grid positions."""
    result: list[dict] = []
    y = 0
    next_id = 1
    for row_title, specs in ROWS:
        result.append({"collapsed": False, "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": y},
                       "id": next_id, "panels": [], "title": row_title, "type": "row"})
        next_id += 1
        y += 1
        x = 0
        for spec in specs:
            if x + spec["width"] > GRID_WIDTH:
                x = 0
                y += PANEL_HEIGHT
            body = timeseries_panel(spec) if spec["kind"] == "timeseries" else stat_panel(spec)
            result.append({
                "datasource": DATASOURCE,
                "description": spec["description"],
                "gridPos": {"h": PANEL_HEIGHT, "w": spec["width"], "x": x, "y": y},
                "id": next_id,
                "title": spec["title"],
                "targets": grafana_targets(spec["targets"]),
                **body,
            })
            next_id += 1
            x += spec["width"]
        y += PANEL_HEIGHT
    return result


def dashboard() -> dict:
    return {
        "__inputs": [{
            "name": "DS_PROMETHEUS", "label": "Prometheus", "description":
            "The Prometheus that scrapes scgi-manager / scgi-proxy",
            "type": "datasource", "pluginId": "prometheus", "pluginName": "Prometheus",
        }],
        "__requires": [
            {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "9.0.0"},
            {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
            {"type": "panel", "id": "timeseries", "name": "Time series", "version": ""},
            {"type": "panel", "id": "stat", "name": "Stat", "version": ""},
        ],
        "annotations": {"list": [{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts", "type": "dashboard",
        }]},
        "description": "Traffic, queue, backends, workers and pools of scgi-manager / scgi-proxy "
                       "(metrics of docs/design.md).",
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [],
        "liveNow": False,
        "panels": panels(),
        "refresh": "30s",
        "schemaVersion": 36,
        "style": "dark",
        "tags": ["scgi"],
        "templating": {"list": [
            {
                "current": {"selected": False, "text": "${DS_PROMETHEUS}",
                            "value": "${DS_PROMETHEUS}"},
                "hide": 0, "includeAll": False, "label": "Data source", "multi": False,
                "name": "datasource", "options": [], "query": "prometheus",
                "refresh": 1, "regex": "", "skipUrlSync": False, "type": "datasource",
            },
            {
                "current": {}, "datasource": DATASOURCE,
                "definition": "label_values(scgi_requests_total, pool)",
                "hide": 0, "includeAll": True, "label": "Pool", "multi": True,
                "name": "pool", "options": [],
                "query": "label_values(scgi_requests_total, pool)",
                "refresh": 2, "regex": "", "skipUrlSync": False, "sort": 1, "type": "query",
            },
        ]},
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "title": "SCGI manager and proxy",
        "uid": "scgi-overview",
        "version": 1,
        "weekStart": "",
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="do not write: exit 1 if the file differs from what would be written")
    parser.add_argument("--output", type=Path, default=DASHBOARD_PATH)
    args = parser.parse_args()
    text = render()
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is not what build_dashboard.py writes: "
                  f"run python3 {Path(__file__).name} and commit the result", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
