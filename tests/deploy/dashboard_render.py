#!/usr/bin/env python3
"""Draws docs/dashboard.png: the panels of deploy/grafana/scgi-dashboard.json
as they look over about two minutes of real, varied load.

Runs the same stack as dashboard_test.py (scgi-manager, Debian's Prometheus,
scgi-load) with two pools, "app" (4 workers) and "api" (1 to 4 workers),
through a scripted scenario: steady traffic with some 404s; a burst of slow
requests that fills app's queue (waits, 503s); a worker killed with SIGKILL;
requests stuck past request_timeout (504, the worker recycled); api growing
under load; a run of requests that crash api's workers (502, restarts, the
pool marked failing). Then it fetches /api/v1/query_range for every panel
target, with Grafana's variables filled in, and draws the panels in the
dashboard's grid with the dashboard's titles, legends and units.

A developer tool, not a test (it takes ~2.5 minutes). Needs python3-matplotlib
(scripts/install-deps.sh docs). From the source tree, after a build:

  /usr/bin/python3 tests/deploy/dashboard_render.py --bin build/bin [--output docs/dashboard.png]

(Debian's python3, where python3-matplotlib is.)
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
from dashboard_stack import (Binaries, Pool, Stack, dashboard_panels,  # noqa: E402
                             grafana_variables, legend, substitute)

SOURCE = Path(__file__).resolve().parents[2]
STEP_S = 2
RATE_INTERVAL = "10s"

# Grafana's dark theme and its classic palette.
BACKGROUND = "#111217"
PANEL = "#181b1f"
BORDER = "#2c3235"
TEXT = "#ccccdc"
MUTED = "#8e8e8e"
PALETTE = ["#7eb26d", "#eab839", "#6ed0e0", "#ef843c", "#e24d42", "#1f78c1", "#ba43a9",
           "#705da0", "#508642", "#cca300", "#447ebc", "#c15c17", "#890f02", "#0a437c"]
STAT_COLOURS = {"green": "#73bf69", "red": "#f2495c", "blue": "#3274d9"}


# -- the scenario ------------------------------------------------------------------

def pools() -> list[Pool]:
    return [
        Pool("app", keys="\n".join([
            "workers = 4", "concurrency = 1", "queue_size = 100", 'queue_timeout = "800ms"',
            'request_timeout = "2s"', 'restart_backoff = ["100ms", "2s"]'])),
        Pool("api", keys="\n".join([
            "min_workers = 1", "max_workers = 4", 'idle_timeout = "10s"', "concurrency = 2",
            'request_timeout = "5s"', 'restart_backoff = ["100ms", "4s"]'])),
    ]


def run_scenario(stack: Stack) -> tuple[float, float]:
    """Drives the load for ~2 minutes; the (start, end) of it as Unix times."""
    app, api = stack.pools
    steps = [
        # (seconds from the start, what happens)
        (0, lambda: stack.start_load(app, "120s", "88:/?sleep_ms=10;7:/missing?status=404;"
                                     "5:/report?sleep_ms=120", connections=16, rate=60, seed=1)),
        (0, lambda: stack.start_load(api, "120s", "95:/v1/items?sleep_ms=20;5:/v1/nope?status=404",
                                     connections=8, rate=25, seed=2)),
        (25, lambda: stack.start_load(app, "30s", "1:/export?sleep_ms=140", connections=24,
                                      seed=3)),
        (40, lambda: print(f"killed app worker {stack.kill_worker('app')}")),
        (62, lambda: stack.start_load(api, "30s", "1:/v1/search?sleep_ms=60", connections=10,
                                      seed=4)),
        (75, lambda: stack.start_load(app, "8s", "1:/hang?sleep_ms=4000", connections=2, seed=5)),
        # Until the end, so that the picture shows the pool failing.
        (100, lambda: stack.start_load(api, "25s", "1:/v1/crash?fail=1", connections=3, seed=6)),
    ]
    start = time.time()
    for offset, action in steps:
        time.sleep(max(0.0, start + offset - time.time()))
        print(f"t+{offset:3d}s", flush=True)
        action()
    time.sleep(max(0.0, start + 122 - time.time()))
    return start, time.time()


def fetch(stack: Stack, dashboard: dict, start: float, end: float) -> list[dict]:
    """Each panel with its series: [(legend, [times], [values])] per target."""
    variables = grafana_variables("app|api", RATE_INTERVAL, f"{STEP_S}s")
    fetched = []
    for panel in dashboard_panels(dashboard):
        series = []
        for target in panel.get("targets", []):
            expr = substitute(target["expr"], variables)
            answer = stack.query_range(expr, start, end, STEP_S)
            if answer.get("status") != "success":
                raise RuntimeError(f"{panel['title']}: {expr}: {answer.get('error')}")
            results = sorted(answer["data"]["result"], key=lambda r: sorted(r["metric"].items()))
            for result in results:
                times = [datetime.fromtimestamp(float(t), timezone.utc)
                         for t, _ in result["values"]]
                values = [float(v) for _, v in result["values"]]
                series.append({"legend": legend(target.get("legendFormat", ""), result["metric"]),
                               "times": times, "values": values})
        fetched.append({"panel": panel, "series": series})
    return fetched


# -- drawing -----------------------------------------------------------------------

def unit_formatter(unit: str):
    def si(value: float, suffix: str, base: float = 1000,
           prefixes: tuple = ("", "k", "M", "G")) -> str:
        index = 0
        while abs(value) >= base and index < len(prefixes) - 1:
            value /= base
            index += 1
        return f"{value:.3g} {prefixes[index]}{suffix}".strip()

    def seconds(value: float) -> str:
        if value == 0:
            return "0"
        if abs(value) < 1:
            return f"{value * 1000:.3g} ms"
        return f"{value:.3g} s"

    formats = {
        "reqps": lambda v: si(v, "req/s"),
        "ops": lambda v: si(v, "ops/s"),
        "percentunit": lambda v: f"{v * 100:.3g}%",
        "s": seconds,
        "bytes": lambda v: si(v, "B", 1024, ("", "Ki", "Mi", "Gi")),
        "Bps": lambda v: si(v, "B/s"),
    }
    return formats.get(unit, lambda v: si(v, ""))


LEGEND_COLUMNS_PER_6 = 3  # legend columns per quarter of the dashboard's width
LEGEND_ROWS = 4


def legend_labels(series: list[dict]) -> list[str]:
    """Series worth a legend entry: all-zero ones are left out when there are many."""
    return [one["legend"] for one in series
            if len(series) <= 6 or any(v and not math.isnan(v) for v in one["values"])]


def draw_timeseries(ax, panel: dict, series: list[dict], columns: int,
                    legend_at: tuple[float, float]) -> None:
    """Draws into `ax`; the legend's top left corner goes at `legend_at` (figure fraction)."""
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    stacked = defaults.get("custom", {}).get("stacking", {}).get("mode") == "normal"
    limits = []
    for override in panel.get("fieldConfig", {}).get("overrides", []):
        if override.get("matcher", {}).get("id") == "byRegexp":
            limits.append(override["matcher"]["options"].lstrip(".*").rstrip("$"))
    baseline = None
    labelled = legend_labels(series)
    for index, one in enumerate(series):
        colour = PALETTE[index % len(PALETTE)]
        values = [0.0 if math.isnan(v) else v for v in one["values"]]
        label = one["legend"] if one["legend"] in labelled else None
        if any(one["legend"].endswith(limit) for limit in limits):
            ax.plot(one["times"], values, color=colour, lw=1.2, ls=(0, (4, 3)), label=label)
        elif stacked:
            bottom = baseline if baseline and len(baseline) == len(values) else [0.0] * len(values)
            top = [b + v for b, v in zip(bottom, values)]
            ax.fill_between(one["times"], bottom, top, color=colour, alpha=0.25, lw=0)
            ax.plot(one["times"], top, color=colour, lw=1, label=label)
            baseline = top
        else:
            ax.fill_between(one["times"], 0, values, color=colour, alpha=0.08, lw=0)
            ax.plot(one["times"], values, color=colour, lw=1, label=label)
    ax.set_ylim(bottom=defaults.get("min", None))
    if "max" in defaults:
        ax.set_ylim(top=defaults["max"] * 1.05)
    formatter = unit_formatter(defaults.get("unit", "short"))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: formatter(v)))
    ax.yaxis.set_major_locator(MaxNLocator(4))
    ax.xaxis.set_major_locator(mdates.SecondLocator(bysecond=[0, 30]))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
    ax.grid(color=BORDER, lw=0.6)
    label = defaults.get("custom", {}).get("axisLabel")
    if label:
        ax.set_ylabel(label, color=MUTED, fontsize=7)
    handles, labels = ax.get_legend_handles_labels()
    room = columns * LEGEND_ROWS
    if len(handles) > room:
        # Like a cut-off Grafana legend: the first entries, then how many more.
        hidden = len(handles) - room + 1
        handles = handles[:room - 1] + [plt.Line2D([], [], lw=0)]
        labels = labels[:room - 1] + [f"+{hidden} more"]
    if handles:
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=legend_at,
                  bbox_transform=ax.figure.transFigure, fontsize=6.5,
                  ncol=columns, frameon=False, labelcolor=TEXT, handlelength=1.2,
                  columnspacing=1, borderaxespad=0, handletextpad=0.4)


def draw_stat(ax, panel: dict, series: list[dict]) -> None:
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    mappings = {}
    for mapping in defaults.get("mappings", []):
        mappings.update(mapping.get("options", {}))
    steps = defaults.get("thresholds", {}).get("steps", [{"color": "green", "value": None}])
    ax.set_axis_off()
    count = max(1, len(series))
    for index, one in enumerate(series):
        last = next((v for v in reversed(one["values"]) if not math.isnan(v)), float("nan"))
        key = f"{last:g}"
        if key in mappings:
            text, colour = mappings[key]["text"], mappings[key]["color"]
        else:
            text = f"{last:g}"
            colour = [s["color"] for s in steps if s["value"] is None or last >= s["value"]][-1]
        width = 1 / count
        box = FancyBboxPatch((index * width + 0.02, 0.08), width - 0.04, 0.84,
                             boxstyle="round,pad=0,rounding_size=0.02", transform=ax.transAxes,
                             color=STAT_COLOURS.get(colour, colour))
        ax.add_patch(box)
        ax.text(index * width + width / 2, 0.62, one["legend"], ha="center", va="center",
                transform=ax.transAxes, color="white", fontsize=9)
        ax.text(index * width + width / 2, 0.38, text, ha="center", va="center",
                transform=ax.transAxes, color="white", fontsize=16, weight="bold")


def draw(fetched: list[dict], dashboard: dict, output: Path) -> None:
    rows = [p for p in dashboard["panels"] if p["type"] == "row"]
    bottom = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in dashboard["panels"])
    unit_height = 0.34  # inches per grid row
    figure = plt.figure(figsize=(17, bottom * unit_height + 0.6), facecolor=BACKGROUND)
    height = bottom * unit_height + 0.6

    def box(grid: dict) -> tuple[float, float, float, float]:
        """Figure fraction (left, bottom, width, height) of a grid position."""
        top_in = 0.6 + grid["y"] * unit_height
        return (grid["x"] / 24, 1 - (top_in + grid["h"] * unit_height) / height,
                grid["w"] / 24, grid["h"] * unit_height / height)

    figure.text(0.01, 1 - 0.3 / height, dashboard["title"] + "   ·   pool: All (app, api)",
                color=TEXT, fontsize=13, va="center", weight="bold")
    for row in rows:
        left, low, _, high = box(row["gridPos"])
        figure.text(left + 0.008, low + high / 2, row["title"], color=TEXT, fontsize=11,
                    weight="bold", va="center")
    for item in fetched:
        panel = item["panel"]
        left, low, width, high = box(panel["gridPos"])
        frame = figure.add_axes((left + 0.003, low + 0.003, width - 0.006, high - 0.006))
        frame.set_facecolor(PANEL)
        frame.set_xticks([])
        frame.set_yticks([])
        for spine in frame.spines.values():
            spine.set_color(BORDER)
        frame.set_title(panel["title"], color=TEXT, fontsize=9, loc="left", pad=-12, x=0.02)
        # The plot inside the panel, leaving room for the title, the tick
        # labels and the legend below it, as Grafana does.
        columns = LEGEND_COLUMNS_PER_6 * panel["gridPos"]["w"] // 6
        legend_rows = min(LEGEND_ROWS, math.ceil(len(legend_labels(item["series"])) / columns))
        legend_room = (0.26 + 0.125 * legend_rows) / height
        inner = figure.add_axes((left + width * 0.15, low + legend_room, width * 0.82,
                                 high * 0.86 - legend_room))
        inner.set_facecolor(PANEL)
        inner.tick_params(colors=MUTED, labelsize=7)
        for spine in inner.spines.values():
            spine.set_visible(False)
        if panel["type"] == "stat":
            inner.set_position((left + width * 0.03, low + high * 0.08, width * 0.94, high * 0.76))
            draw_stat(inner, panel, item["series"])
        else:
            draw_timeseries(inner, panel, item["series"], columns,
                            (left + width * 0.02, low + legend_room - 0.24 / height))
    figure.savefig(output, dpi=80, facecolor=BACKGROUND)
    plt.close(figure)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", type=Path, default=SOURCE / "build/bin",
                        help="folder with scgi-manager, scgi-sample-worker, scgi-load")
    parser.add_argument("--prometheus", type=Path, default=Path("/usr/bin/prometheus"))
    parser.add_argument("--dashboard", type=Path,
                        default=SOURCE / "deploy/grafana/scgi-dashboard.json")
    parser.add_argument("--output", type=Path, default=SOURCE / "docs/dashboard.png")
    parser.add_argument("--save-data", type=Path,
                        help="also write the fetched series as JSON (to redraw with --from-data)")
    parser.add_argument("--from-data", type=Path, help="draw from a --save-data file, run nothing")
    args = parser.parse_args()

    dashboard = json.loads(args.dashboard.read_text())
    if args.from_data:
        saved = json.loads(args.from_data.read_text())
        fetched = [{"panel": panel, "series": [
            {**s, "times": [datetime.fromtimestamp(t, timezone.utc) for t in s["times"]]}
            for s in item["series"]]} for panel, item in zip(dashboard_panels(dashboard), saved)]
    else:
        with tempfile.TemporaryDirectory(prefix="dashboard-render-") as work, \
                Stack(Binaries.in_dir(args.bin, args.prometheus), Path(work), pools()) as stack:
            start, end = run_scenario(stack)
            fetched = fetch(stack, dashboard, start, end)
        if args.save_data:
            args.save_data.write_text(json.dumps([{"series": [
                {**s, "times": [t.timestamp() for t in s["times"]]} for s in item["series"]]}
                for item in fetched]))
    draw(fetched, dashboard, args.output)
    print(f"wrote {args.output} ({args.output.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
