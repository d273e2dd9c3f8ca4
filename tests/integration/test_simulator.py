"""The simulator against the real broker: 20,000 events with faults on fresh topics; a consumer
reads every one back and the counts per domain and outcome match the manifest."""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from domains import Decoder, Event, Registry
from geo import ZoneIndex
from simulator.config import FAULTS, SimulatorConfig
from simulator.generate import Simulation
from simulator.produce import produce
from streams.kafka_io import create_topics, read_to_end

pytestmark = pytest.mark.integration

COUNT = 20_000


async def test_every_simulated_event_is_accounted_for(kafka_bootstrap: str) -> None:
    prefix = f"simtest{uuid.uuid4().hex[:8]}"
    registry = Registry(topic_prefix=prefix)
    rate = 2000.0
    config = SimulatorConfig(
        count=COUNT,
        rate=rate,
        seed=2026,
        start=datetime.now(UTC) - timedelta(seconds=COUNT / rate),
        faults=dict.fromkeys(FAULTS, 0.004),
        scenario="flood",
        topic_prefix=prefix,
    )
    simulation = Simulation(config, registry, ZoneIndex.from_file())
    topics = list(registry.topics().values())
    await create_topics(kafka_bootstrap, dict.fromkeys(topics, 3))
    try:
        report = await produce(simulation.messages(), kafka_bootstrap)
        assert report.sent == COUNT == simulation.manifest.total()

        decoder = Decoder(registry, max_bytes=config.max_event_bytes)
        now = datetime.now(UTC)
        seen: set[str] = set()
        tally: dict[str, Counter[str]] = defaultdict(Counter)
        partitions_of_key: dict[bytes, set[tuple[str, int]]] = defaultdict(set)
        consumed = 0
        for topic in topics:
            async for _consumer, record in read_to_end(kafka_bootstrap, topic):
                consumed += 1
                domain = registry.domain_of_topic(record.topic)
                assert domain is not None
                partitions_of_key[record.key or b""].add((record.topic, record.partition))
                result = decoder.decode(record.value, record.headers, now=now)
                if isinstance(result, Event):
                    label = "duplicate" if result.id in seen else "stored"
                    seen.add(result.id)
                else:
                    label = f"dlq:{result.reason}"
                tally[domain][label] += 1
    finally:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            await admin.delete_topics(topics)
        finally:
            await admin.close()

    assert consumed == COUNT
    expected = simulation.manifest.expected()
    assert {d: dict(c) for d, c in sorted(tally.items())} == expected
    assert set(expected) == set(registry.domains())
    faults = Counter(f["fault"] for f in simulation.manifest.faults)
    assert set(faults) == set(FAULTS)  # every kind of fault was sent and accounted for
    # one entity, one partition: its events stay in order
    assert all(len(where) == 1 for where in partitions_of_key.values())
