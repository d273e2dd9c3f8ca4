"""The secure broker (`ioc dev up --secure`) as the issue asks: each domain system writes only its
own topic, only the workers read the domain topics (health and security included), anonymous and
PLAINTEXT clients are refused, a wrong password is named as such by `ioc`, the workers cannot
write a domain topic and the operator replays dead letters back to one.

Reads are checked with kcat (librdkafka), a client we did not write, over SASL_SSL."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import TopicAuthorizationFailedError

from localdev.kafka_secure import OPERATOR, SIMULATOR, WORKER, producer_principal
from localdev.processes import ChildCommand
from localdev.runtime import PROJECT_ROOT, LocalKafka, kafka_metadata_ok
from streams.dlq import DeadLetter, dlq_topic
from streams.kafka_auth import client_options
from streams.settings import KafkaSettings
from tests.secure.conftest import SecureTopics
from tests.support.kafka_batches import kcat

pytestmark = [pytest.mark.secure, pytest.mark.integration]


async def send(kafka: KafkaSettings, topic: str, value: bytes, headers=()) -> None:  # type: ignore[no-untyped-def]
    producer = AIOKafkaProducer(**client_options(kafka), acks="all", request_timeout_ms=15_000)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value=value, key=b"k", headers=list(headers))
    finally:
        await producer.stop()


def kcat_args(kafka: LocalKafka, user: str | None, protocol: str = "SASL_SSL") -> list[str]:
    args = [kcat(), "-b", f"127.0.0.1:{kafka.port}", "-X", f"security.protocol={protocol}"]
    if protocol in ("SSL", "SASL_SSL"):
        args += ["-X", f"ssl.ca.location={kafka.secure_files.ca_pem}"]
    if user is not None:
        password = kafka.secure_files.passwords()[user]
        args += ["-X", "sasl.mechanisms=SCRAM-SHA-512", "-X", f"sasl.username={user}",
                 "-X", f"sasl.password={password}"]  # fmt: skip
    return args


def kcat_read(kafka: LocalKafka, user: str, topic: str) -> subprocess.CompletedProcess[str]:
    """Read `topic` from the beginning to its end with kcat as `user` (no consumer group)."""
    args = [*kcat_args(kafka, user), "-C", "-t", topic, "-o", "beginning", "-e", "-q",
            "-f", "%s\\n", "-m", "20"]  # fmt: skip
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def test_a_domain_system_writes_only_its_own_topic(secure_topics: SecureTopics) -> None:
    transport = secure_topics.as_user(producer_principal("transport"))
    registry = secure_topics.registry
    asyncio.run(send(transport, registry.topic("transport"), b"own topic"))
    with pytest.raises(TopicAuthorizationFailedError):
        asyncio.run(send(transport, registry.topic("health"), b"not mine"))
    with pytest.raises(TopicAuthorizationFailedError):
        asyncio.run(send(transport, dlq_topic(secure_topics.settings.kafka.topic_prefix), b"x"))


def test_only_the_workers_read_the_health_and_security_topics(
    secure_topics: SecureTopics,
) -> None:
    kafka, registry = secure_topics.kafka, secure_topics.registry
    for domain in ("health", "security"):
        topic = registry.topic(domain)
        asyncio.run(send(secure_topics.as_user(producer_principal(domain)), topic, b"secret"))
        allowed = kcat_read(kafka, WORKER, topic)
        assert allowed.returncode == 0, allowed.stderr
        assert allowed.stdout.split() == ["secret"]
        for user in (producer_principal(domain), producer_principal("transport"), SIMULATOR,
                     OPERATOR):  # fmt: skip
            refused = kcat_read(kafka, user, topic)
            assert refused.returncode != 0, (user, refused.stdout)
            assert "secret" not in refused.stdout
            assert "authoriz" in refused.stderr.lower(), (user, refused.stderr)


def test_anonymous_and_plaintext_clients_are_refused(secure_topics: SecureTopics) -> None:
    kafka = secure_topics.kafka
    address = f"127.0.0.1:{kafka.port}"
    assert asyncio.run(kafka_metadata_ok(address, 5.0)) is False  # aiokafka, PLAINTEXT
    topic = secure_topics.registry.topic("health")
    for protocol in ("PLAINTEXT", "SSL"):  # no SASL: TLS alone is not a principal here
        args = [*kcat_args(kafka, None, protocol), "-X", "socket.timeout.ms=5000",
                "-X", "metadata.request.timeout.ms=5000", "-L", "-t", topic]  # fmt: skip
        done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode != 0, (protocol, done.stdout)
        assert topic not in done.stdout


def run_ioc(env: dict[str, str], *args: str, timeout: float = 60) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "ioc", *args], env=env, cwd=PROJECT_ROOT,
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr


def test_a_wrong_password_is_refused_and_named(secure_topics: SecureTopics) -> None:
    for user, command in ((OPERATOR, ["topics", "create"]), (WORKER, ["worker"])):
        env = secure_topics.env(user) | {"IOC_KAFKA__PASSWORD": "not-the-password"}
        code, output = run_ioc(env, *command)
        assert code == 1, output
        assert f"Kafka authentication failed for principal User:{user}" in output, output
        assert "invalid credentials" in output and "IOC_KAFKA__PASSWORD" in output
        assert "Unable to bootstrap" not in output


def test_the_workers_cannot_write_a_domain_topic_and_the_operator_replays(
    secure_topics: SecureTopics, tmp_path: Path
) -> None:
    registry, prefix = secure_topics.registry, secure_topics.settings.kafka.topic_prefix
    worker = secure_topics.as_user(WORKER)
    environment = registry.topic("environment")
    with pytest.raises(TopicAuthorizationFailedError):
        asyncio.run(send(worker, environment, b"the worker may not write here"))
    marker = f"replayed-{uuid.uuid4().hex[:8]}"
    letter = DeadLetter(
        reason="unknown_type", message="test", error_class="UnknownType", topic=environment,
        partition=0, offset=0, key=b"k", value=marker.encode(),
    )  # fmt: skip
    asyncio.run(send(worker, dlq_topic(prefix), marker.encode(), letter.kafka_headers()))
    replay = ChildCommand(
        ["dlq", "replay", "--reason", "unknown_type"], tmp_path / "replay.log",
        secure_topics.env(OPERATOR),
    ).start()  # fmt: skip
    assert replay.wait(90) == 0, replay.log_tail()
    assert "replayed 1 dead letters" in replay.log_path.read_text()
    back = kcat_read(secure_topics.kafka, WORKER, environment)
    assert back.returncode == 0, back.stderr
    assert back.stdout.split() == [marker]
