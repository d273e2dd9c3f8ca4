"""The registry: event type string -> model, domain -> topic, and the list of domains.

Adding a domain is adding its module and one line to `DOMAINS`. Nothing else in the code base
branches on a domain's name. Type strings are `<namespace>.<domain>.<event>.v<version>`; the
namespace (the deployment, `vn.daklak` by default) is a constructor argument taken from
`Settings.domains.namespace`, so no module hard-codes the province.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

from domains import (
    agriculture,
    education,
    environment,
    health,
    planning,
    security,
    tourism,
    transport,
)
from domains.base import Domain, DomainEvent, EventSpec

DOMAINS: tuple[Domain, ...] = (
    planning.DOMAIN,
    security.DOMAIN,
    environment.DOMAIN,
    tourism.DOMAIN,
    education.DOMAIN,
    health.DOMAIN,
    transport.DOMAIN,
    agriculture.DOMAIN,
)
DEFAULT_NAMESPACE = "vn.daklak"
DEFAULT_TOPIC_PREFIX = "city"


@dataclass(frozen=True, slots=True)
class EventType:
    """One registered event type."""

    type: str  # the full type string, e.g. vn.daklak.environment.air_quality.v1
    domain: str
    model: type[DomainEvent]

    @property
    def spec(self) -> EventSpec:
        return self.model.spec


class Registry:
    def __init__(
        self,
        namespace: str = DEFAULT_NAMESPACE,
        topic_prefix: str = DEFAULT_TOPIC_PREFIX,
        domains: tuple[Domain, ...] = DOMAINS,
    ) -> None:
        self.namespace = namespace
        self.topic_prefix = topic_prefix
        self._domains = {domain.name: domain for domain in domains}
        self._types: dict[str, EventType] = {}
        self._topics = {name: f"{topic_prefix}.{name}.events" for name in self._domains}
        self._domain_of_topic = {topic: name for name, topic in self._topics.items()}
        for domain in domains:
            for model in domain.events:
                spec = model.spec
                name = f"{namespace}.{domain.name}.{spec.name}.v{spec.version}"
                if name in self._types:
                    raise ValueError(f"event type {name} registered twice")
                self._types[name] = EventType(name, domain.name, model)

    def lookup(self, type_string: str) -> EventType | None:
        """The registered type, or None if this type string is unknown."""
        return self._types.get(type_string)

    def topic(self, domain: str) -> str:
        """`<prefix>.<domain>.events`; KeyError for an unknown domain."""
        return self._topics[domain]

    def domain_of_topic(self, topic: str) -> str | None:
        return self._domain_of_topic.get(topic)

    def domains(self) -> list[str]:
        return list(self._domains)

    def domain(self, name: str) -> Domain:
        return self._domains[name]

    def topics(self) -> dict[str, str]:
        """{domain: topic}"""
        return dict(self._topics)

    def types(self, domain: str | None = None) -> list[EventType]:
        return [t for t in self._types.values() if domain is None or t.domain == domain]

    def __iter__(self) -> Iterator[EventType]:
        return iter(self._types.values())

    def __len__(self) -> int:
        return len(self._types)


@cache
def default_registry() -> Registry:
    """The registry with the default namespace (vn.daklak) and topic prefix (city).

    A deployment with other settings builds `Registry(settings.domains.namespace,
    settings.kafka.topic_prefix)` instead.
    """
    return Registry()
