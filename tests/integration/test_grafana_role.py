"""The Grafana role on the real local PostgreSQL (flavour postgres), in a throwaway database:
it runs every panel query, reads exactly the relations some panel reads, and writes nothing."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import errors, sql

from dashboards.build import all_dashboards, to_json
from dashboards.snapshot import expand_fixed_range, render_wall
from dashboards.wall import wall
from localdev.runtime import LocalPostgres
from sinks.migrate import migrate
from streams.settings import Settings
from tests.support.database import scratch_database

pytestmark = pytest.mark.integration

RELATION = re.compile(r"\b(?:FROM|JOIN)\s+([a-z_][a-z0-9_]*)\b(?!\s*\()", re.IGNORECASE)


@pytest.fixture(scope="module")
def db(settings: Settings, pg_conninfo: str) -> Iterator[str]:
    """A migrated database with a little of everything the panels read."""
    superuser = LocalPostgres(settings).superuser_conninfo()
    with scratch_database(superuser, settings.db, "ioc_test_grafana") as name:
        with psycopg.connect(settings.db.conninfo("owner", dbname=name)) as conn:
            migrate(conn, settings.db, settings.storage)
            seed(conn)
        yield name


def seed(conn: psycopg.Connection[Any]) -> None:
    now = datetime.now(UTC)
    with conn.transaction():
        conn.execute(
            "INSERT INTO zones (id, name, kind, geometry, centroid_lon, centroid_lat)"
            " VALUES ('z1', 'Zone 1', 'ward', '{}', 108.05, 12.67)"
        )
        for i in range(30):
            t = now - timedelta(minutes=i)
            conn.execute(
                "INSERT INTO events (time, id, source, type, domain, entity_id, zone_id, lon, lat)"
                " VALUES (%s, %s, 'urn:test', 'vn.daklak.environment.air_quality.v1',"
                " 'environment', 'aq-z1-001', 'z1', 108.05, 12.67)",
                (t, f"e{i}"),
            )
            conn.execute(
                "INSERT INTO measurements (time, domain, metric, entity_id, zone_id, value)"
                " VALUES (%s, 'environment', 'pm25', 'aq-z1-001', 'z1', %s)",
                (t, 20.0 + i),
            )
            conn.execute(
                "INSERT INTO pipeline_stats (time, worker, domain, window_s, received, stored,"
                " rejected, rejected_by_reason, lag, latency_p50_s, latency_p95_s, latency_p99_s)"
                " VALUES (%s, 'w1', 'environment', 60, 10, 9, 1, '{\"invalid\": 1}', 3, 1, 2, 3)",
                (t,),
            )
        conn.execute(
            "INSERT INTO incidents (id, rule_id, key, zone_id, entity_id, state, severity,"
            " category, subcategory, title, description_vi, description_en, opened_at, last_seen)"
            " VALUES (gen_random_uuid(), 'env.air.pm25-qcvn05', 'aq-z1-001', 'z1', 'aq-z1-001',"
            " 'open', 'high', 'environment', 'air', 'PM2.5', 'vi', 'en', %s, %s)",
            (now, now),
        )
    conn.execute("SELECT ioc_refresh_aggregates()")
    conn.commit()


def panel_queries() -> list[tuple[str, str, str]]:
    """(dashboard uid, panel title, rawSql) of every panel target and every variable query."""
    found = []
    for board in all_dashboards():
        data = to_json(board)
        for panel in data["panels"]:
            for target in panel["targets"]:
                found.append((data["uid"], panel["title"], target["rawSql"]))
        for variable in data["templating"].get("list", []):
            found.append((data["uid"], f"${variable['name']}", variable["query"]))
    return found


def grafana(settings: Settings, db: str) -> psycopg.Connection[Any]:
    return psycopg.connect(settings.db.conninfo("grafana", dbname=db), autocommit=True)


def readable_relations(conn: psycopg.Connection[Any], role: str) -> set[str]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f')"
        " AND has_table_privilege(%s, c.oid, 'SELECT')",
        (role,),
    )
    return {r[0] for r in rows}


def test_grafana_runs_every_panel_query(settings: Settings, db: str) -> None:
    end = datetime.now(UTC)
    with grafana(settings, db) as conn:
        for uid, title, raw in panel_queries():
            query = expand_fixed_range(raw, end - timedelta(hours=1), end, 60, ["z1"])
            try:
                conn.execute(query.encode()).fetchall()
            except psycopg.Error as exc:
                pytest.fail(f"{uid}: {title!r}: {exc}")
        row = conn.execute("SELECT count(*) FROM measurements_1m").fetchone()
        assert row is not None and row[0] > 0, "the seeded data reached the aggregates"


def test_grafana_reads_exactly_the_relations_panels_read(settings: Settings, db: str) -> None:
    with psycopg.connect(settings.db.conninfo("owner", dbname=db), autocommit=True) as conn:
        everything = readable_relations(conn, settings.db.owner_user)
        readable = readable_relations(conn, settings.db.grafana_user)
    used = {
        name.lower() for _, _, raw in panel_queries() for name in RELATION.findall(raw)
    } & everything
    assert readable == used
    # what the earlier migrations granted and no panel shows: pages (receivers, bodies), tokens
    for table in ("notifications", "page_groups", "api_tokens", "incident_outbox", "latest_values"):
        assert table not in readable


def test_grafana_cannot_write(settings: Settings, db: str) -> None:
    first_column = {"zones": "id", "incidents": "id", "pipeline_stats": "time",
                    "measurements": "time", "events": "time", "silences": "id"}  # fmt: skip
    with grafana(settings, db) as conn:
        for table, column in first_column.items():
            t, c = sql.Identifier(table), sql.Identifier(column)
            for statement in (
                sql.SQL("INSERT INTO {} DEFAULT VALUES").format(t),
                sql.SQL("UPDATE {} SET {} = {}").format(t, c, c),
                sql.SQL("DELETE FROM {}").format(t),
            ):
                with pytest.raises(errors.InsufficientPrivilege):
                    conn.execute(statement)
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("SELECT count(*) FROM notifications")


def test_snapshot_draws_every_wall_panel_as_grafana(
    settings: Settings, db: str, tmp_path: Path
) -> None:
    out = tmp_path / "wall.png"
    drawn = render_wall(settings.db.conninfo("grafana", dbname=db), out)
    assert drawn == [p["title"] for p in to_json(wall())["panels"]]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
