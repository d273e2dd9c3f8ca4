"""The dashboards as built and as committed (deploy/grafana/dashboards/): the same bytes, valid
for the provisioned datasource, unique ids, a query in every panel, loadable by the SDK."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard

from dashboards import postgres
from dashboards.build import DASHBOARDS_DIR, build_all, finish
from dashboards.postgres import PostgresQuery
from dashboards.snapshot import ExpansionError, expand_fixed_range
from dashboards.sql import rule_domain
from dashboards.wall import ZONES_GEOJSON
from domains.registry import default_registry
from rules.load import default_rule_files, load_rule_files

ROOT = Path(__file__).resolve().parents[2]
PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
REBUILD = "run `ioc dashboards build` (or dashboards.build.build_all) and commit the JSON"


def committed() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS_DIR.glob("*.json"))}


@pytest.fixture(scope="module")
def boards() -> dict[str, dict[str, Any]]:
    return committed()


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in board["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))  # panels inside a collapsed row
    return found


def test_committed_json_is_the_build_output(tmp_path: Path) -> None:
    built = {p.name: p.read_text() for p in build_all(tmp_path)}
    on_disk = {p.name: p.read_text() for p in DASHBOARDS_DIR.glob("*.json")}
    assert sorted(on_disk) == sorted(built), REBUILD
    for name, text in built.items():
        assert on_disk[name] == text, f"{name} differs from the build output; {REBUILD}"


def test_one_wall_one_dashboard_per_domain_pipeline_and_incidents(
    boards: dict[str, dict[str, Any]],
) -> None:
    uids = {b["uid"] for b in boards.values()}
    domains = {f"ioc-{d}" for d in default_registry().domains()}
    assert uids == {"ioc-wall", "ioc-pipeline", "ioc-incidents", *domains}
    assert len(boards) == len(uids), "two files share a uid"


def test_every_datasource_is_the_provisioned_one(boards: dict[str, dict[str, Any]]) -> None:
    provisioned = yaml.safe_load((PROVISIONING / "datasources" / "ioc.yaml").read_text())
    known = {(d["type"], d["uid"]) for d in provisioned["datasources"]}
    assert known == {("grafana-postgresql-datasource", "ioc-timescale")}
    for name, board in boards.items():
        for panel in panels(board):
            ds = panel["datasource"]
            assert (ds["type"], ds["uid"]) in known, f"{name}: panel {panel['title']!r}"
            for target in panel["targets"]:
                ds = target["datasource"]
                assert (ds["type"], ds["uid"]) in known, f"{name}: {panel['title']!r}"
        for variable in board["templating"].get("list", []):
            ds = variable["datasource"]
            assert (ds["type"], ds["uid"]) in known, f"{name}: variable {variable['name']}"


def test_ids_are_unique_and_every_panel_has_a_query(boards: dict[str, dict[str, Any]]) -> None:
    for name, board in boards.items():
        ids = [p["id"] for p in panels(board)]
        assert len(ids) == len(set(ids)), f"{name}: panel ids {ids}"
        for panel in panels(board):
            targets = panel.get("targets") or []
            assert targets, f"{name}: panel {panel['title']!r} has no query"
            refs = [t["refId"] for t in targets]
            assert len(refs) == len(set(refs)), f"{name}: {panel['title']!r} refIds {refs}"
            for target in targets:
                assert target["rawSql"].strip(), f"{name}: {panel['title']!r} empty rawSql"
                assert target["format"] in ("table", "time_series")


def test_files_load_through_the_sdk_models(boards: dict[str, dict[str, Any]]) -> None:
    """Each file parses into the SDK's Dashboard model, its targets into our typed query, and
    writes back to the same JSON: nothing in it is unknown to the models. (The model sets every
    link's placement to the controls menu; `finish` takes that off again, as the build does.)"""
    register_default_plugins()
    postgres.register()
    for name, data in boards.items():
        model = finish(Dashboard.from_json(data))
        assert model.schema_version == 42
        for panel in model.panels or []:
            for target in panel.targets or []:  # type: ignore[union-attr]
                assert isinstance(target, PostgresQuery), f"{name}: {panel.title!r}"
        again = json.loads(json.dumps(model, cls=JSONEncoder))
        assert again == data, f"{name} changes when loaded and written by the SDK"


def test_domain_dashboards_filter_by_zone_and_link_back_to_the_wall(
    boards: dict[str, dict[str, Any]],
) -> None:
    for domain in default_registry().domains():
        board = boards[f"ioc-{domain}.json"]
        (zone,) = board["templating"]["list"]
        assert zone["name"] == "zone" and zone["multi"] and zone["includeAll"]
        assert "allValue" not in zone, "All must stay every zone id, as the SQL expects"
        assert any(link.get("url") == "/d/ioc-wall" for link in board["links"])
        sql = "\n".join(t["rawSql"] for p in panels(board) for t in p["targets"])
        assert "${zone:sqlstring}" in sql
        assert f"'{domain}'" in sql


def test_wall_panels_and_their_shapes(boards: dict[str, dict[str, Any]]) -> None:
    wall = boards["ioc-wall.json"]
    kinds = [p["type"] for p in wall["panels"]]
    domains = default_registry().domains()
    assert kinds.count("stat") == len(domains) + 1  # a tile per domain + incidents by severity
    assert {"geomap", "state-timeline", "timeseries"} <= set(kinds)
    (geomap,) = [p for p in wall["panels"] if p["type"] == "geomap"]
    layers = geomap["options"]["layers"]
    assert [layer["type"] for layer in layers] == ["geojson", "markers", "markers"]
    assert layers[0]["config"]["src"] == ZONES_GEOJSON
    for target in geomap["targets"]:
        assert target["format"] == "table"
        assert "AS latitude" in target["rawSql"] and "AS longitude" in target["rawSql"]
    (timeline,) = [p for p in wall["panels"] if p["type"] == "state-timeline"]
    for domain in domains:
        assert f'AS "{domain}"' in timeline["targets"][0]["rawSql"]
    for tile in wall["panels"][: len(domains)]:
        assert tile["links"][0]["url"].startswith("/d/ioc-")


def test_the_geojson_layer_file_is_mounted_into_grafana() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    target = f"/usr/share/grafana/{ZONES_GEOJSON}"
    (mount,) = [m for m in mounts if m.split(":")[1] == target]
    assert (ROOT / mount.split(":")[0]).is_file()


def test_every_default_rule_id_names_its_domain() -> None:
    """Panels find an incident's domain from its rule id (dashboards.sql.INCIDENT_DOMAIN)."""
    for rule in load_rule_files(default_rule_files()):
        expected = "compound" if getattr(rule, "conditions", None) else rule.domain
        assert rule_domain(rule.id) == expected, rule.id


def test_fixed_range_expansion_follows_grafana() -> None:
    start = datetime(2018, 4, 12, 18, 0, tzinfo=UTC)
    end = datetime(2018, 4, 12, 18, 5, tzinfo=UTC)
    expand = expand_fixed_range
    assert (
        expand("WHERE $__timeFilter(c)", start, end, 60)
        == "WHERE c BETWEEN '2018-04-12T18:00:00Z' AND '2018-04-12T18:05:00Z'"
    )
    assert expand("$__timeGroupAlias(c,'5m')", start, end, 60) == (
        "time_bucket('300.000s',c) AS \"time\""
    )
    assert expand("$__timeGroupAlias(t, $__interval)", start, end, 120).startswith(
        "time_bucket('120.000s',t)"
    )
    assert expand("zone_id IN (${zone:sqlstring})", start, end, 60, ["a", "o'b"]) == (
        "zone_id IN ('a','o''b')"
    )
    assert expand("$__unixEpochFilter(t)", start, end, 60) == "t >= 1523556000 AND t <= 1523556300"
    with pytest.raises(ExpansionError):
        expand("$__nope(t)", start, end, 60)  # unknown to Grafana too
    with pytest.raises(ExpansionError):
        expand("WHERE x = ${other}", start, end, 60)  # a variable the wall does not define
