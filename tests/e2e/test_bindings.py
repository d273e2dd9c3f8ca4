"""Interop: events produced by clients that no one here wrote reach the database exactly once.

The official CloudEvents SDK for Python (cloudevents 2.2.0: its v1 Kafka binding and its newer
core binding, binary and structured mode, with and without a data content type) and kcat
(librdkafka, binary mode with `-H ce_*` headers and structured mode) each send one event into
the real broker; one real `ioc worker` must store every one of them once and dead-letter none.
(The v1 binding cannot write binary mode without a datacontenttype: its to_binary raises
KeyError, so that variant is produced by the core binding and kcat only.)
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from cloudevents.core.bindings import kafka as core_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent as CoreEvent
from cloudevents.v1 import kafka as v1_kafka
from cloudevents.v1.http import CloudEvent as V1Event

from streams.settings import Settings
from tests.support.worker_stack import Message, WorkerStack, worker_stack

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

KCAT_INSTALL = "apt-get install -y kcat (make install-test does it)"


@pytest.fixture(scope="module")
def stack(
    settings: Settings, kafka_bootstrap: str, pg_conninfo: str, tmp_path_factory: Any
) -> Iterator[WorkerStack]:
    logs: Path = tmp_path_factory.mktemp("bindings")
    with worker_stack(settings, logs) as s:
        s.start_worker()
        yield s


def reading(settings: Settings, tag: str) -> tuple[dict[str, Any], str, str, datetime]:
    """(data, type, id, time) of one river-gauge reading."""
    data = {
        "entity_id": f"gauge-{tag}", "water_body": "Serepok", "water_body_kind": "river",
        "water_level": 412.5, "location": {"type": "Point", "coordinates": [108.05, 12.68]},
    }  # fmt: skip
    kind = f"{settings.domains.namespace}.environment.water_level.v1"
    return data, kind, f"{tag}-{uuid.uuid4().hex[:10]}", datetime.now(UTC) - timedelta(minutes=2)


def v1_message(mode: str, content_type: str | None) -> Callable[[Settings, str], Message]:
    def make(settings: Settings, tag: str) -> Message:
        data, kind, event_id, time = reading(settings, tag)
        attributes = {"id": event_id, "source": "urn:interop:sdk-v1", "type": kind,
                      "time": time.isoformat()}  # fmt: skip
        if content_type:
            attributes["datacontenttype"] = content_type
        event = V1Event(attributes, data)
        convert = v1_kafka.to_binary if mode == "binary" else v1_kafka.to_structured
        message = convert(event, key_mapper=lambda e: data["entity_id"])
        key = message.key.encode() if isinstance(message.key, str) else message.key
        return key, message.value, list(message.headers.items()), event_id

    return make


def core_message(mode: str, content_type: str | None) -> Callable[[Settings, str], Message]:
    def make(settings: Settings, tag: str) -> Message:
        data, kind, event_id, time = reading(settings, tag)
        attributes: dict[str, Any] = {
            "id": event_id, "source": "urn:interop:sdk-core", "type": kind, "time": time,
            "specversion": "1.0",
        }  # fmt: skip
        if content_type:
            attributes["datacontenttype"] = content_type
        event = CoreEvent(attributes, data)
        convert = core_kafka.to_binary if mode == "binary" else core_kafka.to_structured
        message = convert(event, JSONFormat(), key_mapper=lambda e: data["entity_id"])
        key = message.key.encode() if isinstance(message.key, str) else message.key
        return key, message.value, list(message.headers.items()), event_id

    return make


SDK_CASES = {
    "v1-binary-json": v1_message("binary", "application/json"),
    "v1-structured-json": v1_message("structured", "application/json"),
    "v1-structured-no-content-type": v1_message("structured", None),
    "core-binary-json": core_message("binary", "application/json"),
    "core-binary-no-content-type": core_message("binary", None),
    "core-structured": core_message("structured", "application/json"),
    "core-structured-no-datacontenttype": core_message("structured", None),
}


def test_every_sdk_binding_is_stored_once(stack: WorkerStack) -> None:
    messages = {name: make(stack.settings, name) for name, make in SDK_CASES.items()}
    stack.send(list(messages.values()))
    expected = {event_id: name for name, (*_, event_id) in messages.items()}
    missing = stack.wait_until_stored(set(expected), timeout=90)
    letters = [(letter.reason, letter.message) for letter in stack.dead_letters()]
    assert not missing, ({expected[i] for i in missing}, letters)
    assert stack.stored_ids() & set(expected) == set(expected)
    assert count_by_id(stack, set(expected)) == dict.fromkeys(expected, 1)


def count_by_id(stack: WorkerStack, ids: set[str]) -> dict[str, int]:
    """How many rows of `events` each of `ids` has (stored once = 1)."""
    with psycopg.connect(stack.settings.db.conninfo("owner")) as conn:
        rows = conn.execute(
            "SELECT id, count(*) FROM events WHERE id = ANY(%s) GROUP BY id", (list(ids),)
        ).fetchall()
    return dict(rows)


def kcat() -> str:
    path = shutil.which("kcat")
    if path is None:
        pytest.fail(f"kcat is not installed: {KCAT_INSTALL}", pytrace=False)
    return path


def test_kcat_binary_with_ce_headers_and_structured_are_stored_once(stack: WorkerStack) -> None:
    topic = stack.topic("environment")
    sent: dict[str, str] = {}
    data, kind, event_id, time = reading(stack.settings, "kcat-binary")
    headers = {
        "ce_specversion": "1.0", "ce_id": event_id, "ce_source": "urn:interop:kcat",
        "ce_type": kind, "ce_time": time.isoformat().replace("+00:00", "Z"),
        "content-type": "application/json",
    }  # fmt: skip
    produce_with_kcat(stack, topic, data["entity_id"], orjson.dumps(data), headers)
    sent[event_id] = "kcat-binary"
    data, kind, event_id, time = reading(stack.settings, "kcat-structured")
    document = {"specversion": "1.0", "id": event_id, "source": "urn:interop:kcat", "type": kind,
                "time": time.isoformat(), "datacontenttype": "application/json", "data": data}  # fmt: skip
    produce_with_kcat(
        stack, topic, data["entity_id"], orjson.dumps(document),
        {"content-type": "application/cloudevents+json"},
    )  # fmt: skip
    sent[event_id] = "kcat-structured"
    missing = stack.wait_until_stored(set(sent), timeout=90)
    assert not missing, {sent[i] for i in missing}
    assert count_by_id(stack, set(sent)) == dict.fromkeys(sent, 1)


def produce_with_kcat(
    stack: WorkerStack, topic: str, key: str, value: bytes, headers: dict[str, str]
) -> None:
    args = [kcat(), "-P", "-b", stack.settings.kafka.bootstrap, "-t", topic, "-k", key]
    for name, header in headers.items():
        args += ["-H", f"{name}={header}"]
    done = subprocess.run(args, input=value + b"\n", capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
