"""The contracts integrators read: the docs' examples validate against the exported schemas and
decode; the AsyncAPI document lists every topic and type; `ioc schemas export` writes them."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
import yaml
from jsonschema import Draft202012Validator, FormatChecker
from typer.testing import CliRunner

from domains import PIPELINE_REASONS, REASONS, Decoder, Event, Registry, Rejection, binary_message
from domains.schemas import export
from geo import ZoneIndex
from ioc.cli import app

DOCS = Path(__file__).resolve().parents[2] / "docs" / "contracts.md"
REGISTRY = Registry()
NOW = datetime(2026, 7, 15, 3, 0, tzinfo=UTC)
ZONES = sorted(ZoneIndex.from_file().ids)  # the default settings' zone file, as the export reads
AQ = "vn.daklak.environment.air_quality.v1"


def doc_examples() -> list[dict]:
    blocks = re.findall(r"```json\n(.*?)\n```", DOCS.read_text(encoding="utf-8"), flags=re.S)
    return [json.loads(block) for block in blocks]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("contracts")
    result = CliRunner().invoke(app, ["schemas", "export", str(out)])
    assert result.exit_code == 0, result.output
    return out


def validator(path: Path) -> Draft202012Validator:
    schema = json.loads(path.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


def test_export_writes_a_schema_per_type_the_envelope_and_asyncapi(exported: Path) -> None:
    names = {p.name for p in exported.iterdir()}
    assert names == {f"{t.type}.schema.json" for t in REGISTRY} | {
        "cloudevent.schema.json",
        "incident.schema.json",
        "asyncapi.yaml",
    }
    for path in exported.glob("*.json"):
        validator(path)  # every file is a valid JSON Schema


def test_the_docs_examples_validate_and_decode(exported: Path) -> None:
    examples = doc_examples()
    assert len(examples) >= 9
    assert {e["type"].split(".")[2] for e in examples} == set(REGISTRY.domains())
    envelope = validator(exported / "cloudevent.schema.json")
    decoder = Decoder(REGISTRY)
    for example in examples:
        errors = [e.message for e in envelope.iter_errors(example)]
        assert not errors, (example["type"], errors)
        data = validator(exported / f"{example['type']}.schema.json")
        errors = [e.message for e in data.iter_errors(example["data"])]
        assert not errors, (example["type"], errors)
        event = decoder.decode(orjson.dumps(example), [], now=NOW)
        assert isinstance(event, Event), (example["type"], event)


GOOD = {"entity_id": "a", "zone_id": ZONES[0], "pm25": 3}
POINT = {"type": "Point", "coordinates": [108.04, 12.68]}
#: (case, data, the decoder's reason or None when the pipeline decides it)
REFUSED = [
    ("negative PM2.5", {**GOOD, "pm25": -3}, "out_of_range"),
    ("a typo", {**GOOD, "pm2_5": 3}, "unknown_field"),
    ("neither location nor zone", {"entity_id": "a", "pm25": 3}, "bad_location"),
    ("one coordinate", {**GOOD, "location": {"type": "Point", "coordinates": [1]}}, "bad_location"),
    (
        "longitude 180.5",
        {**GOOD, "location": {**POINT, "coordinates": [180.5, 12]}},
        "bad_location",
    ),
    (
        "latitude -90.5",
        {**GOOD, "location": {**POINT, "coordinates": [108, -90.5]}},
        "bad_location",
    ),
    ("a numeric string", {**GOOD, "pm25": "3"}, "bad_type"),
    ("a boolean for a number", {**GOOD, "aqi": True}, "bad_type"),
    ("U+0000 in entity_id", {**GOOD, "entity_id": "a\x00"}, "invalid_text"),
    ("entity_id longer than 200", {**GOOD, "entity_id": "a" * 201}, "bad_type"),
    ("a zone the zone file does not have", {**GOOD, "zone_id": "atlantis"}, None),
]


def test_the_schemas_refuse_what_the_decoder_refuses(exported: Path) -> None:
    aq = validator(exported / f"{AQ}.schema.json")
    decoder = Decoder(REGISTRY)
    assert aq.is_valid(GOOD)
    assert aq.is_valid({**GOOD, "zone_id": None, "location": POINT})
    for case, data, reason in REFUSED:
        assert not aq.is_valid(data), case
        value, headers = binary_message(id="1", source="/t", type=AQ, time=NOW, data=data)
        result = decoder.decode(value, headers, now=NOW)
        if reason is None:  # the pipeline's: the decoder knows no zones
            assert isinstance(result, Event), (case, result)
        else:
            assert isinstance(result, Rejection) and result.reason == reason, (case, result)


def test_zone_id_is_an_enum_of_the_zone_file(exported: Path) -> None:
    for path in exported.glob("vn.*.schema.json"):
        schema = json.loads(path.read_text())
        assert {"$ref": "#/$defs/ZoneId"} in schema["properties"]["zone_id"]["anyOf"], path.name
        assert schema["$defs"]["ZoneId"]["enum"] == ZONES
    free = export(REGISTRY)[f"{AQ}.schema.json"]  # without a zone file: any string
    assert "enum" not in json.dumps(free["properties"]["zone_id"])


def test_what_json_schema_cannot_say_is_in_the_description(exported: Path) -> None:
    cases = json.loads((exported / "vn.daklak.health.disease_cases.v1.schema.json").read_text())
    assert cases["x-ioc-rules"] == ["hospitalised <= new_cases"]
    assert "hospitalised <= new_cases" in cases["description"]
    assert "`inconsistent`" in cases["description"]
    assert "3.0" in cases["description"]  # integer literals
    assert validator(exported / "vn.daklak.health.disease_cases.v1.schema.json").is_valid(
        {
            "entity_id": "d",
            "zone_id": ZONES[0],
            "disease": "dengue",
            "new_cases": 1,
            "hospitalised": 2,
        }
    )  # schema-valid, refused as inconsistent (tests/unit/test_envelope.py)


def test_the_envelope_schema_says_rfc3339_and_no_u0000(exported: Path) -> None:
    envelope = validator(exported / "cloudevent.schema.json")
    good = {
        "specversion": "1.0",
        "id": "1",
        "source": "/s",
        "type": AQ,
        "time": "2026-07-15T01:30:00Z",
        "data": {},
    }
    assert envelope.is_valid(good)
    for bad in (
        {"time": "2026-07-15 01:30:00Z"},
        {"time": "20260715T013000Z"},
        {"time": "2026-07-15T01:30:00"},
        {"id": "1\x00"},
        {"source": "\x00"},
        {"subject": "a\x00b"},
        {"datacontenttype": "text/plain"},
    ):
        assert not envelope.is_valid({**good, **bad}), bad


def test_every_reason_code_is_documented() -> None:
    text = DOCS.read_text(encoding="utf-8")
    pipeline = {
        "too_late",
        "wrong_topic",
        "rejected_by_database",
        "processing_error",
        "unreadable_batch",
    }
    for code in set(REASONS) | PIPELINE_REASONS | pipeline:
        assert f"| `{code}` |" in text, code


def refs(node: object) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for child in node.values() for r in refs(child)]
    if isinstance(node, list):
        return [r for child in node for r in refs(child)]
    return []


def test_every_asyncapi_reference_resolves_inside_the_document() -> None:
    doc = export(REGISTRY, ZONES)["asyncapi.yaml"]
    found = refs(doc)
    assert "#/components/schemas/GeoPoint" in found
    for ref in found:
        assert ref.startswith("#/"), ref
        node: object = doc
        for part in ref[2:].split("/"):
            assert isinstance(node, dict) and part in node, ref
            node = node[part]
    assert "prefixItems" not in json.dumps(doc)  # AsyncAPI schemas are JSON Schema draft 07


def test_asyncapi_describes_every_topic_key_and_message() -> None:
    doc = export(REGISTRY)["asyncapi.yaml"]
    yaml.safe_load(yaml.safe_dump(doc))  # serialisable
    assert doc["asyncapi"] == "3.0.0"
    assert {c["address"] for c in doc["channels"].values()} == set(REGISTRY.topics().values())
    names = {m["name"] for m in doc["components"]["messages"].values()}
    assert names == {t.type for t in REGISTRY}
    for message in doc["components"]["messages"].values():
        assert message["bindings"]["kafka"]["key"]["type"] == "string"
        ref = message["payload"]["$ref"].rsplit("/", 1)[1]
        assert ref in doc["components"]["schemas"]
    for operation in doc["operations"].values():
        assert operation["channel"]["$ref"].split("/")[-1] in doc["channels"]


def test_simulate_help_works_for_a_new_user() -> None:
    result = CliRunner().invoke(app, ["simulate", "--help"])
    assert result.exit_code == 0
    assert "--scenario" in result.output and "--manifest" in result.output


def test_simulate_refuses_bad_options_with_exit_2() -> None:
    result = CliRunner().invoke(app, ["simulate", "--duration", "soon"])
    assert result.exit_code == 2 and "duration" in result.output
    result = CliRunner().invoke(app, ["simulate", "--count", "10", "--scenario", "earthquake"])
    assert result.exit_code == 2 and "scenario" in result.output


def test_the_incident_schema_is_exported_and_describes_the_relayed_data(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The incidents topic's data has a schema beside the events', and a relayed payload
    (sinks.incidents.outbox_payload) is valid against it."""
    import jsonschema
    from typer.testing import CliRunner

    from ioc.cli import app
    from sinks.incidents import RuleFacts, outbox_payload

    result = CliRunner().invoke(app, ["schemas", "export", str(tmp_path)])
    assert result.exit_code == 0, result.output
    schema = json.loads((tmp_path / "incident.schema.json").read_text())
    snapshot = {
        "id": "5b7f4c1e-9f0e-4a55-8a57-6c1d2f3e4a10", "rule": "pm25-high", "key": "st-1",
        "zone": "24169", "entity": "st-1", "state": "open", "opened_at": "2026-07-01T00:00:00+00:00",
        "last_seen": "2026-07-01T00:05:00+00:00", "resolved_at": None, "count": 3, "value": 61.0,
        "peak": 70.0, "previous": None, "flapping": False, "flap_count": 0, "entities": ["st-1"],
        "values": {"pm25": 61.0},
    }  # fmt: skip
    facts = RuleFacts("high", "environment", "airPollution", "PM2.5 high")
    jsonschema.validate(outbox_payload(snapshot, facts, "vi", "en", 1), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            outbox_payload(snapshot | {"state": "closed"}, facts, "vi", "en", 1), schema
        )
