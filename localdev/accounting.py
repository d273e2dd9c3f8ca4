"""Is every sent event accounted for? Stored (in the database), duplicate, or dead-lettered.

Used by `ioc demo` and the end-to-end tests. What was sent comes from the simulator's manifest;
what happened is read from the real components: rows in `events` per domain, dead letters in
the DLQ topic (one per origin offset), and the workers' figures in `pipeline_stats` (latency).
A duplicate is a sent event whose (time, source, id) was already stored: sent - stored - dead letters.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg

from streams.dlq import dlq_topic, read_letters, unique_by_origin
from streams.kafka_io import partition_lag
from streams.settings import Settings


@dataclass
class Observed:
    stored: Counter[str] = field(default_factory=Counter)  # domain -> rows in events
    dead: dict[str, Counter[str]] = field(
        default_factory=lambda: defaultdict(Counter)
    )  # domain -> reason -> n
    latency_p95_s: dict[str, float | None] = field(default_factory=dict)
    first_ingest: dict[str, Any] = field(default_factory=dict)

    def dead_total(self, domain: str) -> int:
        return sum(self.dead.get(domain, Counter()).values())

    def accounted(self, domain: str) -> int:
        return self.stored[domain] + self.dead_total(domain)


def database_counts(
    conninfo: str, domains: list[str], since: datetime | None = None
) -> tuple[Counter[str], dict[str, float | None]]:
    """Rows in `events` per domain; the median of the workers' p95 latency windows since `since`."""
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute("SELECT domain, count(*) FROM events GROUP BY domain").fetchall()
        latency = dict(
            conn.execute(
                "SELECT domain, percentile_disc(0.5) WITHIN GROUP (ORDER BY latency_p95_s)"
                " FROM pipeline_stats WHERE received > 0 AND time >= %s GROUP BY domain",
                (since or datetime.fromtimestamp(0, UTC),),
            ).fetchall()
        )
    stored = Counter(dict(rows))
    return Counter({d: stored.get(d, 0) for d in domains}), latency


async def dead_letter_counts(settings: Settings, registry: Any) -> dict[str, Counter[str]]:
    """Dead letters per domain and reason, each origin (topic, partition, offset) once."""
    out: dict[str, Counter[str]] = defaultdict(Counter)
    letters = await read_letters(settings.kafka, dlq_topic(settings.kafka.topic_prefix))
    for letter in unique_by_origin(letters):
        out[registry.domain_of_topic(letter.topic) or letter.topic][letter.reason] += 1
    return out


def observe(settings: Settings, registry: Any, since: datetime | None = None) -> Observed:
    domains = registry.domains()
    stored, latency = database_counts(settings.db.conninfo("owner"), domains, since)
    dead = asyncio.run(dead_letter_counts(settings, registry))
    return Observed(stored=stored, dead=dead, latency_p95_s=latency)


def wait_until_accounted(
    settings: Settings,
    registry: Any,
    expected_dead: dict[str, int],
    expected_stored: dict[str, int],
    *,
    timeout_s: float,
    poll_s: float = 1.0,
) -> Observed:
    """Poll until stored and dead-lettered counts reach what is expected (or time runs out)."""
    deadline = time.monotonic() + timeout_s
    while True:
        observed = observe(settings, registry)
        done = all(
            observed.stored[d] >= expected_stored.get(d, 0)
            and observed.dead_total(d) >= expected_dead.get(d, 0)
            for d in set(expected_stored) | set(expected_dead)
        )
        if done or time.monotonic() > deadline:
            return observed
        time.sleep(poll_s)


def split_expected(
    expected: dict[str, dict[str, int]],
) -> tuple[dict[str, int], dict[str, Counter[str]], dict[str, int]]:
    """Manifest expectations -> (stored per domain, dead letters per domain and reason, duplicates)."""
    stored = {d: e.get("stored", 0) for d, e in expected.items()}
    dead = {
        d: Counter({k.removeprefix("dlq:"): v for k, v in e.items() if k.startswith("dlq:")})
        for d, e in expected.items()
    }
    duplicates = {d: e.get("duplicate", 0) for d, e in expected.items()}
    return stored, dead, duplicates


async def group_lag(settings: Settings, group: str, topics: list[str]) -> int:
    """Messages in `topics` not yet committed by consumer `group` (all if it never committed)."""
    return sum((await partition_lag(settings.kafka, group, topics)).values())
