"""CloudEvents decoding: every event type round-trips in both bindings; every rejection reason
comes from a crafted input; arbitrary input never raises."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domains import (
    PIPELINE_REASONS,
    REASONS,
    Decoder,
    Event,
    Registry,
    Rejection,
    binary_message,
    decode,
    structured_message,
)
from domains.registry import DOMAINS
from geo import ZoneIndex
from simulator.config import SimulatorConfig
from simulator.generate import Simulation
from simulator.profiles import PROFILES

NOW = datetime(2026, 7, 15, 3, 0, tzinfo=UTC)
REGISTRY = Registry()
DECODER = Decoder(REGISTRY, max_bytes=4096)
AQ = "vn.daklak.environment.air_quality.v1"
GOOD = {
    "entity_id": "aq-1",
    "location": {"type": "Point", "coordinates": [108.04, 12.68]},
    "pm25": 12.5,
}
DENGUE = "vn.daklak.health.disease_cases.v1"
CASES = {"entity_id": "dis-1", "zone_id": "bmt-ea-tam", "disease": "dengue", "new_cases": 3}


def sample_data() -> dict[str, dict]:
    """One realistic `data` per registered type, made by the simulator's profiles."""
    sim = Simulation(SimulatorConfig(count=1, seed=3, start=NOW), REGISTRY, ZoneIndex.from_file())
    moment = sim._moment(0, NOW.timestamp())
    rng = random.Random(3)
    return {
        t.type: PROFILES[t.model].reading(sim.entities[t.model][0], moment, rng) for t in REGISTRY
    }


SAMPLES = sample_data()


def binary(data: object = GOOD, type_: str = AQ, **attrs: object) -> tuple[bytes, list]:
    value, headers = binary_message(
        id="e-1",
        source="/test",
        type=type_,
        time=NOW - timedelta(seconds=5),
        data=data,  # type: ignore[arg-type]
    )
    for name, new in attrs.items():
        headers = [h for h in headers if h[0] != f"ce_{name}"]
        if new is not None:
            headers.append((f"ce_{name}", str(new).encode()))
    return value, headers


def reason(value: bytes | None, headers: list | tuple = ()) -> str:
    result = DECODER.decode(value, headers, now=NOW)
    assert isinstance(result, Rejection), f"expected a rejection, got {result}"
    assert result.reason in REASONS and result.message
    return result.reason


def test_the_registry_has_eight_domains_with_two_to_four_types_each() -> None:
    assert REGISTRY.domains() == [
        "planning",
        "security",
        "environment",
        "tourism",
        "education",
        "health",
        "transport",
        "agriculture",
    ]
    for domain in REGISTRY.domains():
        assert 2 <= len({t.spec.name for t in REGISTRY.types(domain)}) <= 4
        assert REGISTRY.topic(domain) == f"city.{domain}.events"
    assert {t.type for t in REGISTRY.types("environment")} >= {AQ, AQ[:-1] + "2"}
    assert (
        Registry(namespace="th.chiangmai", topic_prefix="cm").topic("health") == "cm.health.events"
    )
    assert Registry(namespace="th.chiangmai").lookup("th.chiangmai.environment.air_quality.v1")
    assert len(SAMPLES) == len(REGISTRY) == sum(len(d.events) for d in DOMAINS)


@pytest.mark.parametrize("type_string", sorted(SAMPLES))
def test_every_event_type_round_trips_in_both_bindings(type_string: str) -> None:
    data = SAMPLES[type_string]
    event_type = REGISTRY.lookup(type_string)
    assert event_type is not None
    expected = event_type.model.model_validate(data)
    for encode in (binary_message, structured_message):
        value, headers = encode(id="abc", source="/src", type=type_string, time=NOW, data=data)
        event = DECODER.decode(value, headers, now=NOW)
        assert isinstance(event, Event), event
        assert (event.id, event.source, event.type, event.time) == ("abc", "/src", type_string, NOW)
        assert event.domain == event_type.domain
        assert event.payload == expected
        assert event.entity_id == data["entity_id"]
        assert orjson.loads(orjson.dumps(event.data)) == event.data  # JSON-able
        assert event_type.model.model_validate(event.data) == expected
        assert event.structured is (encode is structured_message)
        rows = event.measurements()
        assert rows and all(isinstance(v, float) and unit for _, v, unit in rows)
        assert {m for m, _, _ in rows} <= {m.name for m in event_type.spec.measures}
        if "location" in data:
            assert (event.lon, event.lat) == tuple(data["location"]["coordinates"])
        else:
            assert event.zone_id == data["zone_id"] and event.lon is None


def test_time_keeps_its_offset_and_measurements_their_units() -> None:
    value, headers = binary(time="2026-07-15T09:59:00+07:00")
    event = DECODER.decode(value, headers, now=NOW)
    assert isinstance(event, Event)
    assert event.time == datetime(2026, 7, 15, 2, 59, tzinfo=UTC)
    assert event.time.utcoffset() == timedelta(hours=7)
    assert event.measurements() == [("pm25", 12.5, "ug/m3")]


def test_structured_mode_is_detected_without_a_content_type() -> None:
    value, _ = structured_message(id="s", source="/s", type=AQ, time=NOW, data=GOOD)
    assert isinstance(DECODER.decode(value, [], now=NOW), Event)


def test_the_module_level_decode_uses_the_default_registry() -> None:
    value, headers = binary()
    assert isinstance(decode(value, headers, now=NOW), Event)
    assert decode(value, headers, now=NOW, max_bytes=10).reason == "too_large"  # type: ignore[union-attr]


def structured(**changes: object) -> bytes:
    doc = {
        "specversion": "1.0",
        "id": "s-1",
        "source": "/s",
        "type": AQ,
        "time": NOW.isoformat(),
        "data": GOOD,
    }
    doc.update(changes)
    return orjson.dumps({k: v for k, v in doc.items() if v is not None})


CE_JSON = [("content-type", b"application/cloudevents+json")]

CRAFTED: list[tuple[str, str, bytes | None, list]] = [
    ("empty", "no value", None, []),
    ("empty", "zero bytes", b"", binary()[1]),
    ("too_large", "binary", orjson.dumps({**GOOD, "x": "y" * 5000}), binary()[1]),
    ("bad_json", "binary body", b'{"entity_id": "a", ', binary()[1]),
    ("bad_json", "binary body is a list", b"[1, 2]", binary()[1]),
    ("bad_json", "structured", b"{not json", CE_JSON),
    ("bad_json", "structured is not an object", b'"text"', []),
    ("bad_json", "structured data is a list", structured(data=[1]), CE_JSON),
    ("missing_field", "no ce_id", binary()[0], binary(id=None)[1]),
    ("missing_field", "no time", structured(time=None), CE_JSON),
    ("missing_field", "no data", structured(data=None), CE_JSON),
    (
        "missing_field",
        "no entity_id",
        orjson.dumps({k: v for k, v in GOOD.items() if k != "entity_id"}),
        binary()[1],
    ),
    (
        "missing_field",
        "plain JSON without CloudEvents",
        orjson.dumps(GOOD),
        [("content-type", b"application/json")],
    ),
    ("bad_type", "pm25 is text", orjson.dumps({**GOOD, "pm25": "n/a"}), binary()[1]),
    ("bad_type", "pm25 is a numeric string", orjson.dumps({**GOOD, "pm25": "12.5"}), binary()[1]),
    ("bad_type", "aqi has a fraction", orjson.dumps({**GOOD, "aqi": 3.5}), binary()[1]),
    (
        "bad_type",
        "aqi is 3.0 (integers are literals)",
        orjson.dumps({**GOOD, "aqi": 3.0}),
        binary()[1],
    ),
    (
        "bad_type",
        "a boolean as 1",
        orjson.dumps({**CASES, "new_cases": True}),
        binary(type=DENGUE)[1],
    ),
    (
        "bad_type",
        "binary content-type text/plain",
        binary()[0],
        [*binary()[1][:-1], ("content-type", b"text/plain")],
    ),
    (
        "bad_type",
        "structured datacontenttype in the header",
        structured(),
        [("content-type", b"text/xml")],
    ),
    (
        "invalid_text",
        "U+0000 in entity_id",
        orjson.dumps({**GOOD, "entity_id": "a\x00b"}),
        binary()[1],
    ),
    (
        "invalid_text",
        "U+0000 in a nested string",
        orjson.dumps({**CASES, "zone_id": "\x00"}),
        binary(type=DENGUE)[1],
    ),
    ("invalid_text", "U+0000 in source", structured(source="/s\x00"), CE_JSON),
    ("invalid_text", "U+0000 in the ce_subject header", binary()[0], binary(subject="s\x00")[1]),
    (
        "inconsistent",
        "hospitalised > new_cases",
        orjson.dumps({**CASES, "hospitalised": 4}),
        binary(type=DENGUE)[1],
    ),
    ("bad_type", "id is a number", structured(id=42), CE_JSON),
    ("bad_type", "header not UTF-8", binary()[0], [*binary()[1], ("ce_subject", b"\xff\xfe")]),
    ("bad_type", "data content type", structured(datacontenttype="text/xml"), CE_JSON),
    ("out_of_range", "negative PM2.5", orjson.dumps({**GOOD, "pm25": -3}), binary()[1]),
    ("unknown_field", "typo", orjson.dumps({**GOOD, "pm2_5": 3}), binary()[1]),
    ("bad_specversion", "0.3", binary()[0], binary(specversion="0.3")[1]),
    ("unknown_type", "unknown version", binary()[0], binary(type=AQ[:-1] + "9")[1]),
    (
        "unknown_type",
        "other namespace",
        binary()[0],
        binary(type="th.bangkok.environment.air_quality.v1")[1],
    ),
    ("bad_time", "not a time", binary()[0], binary(time="yesterday")[1]),
    ("bad_time", "no offset", binary()[0], binary(time="2026-07-15T02:00:00")[1]),
    ("bad_time", "ISO 8601 basic, not RFC 3339", binary()[0], binary(time="20260715T020000Z")[1]),
    ("bad_time", "a space, not T", binary()[0], binary(time="2026-07-15 02:00:00+00:00")[1]),
    ("bad_time", "30 February", binary()[0], binary(time="2026-02-30T02:00:00Z")[1]),
    (
        "future_time",
        "an hour ahead",
        binary()[0],
        binary(time=(NOW + timedelta(hours=1)).isoformat())[1],
    ),
    (
        "bad_location",
        "longitude 180.5",
        orjson.dumps({**GOOD, "location": {"type": "Point", "coordinates": [180.5, 12]}}),
        binary()[1],
    ),
    (
        "bad_location",
        "longitude 200",
        orjson.dumps({**GOOD, "location": {"type": "Point", "coordinates": [200, 12]}}),
        binary()[1],
    ),
    (
        "bad_location",
        "latitude 95",
        orjson.dumps({**GOOD, "location": {"type": "Point", "coordinates": [108, 95]}}),
        binary()[1],
    ),
    (
        "bad_location",
        "no location and no zone",
        orjson.dumps({"entity_id": "a", "pm25": 1}),
        binary()[1],
    ),
    (
        "bad_location",
        "not a Point",
        orjson.dumps({**GOOD, "location": {"type": "Line", "coordinates": [1, 2]}}),
        binary()[1],
    ),
]


@pytest.mark.parametrize(
    ("expected", "case", "value", "headers"), CRAFTED, ids=[f"{c[0]}:{c[1]}" for c in CRAFTED]
)
def test_each_rejection_reason_comes_from_a_crafted_input(
    expected: str, case: str, value: bytes | None, headers: list
) -> None:
    assert reason(value, headers) == expected


def test_every_decoder_reason_is_exercised() -> None:
    produced = {case[0] for case in CRAFTED}
    # too_late and PIPELINE_REASONS are the pipeline's; decoder_error only on a bug.
    assert produced == set(REASONS) - {"decoder_error"} - PIPELINE_REASONS


def test_a_rejection_keeps_the_id_and_type_when_known() -> None:
    value, headers = binary(data={**GOOD, "pm25": -3})
    result = DECODER.decode(value, headers, now=NOW)
    assert isinstance(result, Rejection)
    assert (result.event_id, result.type, result.error_class) == ("e-1", AQ, "ValidationError")
    assert "pm25" in result.message


def test_a_zone_id_is_enough_for_a_location() -> None:
    value, headers = binary(data={"entity_id": "aq-1", "zone_id": "bmt-tan-loi", "pm25": 3})
    event = DECODER.decode(value, headers, now=NOW)
    assert isinstance(event, Event)
    assert (event.zone_id, event.lon, event.lat) == ("bmt-tan-loi", None, None)


HEADER_NAMES = st.sampled_from(
    [
        "ce_id",
        "ce_type",
        "ce_source",
        "ce_time",
        "ce_specversion",
        "ce_subject",
        "content-type",
        "x",
    ]
)


@settings(max_examples=400, deadline=None)
@given(
    value=st.one_of(st.none(), st.binary(max_size=300)),
    headers=st.lists(st.tuples(HEADER_NAMES, st.binary(max_size=40)), max_size=8),
)
def test_arbitrary_bytes_and_headers_never_raise(value: bytes | None, headers: list) -> None:
    result = DECODER.decode(value, headers, now=NOW)
    assert isinstance(result, Event | Rejection)
    assert not (isinstance(result, Rejection) and result.reason == "decoder_error"), result


JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.floats(allow_nan=False)
    | st.integers(-(2**63), 2**63 - 1)
    | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    data=st.dictionaries(
        st.sampled_from(["entity_id", "location", "zone_id", "pm25", "pm10", "aqi", "other"]),
        JSONISH,
    ),
    attrs=st.dictionaries(
        st.sampled_from(
            ["id", "source", "type", "time", "specversion", "subject", "datacontenttype"]
        ),
        JSONISH | st.sampled_from([AQ, "1.0", NOW.isoformat()]),
    ),
)
def test_arbitrary_structured_documents_never_raise(data: dict, attrs: dict) -> None:
    value = orjson.dumps({**attrs, "data": data})
    for headers in ([], CE_JSON):
        result = DECODER.decode(value, headers, now=NOW)
        assert isinstance(result, Event | Rejection)
        assert not (isinstance(result, Rejection) and result.reason == "decoder_error"), result
        value_b, headers_b = binary(data=data)
        result = DECODER.decode(value_b, headers_b, now=NOW)
        assert not (isinstance(result, Rejection) and result.reason == "decoder_error"), result


def test_naive_now_is_a_bug_the_decoder_reports_not_raises() -> None:
    value, headers = binary()
    result = DECODER.decode(value, headers, now=NOW.replace(tzinfo=None))
    assert isinstance(result, Rejection) and result.reason == "decoder_error"
    assert isinstance(
        DECODER.decode(value, headers, now=NOW.astimezone(timezone(timedelta(hours=7)))), Event
    )


@pytest.mark.parametrize(
    "value",
    [
        b'{"specversion": "1.0", "n": 1e999}',
        b'{"n": 123456789012345678901234567890}',
        b"\xff\xfe{}",
    ],
)
def test_odd_json_is_a_rejection(value: bytes) -> None:
    assert reason(value, CE_JSON) in ("bad_json", "missing_field")
    assert reason(value, binary()[1]) in ("bad_json", "bad_type", "missing_field")


# -- what the official SDK sends (cloudevents 2.2.0: the v1 Kafka binding and the core one) -----


def sdk_messages(data: dict, type_: str) -> dict[str, tuple[bytes, list]]:
    """{binding: (value, headers)} of one event, encoded by cloudevents 2.2.0 itself."""
    from cloudevents.core.bindings import kafka as core_kafka
    from cloudevents.core.v1.event import CloudEvent as CoreCloudEvent
    from cloudevents.v1 import kafka as v1_kafka
    from cloudevents.v1.http import CloudEvent as V1CloudEvent

    attrs = {"id": "sdk-1", "source": "/sdk", "type": type_}
    when = NOW - timedelta(seconds=7)
    ct = {"datacontenttype": "application/json"}
    v1 = V1CloudEvent({**attrs, "time": when.isoformat(), **ct}, data)
    v1_bare = V1CloudEvent({**attrs, "time": when.isoformat()}, data)
    core = CoreCloudEvent(attributes={**attrs, "time": when, **ct}, data=data)
    core_bare = CoreCloudEvent(attributes={**attrs, "time": when}, data=data)
    messages = {
        "v1.to_structured": v1_kafka.to_structured(v1),  # content-type: application/json
        "v1.to_structured, no datacontenttype": v1_kafka.to_structured(v1_bare),  # no header
        "v1.to_binary": v1_kafka.to_binary(v1),  # (needs a datacontenttype)
        "core.to_structured": core_kafka.to_structured_event(core),
        "core.to_structured, no datacontenttype": core_kafka.to_structured_event(core_bare),
        "core.to_binary": core_kafka.to_binary_event(core),
        "core.to_binary, no datacontenttype": core_kafka.to_binary_event(core_bare),
    }
    return {name: (m.value, list(m.headers.items())) for name, m in messages.items()}


SDK_MESSAGES = sdk_messages(SAMPLES[AQ], AQ)


@pytest.mark.parametrize("binding", sorted(SDK_MESSAGES))
def test_every_binding_of_the_official_sdk_decodes(binding: str) -> None:
    value, headers = SDK_MESSAGES[binding]
    event = DECODER.decode(value, headers, now=NOW)
    assert isinstance(event, Event), (binding, headers, value[:200], event)
    assert (event.id, event.source, event.type) == ("sdk-1", "/sdk", AQ)
    assert event.time == NOW - timedelta(seconds=7)
    assert event.payload == REGISTRY.lookup(AQ).model.model_validate(SAMPLES[AQ])  # type: ignore[union-attr]
    assert event.structured is ("structured" in binding)


def test_the_v1_binding_moves_datacontenttype_into_the_header() -> None:
    """The case of issue 12: no ce_ headers, content-type application/json, a full document."""
    value, headers = SDK_MESSAGES["v1.to_structured"]
    assert headers == [("content-type", b"application/json")]
    assert "datacontenttype" not in orjson.loads(value)


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        b"application/cloudevents+json",
        b"application/cloudevents+json; charset=utf-8",
        b"application/json",
        b"Application/JSON; charset=UTF-8",
    ],
)
def test_a_document_with_specversion_is_structured_whatever_the_content_type(
    content_type: bytes | None,
) -> None:
    headers = [] if content_type is None else [("content-type", content_type)]
    event = DECODER.decode(structured(), headers, now=NOW)
    assert isinstance(event, Event) and event.structured, event


def test_without_specversion_anywhere_it_is_not_an_event() -> None:
    for headers in ([], [("content-type", b"application/json")], [("ce_id", b"1")]):
        assert reason(orjson.dumps(GOOD), headers) in ("missing_field", "bad_json")


def test_an_escaped_backslash_before_u0000_is_text_not_a_nul() -> None:
    value, headers = binary(data={**GOOD, "entity_id": "a\\u0000"})  # backslash, then "u0000"
    assert b"\\\\u0000" in value
    event = DECODER.decode(value, headers, now=NOW)
    assert isinstance(event, Event) and event.entity_id == "a\\u0000"


def test_the_broken_cross_field_rule_is_named() -> None:
    value, headers = binary(data={**CASES, "hospitalised": 4}, type_=DENGUE)
    result = DECODER.decode(value, headers, now=NOW)
    assert isinstance(result, Rejection) and result.reason == "inconsistent"
    assert "hospitalised <= new_cases" in result.message
