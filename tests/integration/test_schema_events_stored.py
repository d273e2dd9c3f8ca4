"""Contract = enforcement, the database tier: events generated from the exported schemas go through
the real pipeline and sink (tests/support/harness.py) and every one is stored, none refused by the
database; schema-invalid mutants end in the DLQ with a documented reason, never as
`rejected_by_database`. The unit tier (decoder and split only) is tests/unit/test_schema_property.py;
a larger sample is bench/contract_sample.py."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domains import REASONS, Registry
from localdev.runtime import LocalPostgres
from streams.settings import Settings
from tests.support.harness import pipeline_harness
from tests.support.schema_events import (
    BINDINGS,
    MUTATIONS,
    Contract,
    exported_contract,
    message,
    mutate,
)

pytestmark = pytest.mark.integration

HORIZON = timedelta(minutes=30)  # well inside the pipeline's default late horizon (1 h)
REGISTRY = Registry()


@pytest.fixture(scope="module")
def contract(tmp_path_factory: pytest.TempPathFactory) -> Contract:
    return exported_contract(tmp_path_factory.mktemp("contracts-db"))


@pytest.fixture(scope="module")
def superuser(settings: Settings, pg_conninfo: str) -> str:
    return LocalPostgres(settings).superuser_conninfo()


def test_schema_valid_events_are_all_stored_and_mutants_all_dead_lettered(
    contract: Contract, settings: Settings, superuser: str
) -> None:
    @settings_for_db
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        now = datetime.now(UTC)  # when this example runs: its events must not age past 1 h
        events = data.draw(
            st.lists(contract.events(now=now, late_horizon=HORIZON), min_size=25, max_size=25)
        )
        valid, mutants = [], []
        for event in events:
            binding = data.draw(st.sampled_from(BINDINGS))
            valid.append((event, message(event, binding)))
            mutation = data.draw(st.sampled_from(MUTATIONS))
            mutated = mutate(contract, event, mutation, data.draw)
            if mutated is not None and mutation.schema_invalid:
                mutant, changes = mutated
                if not contract.is_valid_event(mutant, changes):
                    mutants.append((event.type, mutation, message(mutant, binding, changes)))
        asyncio.run(through_the_pipeline(valid, mutants))

    async def through_the_pipeline(valid: list, mutants: list) -> None:  # type: ignore[type-arg]
        async with pipeline_harness(settings, superuser) as h:
            for event, (value, headers) in valid:
                domain = REGISTRY.lookup(event.type).domain  # type: ignore[union-attr]
                await h.handle(domain, [h.record(value, headers, topic=REGISTRY.topic(domain))])
            assert h.dead.letters == [], [(d.reason, d.message) for d in h.dead.letters]
            assert h.stored_ids() == {event.id for event, _ in valid}
            sent = []
            for type_string, mutation, (value, headers) in mutants:
                domain = REGISTRY.lookup(type_string).domain  # type: ignore[union-attr]
                record = h.record(value, headers, topic=REGISTRY.topic(domain))
                await h.handle(domain, [record])  # its own topic, as its producer would
                sent.append((mutation, record))
            by_offset = {d.offset: d for d in h.dead.letters}
            for mutation, record in sent:
                letter = by_offset.get(record.offset)
                assert letter is not None, mutation.name  # not stored: refused
                assert letter.reason in REASONS and letter.reason != "rejected_by_database"
                assert letter.reason in mutation.reasons, (mutation.name, letter.reason)
            assert len(sent) > 3

    run()


settings_for_db = settings(
    max_examples=4, deadline=None,
    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow, HealthCheck.data_too_large],
)  # fmt: skip
