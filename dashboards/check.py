"""`ioc dashboards check`: every panel query of every dashboard, run as Grafana would run it.

For each dashboard JSON file: the template variables are resolved as Grafana resolves them on
load (a query variable's SQL is run for its options, then the saved `current` value is validated
against them, as Scenes' MultiValueVariable does), each panel query is expanded with
dashboards.grafana_sql for the time range and the panel's interval, and run as the read-only
`ioc_grafana` role. The result's shape is then checked against what the panel type needs.

A panel's maxDataPoints is its own `maxDataPoints`, else its width in pixels on a wall of
`wall_width_px` (Grafana uses the panel's rendered width).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import pairwise
from pathlib import Path
from typing import Any

import psycopg

from dashboards.grafana_sql import (
    ALL_TEXT,
    ALL_VALUE,
    DEFAULT_MIN_INTERVAL,
    Expanded,
    Interval,
    MacroError,
    Option,
    Scope,
    TimeRange,
    Variable,
    VariableError,
    calculate_interval,
    expand_query,
)
from sinks.config import DatabaseSettings

POSTGRES_TYPES = {"grafana-postgresql-datasource", "postgres"}
DATASOURCE_UID = "ioc-timescale"
NUMERIC_OIDS = {20, 21, 23, 700, 701, 1700}
TIME_OIDS = {1082, 1114, 1184}
TIME_SERIES_PANELS = {"timeseries", "trend", "graph"}
STATE_PANELS = {"state-timeline", "status-history"}
NUMERIC_PANELS = {"stat", "gauge", "bargauge", "piechart"}
NO_QUERY_PANELS = {"row", "text", "news", "dashlist", "welcome", "alertlist", "annolist"}


@dataclass(frozen=True)
class Column:
    name: str
    oid: int

    @property
    def numeric(self) -> bool:
        return self.oid in NUMERIC_OIDS

    @property
    def time(self) -> bool:
        return self.oid in TIME_OIDS


@dataclass(frozen=True)
class PanelResult:
    """One panel query: what ran, what came back, and what is wrong with it."""

    dashboard: str
    path: str
    panel: str
    panel_type: str
    ref_id: str
    sql: str = ""
    rows: int = 0
    columns: tuple[Column, ...] = ()
    ms: float = 0.0
    error: str | None = None
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None and not self.problems

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


class DashboardError(ValueError):
    """A dashboard file that cannot be read as a Grafana dashboard."""


# ------------------------------------------------------------------------------ reading files
def dashboard_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.json") if p.is_file())


def load_dashboard(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DashboardError(f"{path}: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("dashboard"), dict):
        data = data["dashboard"]  # the API's {dashboard, meta} envelope
    if not isinstance(data, dict) or not isinstance(data.get("panels", []), list):
        raise DashboardError(f"{path}: not a Grafana dashboard (no panels list)")
    return data


def iter_panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows' nested panels (collapsed rows hold theirs) included."""
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
            continue
        yield panel


# ------------------------------------------------------------------------------ variables
def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _validated(var: Mapping[str, Any], options: Sequence[Option]) -> tuple[Any, Any]:
    """MultiValueVariable.getStateUpdateGivenNewOptions, for the saved `current` value."""
    current = var.get("current") or {}
    value, text = current.get("value", ""), current.get("text", "")
    multi, include_all = bool(var.get("multi")), bool(var.get("includeAll"))
    default_all = bool(var.get("defaultToAll"))
    if not options:
        if default_all or include_all:
            return ALL_VALUE, ALL_TEXT
        return ([], []) if multi else ("", "")
    if value == ALL_VALUE or (isinstance(value, list) and value and value[0] == ALL_VALUE):
        if include_all:
            return value, ALL_TEXT
        first = options[0]
        return ([first.value], [first.text]) if multi else (first.value, first.text)
    if multi:
        valid = [v for v in _as_list(value) if any(o.value == v for o in options)]
        if not valid:
            if default_all:
                return [ALL_VALUE], [ALL_TEXT]
            return [options[0].value], [options[0].text]
        return valid, [next(o.text for o in options if o.value == v) for v in valid]
    match = next((o for o in options if o.value == value), None)
    match = match or next((o for o in options if o.text == text), None)
    if match:
        return match.value, match.text
    if default_all:
        return ALL_VALUE, ALL_TEXT
    return options[0].value, options[0].text


def _custom_options(query: str) -> list[Option]:
    """Scenes' CustomVariable: comma-separated, `\\,` escapes a comma, `key : value` pairs."""
    options = []
    for raw in re.findall(r"(?:\\,|[^,])+", query):
        text = raw.replace("\\,", ",")
        pair = re.match(r"^\s*(.+)\s:\s(.+)$", text)
        if pair:
            options.append(Option(pair.group(1).strip(), pair.group(2).strip()))
        else:
            options.append(Option(text.strip(), text.strip()))
    return options


def _sorted(options: list[Option], sort: int) -> list[Option]:
    """QueryVariable sort: 1/2 alphabetical, 3/4 numerical, 5/6 case-insensitive."""

    def number(o: Option) -> float:
        found = re.search(r"\d+", o.text)
        return float(found.group(0)) if found else -1.0

    keys = {1: lambda o: o.text, 3: number, 5: lambda o: o.text.lower()}
    if sort in (1, 2, 3, 4, 5, 6):
        key = keys[sort - 1 if sort % 2 == 0 else sort]
        return sorted(options, key=key, reverse=sort % 2 == 0)  # type: ignore[arg-type]
    return options


def _regex_filter(options: list[Option], pattern: str) -> list[Option]:
    if not pattern:
        return options
    body = pattern
    flags = 0
    js = re.fullmatch(r"/(.*)/([gimsuy]*)", pattern, re.S)
    if js:
        body = js.group(1)
        flags = re.I if "i" in js.group(2) else 0
    regex = re.compile(body, flags)
    kept = []
    for option in options:
        match = regex.search(option.value)
        if not match:
            continue
        if match.groups():
            named = match.groupdict()
            value = named.get("value") or named.get("text") or match.group(1)
            text = named.get("text") or value
            kept.append(Option(text, value))
        else:
            kept.append(option)
    return kept


def _query_text(query: Any) -> str:
    if isinstance(query, dict):
        return str(query.get("rawSql") or query.get("query") or "")
    return str(query or "")


def _metric_find(cur: psycopg.Cursor[Any]) -> list[Option]:
    """ResponseParser.transformMetricFindResponse: __text/__value, else every field's values."""
    if cur.description is None:
        return []
    names = [c.name for c in cur.description]
    rows = cur.fetchall()
    found: list[Option] = []
    if "__text" in names and "__value" in names:
        t, v = names.index("__text"), names.index("__value")
        found = [Option(_text(row[t]), _text(row[v])) for row in rows]
    else:
        for i in range(len(names)):
            found.extend(Option(_text(row[i]), _text(row[i])) for row in rows)
    seen: set[str] = set()
    unique = []
    for option in found:
        if option.text not in seen:
            seen.add(option.text)
            unique.append(option)
    return unique


def _text(value: Any) -> str:
    return "null" if value is None else str(value)


def resolve_variables(
    conn: psycopg.Connection[Any],
    dashboard: Mapping[str, Any],
    time_range: TimeRange,
    *,
    timescaledb: bool = True,
) -> dict[str, Variable]:
    """The dashboard's variables in list order, each one seeing those before it."""
    resolved: dict[str, Variable] = {}
    for var in dashboard.get("templating", {}).get("list", []):
        name, kind = var.get("name", ""), var.get("type", "")
        options: list[Option] = []
        if kind == "query":
            ds = var.get("datasource") or {}
            if isinstance(ds, dict) and ds.get("type") not in (None, *POSTGRES_TYPES):
                raise VariableError(f"variable {name}: datasource {ds.get('type')} is not SQL")
            sql = _query_text(var.get("query") or var.get("definition"))
            scope = Scope(resolved, time_range, Interval(1000, "1s"))
            expanded = expand_query(sql, scope, timescaledb=timescaledb)
            with conn.cursor() as cur:
                cur.execute(expanded.sql)  # type: ignore[arg-type]
                options = _metric_find(cur)
            options = _regex_filter(options, str(var.get("regex") or ""))
            options = _sorted(options, int(var.get("sort") or 0))
        elif kind == "custom" or kind == "interval":
            options = _custom_options(_query_text(var.get("query")))
        elif kind in ("constant", "textbox"):
            value = _query_text(var.get("query"))
            if kind == "textbox" and (var.get("current") or {}).get("value") is not None:
                value = str(var["current"]["value"])
            resolved[name] = Variable(name, value, value, type=kind)
            continue
        else:
            continue  # adhoc, datasource, groupby: no SQL of their own here
        value, text = _validated(var, options)
        if kind == "interval" and str(value).startswith("$__auto"):
            count = int(var.get("auto_count") or 30)
            auto = calculate_interval(time_range, count, str(var.get("auto_min") or "10s"))
            value = text = auto.text
        all_value = var.get("allValue") or None
        resolved[name] = Variable(
            name, value, text, tuple(options), bool(var.get("multi")),
            bool(var.get("includeAll")), all_value, kind,
        )  # fmt: skip
    return resolved


# ------------------------------------------------------------------------------ shapes
def shape_problems(
    panel_type: str, fmt: str, columns: Sequence[Column], rows: Sequence[Sequence[Any]]
) -> list[str]:
    """What the panel type needs of its data frame (and what Grafana itself refuses)."""
    problems: list[str] = []
    names = [c.name for c in columns]
    if fmt != "table" and "time" not in names:
        problems.append(
            "time_series format without a `time` column (Grafana: db has no time column)"
        )
    if fmt != "table" and "time" in names and rows:
        index = names.index("time")
        long = any(not c.numeric and not c.time and i != index for i, c in enumerate(columns))
        stamps = [row[index] for row in rows]
        if long and any(a > b for a, b in pairwise(stamps) if a and b):
            problems.append("long time series not sorted by time (Grafana: unsorted series)")
    first_is_time = bool(columns) and (columns[0].time or columns[0].name == "time")
    if panel_type in TIME_SERIES_PANELS:
        if not first_is_time:
            problems.append(f"{panel_type}: the first column must be the time")
        elif not any(c.numeric for c in columns[1:]):
            problems.append(f"{panel_type}: no numeric value column after the time")
    elif panel_type in STATE_PANELS:
        if not first_is_time:
            problems.append(f"{panel_type}: the first column must be the time")
        if len(columns) < 2:
            problems.append(f"{panel_type}: needs a column per entity after the time")
    elif panel_type == "geomap":
        lower = {n.lower(): c for n, c in zip(names, columns, strict=True)}
        lat = lower.get("latitude") or lower.get("lat")
        lon = lower.get("longitude") or lower.get("lon") or lower.get("lng")
        if lat is None or lon is None:
            problems.append("geomap: needs latitude and longitude columns")
        elif not (lat.numeric and lon.numeric):
            problems.append("geomap: latitude and longitude must be numeric")
        if fmt != "table":
            problems.append("geomap: use the table format")
    elif panel_type in NUMERIC_PANELS and not any(c.numeric for c in columns):
        problems.append(f"{panel_type}: needs a numeric column")
    return problems


# ------------------------------------------------------------------------------ running
@dataclass
class CheckOptions:
    time_range: TimeRange
    timescaledb: bool = True
    wall_width_px: int = 1920
    require_rows: bool = False
    statement_timeout_ms: int = 30_000
    problems: list[str] = field(default_factory=list)


def _is_sql_target(panel: Mapping[str, Any], target: Mapping[str, Any]) -> bool:
    ds = target.get("datasource") or panel.get("datasource") or {}
    if isinstance(ds, str):
        return ds == DATASOURCE_UID
    return ds.get("type") in POSTGRES_TYPES or ds.get("uid") == DATASOURCE_UID


def _repeats(
    panel: Mapping[str, Any], variables: Mapping[str, Variable]
) -> list[dict[str, Variable]]:
    """A repeated panel runs once per selected value, with that value as a local variable."""
    name = panel.get("repeat")
    if not name or name not in variables:
        return [dict(variables)]
    source = variables[name]
    values = source.get_value()
    if not isinstance(values, list):
        values = [values]  # a custom allValue or a single value: one panel
    texts = dict((o.value, o.text) for o in source.options)
    out = []
    for value in values:
        local = Variable(name, value, texts.get(str(value), str(value)), source.options,
                         source.multi, source.include_all, None, source.type)  # fmt: skip
        out.append({**variables, name: local})
    return out


def check_dashboard(
    conn: psycopg.Connection[Any], path: Path, options: CheckOptions
) -> list[PanelResult]:
    dashboard = load_dashboard(path)
    title = str(dashboard.get("title") or path.stem)
    try:
        variables = resolve_variables(conn, dashboard, options.time_range,
                                      timescaledb=options.timescaledb)  # fmt: skip
    except (psycopg.Error, MacroError, VariableError) as exc:
        return [PanelResult(title, str(path), "(variables)", "templating", "-",
                            error=_one_line(exc))]  # fmt: skip
    results: list[PanelResult] = []
    for panel in iter_panels(dashboard):
        ptype = str(panel.get("type", ""))
        if ptype in NO_QUERY_PANELS:
            continue
        ptitle = str(panel.get("title") or f"panel {panel.get('id')}")
        width = int((panel.get("gridPos") or {}).get("w", 24))
        points = int(panel.get("maxDataPoints") or round(width / 24 * options.wall_width_px))
        interval = calculate_interval(options.time_range, points,
                                      panel.get("interval") or DEFAULT_MIN_INTERVAL)  # fmt: skip
        for local in _repeats(panel, variables):
            for target in panel.get("targets", []):
                if target.get("hide") or not _is_sql_target(panel, target):
                    continue
                scope = Scope(local, options.time_range, interval)
                results.append(_run(conn, title, str(path), ptitle, ptype, target, scope, options))
    return results


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _run(
    conn: psycopg.Connection[Any], dashboard: str, path: str, panel: str, ptype: str,
    target: Mapping[str, Any], scope: Scope, options: CheckOptions,
) -> PanelResult:  # fmt: skip
    ref = str(target.get("refId") or "A")
    fmt = str(target.get("format") or "time_series")
    base = PanelResult(dashboard, path, panel, ptype, ref)
    raw = str(target.get("rawSql") or "")
    if not raw.strip():
        return _with(base, error="the query has no rawSql")
    try:
        expanded: Expanded = expand_query(raw, scope, timescaledb=options.timescaledb)
    except (MacroError, VariableError) as exc:
        return _with(base, error=f"interpolation failed: {_one_line(exc)}")
    start = time.perf_counter()
    try:
        with conn.cursor() as cur:
            cur.execute(expanded.sql)  # type: ignore[arg-type]
            rows = cur.fetchall() if cur.description else []
            columns = tuple(Column(c.name, c.type_code) for c in cur.description or ())
    except psycopg.Error as exc:
        ms = (time.perf_counter() - start) * 1000
        return _with(base, sql=expanded.sql, ms=ms, error=f"db query error: {_one_line(exc)}")
    ms = (time.perf_counter() - start) * 1000
    problems = shape_problems(ptype, fmt, columns, rows) if rows else []
    if options.require_rows and not rows:
        problems.append("no rows")
    return _with(base, sql=expanded.sql, rows=len(rows), columns=columns, ms=ms,
                 problems=tuple(problems))  # fmt: skip


def _with(result: PanelResult, **changes: Any) -> PanelResult:
    return replace(result, **changes)


def check_dashboards(
    db: DatabaseSettings,
    paths: Sequence[Path],
    time_range: TimeRange,
    *,
    timescaledb: bool = True,
    require_rows: bool = False,
    wall_width_px: int = 1920,
) -> list[PanelResult]:
    """Run every panel query of `paths` as the ioc_grafana role over `time_range`; one
    autocommit, read-only session, a statement timeout per query."""
    options = CheckOptions(time_range, timescaledb, wall_width_px, require_rows)
    results: list[PanelResult] = []
    with psycopg.connect(db.conninfo("grafana"), autocommit=True) as conn:
        conn.execute("SET default_transaction_read_only = on")
        conn.execute(f"SET statement_timeout = {int(options.statement_timeout_ms)}")
        for path in paths:
            results.extend(check_dashboard(conn, path, options))
    return results
