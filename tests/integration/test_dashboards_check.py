"""`ioc dashboards check` on real data: events loaded through the real pipeline (in-process
harness, scratch PostgreSQL), every panel query expanded as Grafana does and run as ioc_grafana.

The sample dashboard (tests/integration/data/sample_dashboard.json) has a query variable
(multi, All), a custom variable, an All with a custom allValue, a constant, a collapsed row and
one panel of each shape; the committed dashboards in deploy/grafana/dashboards/ are checked too,
whatever is there."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dashboards.check import check_dashboards, dashboard_files
from dashboards.grafana_sql import TimeRange
from localdev.runtime import LocalPostgres
from streams.settings import Settings
from tests.support.harness import Harness, pipeline_harness

pytestmark = pytest.mark.integration

SAMPLE = Path(__file__).parent / "data" / "sample_dashboard.json"
DEPLOYED = dashboard_files(Path(__file__).resolve().parents[2] / "deploy/grafana/dashboards")
POINT = {"type": "Point", "coordinates": [108.04, 12.68]}  # Buon Ma Thuot


@pytest.fixture(scope="module")
def superuser(settings: Settings, pg_conninfo: str) -> str:
    return LocalPostgres(settings).superuser_conninfo()


async def load_air_quality(h: Harness) -> None:
    now = datetime.now(UTC)
    batch = [
        h.event(
            {"entity_id": f"st-{s}", "location": POINT, "pm25": 10.0 + s + m, "pm10": 20.0},
            id=f"aq-{s}-{m}",
            time=now - timedelta(minutes=m),
        )
        for s in range(3)
        for m in range(0, 50, 5)
    ]
    await h.handle("environment", batch)
    assert h.dead.letters == []


def last_hour() -> TimeRange:
    return TimeRange.last(timedelta(hours=1))


async def test_every_sample_panel_returns_rows_in_its_shape(
    settings: Settings, superuser: str
) -> None:
    async with pipeline_harness(settings, superuser) as h:
        await load_air_quality(h)
        results = check_dashboards(h.settings.db, [SAMPLE], last_hour(), require_rows=True)
    by_panel = {r.panel: r for r in results}
    assert set(by_panel) == {"PM by zone", "Sensors", "Reports per station", "Events", "Latest"}
    assert [r for r in results if not r.ok] == []
    series = by_panel["PM by zone"]
    assert series.column_names == ["time", "pm25"]
    assert "time_bucket('60.000s',time)" in series.sql  # a 1 h range never goes below 1m
    assert "zone_id IN ('" in series.sql and "metric = 'pm25'" in series.sql
    assert by_panel["Sensors"].rows == 3
    assert by_panel["Sensors"].column_names == ["entity_id", "latitude", "longitude"]
    assert "LIKE '%'" in by_panel["Sensors"].sql  # the custom allValue, raw
    assert by_panel["Reports per station"].column_names == ["time", "st-0", "st-1"]
    assert by_panel["Events"].rows == 1
    assert "metric IN ('pm25')" in by_panel["Latest"].sql


async def test_failures_and_bad_shapes_are_reported_by_dashboard_and_panel(
    settings: Settings, superuser: str, tmp_path: Path
) -> None:
    dashboard = json.loads(SAMPLE.read_text())
    panels = dashboard["panels"]
    panels[0]["targets"][0]["rawSql"] = "SELECT 1 AS value WHERE $__nope(time)"
    panels[1]["targets"][0]["rawSql"] = "SELECT entity_id FROM events WHERE $__timeFilter(time)"
    panels[2]["panels"][1]["targets"][0]["rawSql"] = "SELECT * FROM latest_values"
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(dashboard))
    async with pipeline_harness(settings, superuser) as h:
        await load_air_quality(h)
        results = {r.panel: r for r in check_dashboards(h.settings.db, [path], last_hour())}
    assert results["PM by zone"].error == 'interpolation failed: unknown macro "__nope"'
    assert results["Sensors"].problems == ("geomap: needs latitude and longitude columns",)
    assert results["Events"].error is not None
    assert "permission denied" in results["Events"].error  # ioc_grafana reads only panel tables
    assert results["Latest"].ok


async def test_ioc_grafana_cannot_write(settings: Settings, superuser: str, tmp_path: Path) -> None:
    dashboard = json.loads(SAMPLE.read_text())
    dashboard["panels"] = [{**dashboard["panels"][2]["panels"][2], "targets": [{
        "refId": "A", "format": "table",
        "rawSql": "DELETE FROM events WHERE $__timeFilter(time) RETURNING id",
    }]}]  # fmt: skip
    path = tmp_path / "writes.json"
    path.write_text(json.dumps(dashboard))
    async with pipeline_harness(settings, superuser) as h:
        await load_air_quality(h)
        (result,) = check_dashboards(h.settings.db, [path], last_hour())
        assert h.stored_ids()  # nothing deleted
    assert result.error is not None and "read-only" in result.error


@pytest.mark.parametrize("path", DEPLOYED, ids=[p.name for p in DEPLOYED])
async def test_committed_dashboards_run_as_ioc_grafana(
    settings: Settings, superuser: str, path: Path
) -> None:
    async with pipeline_harness(settings, superuser) as h:
        await load_air_quality(h)
        results = check_dashboards(h.settings.db, [path], last_hour())
    assert results, f"{path.name} has no SQL panel"
    assert [(r.panel, r.error or r.problems) for r in results if not r.ok] == []
