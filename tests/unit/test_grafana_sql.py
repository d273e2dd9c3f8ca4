"""Grafana's macro and variable expansion, checked against Grafana's own test vectors.

The macro vectors are those of grafana/grafana pkg/tsdb/grafana-postgresql-datasource/
macros_test.go (`TestMacroEngine`, time range 2018-04-12T18:00:00Z .. 18:05:00Z); the variable
vectors are those of packages/grafana-sql/src/datasource/variable-interpolation.test.ts and of
grafana/scenes packages/scenes/src/variables/interpolation/formatRegistry.test.ts; the interval
ladder is packages/grafana-data/src/datetime/rangeutil.ts. Where Grafana's tests build the
expected string with Go's formatting, the literal it produces is written out here (checked with
Go 1.x: `%v` of 1036800.0 is `1.0368e+06`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dashboards.grafana_sql import (
    Fill,
    Interval,
    MacroError,
    Option,
    Scope,
    TimeRange,
    Variable,
    calculate_interval,
    expand_query,
    format_interval,
    go_float,
    interpolate_global,
    interpolate_macros,
    interpolate_variables,
    parse_interval,
    round_interval,
    seconds_to_hms,
)

FROM = datetime(2018, 4, 12, 18, 0, tzinfo=UTC)
RANGE = TimeRange(FROM, FROM + timedelta(minutes=5))


def pg(sql: str, time_range: TimeRange = RANGE) -> str:
    return interpolate_macros(sql, time_range, timescaledb=False).sql


def ts(sql: str) -> str:
    return interpolate_macros(sql, RANGE, timescaledb=True).sql


# ------------------------------------------------------------------------- macros_test.go
@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("select $__time(time_column)", 'select time_column AS "time"'),
        ("select min($__time(time_column))", 'select min(time_column AS "time")'),
        (
            "WHERE $__timeFilter(time_column)",
            "WHERE time_column BETWEEN '2018-04-12T18:00:00Z' AND '2018-04-12T18:05:00Z'",
        ),
        ("select $__timeFrom()", "select '2018-04-12T18:00:00Z'"),
        ("select $__timeTo()", "select '2018-04-12T18:05:00Z'"),
        (
            "SELECT $__timeGroup(time_column,'5m'), value",
            'SELECT floor(extract(epoch from time_column)/300)*300 AS "time", value',
        ),
        (
            "SELECT $__timeGroup(time_column,'5m') as time, value",
            "SELECT floor(extract(epoch from time_column)/300)*300 as time, value",
        ),
        (
            "SELECT $__timeGroup(time_column,'5m')",
            "SELECT floor(extract(epoch from time_column)/300)*300",
        ),
        (
            "SELECT $__timeGroupAlias(time_column,'5m')",
            'SELECT floor(extract(epoch from time_column)/300)*300 AS "time"',
        ),
        ("$__timeGroup(time_column , '5m')", "floor(extract(epoch from time_column)/300)*300"),
        (
            "$__timeGroupAlias(time_column , '5m')",
            'floor(extract(epoch from time_column)/300)*300 AS "time"',
        ),
        ("select $__unixEpochFilter(time)", "select time >= 1523556000 AND time <= 1523556300"),
        (
            "select $__unixEpochNanoFilter(time)",
            "select time >= 1523556000000000000 AND time <= 1523556300000000000",
        ),
        ("select $__unixEpochNanoFrom()", "select 1523556000000000000"),
        ("select $__unixEpochNanoTo()", "select 1523556300000000000"),
        (
            "SELECT $__unixEpochGroup(time_column+time_adjustment,'5m')",
            "SELECT floor((time_column+time_adjustment)/300)*300",
        ),
        (
            "SELECT $__unixEpochGroupAlias(time_column+time_adjustment,'5m')",
            'SELECT floor((time_column+time_adjustment)/300)*300 AS "time"',
        ),
        ("select $__timeEpoch(t)", 'select extract(epoch from t) as "time"'),
    ],
)
def test_macros_expand_as_in_grafanas_macro_engine_tests(sql: str, expected: str) -> None:
    assert pg(sql) == expected


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("GROUP BY $__timeGroup(time_column,'5m')", "GROUP BY time_bucket('300.000s',time_column)"),
        (
            "GROUP BY $__timeGroup(time_column , '5m')",
            "GROUP BY time_bucket('300.000s',time_column)",
        ),
        (
            "GROUP BY $__timeGroup(time_column , '12d')",
            "GROUP BY time_bucket('1036800.000s',time_column)",
        ),
        (
            "GROUP BY $__timeGroup(time_column , '20ms')",
            "GROUP BY time_bucket('0.020s',time_column)",
        ),
        ("$__timeGroupAlias(c,'5m')", "time_bucket('300.000s',c) AS \"time\""),
    ],
)
def test_time_group_with_the_timescaledb_option_is_time_bucket(sql: str, expected: str) -> None:
    assert ts(sql) == expected


def test_a_large_bucket_without_timescaledb_uses_gos_float_format() -> None:
    """`%v` of 1036800.0 in Go is 1.0368e+06, which PostgreSQL reads as a number too."""
    assert pg("$__timeGroup(c,'12d')") == "floor(extract(epoch from c)/1.0368e+06)*1.0368e+06"
    assert [go_float(v) for v in (300, 0.02, 86400, 1e-05, 999999)] == [
        "300", "0.02", "86400", "1e-05", "999999",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (datetime(1960, 2, 1, 7, tzinfo=UTC), datetime(1965, 2, 3, 8, tzinfo=UTC)),
        (datetime(1960, 2, 1, 7, tzinfo=UTC), datetime(1980, 2, 3, 8, tzinfo=UTC)),
    ],
)
def test_ranges_before_1970(start: datetime, end: datetime) -> None:
    tr = TimeRange(start, end)
    s, e = start.isoformat().replace("+00:00", "Z"), end.isoformat().replace("+00:00", "Z")
    assert (
        pg("WHERE $__timeFilter(time_column)", tr) == f"WHERE time_column BETWEEN '{s}' AND '{e}'"
    )
    assert pg("select $__unixEpochFilter(time)", tr) == (
        f"select time >= {int(start.timestamp())} AND time <= {int(end.timestamp())}"
    )
    assert pg("select $__unixEpochNanoFilter(time)", tr) == (
        f"select time >= {int(start.timestamp()) * 10**9} AND time <= {int(end.timestamp()) * 10**9}"
    )


def test_fractional_seconds_are_rfc3339nano() -> None:
    tr = TimeRange(
        datetime(1960, 2, 1, 7, 0, 0, 500_000, tzinfo=UTC),
        datetime(1980, 2, 3, 8, 0, 0, 500_000, tzinfo=UTC),
    )
    assert pg("WHERE $__timeFilter(time_column)", tr) == (
        "WHERE time_column BETWEEN '1960-02-01T07:00:00.5Z' AND '1980-02-03T08:00:00.5Z'"
    )


def test_the_time_range_is_written_in_utc_whatever_its_zone() -> None:
    hanoi = datetime(2018, 4, 13, 1, 0, tzinfo=UTC).astimezone()
    tr = TimeRange(hanoi, hanoi + timedelta(hours=1))
    assert pg("$__timeFrom()", tr) == "'2018-04-13T01:00:00Z'"


@pytest.mark.parametrize(
    ("fill", "expected"),
    [
        ("NULL", Fill("null", 300.0)),
        ("previous", Fill("previous", 300.0)),
        ("0", Fill("value", 300.0, 0.0)),
        ("1.5", Fill("value", 300.0, 1.5)),
    ],
)
def test_fill_leaves_the_sql_alone_and_is_recorded(fill: str, expected: Fill) -> None:
    out = interpolate_macros(f"SELECT $__timeGroupAlias(t,'5m',{fill})", RANGE, timescaledb=True)
    assert out.sql == "SELECT time_bucket('300.000s',t) AS \"time\""
    assert out.fill == expected


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("select $__nope(t)", 'unknown macro "__nope"'),
        ("select $__timeGroup(t)", "macro __timeGroup needs time column and interval"),
        ("select $__timeGroup(t, 'fast')", "error parsing interval 'fast'"),
        ("select $__timeGroup(t, '5m', null)", "error parsing fill value null"),
        ("select $notAMacro(1)", 'unknown macro "notAMacro"'),
    ],
)
def test_bad_macros_are_errors_as_in_grafana(sql: str, message: str) -> None:
    with pytest.raises(MacroError, match=message):
        pg(sql)


def test_interval_units_follow_gtime() -> None:
    assert parse_interval("5m") == timedelta(minutes=5)
    assert parse_interval("1h30m") == timedelta(minutes=90)
    assert parse_interval("2d") == timedelta(days=2)
    assert parse_interval("1w") == timedelta(days=7)
    jan31 = datetime(2025, 1, 31, tzinfo=UTC)
    assert parse_interval("1M", now=jan31) == timedelta(days=31)  # Go: Jan 31 + 1M = Mar 3
    assert parse_interval("1y", now=datetime(2024, 1, 1, tzinfo=UTC)) == timedelta(days=366)
    with pytest.raises(ValueError):
        parse_interval("5")  # Go: missing unit in duration


# ------------------------------------------------------------------- sqleng.Interpolate
def test_global_substitutions() -> None:
    sql = "$__interval_ms $__interval $__unixEpochFrom() $__unixEpochTo()"
    out = interpolate_global(sql, RANGE, timedelta(minutes=10))
    assert out == "600000 10m 1523556000 1523556300"


@pytest.mark.parametrize(
    ("interval", "text"),
    [
        (timedelta(days=400), "1y"),
        (timedelta(days=3), "3d"),
        (timedelta(hours=2), "2h"),
        (timedelta(seconds=90), "1m"),
        (timedelta(seconds=10), "10s"),
        (timedelta(milliseconds=20), "20ms"),
        (timedelta(microseconds=10), "1ms"),
    ],
)
def test_format_interval(interval: timedelta, text: str) -> None:
    assert format_interval(interval) == text


# ----------------------------------------------------------------------- the interval
def test_sql_panels_never_get_an_interval_below_one_minute() -> None:
    assert calculate_interval(RANGE, 1000) == Interval(60_000, "1m")  # 300 ms raw
    day = TimeRange(FROM, FROM + timedelta(hours=24))
    assert calculate_interval(day, 1000) == Interval(60_000, "1m")  # 86.4 s raw -> 1m
    assert calculate_interval(day, 500) == Interval(120_000, "2m")  # 172.8 s raw -> 2m
    assert calculate_interval(day, 1920) == Interval(60_000, "1m")  # 45 s raw -> 1m
    assert calculate_interval(day, 100, "1m") == Interval(900_000, "15m")  # 864 s -> 15m
    assert calculate_interval(RANGE, 1000, "10s") == Interval(10_000, "10s")


@pytest.mark.parametrize(
    ("raw_ms", "nice_ms"),
    [(5, 1), (12, 10), (89_999, 60_000), (90_000, 120_000), (449_999, 300_000),
     (86_399_999, 43_200_000), (3_628_800_000, 31_536_000_000)],
)  # fmt: skip
def test_round_interval_ladder(raw_ms: float, nice_ms: int) -> None:
    assert round_interval(raw_ms) == nice_ms


def test_seconds_to_hms() -> None:
    assert [seconds_to_hms(s) for s in (31536000, 86400, 7200, 120, 15, 0.02)] == [
        "1y", "1d", "2h", "2m", "15s", "20ms",
    ]  # fmt: skip


# ----------------------------------------------------------------------- variables
def scope(*variables: Variable) -> Scope:
    return Scope({v.name: v for v in variables}, RANGE, Interval(60_000, "1m"))


ZONES = (Option("Ea Tam", "ea-tam"), Option("Tan Loi", "tan-loi"), Option("O'Brien", "o'brien"))


def test_a_multi_value_variable_is_quoted_with_quotes_doubled() -> None:
    zone = Variable("zone", ["a", "b"], ["a", "b"], multi=True)
    assert interpolate_variables("zone_id IN ($zone)", scope(zone)) == "zone_id IN ('a','b')"
    zone = Variable("zone", ["O'Brien", "D'Angelo"], multi=True)
    assert interpolate_variables("$zone", scope(zone)) == "'O''Brien','D''Angelo'"


@pytest.mark.parametrize(
    ("variable", "expected"),
    [
        # variable-interpolation.test.ts: a plain single value only has its quotes doubled
        (Variable("v", "O'Brien"), "O''Brien"),
        (Variable("v", ""), ""),
        (Variable("v", 999), "999"),
        # a string value of a multi or include-all variable is quoted (quoteLiteral)
        (Variable("v", "value1", multi=True), "'value1'"),
        (Variable("v", "value1", include_all=True), "'value1'"),
        (Variable("v", ["value1"], multi=True, include_all=True), "'value1'"),
        (Variable("v", ["a", "b'c", "d"], multi=True, include_all=True), "'a','b''c','d'"),
        (Variable("v", [], multi=True), ""),
    ],
)
def test_the_sql_datasources_default_format(variable: Variable, expected: str) -> None:
    assert interpolate_variables("$v", scope(variable)) == expected
    assert interpolate_variables("${v}", scope(variable)) == expected
    assert interpolate_variables("[[v]]", scope(variable)) == expected


def test_all_without_a_custom_all_value_is_every_option() -> None:
    zone = Variable("zone", ["$__all"], ["All"], ZONES, multi=True, include_all=True)
    assert interpolate_variables("$zone", scope(zone)) == "'ea-tam','tan-loi','o''brien'"
    assert interpolate_variables("${zone:csv}", scope(zone)) == "ea-tam,tan-loi,o'brien"
    assert interpolate_variables("${zone:text}", scope(zone)) == "All"


def test_all_with_a_custom_all_value_is_inserted_raw_in_every_format() -> None:
    zone = Variable("zone", "$__all", "All", ZONES, include_all=True, all_value="%")
    assert interpolate_variables("zone_id LIKE '$zone'", scope(zone)) == "zone_id LIKE '%'"
    assert interpolate_variables("${zone:sqlstring}", scope(zone)) == "%"
    assert interpolate_variables("${zone:singlequote}", scope(zone)) == "%"
    assert interpolate_variables("${zone:text}", scope(zone)) == "All"


def test_a_custom_all_value_may_name_other_variables() -> None:
    region = Variable("region", ["x", "y"], multi=True)
    zone = Variable("zone", "$__all", "All", ZONES, include_all=True, all_value="$region")
    assert interpolate_variables("$zone", scope(zone, region)) == "{x,y}"  # glob, as Scenes


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("csv", "a'x,b"),
        ("sqlstring", "'a''x','b'"),
        ("singlequote", "'a\\'x','b'"),
        ("doublequote", '"a\'x","b"'),
        ("pipe", "a'x|b"),
        ("raw", "a'x,b"),
        ("glob", "{a'x,b}"),
        ("json", '["a\'x","b"]'),
        ("regex", "(a'x|b)"),
        ("join: OR ", "a'x OR b"),
        ("distributed", "a'x,v=b"),
        ("text", "A + B"),
        ("nosuchformat", "{a'x,b}"),  # Scenes falls back to glob
    ],
)
def test_named_formats_of_a_multi_value(fmt: str, expected: str) -> None:
    variable = Variable("v", ["a'x", "b"], ["A", "B"], multi=True)
    assert interpolate_variables(f"${{v:{fmt}}}", scope(variable)) == expected


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [("csv", "it's"), ("sqlstring", "'it''s'"), ("singlequote", "'it\\'s'"), ("raw", "it's")],
)
def test_named_formats_of_a_single_value(fmt: str, expected: str) -> None:
    assert interpolate_variables(f"${{v:{fmt}}}", scope(Variable("v", "it's"))) == expected


def test_sqlstring_escapes_double_quotes_too() -> None:
    """formatRegistry.ts SQL_ESCAPE_MAP: `'` -> `''` and `"` -> `\\"`."""
    variable = Variable("v", ['say "hi"'], multi=True)
    assert interpolate_variables("${v:sqlstring}", scope(variable)) == "'say \\\"hi\\\"'"


def test_field_path_picks_one_value() -> None:
    variable = Variable("v", ["a", "b"], multi=True)
    assert interpolate_variables("${v.1}", scope(variable)) == "'b'"


def test_unknown_variables_and_backend_macros_are_left_alone() -> None:
    sql = "SELECT $__timeGroupAlias(time,$__interval), $nope FROM t WHERE $__timeFilter(time)"
    assert interpolate_variables(sql, scope()) == (
        "SELECT $__timeGroupAlias(time,1m), $nope FROM t WHERE $__timeFilter(time)"
    )


def test_from_and_to_macros() -> None:
    s = scope()
    assert interpolate_variables("$__from ${__to}", s) == "1523556000000 1523556300000"
    assert interpolate_variables("${__from:date}", s) == "2018-04-12T18:00:00.000Z"
    assert interpolate_variables("${__to:date:seconds}", s) == "1523556300"


def test_a_whole_panel_query() -> None:
    zone = Variable("zone", ["ea-tam", "tan-loi"], multi=True, include_all=True)
    raw = (
        "SELECT $__timeGroupAlias(time, $__interval, 0), avg(value) AS pm25 FROM measurements_1m "
        "WHERE $__timeFilter(time) AND zone_id IN (${zone:sqlstring}) AND metric = 'pm25' "
        "GROUP BY 1 ORDER BY 1 LIMIT $__interval_ms"
    )
    day = TimeRange(FROM, FROM + timedelta(hours=24))
    out = expand_query(raw, Scope({"zone": zone}, day, calculate_interval(day, 100)))
    assert out.sql == (
        "SELECT time_bucket('900.000s',time) AS \"time\", avg(value) AS pm25 FROM measurements_1m "
        "WHERE time BETWEEN '2018-04-12T18:00:00Z' AND '2018-04-13T18:00:00Z' "
        "AND zone_id IN ('ea-tam','tan-loi') AND metric = 'pm25' GROUP BY 1 ORDER BY 1 "
        "LIMIT 900000"
    )
    assert out.fill == Fill("value", 900.0, 0.0)
