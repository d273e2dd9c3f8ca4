"""CloudEvents 1.0 over Kafka: decode either binding into a typed event, or a rejection.

Strict on what an event is, liberal on how it arrives (every binding the official SDKs produce):
- Binary mode: a `ce_specversion` header. The other attributes are `ce_<name>` headers (`ce_id`,
  `ce_source`, `ce_type`, `ce_time`, optional `ce_subject`), `content-type` is the data's media
  type (application/json, or none) and the message value is the `data` JSON.
- Structured mode: no `ce_specversion` header and the value is one JSON object with the
  attributes and `data`. Its `content-type` header is `application/cloudevents+json` (the
  CloudEvents spec; cloudevents 2.x's core binding), or the data's media type, which is then the
  event's `datacontenttype` (cloudevents 2.x's v1 binding moves the attribute into the header:
  `application/json`), or missing. A JSON object with a `specversion` member is structured
  whatever the content-type; anything else without `ce_specversion` is refused.

Every string the database stores (id, source, subject and every string in `data`) must be free
of U+0000 (`invalid_text`: PostgreSQL's text and jsonb cannot hold it); `time` is RFC 3339 with
an offset (`TIME_PATTERN`, which the exported schemas carry as a pattern). Both bindings validate
`data` the same way: pydantic strict mode on the JSON text.

`Decoder.decode` never raises: it returns an `Event` or a `Rejection(reason, message)`. `REASONS`
lists every reason code. It is pure (the caller passes `now`), fast (pydantic validates the JSON
bytes directly) and safe on arbitrary input.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from pydantic import ValidationError

from domains.base import DomainEvent
from domains.registry import Registry, default_registry

SPECVERSION = "1.0"
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
DATA_CONTENT_TYPE = "application/json"
DEFAULT_MAX_BYTES = 65_536
DEFAULT_MAX_FUTURE = timedelta(minutes=5)

REASONS: dict[str, str] = {
    "empty": "the message has no value",
    "too_large": "the message is larger than the configured maximum",
    "bad_json": "the value (or data) is not a JSON object",
    "missing_field": "a required CloudEvents attribute or data field is missing",
    "bad_type": "an attribute or field has the wrong type or an invalid value",
    "out_of_range": "a numeric field is outside its documented range",
    "unknown_field": "data has a field the event type does not define",
    "bad_specversion": "specversion is not 1.0",
    "unknown_type": "the type string is not registered (unknown event or version)",
    "bad_time": "time is not an RFC 3339 timestamp with a UTC offset",
    "future_time": "time is further in the future than allowed",
    "bad_location": "coordinates are not WGS84 or neither location nor zone_id is given",
    "invalid_text": "a string (id, source, subject or in data) holds U+0000, which the database "
    "cannot store",
    "inconsistent": "a cross-field rule of the event type is broken (its schema's description and "
    "x-ioc-rules list them, e.g. hospitalised <= new_cases)",
    "unknown_zone": "zone_id is not a zone of the city's zone file (decided by the pipeline, "
    "which holds the zone file; the exported schemas list the ids as an enum)",
    "decoder_error": "the decoder itself failed (a bug: report it with the message)",
}
#: Reasons the pipeline decides after decoding: it holds what the pure decoder does not know.
PIPELINE_REASONS = frozenset({"unknown_zone"})
#: RFC 3339 date-time with an offset (T and Z upper case): the exported schemas' `pattern`.
TIME_PATTERN = (
    r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(\.[0-9]+)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
#: "no U+0000" as a JSON Schema pattern (ECMA 262 and Python's `re` read the escape alike).
NO_NUL_PATTERN = "^[^\\u0000]*$"
_TIME = re.compile(TIME_PATTERN)
_JSON_NUL = b"\\u0000"  # U+0000 in JSON text (a raw NUL byte is not valid JSON)
REQUIRED = ("id", "source", "type", "specversion", "time")
_RANGE_ERRORS = frozenset(
    {"greater_than", "greater_than_equal", "less_than", "less_than_equal", "finite_number"}
)
_LOCATION_ERRORS = frozenset({"no_location"})
_STORED_ATTRIBUTES = ("id", "source", "subject")


@dataclass(slots=True)
class Event:
    """A decoded, validated event: the envelope plus the typed `payload` (a DomainEvent).

    Not frozen: one is built per message on the pipeline's hot path, and a frozen dataclass's
    `__init__` (object.__setattr__ per field) costs ~1 us more. Treat it as read-only.
    """

    id: str
    source: str
    type: str
    time: datetime  # tz-aware
    domain: str
    payload: DomainEvent
    subject: str | None = None
    structured: bool = False  # True if it came in structured mode
    #: The validated data as JSON text (what `events.data` stores): the message value itself in
    #: binary mode, the `data` member re-serialised in structured mode. Same document as
    #: `data`, except that members the producer sent as null stay null.
    data_json: str = "{}"

    @property
    def entity_id(self) -> str:
        return self.payload.entity_id

    @property
    def lon(self) -> float | None:
        loc = self.payload.location
        return None if loc is None else loc.coordinates[0]

    @property
    def lat(self) -> float | None:
        loc = self.payload.location
        return None if loc is None else loc.coordinates[1]

    @property
    def zone_id(self) -> str | None:
        """The zone the producer gave, if any (geo/ fills it from lon/lat otherwise)."""
        return self.payload.zone_id

    @property
    def data(self) -> dict[str, Any]:
        """The validated data as JSON-able values (computed on each access)."""
        return self.payload.as_data()

    def measurements(self) -> list[tuple[str, float, str]]:
        """(metric, value, unit) rows, as the event type declares them."""
        return self.payload.measurements()


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message was refused; `reason` is a key of REASONS."""

    reason: str
    message: str
    event_id: str | None = None
    type: str | None = None
    error_class: str = "envelope"  # the check that refused it (DLQ header ioc_error_class)


class Decoder:
    """Decodes Kafka messages against a registry; thread-safe, keeps no state between calls."""

    def __init__(
        self,
        registry: Registry | None = None,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_future: timedelta = DEFAULT_MAX_FUTURE,
    ) -> None:
        self.registry = registry or default_registry()
        self.max_bytes = max_bytes
        self.max_future = max_future

    def decode(
        self, value: bytes | None, headers: Sequence[tuple[str, bytes]] = (), *, now: datetime
    ) -> Event | Rejection:
        """One message's value and headers -> Event or Rejection. Never raises."""
        try:
            return self._decode(value, headers, now)
        except Exception as exc:  # a bug must not stop a stream: labelled, never silent
            name = exc.__class__.__name__
            return Rejection("decoder_error", f"{name}: {exc}", error_class=name)

    def _decode(
        self, value: bytes | None, headers: Sequence[tuple[str, bytes]], now: datetime
    ) -> Event | Rejection:
        if not value:
            return Rejection("empty", "the message has no value")
        if len(value) > self.max_bytes:
            return Rejection(
                "too_large", f"{len(value)} bytes is more than the maximum of {self.max_bytes}"
            )
        attrs: dict[str, Any] = {}
        content_type: bytes | None = None
        header_error: Exception | None = None
        for key, raw in headers:
            if key.startswith("ce_"):
                try:
                    attrs[key[3:]] = raw.decode()
                except (UnicodeDecodeError, AttributeError) as exc:
                    attrs[key[3:]] = raw
                    header_error = exc
            elif key.lower() == "content-type":
                content_type = raw
        structured = "specversion" not in attrs
        doc: dict[str, Any] = {}
        data_type: Any = DATA_CONTENT_TYPE
        if structured:
            found = _structured_document(value, content_type)
            if isinstance(found, Rejection):
                return found
            doc, header_type = found
            attrs = doc
            data_type = doc.get("datacontenttype", header_type or DATA_CONTENT_TYPE)
        elif header_error is not None:
            return Rejection("bad_type", f"a ce_ header is not UTF-8 text: {header_error}")
        elif content_type is not None and _media_type(content_type) != DATA_CONTENT_TYPE:
            data_type = content_type.decode(errors="replace")

        for name in REQUIRED:
            got = attrs.get(name)
            if got is None or got == "":
                where = "attribute " if structured else "header ce_"
                return Rejection("missing_field", f"missing {where}{name}", _text(attrs, "id"))
            if not isinstance(got, str):
                return Rejection(
                    "bad_type", f"{name} must be a string, got {type(got).__name__}", None
                )
        event_id, type_string = attrs["id"], attrs["type"]
        if attrs["specversion"] != SPECVERSION:
            return Rejection(
                "bad_specversion", f"specversion {attrs['specversion']!r} is not 1.0", event_id
            )
        subject = attrs.get("subject")
        if subject is not None and not isinstance(subject, str):
            return Rejection("bad_type", "subject must be a string", event_id, type_string)
        event_type = self.registry.lookup(type_string)
        if event_type is None:
            return Rejection("unknown_type", f"unknown event type {type_string!r}", event_id)
        try:
            if not _TIME.match(attrs["time"]):
                raise ValueError(attrs["time"])
            time = datetime.fromisoformat(attrs["time"])
        except ValueError:
            return Rejection(
                "bad_time",
                f"time {attrs['time']!r} is not RFC 3339 with an offset (2026-07-15T08:30:00+07:00)",
                event_id,
                type_string,
            )
        if time - now > self.max_future:
            return Rejection(
                "future_time",
                f"time {attrs['time']} is {time - now} ahead of now (max {self.max_future})",
                event_id,
                type_string,
            )
        if data_type != DATA_CONTENT_TYPE:
            name = "datacontenttype" if structured else "content-type"
            return Rejection(
                "bad_type", f"{name} {data_type!r} is not {DATA_CONTENT_TYPE}",
                event_id, type_string,
            )  # fmt: skip

        if structured:
            data = doc.get("data")
            if data is None:
                return Rejection("missing_field", "missing data", event_id, type_string)
            if not isinstance(data, dict):
                return Rejection("bad_json", "data is not a JSON object", event_id, type_string)
            body = orjson.dumps(data)  # one validation for both bindings: strict, on JSON text
        else:
            body = value
        try:
            payload = event_type.model.model_validate_json(body)
        except ValidationError as exc:
            reason, message = classify(exc)
            return Rejection(reason, message, event_id, type_string, "ValidationError")
        for name in _STORED_ATTRIBUTES:
            text = attrs.get(name)
            if text is not None and "\x00" in text:
                return Rejection(
                    "invalid_text", f"{name} contains U+0000", event_id, type_string, "InvalidText"
                )
        if _JSON_NUL in body:  # rare: find the string, or a false alarm (an escaped backslash)
            where = _nul_path(orjson.loads(body), "data")
            if where is not None:
                return Rejection(
                    "invalid_text", f"{where} contains U+0000 (the database cannot store it)",
                    event_id, type_string, "InvalidText",
                )  # fmt: skip
        return Event(
            event_id, attrs["source"], type_string, time, event_type.domain, payload,
            subject, structured, body.decode(),  # valid JSON, hence valid UTF-8
        )  # fmt: skip


def _media_type(content_type: bytes) -> str:
    """`application/json; charset=utf-8` -> `application/json` (lower case)."""
    return content_type.split(b";", 1)[0].strip().decode(errors="replace").lower()


def _structured_document(
    value: bytes, content_type: bytes | None
) -> tuple[dict[str, Any], str | None] | Rejection:
    """The structured-mode document and the data's media type that the header names (None when
    it names the CloudEvents format or is missing), or why the value is not one."""
    declared = content_type is not None and _media_type(content_type) == STRUCTURED_CONTENT_TYPE
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        if declared or content_type is None:
            return Rejection("bad_json", f"not JSON: {exc}", error_class="JSONDecodeError")
        doc = None
    if isinstance(doc, dict) and (declared or "specversion" in doc):
        return doc, None if declared or content_type is None else _media_type(content_type)
    if declared or content_type is None:
        return Rejection("bad_json", f"a CloudEvent is a JSON object, got {type(doc).__name__}")
    return Rejection(
        "missing_field",
        f"no ce_specversion header, and with content-type {content_type!r} the value is not a "
        "structured CloudEvent (a JSON object with specversion)",
    )


def _nul_path(node: Any, where: str) -> str | None:
    """Where the first string holding U+0000 is in a parsed JSON value, or None."""
    if isinstance(node, str):
        return where if "\x00" in node else None
    if isinstance(node, dict):
        for key, child in node.items():
            found = _nul_path(key, f"{where} (a member name)") or _nul_path(child, f"{where}.{key}")
            if found is not None:
                return found
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found = _nul_path(child, f"{where}.{index}")
            if found is not None:
                return found
    return None


def decode(
    value: bytes | None,
    headers: Sequence[tuple[str, bytes]] = (),
    *,
    now: datetime,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_future: timedelta = DEFAULT_MAX_FUTURE,
    registry: Registry | None = None,
) -> Event | Rejection:
    """`Decoder(registry, max_bytes=..., max_future=...).decode(value, headers, now=now)`;
    the default registry when none is given. Never raises."""
    return Decoder(registry, max_bytes=max_bytes, max_future=max_future).decode(
        value, headers, now=now
    )


def classify(exc: ValidationError) -> tuple[str, str]:
    """A pydantic error -> (reason, message). One reason, by priority, when there are several."""
    errors = exc.errors(include_url=False, include_input=False)
    kinds = [_reason_of(err["type"], err["loc"]) for err in errors]
    for reason in (
        "bad_json", "bad_location", "missing_field", "bad_type", "unknown_field", "inconsistent",
    ):  # fmt: skip
        if reason in kinds:
            break
    else:
        reason = "out_of_range"
    first = errors[kinds.index(reason)]
    where = ".".join(str(part) for part in first["loc"]) or "data"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return reason, f"{where}: {first['msg']}{more}"


def _reason_of(kind: str, loc: tuple[int | str, ...]) -> str:
    if kind == "json_invalid" or (kind in ("model_type", "model_attributes_type") and not loc):
        return "bad_json"
    if kind in _LOCATION_ERRORS or (loc and loc[0] == "location"):
        return "bad_location"
    if kind == "missing":
        return "missing_field"
    if kind == "extra_forbidden":
        return "unknown_field"
    if kind == "inconsistent":
        return "inconsistent"
    if kind in _RANGE_ERRORS:
        return "out_of_range"
    return "bad_type"


def _text(attrs: dict[str, Any], name: str) -> str | None:
    value = attrs.get(name)
    return value if isinstance(value, str) else None


# -- encoding (producers, the simulator, tests and docs) -------------------------------------


def binary_message(
    *,
    id: str,
    source: str,
    type: str,
    time: datetime,
    data: dict[str, Any] | bytes,
    subject: str | None = None,
) -> tuple[bytes, list[tuple[str, bytes]]]:
    """(value, headers) of a binary-mode message."""
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", id.encode()),
        ("ce_source", source.encode()),
        ("ce_type", type.encode()),
        ("ce_time", time.isoformat().encode()),
        ("content-type", DATA_CONTENT_TYPE.encode()),
    ]
    if subject is not None:
        headers.append(("ce_subject", subject.encode()))
    value = data if isinstance(data, bytes) else orjson.dumps(data)
    return value, headers


def structured_message(
    *,
    id: str,
    source: str,
    type: str,
    time: datetime,
    data: dict[str, Any],
    subject: str | None = None,
) -> tuple[bytes, list[tuple[str, bytes]]]:
    """(value, headers) of a structured-mode message."""
    return orjson.dumps(structured_document(id, source, type, time, data, subject)), [
        ("content-type", STRUCTURED_CONTENT_TYPE.encode())
    ]


def structured_document(
    id: str,
    source: str,
    type: str,
    time: datetime | str,
    data: dict[str, Any],
    subject: str | None = None,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "specversion": SPECVERSION,
        "id": id,
        "source": source,
        "type": type,
        "time": time if isinstance(time, str) else time.isoformat(),
        "datacontenttype": DATA_CONTENT_TYPE,
    }
    if subject is not None:
        doc["subject"] = subject
    doc["data"] = data
    return doc
