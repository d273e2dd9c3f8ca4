"""Contracts for integrators, as data: a JSON Schema per event type and one AsyncAPI 3.0 document.

Pure: returns dicts; `ioc schemas export DIR` (ioc/schemas_commands.py) writes them to files:

    DIR/cloudevent.schema.json          the envelope (structured mode) shared by every type
    DIR/<type>.schema.json              the `data` of one event type (= a binary-mode body)
    DIR/asyncapi.yaml                   topics, keys, headers and messages
"""

from __future__ import annotations

from typing import Any

from domains.envelope import DATA_CONTENT_TYPE, REASONS, SPECVERSION, STRUCTURED_CONTENT_TYPE
from domains.registry import EventType, Registry

JSON_SCHEMA = "https://json-schema.org/draft/2020-12/schema"


def data_schema(event_type: EventType) -> dict[str, Any]:
    """JSON Schema of one event type's `data`, with its type string and measurements."""
    schema = event_type.model.model_json_schema(mode="validation")
    spec = event_type.spec
    # "location or zone_id": a present, non-null member (the model's own rule, in schema terms).
    schema["anyOf"] = [
        {"required": ["location"], "properties": {"location": {"type": "object"}}},
        {"required": ["zone_id"], "properties": {"zone_id": {"type": "string"}}},
    ]
    return {
        "$schema": JSON_SCHEMA,
        "$id": f"{event_type.type}.schema.json",
        "title": event_type.type,
        "description": (event_type.model.__doc__ or "").strip(),
        "x-ioc-domain": event_type.domain,
        "x-ioc-fiware-model": spec.fiware,
        "x-ioc-measurements": [
            {"field": m.field, "metric": m.name, "unit": m.unit} for m in spec.measures
        ],
        **{k: v for k, v in schema.items() if k not in ("title", "description")},
    }


def envelope_schema(registry: Registry) -> dict[str, Any]:
    """JSON Schema of a structured-mode CloudEvent of any registered type."""
    return {
        "$schema": JSON_SCHEMA,
        "$id": "cloudevent.schema.json",
        "title": "CloudEvents 1.0 envelope (structured mode)",
        "description": (
            f"content-type {STRUCTURED_CONTENT_TYPE}. Validate `data` with the schema named by "
            "`type`. In binary mode the same attributes are ce_<name> headers and the message "
            "value is `data`."
        ),
        "type": "object",
        "required": ["specversion", "id", "source", "type", "time", "data"],
        "properties": {
            "specversion": {"const": SPECVERSION},
            "id": {"type": "string", "minLength": 1, "description": "Unique per source."},
            "source": {"type": "string", "minLength": 1, "format": "uri-reference"},
            "type": {"enum": sorted(t.type for t in registry)},
            "time": {
                "type": "string",
                "format": "date-time",
                "description": "RFC 3339 with offset.",
            },
            "subject": {"type": "string"},
            "datacontenttype": {"const": DATA_CONTENT_TYPE},
            "data": {"type": "object"},
        },
    }


def asyncapi(registry: Registry, *, title: str = "City IOC event platform") -> dict[str, Any]:
    """An AsyncAPI 3.0 document: one channel per domain topic, a message per event type."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    headers = {
        "type": "object",
        "description": "Binary mode: CloudEvents attributes as ce_ headers.",
        "required": ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time"],
        "properties": {
            "ce_specversion": {"const": SPECVERSION},
            "ce_id": {"type": "string"},
            "ce_source": {"type": "string"},
            "ce_type": {"type": "string"},
            "ce_time": {"type": "string", "format": "date-time"},
            "ce_subject": {"type": "string"},
            "content-type": {"const": DATA_CONTENT_TYPE},
        },
    }
    for domain in registry.domains():
        channel_messages: dict[str, Any] = {}
        for event_type in registry.types(domain):
            name = event_type.type.replace(".", "_")
            schemas[name] = data_schema(event_type)
            schemas[name].pop("$schema", None)
            messages[name] = {
                "name": event_type.type,
                "title": event_type.model.__name__,
                "summary": event_type.spec.summary,
                "contentType": DATA_CONTENT_TYPE,
                "headers": headers
                | {"properties": headers["properties"] | {"ce_type": {"const": event_type.type}}},
                "payload": {"$ref": f"#/components/schemas/{name}"},
                "bindings": {"kafka": {"key": {"type": "string", "description": "entity_id"}}},
            }
            channel_messages[name] = {"$ref": f"#/components/messages/{name}"}
        topic = registry.topic(domain)
        channels[domain] = {
            "address": topic,
            "title": registry.domain(domain).title,
            "description": f"Events of the {domain} domain; key = entity_id (bytes, UTF-8).",
            "messages": channel_messages,
            "bindings": {"kafka": {"topic": topic}},
        }
        operations[f"publish_{domain}"] = {
            "action": "send",
            "summary": f"Domain systems publish {domain} events.",
            "channel": {"$ref": f"#/channels/{domain}"},
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": title,
            "version": "1.0.0",
            "description": (
                "CloudEvents 1.0 over Kafka (binary mode preferred; structured mode with "
                f"content-type {STRUCTURED_CONTENT_TYPE} accepted). Type strings are "
                f"{registry.namespace}.<domain>.<event>.v<version>. Rejected messages go to the "
                "dead-letter topic with a reason: " + ", ".join(REASONS) + "."
            ),
        },
        "defaultContentType": DATA_CONTENT_TYPE,
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def export(registry: Registry) -> dict[str, Any]:
    """{file name: document} for every file `ioc schemas export` writes."""
    files: dict[str, Any] = {"cloudevent.schema.json": envelope_schema(registry)}
    for event_type in registry:
        files[f"{event_type.type}.schema.json"] = data_schema(event_type)
    files["asyncapi.yaml"] = asyncapi(registry)
    return files
