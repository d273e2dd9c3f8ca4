"""What every domain event has in common: the base model, locations, and measurement specs.

A domain module subclasses `DomainEvent` once per event type and sets `spec = EventSpec(...)`:
its short name, version, FIWARE Smart Data Model (if one exists), which numeric fields become
rows of the measurements table, with their units, and its cross-field rules (`Rule`: what JSON
Schema cannot say; a broken one is the DLQ reason `inconsistent`). The province namespace and the
topic names are not here: they are the registry's (see `domains.registry`).

Models validate strictly (pydantic strict mode), as the exported JSON Schemas read: a number is a
JSON number (not "12.5"), an integer field takes an integer literal (3, not 3.0: the one rule of
types that JSON Schema cannot say, written in every schema's description), a boolean is true or
false.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

Longitude = Annotated[float, Field(ge=-180, le=180, strict=True)]
Latitude = Annotated[float, Field(ge=-90, le=90, strict=True)]


class GeoPoint(BaseModel):
    """A GeoJSON Point, WGS84 (`coordinates` = [longitude -180..180, latitude -90..90]), as
    FIWARE's `location`."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    type: Literal["Point"] = "Point"
    # A list is a tuple here (Python callers pass lists); the numbers stay strict.
    coordinates: tuple[Longitude, Latitude] = Field(strict=False)

    @property
    def lon(self) -> float:
        return self.coordinates[0]

    @property
    def lat(self) -> float:
        return self.coordinates[1]


@dataclass(frozen=True, slots=True)
class Measure:
    """One numeric field of an event that becomes a row (metric, value, unit) of `measurements`."""

    field: str
    unit: str
    metric: str = ""  # defaults to the field name

    @property
    def name(self) -> str:
        return self.metric or self.field


@dataclass(frozen=True, slots=True)
class Rule:
    """A cross-field rule JSON Schema cannot express (e.g. `hospitalised <= new_cases`).

    `text` is what integrators read (the schema's description and `x-ioc-rules`) and what the DLQ
    message says; `holds(event)` is True when the validated event keeps the rule."""

    text: str
    holds: Callable[[Any], bool]


@dataclass(frozen=True, slots=True)
class EventSpec:
    """Static facts about one event type; the type string is `<namespace>.<domain>.<name>.v<version>`."""

    name: str
    version: int = 1
    fiware: str | None = None  # the FIWARE Smart Data Model this follows, if any
    measures: tuple[Measure, ...] = ()
    summary: str = ""
    keywords: tuple[str, ...] = field(default=())
    rules: tuple[Rule, ...] = ()  # cross-field rules; broken -> DLQ reason `inconsistent`


STR_MAX_LENGTH = 4096  # every string of `data` (the schemas say it as maxLength)


class DomainEvent(BaseModel):
    """Base of every event's `data`: an entity, where it is, and typed fields.

    `entity_id` names the thing that reports (a station, a camera, a hospital); it is the Kafka key.
    A location is a GeoJSON point (`location`) or a zone id (`zone_id`), at least one of them.
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        str_max_length=STR_MAX_LENGTH,
    )

    spec: ClassVar[EventSpec]

    entity_id: str = Field(
        min_length=1, max_length=200, description="The reporting entity; the Kafka key."
    )
    location: GeoPoint | None = Field(None, description="GeoJSON Point, WGS84 [lon, lat].")
    zone_id: str | None = Field(
        None,
        min_length=1,
        max_length=100,
        description="A zone id from the city's zone file, when no coordinates are known.",
    )

    @model_validator(mode="after")
    def _located(self) -> DomainEvent:
        if self.location is None and self.zone_id is None:
            raise PydanticCustomError("no_location", "an event needs `location` or `zone_id`")
        for rule in self.spec.rules:
            if not rule.holds(self):
                raise PydanticCustomError(
                    "inconsistent", "broken rule: {rule}", {"rule": rule.text}
                )
        return self

    def measurements(self) -> list[tuple[str, float, str]]:
        """(metric, value, unit) for every declared measure that is present."""
        cls = type(self)
        plan = cls.__dict__.get("_measure_plan")
        if plan is None:  # per class, on first use: one attrgetter and (metric, unit) pairs
            plan = _measure_plan(cls.spec.measures)
            cls._measure_plan = plan
        values, names = plan
        if values is None:
            return []
        got = values(self)
        return [
            (metric, float(value), unit)
            for (metric, unit), value in zip(names, got, strict=True)
            if value is not None
        ]

    def as_data(self) -> dict[str, Any]:
        """The validated data as JSON-able values (what the `events.data` column stores)."""
        return self.model_dump(mode="json", exclude_none=True)


def _measure_plan(
    measures: tuple[Measure, ...],
) -> tuple[Callable[[Any], tuple[Any, ...]] | None, list[tuple[str, str]]]:
    """An attrgetter returning the measures' values as a tuple (even for one), and the
    (metric, unit) of each: DomainEvent.measurements runs once per event in the pipeline."""
    if not measures:
        return None, []
    fields = [m.field for m in measures]
    getter = attrgetter(*fields)
    values = (lambda event: (getter(event),)) if len(fields) == 1 else getter
    return values, [(m.name, m.unit) for m in measures]


@dataclass(frozen=True, slots=True)
class Domain:
    """One domain module's declaration: its name, a human title and its event models."""

    name: str
    title: str
    events: tuple[type[DomainEvent], ...]
