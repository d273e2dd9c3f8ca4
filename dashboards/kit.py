"""Small helpers over grafana-foundation-sdk's builders: thresholds, mappings, the common panel
shapes with our datasource and query type, the zone variable and the links back to the wall."""

from __future__ import annotations

from collections.abc import Sequence

from grafana_foundation_sdk.builders import bargauge, common, dashboard, stat, statetimeline
from grafana_foundation_sdk.builders import table as table_panel
from grafana_foundation_sdk.builders import timeseries as ts_panel
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from dashboards.postgres import DATASOURCE, Format, sql

WALL_UID = "ioc-wall"
FOLDER_TAG = "ioc"

Step = tuple[float | None, str]  # (lower bound or None for the base, colour)


def thresholds(*steps: Step) -> dashboard.ThresholdsConfig:
    return (
        dashboard.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(value=v, color=c) for v, c in steps])
    )


def range_text(lo: float | None, hi: float | None, text: str, colour: str) -> dm.RangeMap:
    return dm.RangeMap(
        options=dm.DashboardRangeMapOptions(
            from_val=lo, to=hi, result=dm.ValueMappingResult(text=text, color=colour)
        )
    )


def null_text(text: str, colour: str) -> dm.SpecialValueMap:
    return dm.SpecialValueMap(
        options=dm.DashboardSpecialValueMapOptions(
            match=dm.SpecialValueMatch.NULL, result=dm.ValueMappingResult(text=text, color=colour)
        )
    )


def prop(id_val: str, value: object) -> dm.DynamicConfigValue:
    return dm.DynamicConfigValue(id_val=id_val, value=value)


def fixed_colour(colour: str) -> dm.DynamicConfigValue:
    return prop("color", {"mode": "fixed", "fixedColor": colour})


def last_value() -> common.ReduceDataOptions:
    return common.ReduceDataOptions().calcs(["lastNotNull"]).values(False)


def all_values() -> common.ReduceDataOptions:
    return common.ReduceDataOptions().calcs([]).values(True)


def stat_panel(
    title: str, query: str, *, unit: str = "none", steps: Sequence[Step] = ((None, "green"),)
) -> stat.Panel:
    """Big numbers coloured by thresholds (background), for reading across a room."""
    return (
        stat.Panel()
        .title(title)
        .datasource(DATASOURCE)
        .with_target(sql(query))
        .unit(unit)
        .thresholds(thresholds(*steps))
        .color_scheme(dashboard.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
        .color_mode(cm.BigValueColorMode.BACKGROUND)
        .graph_mode(cm.BigValueGraphMode.NONE)
        .text_mode(cm.BigValueTextMode.VALUE_AND_NAME)
        .reduce_options(last_value())
    )


def series_panel(
    title: str,
    query: str,
    *,
    unit: str = "none",
    steps: Sequence[Step] | None = None,
    fmt: Format = "time_series",
    bars: bool = False,
) -> ts_panel.Panel:
    """A time series; `steps` draws the limits as dashed lines."""
    panel = (
        ts_panel.Panel()
        .title(title)
        .datasource(DATASOURCE)
        .with_target(sql(query, fmt))
        .unit(unit)
        .legend(
            common.VizLegendOptions()
            .show_legend(True)
            .display_mode(cm.LegendDisplayMode.LIST)
            .placement(cm.LegendPlacement.BOTTOM)
        )
        .line_width(2)
        .fill_opacity(10)
    )
    if bars:
        panel = panel.draw_style(cm.GraphDrawStyle.BARS).fill_opacity(80)
    if steps:
        panel = panel.thresholds(thresholds(*steps)).thresholds_style(
            common.GraphThresholdsStyleConfig().mode(cm.GraphThresholdsStyleMode.DASHED)
        )
    return panel


def bars_panel(
    title: str, query: str, *, unit: str = "none", steps: Sequence[Step] = ((None, "green"),),
    max_value: float | None = None,
) -> bargauge.Panel:  # fmt: skip
    """One bar per row of a table (name column + value column), coloured by thresholds."""
    panel = (
        bargauge.Panel()
        .title(title)
        .datasource(DATASOURCE)
        .with_target(sql(query))
        .unit(unit)
        .thresholds(thresholds(*steps))
        .color_scheme(dashboard.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
        .display_mode(cm.BarGaugeDisplayMode.BASIC)
        .orientation(cm.VizOrientation.HORIZONTAL)
        .reduce_options(all_values())
        .min(0)
    )
    if max_value is not None:
        panel = panel.max(max_value)
    return panel


def table(title: str, query: str) -> table_panel.Panel:
    return table_panel.Panel().title(title).datasource(DATASOURCE).with_target(sql(query))


def timeline(title: str, query: str) -> statetimeline.Panel:
    return (
        statetimeline.Panel()
        .title(title)
        .datasource(DATASOURCE)
        .with_target(sql(query))
        .show_value(cm.VisibilityMode.NEVER)
        .merge_values(True)
        .row_height(0.85)
        .fill_opacity(80)
        .legend(common.VizLegendOptions().show_legend(True).display_mode(cm.LegendDisplayMode.LIST))
    )


def zone_variable() -> dashboard.QueryVariable:
    """`zone`: multi-value, with All (every zone id, quoted, as Grafana writes All)."""
    query = "SELECT id AS __value, name AS __text FROM zones ORDER BY name"
    return (
        dashboard.QueryVariable("zone")
        .label("Zone")
        .datasource(DATASOURCE)
        .query(query)
        .definition(query)
        .multi(True)
        .include_all(True)
        .current(dm.VariableOption(selected=True, text=["All"], value=["$__all"]))
        .refresh(dm.VariableRefresh.ON_DASHBOARD_LOAD)
        .sort(dm.VariableSort.ALPHABETICAL_CASE_INSENSITIVE_ASC)
    )


def link_to_wall() -> dashboard.DashboardLink:
    return (
        dashboard.DashboardLink("IOC overview")
        .type(dm.DashboardLinkType.LINK)
        .url(f"/d/{WALL_UID}")
        .icon("dashboard")
        .tooltip("Back to the wall")
        .keep_time(True)
    )


def link_to_others() -> dashboard.DashboardLink:
    return (
        dashboard.DashboardLink("City operations")
        .type(dm.DashboardLinkType.DASHBOARDS)
        .tags([FOLDER_TAG])
        .as_dropdown(True)
        .keep_time(True)
    )


def new_dashboard(
    uid: str, title: str, tags: Sequence[str], *, time_from: str
) -> dashboard.Dashboard:
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .tags([FOLDER_TAG, *tags])
        .time(time_from, "now")
        .refresh("1m")
        .timezone("browser")
        .readonly()
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
    )
