"""Event contracts of the eight domains (pure: pydantic models, no I/O, no zones, no Kafka).

The API the pipeline uses (stable; everything else is internal):

    from domains import Decoder, Event, Rejection, Registry, REASONS

    registry = Registry(namespace=settings.domains.namespace, topic_prefix=settings.kafka.topic_prefix)
    decoder = Decoder(registry, max_bytes=settings.domains.max_event_bytes,
                      max_future=timedelta(seconds=settings.domains.max_future_s))
    result = decoder.decode(record.value, record.headers, now=datetime.now(UTC))

or, with the defaults (namespace vn.daklak, prefix city), in one call:

    result = decode(value, headers, now=now, max_bytes=65536, max_future=timedelta(minutes=5))

Decoding never raises. It returns a `Rejection(reason, message, event_id, type, error_class)`
(reason codes in `REASONS`: the DLQ's `ioc_reason`; the pipeline decides those in
`PIPELINE_REASONS`, e.g. `unknown_zone`, as the decoder knows no zones) or an `Event` with:

    id, source, type, subject       CloudEvents attributes (str; subject may be None)
    time                            event time, tz-aware datetime
    domain                          e.g. "environment" (registry.topic(domain) is its topic)
    entity_id                       the reporting entity, also the Kafka key
    lon, lat                        WGS84 floats, or None when the producer gave only a zone
    zone_id                         the zone the producer gave, or None (geo/ resolves lon/lat)
    data_json                       the validated data as JSON text (what `events.data` stores)
    measurements()                  [(metric, value, unit), ...] for the `measurements` table
    payload                         the typed pydantic model (e.g. AirQualityObserved)
    structured                      True if it came in structured mode

`Registry` maps type strings (`<namespace>.<domain>.<event>.v<version>`) to models and domains to
topics (`<prefix>.<domain>.events`); `registry.domains()` lists the domains. The namespace
(default `vn.daklak`) is the only place the deployment shows; set `IOC_DOMAINS__NAMESPACE`.
`binary_message` / `structured_message` encode events for producers. `domains.schemas` exports
JSON Schemas and the AsyncAPI document (`ioc schemas export DIR`).
"""

from domains.base import Domain, DomainEvent, EventSpec, GeoPoint, Measure, Rule
from domains.envelope import (
    PIPELINE_REASONS,
    REASONS,
    Decoder,
    Event,
    Rejection,
    binary_message,
    decode,
    structured_message,
)
from domains.registry import DOMAINS, EventType, Registry, default_registry

__all__ = [
    "DOMAINS",
    "PIPELINE_REASONS",
    "REASONS",
    "Decoder",
    "Domain",
    "DomainEvent",
    "Event",
    "EventSpec",
    "EventType",
    "GeoPoint",
    "Measure",
    "Registry",
    "Rejection",
    "Rule",
    "binary_message",
    "decode",
    "default_registry",
    "structured_message",
]
