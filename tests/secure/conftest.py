"""Fixtures of the secure-mode tests: the local Kafka started by `ioc dev up --secure`, a fresh
topic prefix with the platform's ACLs granted for it, and each principal's settings.

`make test` runs these after the plaintext suite, on a broker it restarts in secure mode. A run
against a PLAINTEXT broker fails and says how to start a secure one (it never skips)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from domains import Registry
from localdev.kafka_secure import ADMIN, OPERATOR
from localdev.runtime import LocalKafka, kafka_metadata_ok
from streams.pipeline import ensure_topics
from streams.settings import KafkaSettings, Settings
from tests.support.worker_stack import delete_topics

SECURE_HINT = (
    "start it with `.venv/bin/ioc dev down && .venv/bin/ioc dev up --secure` "
    "(or run `make test`, which runs these in secure mode)"
)


@pytest.fixture(scope="session")
def secure_kafka(settings: Settings) -> LocalKafka:
    secure = settings.model_copy(
        update={"dev": settings.dev.model_copy(update={"kafka_secure": True})}
    )
    kafka = LocalKafka(secure)
    if not kafka.pid() or kafka.running_mode() != "secure":
        pytest.fail(
            f"no local Kafka in secure mode runs under {kafka.home}; {SECURE_HINT}", pytrace=False
        )
    if not asyncio.run(kafka_metadata_ok(kafka.client(ADMIN), 10.0)):
        pytest.fail(f"the secure Kafka does not answer the admin; {SECURE_HINT}", pytrace=False)
    return kafka


@dataclass
class SecureTopics:
    """A fresh topic prefix on the secure broker, its ACLs granted, its topics created by the
    operator."""

    kafka: LocalKafka
    settings: Settings  # topic prefix and app id of this run; Kafka settings of the admin
    registry: Registry

    def as_user(self, user: str) -> KafkaSettings:
        client = self.kafka.client(user)
        assert isinstance(client, KafkaSettings)
        return client.model_copy(update={"topic_prefix": self.settings.kafka.topic_prefix})

    def env(self, user: str) -> dict[str, str]:
        """A child process's environment running as `user` on this prefix."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("IOC_")}
        return (
            base
            | self.kafka.secure_files.client_env(user, self.settings.kafka.bootstrap)
            | {
                "IOC_KAFKA__TOPIC_PREFIX": self.settings.kafka.topic_prefix,
                "IOC_STREAM__APP_ID": self.settings.stream.app_id,
                "IOC_DB__PORT": str(self.settings.db.port),
            }
        )


@pytest.fixture
def secure_topics(secure_kafka: LocalKafka, settings: Settings) -> Iterator[SecureTopics]:
    run = uuid.uuid4().hex[:8]
    prefix = f"sec{run}"
    admin = secure_kafka.client(ADMIN)
    assert isinstance(admin, KafkaSettings)
    run_settings = settings.model_copy(
        update={
            "kafka": admin.model_copy(update={"topic_prefix": prefix}),
            "stream": settings.stream.model_copy(update={"app_id": f"ioc-sec-{run}"}),
        }
    )
    secure_kafka.grant(run_settings)
    topics = SecureTopics(secure_kafka, run_settings, Registry(settings.domains.namespace, prefix))
    operator = run_settings.model_copy(update={"kafka": topics.as_user(OPERATOR)})
    asyncio.run(ensure_topics(operator))
    try:
        yield topics
    finally:
        asyncio.run(delete_topics(admin, f"{prefix}."))
