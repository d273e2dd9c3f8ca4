"""Education: daily school attendance and school facilities' status."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from domains.base import Domain, DomainEvent, EventSpec, Measure

Level = Literal["kindergarten", "primary", "lower_secondary", "upper_secondary", "university"]


class SchoolAttendance(DomainEvent):
    """Pupils enrolled and present at a school for a session."""

    spec = EventSpec(
        "school_attendance",
        1,
        summary="Pupils enrolled and present at a school session.",
        measures=(Measure("present", "pupils"), Measure("attendance_rate", "ratio")),
    )

    school: str = Field(min_length=1, max_length=160)
    level: Level
    enrolled: int = Field(ge=1, le=20_000)
    present: int = Field(ge=0, le=20_000)
    attendance_rate: float = Field(ge=0, le=1)


class FacilityStatus(DomainEvent):
    """A school building's services: power, water, internet, and classroom climate."""

    spec = EventSpec(
        "facility_status",
        1,
        summary="A school's power, water and internet status and classroom temperature.",
        measures=(Measure("classroom_temperature", "Cel"), Measure("co2", "ppm")),
    )

    school: str = Field(min_length=1, max_length=160)
    level: Level
    power: Literal["ok", "outage", "generator"]
    water: Literal["ok", "outage", "low_pressure"]
    internet: Literal["ok", "degraded", "down"]
    classroom_temperature: float | None = Field(None, ge=-10, le=60, description="Cel")
    co2: float | None = Field(None, ge=300, le=10_000, description="ppm")


DOMAIN = Domain("education", "Education", (SchoolAttendance, FacilityStatus))
