"""Incidents through real workers: a worker killed with -9 mid-stream and restarted, and two
workers sharing the partitions, still leave exactly one incident per key, with every breaching
event counted once (tests/support/worker_stack.py: real `ioc worker` children, real Kafka,
a scratch database)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from domains import structured_message
from streams.settings import Settings
from tests.support.worker_stack import Message, WorkerStack, worker_stack

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

RULE = """
rules:
  - id: river-high
    kind: threshold
    title: River above alert level II
    domain: environment
    event_type: water_level
    metric: water_level
    raise_at: 500
    clear_at: 450
    quiet: 0s
    severity: high
    category: naturalDisaster
    subcategory: flood
    description: {vi: "Mực nước {value} tại {zone}", en: "Water level {value} at {zone}"}
"""
GAUGES = 12


def readings(settings: Settings, count: int, t0: datetime, tag: str) -> list[Message]:
    """`count` river readings from GAUGES gauges, every one above the raise level."""
    kind = f"{settings.domains.namespace}.environment.water_level.v1"
    out = []
    for n in range(count):
        gauge = f"gauge-{n % GAUGES}"
        data = {
            "entity_id": gauge, "water_body": "Serepok", "water_body_kind": "river",
            "water_level": 510.0 + n % 40,
            "location": {"type": "Point", "coordinates": [108.05, 12.68]},
        }  # fmt: skip
        event_id = f"{tag}-{n}"
        value, headers = structured_message(
            id=event_id, source="urn:test:incidents", type=kind,
            time=t0 + timedelta(milliseconds=50 * n), data=data,
        )  # fmt: skip
        out.append((gauge.encode(), value, headers, event_id))
    return out


@pytest.fixture
def stack(
    settings: Settings, kafka_bootstrap: str, pg_conninfo: str, tmp_path: Path
) -> Iterator[WorkerStack]:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "river.yaml").write_text(RULE)
    with worker_stack(
        settings, tmp_path, IOC_RULES__DIR=str(rules), IOC_RULES__DEFAULTS="false",
        IOC_STREAM__BATCH_SIZE="200",
    ) as s:  # fmt: skip
        yield s


def incidents(stack: WorkerStack) -> list[dict[str, Any]]:
    with (
        psycopg.connect(stack.settings.db.conninfo("owner")) as conn,
        conn.cursor(row_factory=dict_row) as cur,
    ):
        return cur.execute("SELECT * FROM incidents ORDER BY key").fetchall()


def wait_for_counts(stack: WorkerStack, total: int, timeout: float = 120) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    rows = incidents(stack)
    while sum(r["count"] for r in rows) < total and time.monotonic() < deadline:
        time.sleep(1)
        rows = incidents(stack)
    return rows


def test_kill_9_and_restart_leaves_one_incident_per_gauge_with_exact_counts(
    stack: WorkerStack,
) -> None:
    t0 = datetime.now(UTC) - timedelta(minutes=30)
    messages = readings(stack.settings, 6_000, t0, f"k9-{uuid.uuid4().hex[:6]}")
    worker = stack.start_worker()
    stack.send(messages[:3_000])
    time.sleep(2)
    worker.kill9()  # mid-stream: batches in flight, offsets behind the database
    stack.send(messages[3_000:])
    stack.start_worker()
    rows = wait_for_counts(stack, 6_000)
    assert len(rows) == GAUGES, [r["key"] for r in rows]
    assert {r["state"] for r in rows} == {"open"}
    assert sum(r["count"] for r in rows) == 6_000  # every reading once: none lost, none twice
    assert all(r["count"] == 500 for r in rows)


def test_two_workers_sharing_partitions_leave_one_incident_per_gauge(stack: WorkerStack) -> None:
    t0 = datetime.now(UTC) - timedelta(minutes=20)
    messages = readings(stack.settings, 4_800, t0, f"two-{uuid.uuid4().hex[:6]}")
    stack.start_worker()
    stack.start_worker()
    time.sleep(3)  # let the group settle
    stack.send(messages)
    rows = wait_for_counts(stack, 4_800)
    assert len(rows) == GAUGES
    assert sum(r["count"] for r in rows) == 4_800
