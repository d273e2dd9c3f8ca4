"""People and tools around incidents, on the real database and broker: `ioc rules check`,
`ioc incidents ack | resolve | comment | show | list`, `ioc rules replay` against the live
incidents, and the outbox relay to the incidents topic as CloudEvents."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from typer.testing import CliRunner

from ioc.cli import app
from ioc.rules_commands import replay, stored_observations
from localdev.runtime import LocalPostgres
from rules import load_rule_files
from streams.kafka_io import create_topics, read_to_end
from streams.relay import relay_once
from streams.settings import Settings
from tests.integration.test_rules_in_pipeline import outbox, reading, rules
from tests.support.harness import Harness, pipeline_harness

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def superuser(settings: Settings, pg_conninfo: str) -> str:
    return LocalPostgres(settings).superuser_conninfo()


def ioc(h: Harness, *args: str) -> Any:
    result = CliRunner().invoke(app, list(args), env={"IOC_DB__NAME": h.dbname})
    return result


def test_rules_check_names_the_file_the_rule_and_the_field(tmp_path: Path) -> None:
    (tmp_path / "air.yaml").write_text(rules().replace("raise_at: 50", "raise_at: fifty"))
    result = CliRunner().invoke(app, ["rules", "check", str(tmp_path)])
    assert result.exit_code == 2
    assert f"{tmp_path / 'air.yaml'}: rule 'pm25-high': raise_at:" in result.output
    (tmp_path / "air.yaml").write_text(rules())
    result = CliRunner().invoke(app, ["rules", "check", str(tmp_path)])
    assert result.exit_code == 0 and "1 rules valid" in result.output


async def test_ack_resolve_comment_and_a_held_rule_until_it_clears(
    settings: Settings, superuser: str
) -> None:
    t0 = datetime.now(UTC) - timedelta(minutes=20)
    async with pipeline_harness(settings, superuser, rules=rules()) as h:
        await h.handle("environment", [reading(h, n, 70, t0=t0) for n in range(3)])
        (incident,) = h.incidents()
        first = str(incident["id"])

        result = ioc(h, "incidents", "ack", first, "--by", "officer-lan", "--note", "on it")
        assert result.exit_code == 0, result.output
        assert "acknowledged" in result.output
        assert ioc(h, "incidents", "ack", first, "--by", "x").exit_code == 1  # not open any more

        await h.handle("environment", [reading(h, 10, 75, t0=t0)])  # a repeat keeps the ack
        (incident,) = h.incidents()
        assert (incident["state"], incident["count"]) == ("acknowledged", 4)

        result = ioc(h, "incidents", "resolve", first, "--by", "officer-lan")
        assert result.exit_code == 0, result.output
        await h.handle("environment", [reading(h, 20, 80, t0=t0)])  # still breaching: held
        assert [i["state"] for i in h.incidents()] == ["resolved"]

        await h.handle("environment", [reading(h, 30, 20, t0=t0)])  # cleared (quiet 0 s)
        await h.handle("environment", [reading(h, 40, 90, t0=t0)])  # raised again
        second = [i for i in h.incidents() if str(i["id"]) != first]
        assert len(second) == 1 and str(second[0]["previous_id"]) == first

        result = ioc(h, "incidents", "comment", first, "--by", "officer-lan", "handed over")
        assert result.exit_code == 0, result.output
        shown = ioc(h, "incidents", "show", first)
        assert shown.exit_code == 0
        for line in ("acknowledged by officer-lan via cli", "resolved by officer-lan via cli",
                     "comment by officer-lan via cli"):  # fmt: skip
            assert line in shown.output, shown.output
        assert "resolved" in ioc(h, "incidents", "list").output
        kinds = [kind for _, _, kind in outbox(h)]
        assert kinds == ["opened", "acknowledged", "updated", "resolved", "opened"]
        bad = ioc(h, "incidents", "ack", "not-a-uuid", "--by", "x")
        assert bad.exit_code == 1 and "not an incident id" in bad.output


async def test_replay_of_the_stored_events_gives_the_live_incidents(
    settings: Settings, superuser: str
) -> None:
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=40)
    async with pipeline_harness(settings, superuser, rules=rules()) as h:
        stream = []
        for n in range(600):  # three stations, breaching and clearing in turns
            value = 70.0 if (n // 60) % 2 else 30.0
            stream.append(reading(h, n, value, entity=f"st-{n % 3}", t0=t0))
        for start in range(0, 600, 100):
            await h.handle("environment", stream[start : start + 100])
        live = {str(i["id"]): (i["state"], i["count"]) for i in h.incidents()}
        assert len(live) > 3

        ruleset = load_rule_files([("replay.yaml", rules())])
        conninfo = h.settings.db.conninfo("ingest")
        once = replay(ruleset, stored_observations(conninfo, t0, t0 + timedelta(hours=1)))
        twice = replay(ruleset, stored_observations(conninfo, t0, t0 + timedelta(hours=1)), 37)
        replayed = {i: (s["state"], s["count"]) for i, s in once.incidents.items()}
        assert replayed == live
        assert {i: (s["state"], s["count"]) for i, s in twice.incidents.items()} == live


async def test_the_relay_publishes_each_transition_once_as_a_cloudevent(
    settings: Settings, superuser: str, kafka_bootstrap: str
) -> None:
    t0 = datetime.now(UTC) - timedelta(minutes=15)
    prefix = f"relay{uuid.uuid4().hex[:8]}"
    local = settings.model_copy(
        update={"kafka": settings.kafka.model_copy(update={"topic_prefix": prefix})}
    )
    await create_topics(kafka_bootstrap, {f"{prefix}.incidents": 3}, 1)
    async with pipeline_harness(settings, superuser, rules=rules()) as h:
        await h.handle("environment", [reading(h, n, 70, t0=t0) for n in range(2)])
        await h.handle("environment", [reading(h, 9, 10, t0=t0)])
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        await producer.start()
        try:
            import psycopg

            async with await psycopg.AsyncConnection.connect(
                h.settings.db.conninfo("ingest")
            ) as conn:
                assert await relay_once(local, conn, producer) == 2
                assert await relay_once(local, conn, producer) == 0
        finally:
            await producer.stop()
        (incident,) = h.incidents()
    records = [r async for _, r in read_to_end(kafka_bootstrap, f"{prefix}.incidents")]
    documents = [orjson.loads(r.value) for r in records]
    assert [d["type"] for d in documents] == [
        f"{settings.domains.namespace}.incident.opened.v1",
        f"{settings.domains.namespace}.incident.resolved.v1",
    ]
    assert {r.key for r in records} == {str(incident["id"]).encode()}
    assert documents[0]["id"] == f"{incident['id']}:1:opened"
    assert documents[1]["data"]["state"] == "resolved"
    assert all(dict(r.headers)["content-type"] == b"application/cloudevents+json" for r in records)
