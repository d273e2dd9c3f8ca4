"""Contracts for integrators, as data: a JSON Schema per event type and one AsyncAPI 3.0 document.

Pure: returns dicts; `ioc schemas export DIR` (ioc/schemas_commands.py) writes them to files:

    DIR/cloudevent.schema.json          the envelope (structured mode) shared by every type
    DIR/<type>.schema.json              the `data` of one event type (= a binary-mode body)
    DIR/asyncapi.yaml                   topics, keys, headers and messages

The schemas say every rule JSON Schema can say, and the decoder enforces the same ones: ranges,
WGS84 bounds, string lengths, no U+0000 in any string (`pattern`), RFC 3339 times (`pattern`),
closed objects, and, when the caller passes the zone file's ids, `zone_id` as an enum (domains/
knows no zones; the pipeline refuses another id as `unknown_zone`). What JSON Schema cannot say
is in each schema's `description` with the DLQ reason that names it: cross-field rules
(`x-ioc-rules`, reason `inconsistent`) and integer literals (3, not 3.0; reason `bad_type`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from domains.base import STR_MAX_LENGTH
from domains.envelope import (
    DATA_CONTENT_TYPE,
    NO_NUL_PATTERN,
    PIPELINE_REASONS,
    REASONS,
    SPECVERSION,
    STRUCTURED_CONTENT_TYPE,
    TIME_PATTERN,
)
from domains.registry import EventType, Registry

JSON_SCHEMA = "https://json-schema.org/draft/2020-12/schema"
TEXT = {"type": "string", "pattern": NO_NUL_PATTERN}
#: `location` or `zone_id`, present and not null (the model's own rule), as if/then: code
#: generators (Modelina) read an anyOf of two `required` as a union of two models, and `not` as
#: "any".
LOCATION_RULE = {
    "if": {"properties": {"location": {"type": "null"}}},  # location missing or null
    "then": {"required": ["zone_id"], "properties": {"zone_id": {"type": "string"}}},
}
UNSAID = (
    "Rules JSON Schema cannot say, which the platform enforces: an integer field takes an "
    "integer literal (3, not 3.0; else bad_type); the whole message is at most "
    "IOC_DOMAINS__MAX_EVENT_BYTES (64 KiB; else too_large)."
)


def data_schema(event_type: EventType, zone_ids: Iterable[str] | None = None) -> dict[str, Any]:
    """JSON Schema of one event type's `data`, with its type string, measurements and rules.

    `zone_ids`: the zone file's ids (the export reads the file); `zone_id` is then an enum."""
    schema = event_type.model.model_json_schema(mode="validation")
    spec = event_type.spec
    _strings_say_their_rules(schema)
    if zone_ids is not None:
        for branch in schema["properties"]["zone_id"]["anyOf"]:
            if branch.get("type") == "string":
                branch.clear()
                branch["$ref"] = "#/$defs/ZoneId"
        schema.setdefault("$defs", {})["ZoneId"] = {
            "title": "ZoneId",
            "description": "An id of the city's zone file (another id: reason unknown_zone).",
            "type": "string",
            "enum": sorted(zone_ids),
        }
    schema |= LOCATION_RULE
    description = (event_type.model.__doc__ or "").strip()
    if spec.rules:
        description += (
            "\n\nCross-field rules (JSON Schema cannot say them; a broken one is dead-lettered "
            "with reason `inconsistent`): " + "; ".join(rule.text for rule in spec.rules) + "."
        )
    description += "\n\n" + UNSAID
    return {
        "$schema": JSON_SCHEMA,
        "$id": f"{event_type.type}.schema.json",
        "title": event_type.type,
        "description": description,
        "x-ioc-domain": event_type.domain,
        "x-ioc-fiware-model": spec.fiware,
        "x-ioc-measurements": [
            {"field": m.field, "metric": m.name, "unit": m.unit} for m in spec.measures
        ],
        "x-ioc-rules": [rule.text for rule in spec.rules],
        **{k: v for k, v in schema.items() if k not in ("title", "description")},
    }


def _strings_say_their_rules(node: Any) -> None:
    """Every free-text string: no U+0000 (pattern) and the models' maximum length."""
    if isinstance(node, dict):
        if node.get("type") == "string" and "enum" not in node and "const" not in node:
            node.setdefault("maxLength", STR_MAX_LENGTH)
            node["pattern"] = NO_NUL_PATTERN
        for child in node.values():
            _strings_say_their_rules(child)
    elif isinstance(node, list):
        for child in node:
            _strings_say_their_rules(child)


def envelope_schema(registry: Registry) -> dict[str, Any]:
    """JSON Schema of a structured-mode CloudEvent of any registered type."""
    return {
        "$schema": JSON_SCHEMA,
        "$id": "cloudevent.schema.json",
        "title": "CloudEvents 1.0 envelope (structured mode)",
        "description": (
            f"content-type {STRUCTURED_CONTENT_TYPE}, or {DATA_CONTENT_TYPE} (the data's media "
            "type, as cloudevents 2.x's v1 Kafka binding sends it), or none. Validate `data` with "
            "the schema named by `type`. In binary mode the same attributes are ce_<name> "
            "headers and the message value is `data`. Extension attributes are allowed and "
            "ignored."
        ),
        "type": "object",
        "required": ["specversion", "id", "source", "type", "time", "data"],
        "properties": {
            "specversion": {"const": SPECVERSION},
            "id": {**TEXT, "minLength": 1, "description": "Unique per source."},
            "source": {
                **TEXT,
                "minLength": 1,
                "format": "uri-reference",
                "description": "The producer; (source, id) identifies an event.",
            },
            "type": {"enum": sorted(t.type for t in registry)},
            "time": {
                "type": "string",
                "format": "date-time",
                "pattern": TIME_PATTERN,
                "description": "Event time, RFC 3339 with an offset.",
            },
            "subject": TEXT,
            "datacontenttype": {"const": DATA_CONTENT_TYPE},
            "data": {"type": "object"},
        },
    }


def asyncapi(
    registry: Registry,
    *,
    title: str = "City IOC event platform",
    zone_ids: Iterable[str] | None = None,
) -> dict[str, Any]:
    """An AsyncAPI 3.0 document: one channel per domain topic, a message per event type.

    Payload schemas use the AsyncAPI Schema format (JSON Schema draft 07): shared definitions
    (`$defs`) move to `components.schemas` and tuples are written as draft 07's `items` array."""
    zones = None if zone_ids is None else sorted(zone_ids)
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    headers = {
        "type": "object",
        "description": (
            "Binary mode: CloudEvents attributes as ce_ headers. Structured mode: no ce_ headers, "
            f"the value is the envelope (cloudevent.schema.json), content-type "
            f"{STRUCTURED_CONTENT_TYPE}, {DATA_CONTENT_TYPE} or none."
        ),
        "required": ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time"],
        "properties": {
            "ce_specversion": {"const": SPECVERSION},
            "ce_id": {**TEXT, "minLength": 1},
            "ce_source": {**TEXT, "minLength": 1},
            "ce_type": {"type": "string"},
            "ce_time": {"type": "string", "format": "date-time", "pattern": TIME_PATTERN},
            "ce_subject": TEXT,
            "content-type": {"const": DATA_CONTENT_TYPE},
        },
    }
    for domain in registry.domains():
        channel_messages: dict[str, Any] = {}
        for event_type in registry.types(domain):
            name = event_type.type.replace(".", "_")
            schema = _draft07(data_schema(event_type, zones))
            for def_name, definition in schema.pop("$defs", {}).items():
                if schemas.setdefault(def_name, definition) != definition:
                    raise ValueError(f"two different schemas are named {def_name}")
            for key in ("$schema", "$id"):
                schema.pop(key, None)
            schema["title"] = event_type.model.__name__  # code generators name models by title
            schema["x-ioc-type"] = event_type.type
            schemas[name] = schema
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
    decided = ", ".join(sorted(PIPELINE_REASONS))
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": title,
            "version": "1.0.0",
            "description": (
                "CloudEvents 1.0 over Kafka (binary mode preferred; structured mode with "
                f"content-type {STRUCTURED_CONTENT_TYPE}, {DATA_CONTENT_TYPE} or none). An event "
                "is identified by (source, id). Type strings are "
                f"{registry.namespace}.<domain>.<event>.v<version>. Rejected messages go to the "
                "dead-letter topic with a reason: " + ", ".join(REASONS) + f" ({decided} by the "
                "pipeline, which holds the zone file), and the pipeline's too_late, wrong_topic, "
                "rejected_by_database, processing_error and unreadable_batch."
            ),
        },
        "defaultContentType": DATA_CONTENT_TYPE,
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def _draft07(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy in the AsyncAPI Schema format: `#/$defs/X` -> `#/components/schemas/X`, and
    2020-12's `prefixItems` -> draft 07's `items` array (the same tuple)."""

    def convert(node: Any) -> Any:
        if isinstance(node, list):
            return [convert(child) for child in node]
        if not isinstance(node, dict):
            return node
        out = {key: convert(child) for key, child in node.items()}
        ref = out.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            out["$ref"] = "#/components/schemas/" + ref.removeprefix("#/$defs/")
        if "prefixItems" in out:
            out["items"] = out.pop("prefixItems")
            out["additionalItems"] = False
        return out

    return convert(copy.deepcopy(schema))


def export(registry: Registry, zone_ids: Iterable[str] | None = None) -> dict[str, Any]:
    """{file name: document} for every file `ioc schemas export` writes.

    `zone_ids`: the ids of the city's zone file (`zone_id` becomes an enum); None leaves it free."""
    zones = None if zone_ids is None else sorted(zone_ids)
    files: dict[str, Any] = {"cloudevent.schema.json": envelope_schema(registry)}
    for event_type in registry:
        files[f"{event_type.type}.schema.json"] = data_schema(event_type, zones)
    files["asyncapi.yaml"] = asyncapi(registry, zone_ids=zones)
    return files
