"""Simulator produce rate on this machine: generate + send N events (with 1 % faults) as fast as
the local broker takes them, on fresh topics that are deleted afterwards.

    .venv/bin/python bench/simulate.py [--count 200000] [--bootstrap 127.0.0.1:19092]

Prints events/s for generation alone, sending pre-generated messages, and both together (what
`ioc simulate --fast` does).
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

from aiokafka.admin import AIOKafkaAdminClient

from domains import Registry
from geo import ZoneIndex
from simulator.config import FAULTS, SimulatorConfig
from simulator.generate import Simulation
from simulator.produce import produce
from streams.kafka_io import create_topics


def simulation(count: int, prefix: str) -> Simulation:
    config = SimulatorConfig(
        count=count,
        seed=1,
        start=datetime.now(UTC) - timedelta(seconds=count / 2000),
        faults=dict.fromkeys(FAULTS, 0.01 / len(FAULTS)),
        topic_prefix=prefix,
    )
    return Simulation(config, Registry(topic_prefix=prefix), ZoneIndex.from_file())


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--bootstrap", default="127.0.0.1:19092")
    args = parser.parse_args()
    prefix = f"simbench{uuid.uuid4().hex[:6]}"
    topics = list(Registry(topic_prefix=prefix).topics().values())
    await create_topics(args.bootstrap, dict.fromkeys(topics, 6))
    try:
        started = time.perf_counter()
        messages = list(simulation(args.count, prefix).messages())
        generate = args.count / (time.perf_counter() - started)
        sent = await produce(messages, args.bootstrap)
        both = await produce(simulation(args.count, prefix).messages(), args.bootstrap)
    finally:
        admin = AIOKafkaAdminClient(bootstrap_servers=args.bootstrap)
        await admin.start()
        try:
            await admin.delete_topics(topics)
        finally:
            await admin.close()
    size = sent.bytes / sent.sent
    print(f"{args.count:,} events, {size:.0f} bytes on average, 8 topics x 6 partitions")
    print(f"generate only        : {generate:12,.0f} events/s")
    print(f"send pre-generated   : {sent.rate:12,.0f} events/s")
    print(f"generate + send      : {both.rate:12,.0f} events/s  (ioc simulate --fast)")


if __name__ == "__main__":
    asyncio.run(main())
