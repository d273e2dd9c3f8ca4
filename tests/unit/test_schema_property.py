"""Contract = enforcement, as a property: events generated from the EXPORTED schemas (the files
`ioc schemas export` writes, zone file included) all decode, in every binding; each mutant that
the schemas refuse is refused by the platform with a documented reason.

The generator is tests/support/schema_events.py (our own, from the files; why not
hypothesis-jsonschema is said there). A larger sample: `python -m bench.contract_sample`.
The database tier (every decoded event stored) reuses the same generator.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from domains import PIPELINE_REASONS, REASONS, Decoder, Event, Registry, Rejection
from geo import ZoneIndex
from streams.ingest import split_batch
from streams.kafka_io import Record
from tests.support.schema_events import (
    BINDINGS,
    MUTATIONS,
    Contract,
    exported_contract,
    message,
    mutate,
)

NOW = datetime(2026, 7, 15, 3, 0, tzinfo=UTC)
HORIZON = timedelta(hours=1)
REGISTRY = Registry()
DECODER = Decoder(REGISTRY)
ZONES = ZoneIndex.from_file()
SETTINGS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def contract(tmp_path_factory: pytest.TempPathFactory) -> Contract:
    return exported_contract(tmp_path_factory.mktemp("contracts"))


def split(value: bytes, headers: list[tuple[str, bytes]], domain: str, offset: int = 0):
    record = Record(REGISTRY.topic(domain), 0, offset, b"k", value, tuple(headers), 0)
    return split_batch(
        [record], domain=domain, decoder=DECODER, zones=ZONES, now=NOW, late_horizon=HORIZON
    )


def test_the_contract_files_name_the_zone_file_and_every_type(contract: Contract) -> None:
    assert set(contract.schemas) == {t.type for t in REGISTRY}
    assert contract.zone_ids() == sorted(ZONES.ids)


@SETTINGS
@given(data=st.data())
def test_every_schema_valid_event_decodes_and_is_stored(
    contract: Contract, data: st.DataObject
) -> None:
    event = data.draw(contract.events(now=NOW, late_horizon=HORIZON))
    binding = data.draw(st.sampled_from(BINDINGS))
    assert contract.is_valid_event(event, {})
    value, headers = message(event, binding)
    decoded = DECODER.decode(value, headers, now=NOW)
    assert isinstance(decoded, Event), (binding, event, decoded)
    assert (decoded.id, decoded.source, decoded.type) == (event.id, event.source, event.type)
    assert decoded.time == datetime.fromisoformat(event.time)
    assert orjson.loads(decoded.data_json) == event.data
    stored = split(value, headers, decoded.domain)  # the pipeline's own checks: zone, lateness
    assert not stored.dead, stored.dead
    assert [row.id for row in stored.events] == [event.id]


@SETTINGS
@given(data=st.data())
def test_every_schema_invalid_mutant_is_refused_with_a_documented_reason(
    contract: Contract, data: st.DataObject
) -> None:
    event = data.draw(contract.events(now=NOW, late_horizon=HORIZON))
    mutation = data.draw(st.sampled_from(MUTATIONS), label="mutation")
    mutated = mutate(contract, event, mutation, data.draw)
    assume(mutated is not None)
    assert mutated is not None
    mutant, changes = mutated
    valid = contract.is_valid_event(mutant, changes)
    if mutation.schema_invalid:
        assert not valid, (mutation.name, mutant, changes)
    else:  # a rule JSON Schema cannot say: the mutant is schema-valid when the rule is all it breaks
        assume(valid)
    binding = data.draw(st.sampled_from(BINDINGS))
    value, headers = message(mutant, binding, changes)
    result = DECODER.decode(value, headers, now=NOW)
    if mutation.reasons <= PIPELINE_REASONS:  # the decoder knows no zones; the pipeline does
        assert isinstance(result, Event), (mutation.name, result)
        reasons = split(value, headers, result.domain).rejected_reasons
        assert reasons and set(reasons) <= mutation.reasons, (mutation.name, reasons)
    else:
        assert isinstance(result, Rejection), (mutation.name, binding, mutant, changes, result)
        assert result.reason in REASONS
        assert result.reason in mutation.reasons, (mutation.name, binding, result)


def test_every_mutation_applies_to_some_event_type(contract: Contract) -> None:
    """No mutation is dead weight: each finds a target in events of some exported type."""
    applied: set[str] = set()

    def hits_in(type_string: str) -> None:
        @settings(max_examples=4, deadline=None, derandomize=True, database=None)
        @given(data=st.data())
        def hits(data: st.DataObject) -> None:
            event = data.draw(contract.events(now=NOW, late_horizon=HORIZON, types=[type_string]))
            for mutation in MUTATIONS:
                if mutate(contract, event, mutation, data.draw) is not None:
                    applied.add(mutation.name)

        hits()

    for type_string in sorted(contract.schemas):
        hits_in(type_string)
    assert applied == {m.name for m in MUTATIONS}
