"""Interop in secure mode: clients that no one here wrote, over SASL_SSL, to a worker that runs as
the workers' principal. The official CloudEvents SDK's Kafka bindings (every case of
tests/e2e/test_bindings.py) are sent as the environment system's principal, and kcat (librdkafka)
sends as that principal too, with its own SCRAM and TLS; every event is stored exactly once."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from localdev.kafka_secure import WORKER, producer_principal
from localdev.processes import ChildCommand, wait_http_ok
from localdev.runtime import LocalPostgres
from streams.kafka_auth import client_options
from streams.settings import KafkaSettings, Settings
from tests.e2e.test_bindings import SDK_CASES, reading
from tests.secure.conftest import SecureTopics
from tests.secure.test_acls import kcat_args
from tests.support.database import free_port, scratch_database
from tests.support.worker_stack import Message

pytestmark = [pytest.mark.secure, pytest.mark.e2e]


async def send(kafka: KafkaSettings, topic: str, messages: list[Message]) -> None:
    producer = AIOKafkaProducer(**client_options(kafka), acks="all")
    await producer.start()
    try:
        for key, value, headers, _id in messages:
            await producer.send(topic, key=key, value=value, headers=headers)
        await producer.flush()
    finally:
        await producer.stop()


def stored_counts(conninfo: str, ids: set[str]) -> dict[str, int]:
    import psycopg

    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT id, count(*) FROM events WHERE id = ANY(%s) GROUP BY id", (list(ids),)
        ).fetchall()
    return dict(rows)


def test_sdk_and_kcat_over_sasl_ssl_are_stored_once(
    secure_topics: SecureTopics, settings: Settings, tmp_path: Path
) -> None:
    superuser = LocalPostgres(settings).superuser_conninfo()
    with scratch_database(superuser, settings.db, "ioc_secure") as dbname:
        db = settings.db.model_copy(update={"name": dbname})
        env = secure_topics.env(WORKER) | {"IOC_DB__NAME": dbname}
        migrate = ChildCommand(["db", "migrate"], tmp_path / "migrate.log", env).start()
        assert migrate.wait(120) == 0, migrate.log_tail()
        port = free_port()
        worker = ChildCommand(
            ["worker"], tmp_path / "worker.log", env | {"IOC_STREAM__WEB_PORT": str(port)}
        ).start()
        try:
            wait_http_ok(f"http://127.0.0.1:{port}/metrics", timeout=90, child=worker)
            run_settings = secure_topics.settings
            topic = secure_topics.registry.topic("environment")
            messages = {name: make(run_settings, name) for name, make in SDK_CASES.items()}
            producer = secure_topics.as_user(producer_principal("environment"))
            asyncio.run(send(producer, topic, list(messages.values())))
            expected = {event_id: name for name, (*_, event_id) in messages.items()}

            data, kind, event_id, when = reading(run_settings, "kcat-binary")
            headers = {
                "ce_specversion": "1.0", "ce_id": event_id, "ce_source": "urn:interop:kcat",
                "ce_type": kind, "ce_time": when.isoformat().replace("+00:00", "Z"),
                "content-type": "application/json",
            }  # fmt: skip
            args = [*kcat_args(secure_topics.kafka, producer_principal("environment")),
                    "-P", "-t", topic, "-k", data["entity_id"]]  # fmt: skip
            for name, value in headers.items():
                args += ["-H", f"{name}={value}"]
            done = subprocess.run(
                args, input=orjson.dumps(data) + b"\n", capture_output=True, timeout=60,
                check=False,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr.decode(errors="replace")
            expected[event_id] = "kcat-binary"

            counts: dict[str, int] = {}
            for _ in range(90):
                counts = stored_counts(db.conninfo("owner"), set(expected))
                if set(counts) == set(expected):
                    break
                time.sleep(1)
            assert counts == dict.fromkeys(expected, 1), {
                expected[i] for i in set(expected) - set(counts)
            }
        finally:
            worker.stop(20)
