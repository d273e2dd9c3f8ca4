"""Grafana's PostgreSQL macros and template variables, expanded as Grafana 12 expands them.

No Grafana server runs here, so `ioc dashboards check` turns each panel's `rawSql` into the SQL
that Grafana would send to PostgreSQL. Each step is a port of the code that does it in Grafana:

1. the frontend (Scenes' `sceneInterpolator` with the SQL datasource's `interpolateVariable` as
   the default format) replaces `$var`, `${var}`, `${var:format}` and `[[var]]`, plus the scoped
   `$__interval` / `$__interval_ms` and the `$__from` / `$__to` macros;
   (grafana/scenes packages/scenes/src/variables/interpolation/sceneInterpolator.ts,
   formatRegistry.ts, variables/variants/MultiValueVariable.ts; grafana
   packages/grafana-sql/src/datasource/SqlDatasource.ts `interpolateVariable`)
2. the backend's global substitutions: `$__interval_ms`, `$__interval`, `$__unixEpochFrom()`,
   `$__unixEpochTo()` (grafana pkg/tsdb/grafana-postgresql-datasource/sqleng/sql_engine.go
   `Interpolate`);
3. the PostgreSQL macro engine: every `$name(args)` is a macro, an unknown name is an error
   (pkg/tsdb/grafana-postgresql-datasource/macros.go `Interpolate` / `evaluateMacro`).

The interval a panel's query gets is the frontend's `rangeutil.calculateInterval(range,
maxDataPoints, minInterval)`: (to - from) / maxDataPoints rounded by `roundInterval`, never below
the panel's `interval` or, without one, the SQL datasource's default of `1m`
(packages/grafana-data/src/datetime/rangeutil.ts; SqlDatasource: `timeInterval || '1m'`).

Fill (`$__timeGroup(c, '5m', 0)`) does not change the SQL: Grafana records it and fills the
missing buckets after the query; `Expanded.fill` carries it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Literal
from urllib.parse import quote

ALL_VALUE = "$__all"
ALL_TEXT = "All"
AUTO_VALUES = ("$__auto",)
DEFAULT_MIN_INTERVAL = "1m"  # SqlDatasource: `settingsData.timeInterval || '1m'`


class MacroError(ValueError):
    """Grafana's "interpolation failed": an unknown macro or a bad argument."""


class VariableError(ValueError):
    """A variable or format this emulation does not reproduce (never silently guessed)."""


# ----------------------------------------------------------------------------------- time range
@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("a time range needs timezone-aware datetimes")

    @classmethod
    def last(cls, span: timedelta, now: datetime | None = None) -> TimeRange:
        end = now or datetime.now(UTC)
        return cls(end - span, end)

    @property
    def from_ms(self) -> int:
        return _epoch_ms(self.start)

    @property
    def to_ms(self) -> int:
        return _epoch_ms(self.end)


def _epoch_ms(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def rfc3339_nano(moment: datetime) -> str:
    """Go's `t.UTC().Format(time.RFC3339Nano)`: trailing zeros of the fraction dropped, `Z`."""
    utc = moment.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += "." + f"{utc.microsecond:06d}".rstrip("0")
    return text + "Z"


def _unix(moment: datetime) -> int:
    """Go's `t.Unix()`: seconds, floored."""
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(seconds=1)


def _unix_nano(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000


# ------------------------------------------------------------------------------- Go durations
_GO_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_GO_PART = re.compile(r"(\d*\.?\d*)(ns|us|µs|μs|ms|s|m|h)")
_DATE_UNIT = re.compile(r"^(\d+)([dwMy])$")


def go_parse_duration(text: str) -> int:
    """Go's `time.ParseDuration`, in nanoseconds ("5m", "1h30m", "20ms", "-1.5h", "0")."""
    rest, sign = text, 1
    if rest[:1] in "+-" and rest:
        sign = -1 if rest[0] == "-" else 1
        rest = rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise ValueError(f'time: invalid duration "{text}"')
    total = 0.0
    while rest:
        match = _GO_PART.match(rest)
        if not match or match.group(1) in ("", "."):
            raise ValueError(f'time: invalid duration "{text}"')
        total += float(match.group(1)) * _GO_UNITS[match.group(2)]
        rest = rest[match.end() :]
    return sign * int(total)


def _add_months(moment: datetime, months: int) -> datetime:
    """Go's `AddDate(0, months, 0)`: the day overflows into the next month (Jan 31 + 1 = Mar 3)."""
    index = moment.year * 12 + (moment.month - 1) + months
    first = moment.replace(year=index // 12, month=index % 12 + 1, day=1)
    return first + timedelta(days=moment.day - 1)


def parse_interval(text: str, now: datetime | None = None) -> timedelta:
    """grafana-plugin-sdk-go `gtime.ParseInterval`: Go durations, plus d/w/M/y counted on the
    UTC calendar from now (so `1M` is the length of the coming month)."""
    match = _DATE_UNIT.match(text)
    if not match:
        return timedelta(microseconds=go_parse_duration(text) / 1000)
    num, unit = int(match.group(1)), match.group(2)
    if unit == "d":
        return timedelta(days=num)
    if unit == "w":
        return timedelta(days=7 * num)
    start = (now or datetime.now(UTC)).astimezone(UTC)
    months = num if unit == "M" else 12 * num
    return _add_months(start, months) - start


def format_interval(interval: timedelta) -> str:
    """gtime.FormatInterval: the backend's text for `$__interval` (1y, 3d, 2h, 5m, 10s, 20ms)."""
    ms = interval // timedelta(milliseconds=1)
    for unit, size in (("y", 365 * 86_400_000), ("d", 86_400_000), ("h", 3_600_000),
                       ("m", 60_000), ("s", 1_000), ("ms", 1)):  # fmt: skip
        if ms >= size:
            return f"{ms // size}{unit}"
    return "1ms"


def go_float(value: float) -> str:
    """Go's `%v` for a float64 (`%g` with the shortest digits; the exponent form below 1e-4 and
    from 1e+06): 300 -> `300`, 0.02 -> `0.02`, 1036800 -> `1.0368e+06`."""
    if value == 0:
        return "0"
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    sign = "-" if value < 0 else ""
    _, digit_tuple, exp = Decimal(repr(abs(value))).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    exponent = len(digits) - 1 + int(exp)
    if exponent < -4 or exponent >= 6:
        body = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{body}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    if exponent >= 0:
        whole, frac = digits[: exponent + 1].ljust(exponent + 1, "0"), digits[exponent + 1 :]
    else:
        whole, frac = "0", "0" * (-exponent - 1) + digits
    return sign + whole + ("." + frac if frac else "")


# ------------------------------------------------------------------- the interval of a panel
def round_interval(ms: float) -> int:
    """rangeutil.roundInterval: the nice interval (ms) for a raw one."""
    steps = (
        (10, 1), (15, 10), (35, 20), (75, 50), (150, 100), (350, 200), (750, 500),
        (1500, 1000), (3500, 2000), (7500, 5000), (12500, 10000), (17500, 15000),
        (25000, 20000), (45000, 30000), (90000, 60000), (210000, 120000), (450000, 300000),
        (750000, 600000), (1050000, 900000), (1500000, 1200000), (2700000, 1800000),
        (5400000, 3600000), (9000000, 7200000), (16200000, 10800000), (32400000, 21600000),
        (86400000, 43200000), (604800000, 86400000), (1814400000, 604800000),
        (3628800000, 2592000000),
    )  # fmt: skip
    for below, nice in steps:
        if ms < below:
            return nice
    return 31536000000


_KBN_INTERVAL = re.compile(r"^(-?\d+(?:\.\d+)?)(ms|[Mwdhmsy])")
_KBN_SECONDS = {"y": 31536000, "M": 2592000, "w": 604800, "d": 86400, "h": 3600, "m": 60,
                "s": 1, "ms": 0.001}  # fmt: skip


def interval_to_ms(text: str) -> float:
    """rangeutil.intervalToMs ("1m" -> 60000; a bare number is seconds)."""
    try:
        number = float(text)
    except ValueError:
        number = 0.0
    if number:  # JS `if (Number(str))`
        return int(number) * 1000  # parseInt
    match = _KBN_INTERVAL.match(text)
    if not match:
        raise VariableError(f"invalid interval {text!r}")
    return _KBN_SECONDS[match.group(2)] * 1000 * int(float(match.group(1)))


def seconds_to_hms(seconds: float) -> str:
    """rangeutil.secondsToHms: the frontend's text for `$__interval`."""
    years = math.floor(seconds / 31536000)
    if years:
        return f"{years}y"
    rest = seconds % 31536000
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m"), (1, "s")):
        count = math.floor(rest / size)
        if count:
            return f"{count}{unit}"
        rest %= size
    ms = math.floor(seconds * 1000.0)
    return f"{ms}ms" if ms else "less than a millisecond"


@dataclass(frozen=True)
class Interval:
    ms: int
    text: str

    @property
    def delta(self) -> timedelta:
        return timedelta(milliseconds=self.ms)


def calculate_interval(
    time_range: TimeRange, max_data_points: int, min_interval: str | None = DEFAULT_MIN_INTERVAL
) -> Interval:
    """rangeutil.calculateInterval(range, resolution, lowLimitInterval)."""
    low = interval_to_ms(min_interval) if min_interval else 1
    ms = round_interval((time_range.to_ms - time_range.from_ms) / max(max_data_points, 1))
    ms = max(ms, int(low))
    return Interval(ms, seconds_to_hms(ms / 1000))


# ------------------------------------------------------------------------- backend: sqleng
def interpolate_global(sql: str, time_range: TimeRange, interval: timedelta) -> str:
    """sqleng.Interpolate: the substitutions every SQL datasource makes, in Grafana's order."""
    sql = sql.replace("$__interval_ms", str(interval // timedelta(milliseconds=1)))
    sql = sql.replace("$__interval", format_interval(interval))
    sql = sql.replace("$__unixEpochFrom()", str(_unix(time_range.start)))
    return sql.replace("$__unixEpochTo()", str(_unix(time_range.end)))


# -------------------------------------------------------------------- backend: macros.go
_MACRO = re.compile(r"\$([_a-zA-Z0-9]+)\(([^\)]*)\)")

FillMode = Literal["null", "previous", "value"]


@dataclass(frozen=True)
class Fill:
    """What sqleng.SetupFillmode records; Grafana fills missing buckets after the query."""

    mode: FillMode
    interval_s: float
    value: float | None = None


@dataclass(frozen=True)
class Expanded:
    sql: str
    fill: Fill | None = None


def interpolate_macros(sql: str, time_range: TimeRange, *, timescaledb: bool) -> Expanded:
    """postgresMacroEngine.Interpolate: every `$name(args)`; the first error wins."""
    original = sql
    fills: list[Fill] = []
    errors: list[MacroError] = []

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "__timeGroup":
            # pre-5.3 compatibility: a ',' right after the macro's first occurrence adds AS "time"
            index = original.find(match.group(0))
            if index >= 0:
                index += len(match.group(0))
                if len(original) > index and original[index] == ",":
                    name = "__timeGroupAlias"
        args = [arg.strip(" ") for arg in match.group(2).split(",")]
        try:
            return _evaluate(name, args, time_range, timescaledb, fills)
        except MacroError as exc:
            errors.append(exc)
            return "macro_error()"

    out = _MACRO.sub(replace, sql)
    if errors:
        raise errors[0]
    return Expanded(out, fills[-1] if fills else None)


def _evaluate(
    name: str, args: list[str], tr: TimeRange, timescaledb: bool, fills: list[Fill]
) -> str:
    start, end = tr.start, tr.end
    # Go's strings.Split("", ",") is [""]: len(args) is never 0, so "missing argument" errors
    # below come only from what follows; kept for fidelity with macros.go
    if name == "__time":
        return f'{args[0]} AS "time"'
    if name == "__timeEpoch":
        return f'extract(epoch from {args[0]}) as "time"'
    if name == "__timeFilter":
        return f"{args[0]} BETWEEN '{rfc3339_nano(start)}' AND '{rfc3339_nano(end)}'"
    if name == "__timeFrom":
        return f"'{rfc3339_nano(start)}'"
    if name == "__timeTo":
        return f"'{rfc3339_nano(end)}'"
    if name in ("__timeGroup", "__unixEpochGroup"):
        if len(args) < 2:
            raise MacroError(f"macro {name} needs time column and interval and optional fill value")
        try:
            interval = parse_interval(args[1].strip("'"))
        except ValueError:
            raise MacroError(f"error parsing interval {args[1]}") from None
        seconds = interval / timedelta(seconds=1)
        if len(args) == 3:
            fills.append(_fill(interval, args[2]))
        if name == "__unixEpochGroup":
            return f"floor(({args[0]})/{go_float(seconds)})*{go_float(seconds)}"
        if timescaledb:
            return f"time_bucket('{seconds:.3f}s',{args[0]})"
        return f"floor(extract(epoch from {args[0]})/{go_float(seconds)})*{go_float(seconds)}"
    if name in ("__timeGroupAlias", "__unixEpochGroupAlias"):
        base = name.removesuffix("Alias")
        return _evaluate(base, args, tr, timescaledb, fills) + ' AS "time"'
    if name == "__unixEpochFilter":
        return f"{args[0]} >= {_unix(start)} AND {args[0]} <= {_unix(end)}"
    if name == "__unixEpochNanoFilter":
        return f"{args[0]} >= {_unix_nano(start)} AND {args[0]} <= {_unix_nano(end)}"
    if name == "__unixEpochNanoFrom":
        return str(_unix_nano(start))
    if name == "__unixEpochNanoTo":
        return str(_unix_nano(end))
    raise MacroError(f'unknown macro "{name}"')


def _fill(interval: timedelta, mode: str) -> Fill:
    """sqleng.SetupFillmode: `NULL` (exactly), `previous`, or a number."""
    seconds = interval / timedelta(seconds=1)
    if mode == "NULL":
        return Fill("null", seconds)
    if mode == "previous":
        return Fill("previous", seconds)
    try:
        return Fill("value", seconds, _go_parse_float(mode))
    except ValueError:
        raise MacroError(f"error parsing fill value {mode}") from None


def _go_parse_float(text: str) -> float:
    if not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(?i:inf|infinity|nan)", text):
        raise ValueError(text)
    return float(text)


# ------------------------------------------------------------------ frontend: variables
@dataclass(frozen=True)
class Option:
    text: str
    value: str


VariableValue = str | int | float | list[str]


@dataclass(frozen=True)
class Variable:
    """A dashboard variable after Grafana has loaded its options and validated its value."""

    name: str
    value: VariableValue
    text: VariableValue = ""
    options: tuple[Option, ...] = ()
    multi: bool = False
    include_all: bool = False
    all_value: str | None = None
    type: str = "custom"

    def has_all_value(self) -> bool:
        value = self.value
        return value == ALL_VALUE or (
            isinstance(value, list) and bool(value) and value[0] == ALL_VALUE
        )

    def get_value(self, field_path: str | None = None) -> VariableValue | _CustomAllValue:
        """MultiValueVariable.getValue: All is every option's value, or the raw allValue."""
        value = self.value
        if self.has_all_value():
            if self.all_value:
                return _CustomAllValue(self.all_value)
            value = [option.value for option in self.options]
        if field_path is not None and isinstance(value, list) and field_path.isdigit():
            index = int(field_path)
            if index < len(value):
                return value[index]
        return value

    def value_text(self) -> str:
        if self.has_all_value():
            return ALL_TEXT
        if isinstance(self.text, list):
            return " + ".join(self.text)
        return _js_string(self.text)


@dataclass(frozen=True)
class _CustomAllValue:
    """Scenes' CustomAllValue: a custom allValue is inserted as it is, never escaped."""

    value: str

    def formatted(self, fmt: str | None) -> str:
        if fmt == "text":
            return ALL_TEXT
        if fmt == "percentencode":
            return _percent_encode(self.value)
        if fmt == "queryparam":
            raise VariableError("the queryparam format is not emulated")
        return self.value


def _js_string(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return ",".join(_js_string(v) for v in value)
    return str(value)


def _percent_encode(value: object) -> str:
    return quote(_js_string(value), safe="-_.~")  # encodeURIComponent + !'()* encoded


def _quote_literal(value: object) -> str:
    """PostgresQueryModel.quoteLiteral."""
    return "'" + _js_string(value).replace("'", "''") + "'"


def sql_interpolate_variable(value: VariableValue, variable: FormatVariable) -> str:
    """SqlDatasource.interpolateVariable: the format a SQL query gets when it names none."""
    if isinstance(value, str):
        if variable.multi or variable.include_all:
            return _quote_literal(value)
        return value.replace("'", "''")
    if isinstance(value, int | float):
        return _js_string(value)
    if isinstance(value, list):
        return ",".join(_quote_literal(v) for v in value)
    return _js_string(value)


def _sqlstring(value: VariableValue) -> str:
    def one(v: object) -> str:
        return "'" + _js_string(v).replace("'", "''").replace('"', '\\"') + "'"

    if isinstance(value, list):
        return ",".join(one(v) for v in value)
    return one(value)


def _singlequote(value: VariableValue) -> str:
    def one(v: object) -> str:
        return "'" + _js_string(v).replace("'", "\\'") + "'"

    return ",".join(one(v) for v in value) if isinstance(value, list) else one(value)


def _doublequote(value: VariableValue) -> str:
    def one(v: object) -> str:
        return '"' + _js_string(v).replace('"', '\\"') + '"'

    return ",".join(one(v) for v in value) if isinstance(value, list) else one(value)


def _csv(value: VariableValue) -> str:
    return ",".join(_js_string(v) for v in value) if isinstance(value, list) else _js_string(value)


def _pipe(value: VariableValue) -> str:
    return "|".join(_js_string(v) for v in value) if isinstance(value, list) else _js_string(value)


def _glob(value: VariableValue) -> str:
    if isinstance(value, list) and len(value) > 1:
        return "{" + ",".join(_js_string(v) for v in value) + "}"
    return _js_string(value)


def _json(value: VariableValue) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _regex(value: VariableValue) -> str:
    def esc(v: object) -> str:
        return re.sub(r"[\\^$*+?.()|{}\[\]/]", lambda m: "\\" + m.group(0), _js_string(v))

    if isinstance(value, list):
        escaped = [esc(v) for v in value]
        return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"
    return esc(value)


def _distributed(value: VariableValue, name: str) -> str:
    if isinstance(value, list):
        return ",".join(v if i == 0 else f"{name}={v}" for i, v in enumerate(value))
    return _js_string(value)


def _join(value: VariableValue, args: Sequence[str]) -> str:
    if isinstance(value, list):
        return (args[0] if args else ",").join(_js_string(v) for v in value)
    return _js_string(value)


def _percentencode(value: VariableValue) -> str:
    if isinstance(value, list):
        return _percent_encode("{" + ",".join(_js_string(v) for v in value) + "}")
    return _percent_encode(value)


@dataclass(frozen=True)
class FormatVariable:
    """What a formatter sees of a variable (Scenes' FormatVariable)."""

    name: str
    multi: bool = False
    include_all: bool = False
    text: str = ""


def _date(value: VariableValue, args: Sequence[str]) -> str:
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str) and re.match(r"^\s*[+-]?\d", value):
        number = float(re.match(r"^\s*([+-]?\d+)", value).group(1))  # type: ignore[union-attr]
    else:
        return "NaN"
    arg = args[0] if args else "iso"
    if arg == "ms":
        return _js_string(value)
    if arg == "seconds":
        return str(math.floor(number / 1000 + 0.5))  # Math.round
    if arg == "iso":
        moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=number)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    raise VariableError(f"the date format {':'.join(args)!r} is not emulated")


_SIMPLE_FORMATS: dict[str, Callable[[VariableValue], str]] = {
    "raw": _js_string,
    "csv": _csv,
    "sqlstring": _sqlstring,
    "singlequote": _singlequote,
    "doublequote": _doublequote,
    "pipe": _pipe,
    "glob": _glob,
    "json": _json,
    "regex": _regex,
    "percentencode": _percentencode,
}
_NOT_EMULATED = {"lucene", "html", "queryparam", "customqueryparam", "uriencode"}


def _format_value(
    value: VariableValue | _CustomAllValue | None,
    variable: FormatVariable,
    fmt: str | None,
    resolve: Callable[[str], str],
) -> str:
    """sceneInterpolator's formatValue; `fmt` None is the SQL datasource's interpolateVariable."""
    if value is None:
        return ""
    if isinstance(value, _CustomAllValue):
        return resolve(value.formatted(fmt))
    if fmt is None:
        return sql_interpolate_variable(value, variable)
    name, *args = fmt.split(":")
    if name in _NOT_EMULATED:
        raise VariableError(f"the {name} format is not emulated")
    if name in _SIMPLE_FORMATS:
        return _SIMPLE_FORMATS[name](value)
    if name == "text":
        return variable.text
    if name == "join":
        return _join(value, args)
    if name == "distributed":
        return _distributed(value, variable.name)
    if name == "date":
        return _date(value, args)
    return _glob(value)  # Scenes: an unknown format falls back to glob (with a console error)


# The frontend's VARIABLE_REGEX: $var, [[var]] or [[var:fmt]], ${var}, ${var.path}, ${var:fmt}
_VARIABLE = re.compile(
    r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^\}]+))?(?::([^\}]+))?\}", re.ASCII
)


@dataclass(frozen=True)
class Scope:
    """What one panel query is interpolated with: the dashboard's variables, the time range
    and the panel's interval (Scenes' scoped `__interval` / `__interval_ms`)."""

    variables: Mapping[str, Variable]
    time_range: TimeRange
    interval: Interval | None = None
    extra: Mapping[str, VariableValue] = field(default_factory=dict)


def interpolate_variables(sql: str, scope: Scope, *, fmt: str | None = None) -> str:
    """sceneInterpolator(target, scopedVars, format=SqlDatasource.interpolateVariable)."""

    def resolve(inner: str) -> str:  # a custom allValue is interpolated again, glob by default
        return interpolate_variables(inner, scope, fmt="glob")

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(4)
        field_path = match.group(5)
        explicit = match.group(3) or match.group(6)
        chosen = explicit or fmt
        scoped = _scoped(name, scope)
        if scoped is not None:
            return _format_value(scoped, FormatVariable(name, text=_js_string(scoped)), chosen,
                                 resolve)  # fmt: skip
        variable = scope.variables.get(name)
        if variable is None:
            return match.group(0)  # unknown: left for the backend (a macro, or an SQL error)
        shown = FormatVariable(variable.name, variable.multi, variable.include_all,
                               variable.value_text())  # fmt: skip
        return _format_value(variable.get_value(field_path), shown, chosen, resolve)

    return _VARIABLE.sub(replace, sql)


def _scoped(name: str, scope: Scope) -> VariableValue | None:
    if name in scope.extra:
        return scope.extra[name]
    if scope.interval is not None and name == "__interval":
        return scope.interval.text
    if scope.interval is not None and name == "__interval_ms":
        return scope.interval.ms
    if name == "__from":
        return scope.time_range.from_ms
    if name == "__to":
        return scope.time_range.to_ms
    return None


# --------------------------------------------------------------------------------- together
def expand_query(
    raw_sql: str,
    scope: Scope,
    *,
    timescaledb: bool = True,
) -> Expanded:
    """A panel query as Grafana sends it to PostgreSQL: variables (frontend), then the global
    substitutions and the macros (backend)."""
    interval = scope.interval or Interval(60_000, "1m")
    sql = interpolate_variables(raw_sql, scope)
    sql = interpolate_global(sql, scope.time_range, interval.delta)
    return interpolate_macros(sql, scope.time_range, timescaledb=timescaledb)
