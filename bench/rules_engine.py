"""The rules' own Python per event, beside the decode it rides on, with no Kafka or database.

    .venv/bin/python bench/rules_engine.py [--events 200000] [--batch 2000] [--repeat 5]

The simulator's events (the mix and seed of bench/pipeline.py) are cut into per-domain batches
as an ingest agent takes them and decoded once with split_batch. Then, batch after batch, the
default rules run as the worker runs them in the write transaction: RuleRunner.observations,
engine.group, engine.apply on the states the previous batches left (kept as JSON text, as the
database returns them) and the incidents' descriptions. The garbage collector is tuned as in
`ioc worker` (ioc.worker_commands.tune_gc). Printed: microseconds per event of the
rules and of split_batch (decode, validation, zones) on the same events, best of --repeat, and
their ratio, which is what the rules add to the worker's main thread in units of the decode.
Not a test: nothing is asserted. Run it in a checkout of another commit for before/after.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from domains import Decoder, Registry  # noqa: E402
from geo import ZoneIndex  # noqa: E402
from ioc.worker_commands import tune_gc  # noqa: E402
from rules.engine import apply, describe, group  # noqa: E402
from rules.load import default_rule_files, load_rule_files  # noqa: E402
from simulator.config import SimulatorConfig  # noqa: E402
from simulator.generate import Simulation  # noqa: E402
from sinks.rows import Batch  # noqa: E402
from streams.ingest import split_batch  # noqa: E402
from streams.kafka_io import Record  # noqa: E402
from streams.rules_runner import RuleRunner  # noqa: E402


def batches(
    n: int, size: int, start: datetime | None = None
) -> tuple[list[tuple[str, list[Record]]], datetime]:
    """The simulator's first `n` events as (domain, records) batches of up to `size`, in the
    order an agent per domain would take them, and the time the last one was sent."""
    start = start or datetime.now(UTC) - timedelta(seconds=n / 2000)
    config = SimulatorConfig(count=n, seed=7, rate=2000.0, start=start, topic_prefix="city")
    sim = Simulation(config, Registry(topic_prefix="city"), ZoneIndex.from_file())
    pending: dict[str, list[Record]] = defaultdict(list)
    out: list[tuple[str, list[Record]]] = []
    for offset, m in enumerate(sim.messages()):
        records = pending[m.domain]
        records.append(Record(m.topic, 0, offset, m.key, m.value, tuple(m.headers), 0))
        if len(records) == size:
            out.append((m.domain, records))
            pending[m.domain] = []
    out.extend((domain, records) for domain, records in pending.items() if records)
    return out, start + timedelta(seconds=n / 2000)


def run_rules(runner: RuleRunner, stored: list[Batch]) -> int:
    """The default rules over every batch; returns the number of incident changes."""
    states: dict[tuple[str, str], str] = {}
    changes = 0
    for batch in stored:
        observations = runner.observations(batch)
        if not observations:
            continue
        plan = group(runner.ruleset, observations)
        prior = {key: orjson.loads(states[key]) for key in plan if key in states}
        outcome = apply(runner.ruleset, plan, prior)
        for key, state in outcome.states.items():
            states[key] = orjson.dumps(state).decode()
        for snapshot in outcome.incidents.values():
            describe(runner.ruleset.by_id(snapshot["rule"]), snapshot)
        changes += len(outcome.incidents)
    return changes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    raw, now = batches(args.events, args.batch)
    zones, decoder = ZoneIndex.from_file(), Decoder()
    runner = RuleRunner(load_rule_files(default_rule_files()))
    tune_gc()
    best_split = best_rules = float("inf")
    changes = 0
    stored: list[Batch] = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        stored = [
            split_batch(records, domain=domain, decoder=decoder, zones=zones, now=now,
                        late_horizon=timedelta(days=1)).batch()
            for domain, records in raw
        ]  # fmt: skip
        best_split = min(best_split, time.perf_counter() - t)
        t = time.perf_counter()
        changes = run_rules(runner, stored)
        best_rules = min(best_rules, time.perf_counter() - t)
    events = sum(len(b.events) for b in stored)
    per = {"split_batch": best_split / events * 1e6, "rules": best_rules / events * 1e6}
    print(f"{events:,} events in {len(raw):,} batches of up to {args.batch:,};"
          f" {len(runner.ruleset)} rules; {changes:,} incident changes")  # fmt: skip
    for name, us in per.items():
        print(f"  {name:12s} {us:7.2f} us/event (best of {args.repeat})")
    print(f"  rules / split_batch = {per['rules'] / per['split_batch']:.3f}")


if __name__ == "__main__":
    main()
