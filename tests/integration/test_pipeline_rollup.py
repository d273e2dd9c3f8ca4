"""pipeline_stats_1m, the per-minute rollup the wall's pipeline panels read, on the real local
PostgreSQL (flavour postgres): it follows the rows the workers insert, repeats not counted, and
the wall's lag panel sums the workers' time-weighted lags."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from dashboards.snapshot import expand_fixed_range
from dashboards.wall import LAG_QUERY
from localdev.runtime import LocalPostgres
from sinks.migrate import migrate
from streams.settings import Settings
from tests.support.database import scratch_database

pytestmark = pytest.mark.integration

INSERT = (
    "INSERT INTO pipeline_stats (time, worker, domain, window_s, received, stored, duplicates,"
    " rejected, lag, latency_p95_s) VALUES (%s, %s, 'transport', 5, %s, %s, 0, 0, %s, %s)"
    " ON CONFLICT DO NOTHING"
)


@pytest.fixture(scope="module")
def db(settings: Settings, pg_conninfo: str) -> Iterator[str]:
    superuser = LocalPostgres(settings).superuser_conninfo()
    with scratch_database(superuser, settings.db, "ioc_test_rollup") as name:
        with psycopg.connect(settings.db.conninfo("owner", dbname=name)) as conn:
            migrate(conn, settings.db, settings.storage)
        yield name


def test_rollup_follows_the_workers_rows_and_the_wall_sums_their_lag(
    settings: Settings, db: str
) -> None:
    minute = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=5)
    t1, t2 = minute + timedelta(seconds=5), minute + timedelta(seconds=10)
    with psycopg.connect(settings.db.conninfo("ingest", dbname=db), autocommit=True) as conn:
        cur = conn.cursor()
        cur.executemany(INSERT, [(t1, "w1", 10, 3, 10, 1.0), (t2, "w1", 10, 4, 20, 3.0)])
        cur.execute(INSERT, (t1, "w1", 10, 3, 10, 1.0))  # a re-sent window: not counted again
        cur.execute(INSERT, (t1, "w2", 10, 5, 100, 2.0))
    with psycopg.connect(settings.db.conninfo("owner", dbname=db), autocommit=True) as conn:
        rows: dict[str, Any] = {
            r[0]: r[1:]
            for r in conn.execute(
                "SELECT worker, windows, stored, lag_s / lag_window_s, latency_p95_s"
                " FROM pipeline_stats_1m WHERE bucket = %s AND domain = 'transport'",
                (minute,),
            )
        }
    assert rows == {"w1": (2, 7, 15.0, 3.0), "w2": (1, 5, 100.0, 2.0)}
    with psycopg.connect(settings.db.conninfo("grafana", dbname=db), autocommit=True) as conn:
        query = expand_fixed_range(LAG_QUERY, minute, minute + timedelta(seconds=59), 60)
        (row,) = conn.execute(query.encode()).fetchall()
    assert row[1:] == ("transport", 115.0)
