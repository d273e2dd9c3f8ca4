"""A large sample of the contract property (tests/unit/test_schema_property.py runs a small one).

    .venv/bin/python bench/contract_sample.py [--examples 3000] [--seed 7]

Exports the contract files (as `ioc schemas export` does, zone file included) to a temporary
directory, generates events from them with tests/support/schema_events.py and counts:
- valid events per binding: decoded, and stored by the pipeline's split (zone, lateness);
- mutants per mutation: refused by the schemas (jsonschema), refused by the decoder or the
  pipeline, and with which reason.
Prints the counts and the two ratios that must be 1.0 (valid stored / valid generated, mutants
refused with a documented reason / mutants). Exits 1 when a ratio is not 1.0.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from domains import PIPELINE_REASONS, REASONS, Decoder, Event, Registry, Rejection
from geo import ZoneIndex
from ioc.cli import app
from streams.ingest import split_batch
from streams.kafka_io import Record
from tests.support.schema_events import (
    BINDINGS,
    MUTATIONS,
    Contract,
    Mutation,
    message,
    mutate,
)

NOW = datetime.now(UTC)
HORIZON = timedelta(hours=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--examples", type=int, default=3000, help="about this many valid events and mutants each"
    )
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    registry = Registry()
    decoder = Decoder(registry)
    zones = ZoneIndex.from_file()
    with tempfile.TemporaryDirectory() as tmp:
        result = CliRunner().invoke(app, ["schemas", "export", tmp])
        if result.exit_code != 0:
            print(result.output)
            return 1
        contract = Contract.load(Path(tmp))

    def stored(value: bytes, headers: list, domain: str) -> list[str]:
        record = Record(registry.topic(domain), 0, 0, b"k", value, tuple(headers), 0)
        split = split_batch(
            [record], domain=domain, decoder=decoder, zones=zones, now=NOW, late_horizon=HORIZON
        )
        return split.rejected_reasons

    counts: Counter[str] = Counter()
    types: Counter[str] = Counter()
    outcomes: Counter[tuple[str, str]] = Counter()
    failures: list[str] = []
    run = settings(
        max_examples=args.examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )

    # One small hypothesis run per (type, binding) and per (type, mutation, binding): hypothesis'
    # own choice from a list favours its first element, and every pair must get its share.
    names = sorted(contract.schemas)
    of_type = {name: contract.events(now=NOW, late_horizon=HORIZON, types=[name]) for name in names}
    per_valid = max(1, args.examples // (len(names) * len(BINDINGS)))
    per_mutant = max(1, args.examples // (len(names) * len(MUTATIONS)))

    def valid(name: str, binding: str) -> None:
        @seed(args.seed)
        @settings(run, max_examples=per_valid)
        @given(data=st.data())
        def check(data: st.DataObject) -> None:
            event = data.draw(of_type[name])
            value, headers = message(event, binding)
            counts["valid generated"] += 1
            counts[f"valid via {binding}"] += 1
            types[event.type] += 1
            decoded = decoder.decode(value, headers, now=NOW)
            if not isinstance(decoded, Event):
                failures.append(f"valid event refused: {decoded} {event}")
                return
            counts["valid decoded"] += 1
            dead = stored(value, headers, decoded.domain)
            if dead:
                failures.append(f"valid event dead-lettered by the pipeline: {dead} {event}")
                return
            counts["valid stored"] += 1

        check()

    def mutants(name: str, mutation: Mutation, binding: str) -> None:
        @seed(args.seed)
        @settings(run, max_examples=per_mutant)
        @given(data=st.data())
        def check(data: st.DataObject) -> None:
            event = data.draw(of_type[name])
            mutated = mutate(contract, event, mutation, data.draw)
            if mutated is None:
                return
            mutant, changes = mutated
            schema_valid = contract.is_valid_event(mutant, changes)
            if schema_valid and mutation.schema_invalid:
                failures.append(f"{mutation.name}: the mutant is schema-valid {mutant} {changes}")
                return
            if not schema_valid and not mutation.schema_invalid:
                return  # breaks more than the cross-field rule (e.g. a range): not this case
            value, headers = message(mutant, binding, changes)
            counts["mutants"] += 1
            counts["mutants schema-invalid"] += not schema_valid
            result = decoder.decode(value, headers, now=NOW)
            if isinstance(result, Rejection):
                reason = result.reason
            else:
                reason = ",".join(stored(value, headers, result.domain)) or "stored"
            outcomes[(mutation.name, reason)] += 1
            if reason in mutation.reasons and (reason in REASONS or reason in PIPELINE_REASONS):
                counts["mutants refused with their reason"] += 1
            else:
                failures.append(f"{mutation.name}: {reason} {mutant} {changes}")

        check()

    for name in names:
        for i, binding in enumerate(BINDINGS):
            valid(name, binding)
            for mutation in MUTATIONS[i :: len(BINDINGS)]:  # each mutation in one binding per type
                mutants(name, mutation, BINDINGS[(i + names.index(name)) % len(BINDINGS)])

    print(f"contract sample: {args.examples} examples per property, seed {args.seed}")
    for name, value in counts.items():
        print(f"  {name:<45} {value:>7}")
    print(f"  event types generated                         {len(types):>7} of {len(registry)}")
    print("  mutants by mutation and outcome:")
    for (name, reason), value in sorted(outcomes.items()):
        print(f"    {name:<32} -> {reason:<16} {value:>6}")
    stored_ratio = counts["valid stored"] / max(counts["valid generated"], 1)
    refused_ratio = counts["mutants refused with their reason"] / max(counts["mutants"], 1)
    print(f"  valid stored / valid generated                {stored_ratio:.3f}")
    print(f"  mutants refused with their reason / mutants   {refused_ratio:.3f}")
    for failure in failures[:10]:
        print("  FAIL", failure[:300])
    return 0 if not failures and stored_ratio == 1.0 and refused_ratio == 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
