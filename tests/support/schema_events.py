"""Events generated from the EXPORTED contract files (`ioc schemas export DIR`), for property tests.

A small generator of our own, from JSON Schema to hypothesis strategies, rather than
hypothesis-jsonschema: 0.23.1 (its last release) breaks with the hypothesis this project
requires (>= 6.130; with 6.170, `'many' object has no attribute 'more'`), and pinning hypothesis
back to 6.112 would hold every other property test of the project on an old hypothesis. It
understands exactly the keywords the export writes (`KEYWORDS`) and refuses any other, so a schema
that grows a new rule fails here loudly instead of being generated wrongly. Every generated `data`
is checked against its schema with `jsonschema` (a filter), so the generator cannot drift from the
files.

What a schema cannot know is fixed here, as a producer would:
- times lie within the late horizon before `now` (and not in the future), in RFC 3339 with
  various offsets;
- (source, id) pairs are unique across everything one `Contract` generates;
- the cross-field rules of `x-ioc-rules` hold (only the form `a <= b` exists, and is understood);
- strings are at most `MAX_TEXT` characters, so that a message stays under the 64 KiB limit.

`mutations(...)` then breaks one thing of a valid event, the way producers do, and says which
documented reasons may result; `jsonschema` confirms that each mutant is schema-invalid (except the
`inconsistent` mutants, which break a rule JSON Schema cannot say).

Used by tests/unit/test_schema_property.py (decoder tier) and bench/contract_sample.py (large
sample); a database tier can reuse `Contract.events()` and `message()`.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from domains.envelope import NO_NUL_PATTERN, TIME_PATTERN, binary_message, structured_document

MAX_TEXT = 64
ANNOTATIONS = frozenset({"$schema", "$id", "title", "description", "default", "format", "examples"})
KEYWORDS = ANNOTATIONS | {
    "$defs", "$ref", "type", "properties", "required", "additionalProperties", "anyOf", "const",
    "enum", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength",
    "maxLength", "pattern", "prefixItems", "minItems", "maxItems", "if", "then",
}  # fmt: skip
_RULE = re.compile(r"^(\w+) <= (\w+)$")
TEXT = st.characters(codec="utf-8", exclude_characters="\x00")
SOURCES = ("/prop/a", "/prop/b", "/prop/c")
#: Binary mode, and structured mode with each content-type the decoder accepts.
BINDINGS = (
    "binary",
    "structured application/cloudevents+json",
    "structured application/json",
    "structured none",
)


class UnsupportedSchema(ValueError):
    """The schema uses a keyword the generator does not understand."""


@dataclass(frozen=True)
class Generated:
    """One event as a producer would send it: attributes and data."""

    type: str
    id: str
    source: str
    time: str  # RFC 3339
    data: dict[str, Any]


@dataclass
class Contract:
    """The exported files of one directory, with a validator per file."""

    directory: Path
    envelope: dict[str, Any]
    schemas: dict[str, dict[str, Any]]  # type string -> data schema
    validators: dict[str, Draft202012Validator] = field(default_factory=dict)
    _ids: itertools.count = field(default_factory=itertools.count)

    @classmethod
    def load(cls, directory: Path) -> Contract:
        envelope = json.loads((directory / "cloudevent.schema.json").read_text())
        schemas = {
            path.name.removesuffix(".schema.json"): json.loads(path.read_text())
            for path in sorted(directory.glob("*.schema.json"))
            if path.name not in ("cloudevent.schema.json", "incident.schema.json")
        }
        assert set(schemas) == set(envelope["properties"]["type"]["enum"]), "files and envelope"
        return cls(
            directory,
            envelope,
            schemas,
            {name: Draft202012Validator(schema) for name, schema in schemas.items()},
        )

    def zone_ids(self) -> list[str]:
        return next(iter(self.schemas.values()))["$defs"]["ZoneId"]["enum"]

    def data(self, type_string: str) -> st.SearchStrategy[dict[str, Any]]:
        """Schema-valid `data` of one type that keeps the type's x-ioc-rules."""
        schema = self.schemas[type_string]
        rules = [_parse_rule(text) for text in schema.get("x-ioc-rules", [])]
        valid = self.validators[type_string].is_valid
        return (
            strategy(schema, schema).map(lambda data: _keep_rules(data, rules)).filter(valid)  # type: ignore[arg-type]
        )

    def events(
        self, *, now: datetime, late_horizon: timedelta, types: list[str] | None = None
    ) -> st.SearchStrategy[Generated]:
        """Valid events of every type (or of `types`), times within the late horizon."""
        names = sorted(types or self.schemas)
        newest, oldest = now, now - late_horizon + timedelta(seconds=5)
        span = int((newest - oldest).total_seconds() * 1000)

        @st.composite
        def one(draw: st.DrawFn) -> Generated:
            type_string = draw(st.sampled_from(names))
            data = draw(self.data(type_string))
            back = timedelta(milliseconds=draw(st.integers(0, span)))
            offset = timezone(timedelta(minutes=draw(st.sampled_from([0, 420, -300, 330]))))
            when = (newest - back).astimezone(offset)
            time = when.isoformat(timespec=draw(st.sampled_from(["seconds", "milliseconds"])))
            if when.utcoffset() == timedelta(0) and draw(st.booleans()):
                time = time.removesuffix("+00:00") + "Z"
            source = draw(st.sampled_from(SOURCES))
            return Generated(type_string, f"prop-{next(self._ids)}", source, time, data)

        return one()

    def is_valid_event(self, event: Generated, envelope_changes: dict[str, Any]) -> bool:
        """Whether the structured document of `event` (with changes) passes both schemas."""
        doc = {**document(event), **envelope_changes}
        if not Draft202012Validator(self.envelope).is_valid(doc):
            return False
        validator = self.validators.get(doc.get("type"))  # type: ignore[arg-type]
        return validator is not None and validator.is_valid(doc.get("data"))


def document(event: Generated) -> dict[str, Any]:
    return structured_document(event.id, event.source, event.type, event.time, event.data)


def message(
    event: Generated, binding: str, envelope_changes: dict[str, Any] | None = None
) -> tuple[bytes, list[tuple[str, bytes]]]:
    """(value, headers) of the event in one of BINDINGS, with envelope attributes changed
    (None removes one)."""
    changes = envelope_changes or {}
    if binding == "binary":
        changes = dict(changes)
        content_type = changes.pop("datacontenttype", "application/json")
        value, headers = binary_message(
            id=event.id, source=event.source, type=event.type,
            time=datetime.fromisoformat(event.time), data=event.data,
        )  # fmt: skip
        headers = [(k, v) for k, v in headers if k not in ("ce_time", "content-type")]
        headers += [("ce_time", event.time.encode()), ("content-type", content_type.encode())]
        for name, new in changes.items():
            headers = [(k, v) for k, v in headers if k != f"ce_{name}"]
            if new is not None:
                headers.append((f"ce_{name}", str(new).encode()))
        return value, headers
    doc = {k: v for k, v in {**document(event), **changes}.items() if v is not None}
    content_type = binding.removeprefix("structured ")
    headers = [] if content_type == "none" else [("content-type", content_type.encode())]
    return orjson.dumps(doc), headers


# -- JSON Schema -> strategy -------------------------------------------------------------------


def strategy(schema: dict[str, Any], root: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values valid against `schema` (a subschema of `root`, for $ref), for our keywords only."""
    unknown = set(schema) - KEYWORDS - {k for k in schema if k.startswith("x-")}
    if unknown:
        raise UnsupportedSchema(f"the generator does not understand {sorted(unknown)}")
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/$defs/")
        return strategy(root["$defs"][name], root)
    if "anyOf" in schema:
        return st.one_of([strategy(branch, root) for branch in schema["anyOf"]])
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        return st.integers(schema.get("minimum"), schema.get("maximum"))
    if kind == "number":
        return _numbers(schema)
    if kind == "string":
        return _strings(schema)
    if kind == "array":
        items = schema.get("prefixItems")
        if items is None or schema.get("minItems") != len(items) != schema.get("maxItems"):
            raise UnsupportedSchema("only fixed-length arrays (tuples) are generated")
        return st.tuples(*(strategy(item, root) for item in items)).map(list)
    if kind == "object":
        return _objects(schema, root)
    raise UnsupportedSchema(f"no strategy for {schema}")


def _numbers(schema: dict[str, Any]) -> st.SearchStrategy[float | int]:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    floats = st.floats(
        low, high, allow_nan=False, allow_infinity=False,
        exclude_min="exclusiveMinimum" in schema, exclude_max="exclusiveMaximum" in schema,
    )  # fmt: skip
    low_int = None if low is None else int(low) + 1
    high_int = None if high is None else int(high) - 1
    if low_int is not None and high_int is not None and low_int > high_int:
        return floats
    return floats | st.integers(low_int, high_int)  # a JSON integer is a number too


def _strings(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    pattern = schema.get("pattern")
    if pattern not in (None, NO_NUL_PATTERN, TIME_PATTERN):
        raise UnsupportedSchema(f"pattern {pattern!r}")
    low = schema.get("minLength", 0)
    return st.text(
        TEXT, min_size=low, max_size=max(low, min(schema.get("maxLength", MAX_TEXT), MAX_TEXT))
    )


def _objects(schema: dict[str, Any], root: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    if schema.get("additionalProperties", True) is not False:
        raise UnsupportedSchema("open objects are not generated")
    properties = schema.get("properties", {})
    required = set(schema.get("required", []))
    made = st.fixed_dictionaries(
        {name: strategy(sub, root) for name, sub in properties.items() if name in required},
        optional={
            name: strategy(sub, root) for name, sub in properties.items() if name not in required
        },
    )
    if "if" in schema:  # the location rule: keep what satisfies it (about half of the draws)
        check = Draft202012Validator({k: schema[k] for k in ("if", "then") if k in schema})
        made = made.filter(check.is_valid)
    return made


def _parse_rule(text: str) -> tuple[str, str]:
    match = _RULE.match(text)
    if match is None:
        raise UnsupportedSchema(f"x-ioc-rules: {text!r} is not of the form `a <= b`")
    return match.group(1), match.group(2)


def _keep_rules(data: dict[str, Any], rules: list[tuple[str, str]]) -> dict[str, Any]:
    for low, high in rules:
        if data.get(low) is not None and data.get(high) is not None and data[low] > data[high]:
            data = {**data, low: data[high]}
    return data


def break_rules(data: dict[str, Any], rules: list[str]) -> dict[str, Any] | None:
    """`data` with its first x-ioc-rule broken (`a <= b` -> a = b + 1), or None if it cannot be
    broken within the schema (the caller checks the result against the schema)."""
    for text in rules:
        low, high = _parse_rule(text)
        if data.get(high) is not None:
            return {**data, low: data[high] + 1}
    return None


# -- mutations: one broken thing each, and the documented reasons it may cause -----------------


@dataclass(frozen=True)
class Mutation:
    name: str
    reasons: frozenset[str]
    #: (schema, data, draw) -> the mutated data, or None when this event offers no such target
    data: Callable[[dict[str, Any], dict[str, Any], st.DrawFn], dict[str, Any] | None] | None = None
    envelope: dict[str, Any] | None = None  # attributes to change instead
    schema_invalid: bool = True  # False: breaks a rule JSON Schema cannot say


def _fields(schema: dict[str, Any], data: dict[str, Any], *kinds: str) -> list[str]:
    out = []
    for name, sub in schema["properties"].items():
        branches = sub.get("anyOf", [sub])
        types = {b.get("type") for b in branches}
        if (
            types & set(kinds)
            and "enum" not in json.dumps(branches)
            and "$ref" not in json.dumps(branches)
        ):
            out.append(name)
    return out


def _pick(draw: st.DrawFn, names: list[str]) -> str | None:
    return draw(st.sampled_from(names)) if names else None


def _drop_required(schema: dict, data: dict, draw: st.DrawFn) -> dict | None:
    name = _pick(draw, sorted(schema.get("required", [])))
    return None if name is None else {k: v for k, v in data.items() if k != name}


def _unknown_field(schema: dict, data: dict, draw: st.DrawFn) -> dict | None:
    return {**data, "x_" + draw(st.text("abcdefgh", min_size=1, max_size=6)): 1}


def _out_of_range(schema: dict, data: dict, draw: st.DrawFn) -> dict | None:
    candidates = []
    for name in _fields(schema, data, "number", "integer"):
        branch = next(
            b
            for b in schema["properties"][name].get("anyOf", [schema["properties"][name]])
            if b.get("type") in ("number", "integer")
        )
        if "maximum" in branch:
            candidates.append((name, branch["maximum"] + 1))
        if "minimum" in branch:
            candidates.append((name, branch["minimum"] - 1))
        if "exclusiveMinimum" in branch:
            candidates.append((name, branch["exclusiveMinimum"]))
        if "exclusiveMaximum" in branch:
            candidates.append((name, branch["exclusiveMaximum"]))
    if not candidates:
        return None
    name, value = draw(st.sampled_from(candidates))
    return {**data, name: value}


def _number_as_text(schema: dict, data: dict, draw: st.DrawFn) -> dict | None:
    name = _pick(
        draw, [n for n in _fields(schema, data, "number", "integer") if data.get(n) is not None]
    )
    return None if name is None else {**data, name: str(data[name])}


def _fraction_for_integer(schema: dict, data: dict, draw: st.DrawFn) -> dict | None:
    name = _pick(draw, [n for n in _fields(schema, data, "integer") if data.get(n) is not None])
    return None if name is None else {**data, name: data[name] + 0.5}


def _not_in_enum(schema: dict, data: dict, draw: st.DrawFn) -> dict | None:
    names = [n for n, sub in schema["properties"].items() if "enum" in sub]
    name = _pick(draw, names)
    return None if name is None else {**data, name: "not-one-of-them"}


def _nul_in_text(schema: dict, data: dict, draw: st.DrawFn) -> dict | None:
    name = _pick(draw, [n for n in _fields(schema, data, "string") if isinstance(data.get(n), str)])
    if name is None:
        return None
    at = draw(st.integers(0, len(data[name])))
    return {**data, name: data[name][:at] + "\x00" + data[name][at:]}


def _too_long(schema: dict, data: dict, draw: st.DrawFn) -> dict | None:
    name = _pick(draw, [n for n in _fields(schema, data, "string") if isinstance(data.get(n), str)])
    if name is None:
        return None
    branch = next(
        b
        for b in schema["properties"][name].get("anyOf", [schema["properties"][name]])
        if b.get("type") == "string"
    )
    return {**data, name: "x" * (branch["maxLength"] + 1)}


def _coordinates(schema: dict, data: dict, draw: st.DrawFn) -> dict | None:
    if not data.get("location"):
        return None
    lon, lat = data["location"]["coordinates"]
    bad = draw(st.sampled_from([[180.000001, lat], [-180.5, lat], [lon, 90.5], [lon, -91], [lon]]))
    return {**data, "location": {"type": "Point", "coordinates": bad}}


def _no_location(schema: dict, data: dict, draw: st.DrawFn) -> dict | None:
    return {k: v for k, v in data.items() if k not in ("location", "zone_id")}


def _unknown_zone(schema: dict, data: dict, draw: st.DrawFn) -> dict | None:
    return {**data, "zone_id": "no-such-zone-" + draw(st.text("abc", max_size=3))}


def _inconsistent(schema: dict, data: dict, draw: st.DrawFn) -> dict | None:
    return break_rules(data, schema.get("x-ioc-rules", []))


MUTATIONS: tuple[Mutation, ...] = (
    Mutation("drop a required field", frozenset({"missing_field"}), _drop_required),
    Mutation("unknown field", frozenset({"unknown_field"}), _unknown_field),
    Mutation("number out of range", frozenset({"out_of_range"}), _out_of_range),
    Mutation("number as text", frozenset({"bad_type"}), _number_as_text),
    Mutation("fraction for an integer", frozenset({"bad_type", "out_of_range"}), _fraction_for_integer),
    Mutation("value not in the enum", frozenset({"bad_type"}), _not_in_enum),
    Mutation("U+0000 in a string", frozenset({"invalid_text"}), _nul_in_text),
    Mutation("string too long", frozenset({"bad_type"}), _too_long),
    Mutation("coordinates not WGS84", frozenset({"bad_location"}), _coordinates),
    Mutation("neither location nor zone", frozenset({"bad_location"}), _no_location),
    Mutation("zone not in the zone file", frozenset({"unknown_zone"}), _unknown_zone),
    Mutation("cross-field rule broken", frozenset({"inconsistent"}), _inconsistent, schema_invalid=False),
    Mutation("time without offset", frozenset({"bad_time"}), envelope={"time": "2026-07-15T01:30:00"}),
    Mutation("time not RFC 3339", frozenset({"bad_time"}), envelope={"time": "2026-07-15 01:30:00Z"}),
    Mutation("specversion 0.3", frozenset({"bad_specversion"}), envelope={"specversion": "0.3"}),
    Mutation("unknown type", frozenset({"unknown_type"}), envelope={"type": "vn.nowhere.x.y.v1"}),
    Mutation("empty id", frozenset({"missing_field"}), envelope={"id": ""}),
    Mutation("U+0000 in source", frozenset({"invalid_text"}), envelope={"source": "/prop/\x00"}),
    Mutation("datacontenttype text/xml", frozenset({"bad_type"}), envelope={"datacontenttype": "text/xml"}),
)  # fmt: skip


def mutate(
    contract: Contract, event: Generated, mutation: Mutation, draw: st.DrawFn
) -> tuple[Generated, dict[str, Any]] | None:
    """(the mutated event, envelope changes), or None when the event has no target for it."""
    if mutation.envelope is not None:
        return event, dict(mutation.envelope)
    assert mutation.data is not None
    data = mutation.data(contract.schemas[event.type], event.data, draw)
    if data is None:
        return None
    return Generated(event.type, event.id, event.source, event.time, data), {}


def exported_contract(directory: Path) -> Contract:
    """The contract as `ioc schemas export` writes it into `directory` (zone file included)."""
    from typer.testing import CliRunner

    from ioc.cli import app

    result = CliRunner().invoke(app, ["schemas", "export", str(directory)])
    assert result.exit_code == 0, result.output
    return Contract.load(directory)
