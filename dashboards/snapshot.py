"""`ioc wall snapshot`: the wall's panels, from the wall's own queries, drawn into one PNG.

For people without a Grafana at hand: a preview, not a Grafana replacement. Each panel of the
built wall (dashboards.wall) is placed where its gridPos puts it; its queries run as the
read-only Grafana role over a fixed range ending now, and the picture follows the panel's type
(stat, geomap, state-timeline, timeseries) with the colours of its thresholds and mappings.

The queries contain Grafana's macros and variables; `expand_fixed_range` expands them as Grafana
does (dashboards.grafana_sql) for a fixed range and interval.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from dashboards.build import finish
from dashboards.grafana_sql import (
    Interval,
    MacroError,
    Scope,
    TimeRange,
    Variable,
    VariableError,
    expand_query,
    seconds_to_hms,
)
from dashboards.wall import wall
from geo.zones import reference_zone_file

MIN_INTERVAL_S = 60  # the datasource's default minimum interval: SQL panels never get less


class ExpansionError(ValueError):
    """A macro or variable the wall's queries should not hold."""


def expand_fixed_range(
    sql: str, start: datetime, end: datetime, interval_s: int, zones: Sequence[str] = ()
) -> str:
    """A query as Grafana's PostgreSQL datasource (TimescaleDB option on) runs it over a fixed
    range with a fixed interval (dashboards.grafana_sql), the `zone` variable set to `zones` (no
    zone: a value that matches none). A macro Grafana does not know, or a variable left over, is
    an ExpansionError."""
    scope = Scope(
        variables={"zone": Variable("zone", list(zones) or ["-"], multi=True)},
        time_range=TimeRange(start, end),
        interval=Interval(interval_s * 1000, seconds_to_hms(interval_s)),
    )
    try:
        out = expand_query(sql, scope, timescaledb=True).sql
    except (MacroError, VariableError) as exc:
        raise ExpansionError(str(exc)) from None
    left = re.search(r"\$__\w+|\$\{[^}]*\}", out)
    if left:
        raise ExpansionError(f"cannot expand {left.group(0)}")
    return out


def interval_for(span: timedelta, points: int = 300) -> int:
    """About `points` buckets over the range, never under a minute."""
    return max(MIN_INTERVAL_S, int(span.total_seconds() // points))


@dataclass
class Frame:
    columns: list[str]
    rows: list[tuple[Any, ...]]

    def column(self, name: str) -> list[Any]:
        i = self.columns.index(name)
        return [r[i] for r in self.rows]


def run_panel_queries(
    conn: psycopg.Connection[Any], panel: dict[str, Any], start: datetime, end: datetime
) -> dict[str, Frame]:
    interval_s = interval_for(end - start)
    frames = {}
    for target in panel.get("targets", []):
        sql = expand_fixed_range(target["rawSql"], start, end, interval_s)
        with conn.cursor() as cur:
            cur.execute(sql.encode())  # the panel's own SQL, expanded; no parameters
            columns = [d.name for d in cur.description or []]
            frames[target["refId"]] = Frame(columns, list(cur.fetchall()))
    return frames


# Grafana's named colours, as its dark theme draws them.
COLOURS = {
    "green": "#73bf69", "yellow": "#fade2a", "orange": "#ff9830", "red": "#f2495c",
    "dark-red": "#c4162a", "purple": "#b877d9", "blue": "#5794f2", "text": "#ccccdc",
}  # fmt: skip
BACKGROUND, PANEL_BG, GRID = "#111217", "#181b1f", "#2c3235"


def colour(name: str) -> str:
    return COLOURS.get(name, name)


def threshold_colour(steps: list[dict[str, Any]], value: float | None) -> str:
    if value is None:
        return GRID
    chosen = steps[0]["color"]
    for step in steps[1:]:
        if value >= step["value"]:
            chosen = step["color"]
    return colour(chosen)


def field_steps(panel: dict[str, Any], field: str) -> list[dict[str, Any]]:
    config = panel.get("fieldConfig", {})
    steps = config.get("defaults", {}).get("thresholds", {}).get("steps", [{"color": "green"}])
    for override in config.get("overrides", []):
        if override["matcher"] == {"id": "byName", "options": field}:
            for prop in override["properties"]:
                if prop["id"] == "thresholds":
                    steps = prop["value"]["steps"]
    return steps


def field_unit(panel: dict[str, Any], field: str) -> str:
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "none")
    for override in panel.get("fieldConfig", {}).get("overrides", []):
        if override["matcher"] == {"id": "byName", "options": field}:
            for prop in override["properties"]:
                if prop["id"] == "unit":
                    unit = prop["value"]
    return str(unit)


def show(value: Any, unit: str) -> str:
    if value is None:
        return "-"
    v = float(value)
    if unit == "s":
        if v >= 3600:
            return f"{v / 3600:.1f} h"
        return f"{v / 60:.1f} min" if v >= 120 else f"{v:.0f} s"
    return f"{v:.0f}" if v >= 10 or v == int(v) else f"{v:.1f}"


def draw_stat(ax: Any, panel: dict[str, Any], frames: dict[str, Frame]) -> None:
    frame = frames["A"]
    row = frame.rows[0] if frame.rows else tuple(None for _ in frame.columns)
    n = len(frame.columns)
    for i, (name, value) in enumerate(zip(frame.columns, row, strict=True)):
        x0 = i / n
        box = threshold_colour(field_steps(panel, name), None if value is None else float(value))
        ax.add_patch(_rect(x0 + 0.01, 0.04, 1 / n - 0.02, 0.92, box))
        ax.text(x0 + 0.5 / n, 0.62, show(value, field_unit(panel, name)), ha="center",
                va="center", fontsize=12 if n <= 3 else 14, color="white", weight="bold")  # fmt: skip
        ax.text(x0 + 0.5 / n, 0.2, name, ha="center", va="center", fontsize=7.5, color="white")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.axis("off")


def _rect(x: float, y: float, w: float, h: float, fill: str) -> Any:
    from matplotlib.patches import FancyBboxPatch

    return FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0,rounding_size=0.02",
                          facecolor=fill, edgecolor="none")  # fmt: skip


def draw_geomap(ax: Any, panel: dict[str, Any], frames: dict[str, Frame]) -> None:
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Polygon

    zones = frames["A"]
    incidents = dict(zip(zones.column("zone_id"), zones.column("open_incidents"), strict=True))
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    data = json.loads(reference_zone_file().read_text(encoding="utf-8"))
    patches, fills = [], []
    for feature in data["features"]:
        geometry = feature["geometry"]
        polygons = geometry["coordinates"]
        if geometry["type"] == "Polygon":
            polygons = [polygons]
        fill = threshold_colour(steps, float(incidents.get(feature["properties"]["id"], 0)))
        for polygon in polygons:
            patches.append(Polygon(polygon[0], closed=True))
            fills.append(fill)
    ax.add_collection(
        PatchCollection(patches, facecolors=fills, edgecolors="#8ab8ff", linewidths=0.3, alpha=0.55)
    )
    sensors = frames.get("B")
    if sensors and sensors.rows:
        ax.scatter(sensors.column("longitude"), sensors.column("latitude"), s=1.5, c="#d0d0d0",
                   alpha=0.7, linewidths=0)  # fmt: skip
    top = sorted(zip(zones.column("open_incidents"), zones.column("zone"),
                     zones.column("longitude"), zones.column("latitude"), strict=True),
                 key=lambda r: -r[0])[:6]  # fmt: skip
    for n, name, lon, lat in top:
        if n:
            ax.annotate(f"{name}: {n}", (lon, lat), fontsize=7, color="white",
                        ha="center", weight="bold")  # fmt: skip
    ax.autoscale_view()
    ax.set_aspect("equal")
    ax.axis("off")


def mapping_for(panel: dict[str, Any], value: float | None) -> tuple[str, str]:
    for mapping in panel.get("fieldConfig", {}).get("defaults", {}).get("mappings", []):
        options = mapping["options"]
        if mapping["type"] == "special" and value is None:
            return options["result"]["text"], colour(options["result"]["color"])
        if mapping["type"] == "range" and value is not None:
            lo, hi = options.get("from"), options.get("to")
            if (lo is None or value >= lo) and (hi is None or value < hi):
                return options["result"]["text"], colour(options["result"]["color"])
    return "", GRID


def draw_timeline(ax: Any, panel: dict[str, Any], frames: dict[str, Frame]) -> None:
    import matplotlib.dates as mdates

    frame = frames["A"]
    times = frame.column(frame.columns[0])
    if len(times) < 2:
        ax.axis("off")
        return
    width = (times[1] - times[0]).total_seconds() / 86400
    names = frame.columns[1:]
    for row, name in enumerate(names):
        values = frame.column(name)
        for t, v in zip(times, values, strict=True):
            _, fill = mapping_for(panel, None if v is None else float(v))
            ax.barh(len(names) - 1 - row, width, left=mdates.date2num(t), height=0.8,
                    color=fill, align="center", linewidth=0)  # fmt: skip
    ax.set_yticks(range(len(names)), list(reversed(names)), fontsize=8, color=COLOURS["text"])
    ax.xaxis_date()
    _time_axis(ax)
    legend = {}
    for mapping in panel["fieldConfig"]["defaults"]["mappings"]:
        result = mapping["options"]["result"]
        legend[result["text"]] = colour(result["color"])
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color=c, label=t) for t, c in legend.items()], loc="lower right",
              bbox_to_anchor=(1.0, 1.0), ncol=len(legend), fontsize=7, frameon=False,
              labelcolor=COLOURS["text"])  # fmt: skip


def draw_series(ax: Any, panel: dict[str, Any], frames: dict[str, Frame]) -> None:
    frame = frames["A"]
    series: dict[str, tuple[list[Any], list[float]]] = {}
    if "metric" in frame.columns:
        for t, name, v in zip(frame.column("time"), frame.column("metric"),
                              frame.column("value"), strict=True):  # fmt: skip
            if v is not None:
                series.setdefault(str(name), ([], []))[0].append(t)
                series[str(name)][1].append(float(v))
    for name, (ts, vs) in sorted(series.items()):
        ax.plot(ts, vs, label=name, linewidth=1.4)
    for step in panel["fieldConfig"]["defaults"].get("thresholds", {}).get("steps", [])[1:]:
        ax.axhline(step["value"], color=colour(step["color"]), linestyle="--", linewidth=0.8)
    _time_axis(ax)
    if series:
        ax.legend(fontsize=7, ncol=4, loc="upper left", frameon=False, labelcolor=COLOURS["text"])
    else:
        ax.text(0.5, 0.5, "No data", transform=ax.transAxes, ha="center", color=COLOURS["text"])


def _time_axis(ax: Any) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(minticks=4, maxticks=10)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, show_offset=False))


DRAW = {"stat": draw_stat, "geomap": draw_geomap, "state-timeline": draw_timeline,
        "timeseries": draw_series}  # fmt: skip


def render_wall(
    conninfo: str, out: Path, *, span: timedelta = timedelta(hours=1), end: datetime | None = None
) -> list[str]:
    """Draw the wall to `out` (PNG); returns the panels' titles in the order drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    end = end or datetime.now(UTC)
    start = end - span
    board = json.loads(json.dumps(finish(wall().build()), default=lambda o: o.to_json()))
    panels = board["panels"]
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    fig = plt.figure(figsize=(24, rows * 0.55), facecolor=BACKGROUND)
    grid = fig.add_gridspec(rows, 24, left=0.02, right=0.99, top=0.95, bottom=0.03,
                            hspace=3.0, wspace=0.8)  # fmt: skip
    fig.suptitle(
        f"{board['title']}   {start:%Y-%m-%d %H:%M} - {end:%H:%M} UTC   "
        "(ioc wall snapshot: a preview, not Grafana)",
        color=COLOURS["text"],
        fontsize=14,
        x=0.02,
        ha="left",
    )
    drawn = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SET default_transaction_read_only = on")
        for panel in panels:
            pos = panel["gridPos"]
            ax = fig.add_subplot(
                grid[pos["y"] : pos["y"] + pos["h"], pos["x"] : pos["x"] + pos["w"]]
            )
            ax.set_facecolor(PANEL_BG)
            ax.tick_params(colors=COLOURS["text"], labelsize=7)
            for spine in ax.spines.values():
                spine.set_color(GRID)
            ax.set_title(panel["title"], color=COLOURS["text"], fontsize=10, loc="left")
            DRAW[panel["type"]](ax, panel, run_panel_queries(conn, panel, start, end))
            drawn.append(panel["title"])
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80, facecolor=BACKGROUND)
    plt.close(fig)
    return drawn
