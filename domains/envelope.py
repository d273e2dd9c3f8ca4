"""CloudEvents 1.0 over Kafka: decode either binding into a typed event, or a rejection.

Binary mode: the CloudEvents attributes are `ce_<name>` headers (`ce_id`, `ce_source`, `ce_type`,
`ce_specversion`, `ce_time`, optional `ce_subject`), `content-type` is the data's media type and
the message value is the `data` JSON. Structured mode: the value is one JSON document with the
attributes and `data`; its `content-type` header is `application/cloudevents+json`, or the value is
recognised by its `specversion` member when the header is missing.

`Decoder.decode` never raises: it returns an `Event` or a `Rejection(reason, message)`. `REASONS`
lists every reason code. It is pure (the caller passes `now`), fast (pydantic validates the JSON
bytes directly in binary mode) and safe on arbitrary input.
"""

from __future__ import annotations

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
    "decoder_error": "the decoder itself failed (a bug: report it with the message)",
}
REQUIRED = ("id", "source", "type", "specversion", "time")
_RANGE_ERRORS = frozenset(
    {"greater_than", "greater_than_equal", "less_than", "less_than_equal", "finite_number"}
)
_LOCATION_ERRORS = frozenset({"no_location", "bad_coordinates"})


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
        if structured:
            if content_type is not None and not content_type.startswith(
                STRUCTURED_CONTENT_TYPE.encode()
            ):
                if not attrs:
                    return Rejection(
                        "missing_field",
                        f"no ce_specversion header and content-type {content_type!r} is not "
                        f"{STRUCTURED_CONTENT_TYPE}",
                    )
                return Rejection("missing_field", "missing ce_specversion header")
            try:
                doc = orjson.loads(value)
            except orjson.JSONDecodeError as exc:
                return Rejection("bad_json", f"not JSON: {exc}", error_class="JSONDecodeError")
            if not isinstance(doc, dict):
                return Rejection(
                    "bad_json", f"a CloudEvent is a JSON object, got {type(doc).__name__}"
                )
            attrs = doc
        elif header_error is not None:
            return Rejection("bad_type", f"a ce_ header is not UTF-8 text: {header_error}")

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
            time = datetime.fromisoformat(attrs["time"])
        except ValueError:
            return Rejection(
                "bad_time", f"time {attrs['time']!r} is not RFC 3339", event_id, type_string
            )
        if time.tzinfo is None:
            return Rejection(
                "bad_time", f"time {attrs['time']!r} has no UTC offset", event_id, type_string
            )
        if time - now > self.max_future:
            return Rejection(
                "future_time",
                f"time {attrs['time']} is {time - now} ahead of now (max {self.max_future})",
                event_id,
                type_string,
            )

        model = event_type.model
        try:
            if structured:
                data_type = attrs.get("datacontenttype", DATA_CONTENT_TYPE)
                if data_type != DATA_CONTENT_TYPE:
                    return Rejection(
                        "bad_type", f"datacontenttype {data_type!r} is not {DATA_CONTENT_TYPE}",
                        event_id, type_string,
                    )  # fmt: skip
                data = doc.get("data")
                if data is None:
                    return Rejection("missing_field", "missing data", event_id, type_string)
                if not isinstance(data, dict):
                    return Rejection("bad_json", "data is not a JSON object", event_id, type_string)
                payload = model.model_validate(data)
                data_json = orjson.dumps(data).decode()
            else:
                if content_type is not None and not content_type.startswith(b"application/json"):
                    return Rejection(
                        "bad_type", f"content-type {content_type!r} is not {DATA_CONTENT_TYPE}",
                        event_id, type_string,
                    )  # fmt: skip
                payload = model.model_validate_json(value)
                data_json = value.decode()  # valid JSON, hence valid UTF-8
        except ValidationError as exc:
            reason, message = classify(exc)
            return Rejection(reason, message, event_id, type_string, "ValidationError")
        return Event(
            event_id, attrs["source"], type_string, time, event_type.domain, payload,
            subject, structured, data_json,
        )  # fmt: skip


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
    for reason in ("bad_json", "bad_location", "missing_field", "bad_type", "unknown_field"):
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
