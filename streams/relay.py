"""The outbox relay: incident transitions from `incident_outbox` to the `<prefix>.incidents` topic.

Each outbox row becomes one structured-mode CloudEvent (content-type
application/cloudevents+json), keyed by the incident id so that one incident's events stay in
order on one partition:

    id      <incident id>:<version>:<kind>   (idempotent: a re-publish after a crash repeats it)
    source  urn:ioc:<env>:incidents
    type    <namespace>.incident.<kind>.v1   (opened, updated, resolved, acknowledged)
    time    the transition's event time (opened_at, last_seen or resolved_at), else created_at
    data    the incident (sinks.incidents.outbox_payload; JSON Schema: INCIDENT_SCHEMA)

Rows are claimed with FOR UPDATE SKIP LOCKED, produced, acknowledged by Kafka (acks=all), and
only then marked published in the same transaction: at least once, never lost. Several workers
may relay at once without sending a row twice (except after a crash between the send and the
commit, which the CloudEvent id makes recognisable).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import orjson
import psycopg
from aiokafka import AIOKafkaProducer

from streams.kafka_auth import client_options
from streams.settings import Settings

CLAIM = """
SELECT id, incident_id::text, version, kind, payload, created_at FROM incident_outbox
WHERE published_at IS NULL ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED"""

MARK = "UPDATE incident_outbox SET published_at = now() WHERE id = ANY(%s)"

INCIDENT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Incident (the data of a city.incidents CloudEvent)",
    "type": "object",
    "required": [
        "id",
        "version",
        "rule_id",
        "key",
        "state",
        "severity",
        "category",
        "subcategory",
        "title",
        "description",
        "opened_at",
        "last_seen",
        "count",
    ],
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "version": {"type": "integer", "minimum": 1},
        "rule_id": {"type": "string"},
        "key": {"type": "string", "description": "entity id, zone id or source, per the rule"},
        "state": {"enum": ["open", "acknowledged", "resolved"]},
        "zone_id": {"type": ["string", "null"]},
        "entity_id": {"type": ["string", "null"]},
        "severity": {"enum": ["informational", "low", "medium", "high", "critical"]},
        "category": {"type": "string", "description": "FIWARE Alert category"},
        "subcategory": {"type": "string"},
        "title": {"type": "string"},
        "description": {
            "type": "object",
            "required": ["vi", "en"],
            "properties": {"vi": {"type": "string"}, "en": {"type": "string"}},
        },
        "opened_at": {"type": "string", "format": "date-time", "description": "event time"},
        "last_seen": {"type": "string", "format": "date-time", "description": "event time"},
        "resolved_at": {"type": ["string", "null"], "format": "date-time"},
        "count": {"type": "integer", "minimum": 1},
        "last_value": {"type": ["number", "null"]},
        "peak_value": {"type": ["number", "null"]},
        "previous_id": {"type": ["string", "null"]},
        "flapping": {"type": "boolean"},
        "flap_count": {"type": "integer", "minimum": 0},
        "entities": {"type": "array", "items": {"type": "string"}},
        "trigger_values": {"type": "object"},
    },
}


def incidents_topic(settings: Settings) -> str:
    return f"{settings.kafka.topic_prefix}.incidents"


def cloudevent(
    settings: Settings, kind: str, payload: dict[str, Any], created_at: datetime
) -> dict[str, Any]:
    """The structured-mode CloudEvent document of one outbox row."""
    time = {"opened": payload.get("opened_at"), "resolved": payload.get("resolved_at")}.get(
        kind, payload.get("last_seen")
    ) or created_at.isoformat()
    return {
        "specversion": "1.0",
        "id": f"{payload['id']}:{payload['version']}:{kind}",
        "source": f"urn:ioc:{settings.env}:incidents",
        "type": f"{settings.domains.namespace}.incident.{kind}.v1",
        "time": time,
        "subject": payload.get("zone_id") or payload["key"],
        "datacontenttype": "application/json",
        "data": payload,
    }


async def relay_once(settings: Settings, conn: psycopg.AsyncConnection[Any],
                     producer: AIOKafkaProducer, limit: int = 500) -> int:  # fmt: skip
    """Publish up to `limit` unpublished outbox rows; returns how many were published."""
    topic = incidents_topic(settings)
    async with conn.transaction(), conn.cursor() as cur:
        await cur.execute(CLAIM, (limit,))
        rows = await cur.fetchall()
        if not rows:
            return 0
        futures = []
        for _id, incident_id, _version, kind, payload, created_at in rows:
            document = cloudevent(settings, kind, payload, created_at)
            futures.append(
                await producer.send(
                    topic, key=incident_id.encode(), value=orjson.dumps(document),
                    headers=[("content-type", b"application/cloudevents+json")],
                )
            )  # fmt: skip
        await asyncio.gather(*futures)
        await cur.execute(MARK, ([row[0] for row in rows],))
        return len(rows)


class OutboxRelay:
    """The worker's relay: one connection and one producer, opened on first use, dropped on a
    failure and opened again at the next run."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.conn: psycopg.AsyncConnection[Any] | None = None
        self.producer: AIOKafkaProducer | None = None
        self.published = 0

    async def run_once(self) -> int:
        if self.producer is None:
            self.producer = AIOKafkaProducer(
                **client_options(self.settings.kafka), acks="all", linger_ms=5,
                enable_idempotence=True,
                client_id=f"{self.settings.kafka.client_id}-incidents",
            )  # fmt: skip
            await self.producer.start()
        if self.conn is None or self.conn.closed:
            self.conn = await psycopg.AsyncConnection.connect(self.settings.db.conninfo("ingest"))
        total = 0
        while n := await relay_once(self.settings, self.conn, self.producer):
            total += n
        self.published += total
        return total

    async def reset(self) -> None:
        conn, producer, self.conn, self.producer = self.conn, self.producer, None, None
        if conn is not None:
            await conn.close()
        if producer is not None:
            await producer.stop()
