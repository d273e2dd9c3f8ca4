"""What every domain event has in common: the base model, locations, and measurement specs.

A domain module subclasses `DomainEvent` once per event type and sets `spec = EventSpec(...)`:
its short name, version, FIWARE Smart Data Model (if one exists) and which numeric fields become
rows of the measurements table, with their units. The province namespace and the topic names are
not here: they are the registry's (see `domains.registry`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError


class GeoPoint(BaseModel):
    """A GeoJSON Point, WGS84 (`coordinates` = [longitude, latitude]), as FIWARE's `location`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["Point"] = "Point"
    coordinates: tuple[float, float]

    @model_validator(mode="after")
    def _in_range(self) -> GeoPoint:
        lon, lat = self.coordinates
        if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
            raise PydanticCustomError(
                "bad_coordinates",
                "coordinates [{lon}, {lat}] are not WGS84 [longitude, latitude]",
                {"lon": lon, "lat": lat},
            )
        return self

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
class EventSpec:
    """Static facts about one event type; the type string is `<namespace>.<domain>.<name>.v<version>`."""

    name: str
    version: int = 1
    fiware: str | None = None  # the FIWARE Smart Data Model this follows, if any
    measures: tuple[Measure, ...] = ()
    summary: str = ""
    keywords: tuple[str, ...] = field(default=())


class DomainEvent(BaseModel):
    """Base of every event's `data`: an entity, where it is, and typed fields.

    `entity_id` names the thing that reports (a station, a camera, a hospital); it is the Kafka key.
    A location is a GeoJSON point (`location`) or a zone id (`zone_id`), at least one of them.
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        str_max_length=4096,
        json_schema_extra={"anyOf": [{"required": ["location"]}, {"required": ["zone_id"]}]},
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
