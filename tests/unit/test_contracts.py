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

from domains import Decoder, Event, Registry
from domains.schemas import export
from ioc.cli import app

DOCS = Path(__file__).resolve().parents[2] / "docs" / "contracts.md"
REGISTRY = Registry()
NOW = datetime(2026, 7, 15, 3, 0, tzinfo=UTC)


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


def test_the_schemas_refuse_what_the_decoder_refuses(exported: Path) -> None:
    aq = validator(exported / "vn.daklak.environment.air_quality.v1.schema.json")
    good = {"entity_id": "a", "zone_id": "z", "pm25": 3}
    assert aq.is_valid(good)
    assert not aq.is_valid({**good, "pm25": -3})
    assert not aq.is_valid({**good, "pm2_5": 3})
    assert not aq.is_valid({"entity_id": "a", "pm25": 3})  # neither location nor zone
    assert not aq.is_valid({**good, "location": {"type": "Point", "coordinates": [1]}})


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
