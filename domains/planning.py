"""Urban planning: building permits, construction-site violations and utility outages."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from domains.base import Domain, DomainEvent, EventSpec, Measure


class BuildingPermit(DomainEvent):
    """A building permit's state change at the one-stop permit office (entity = the permit)."""

    spec = EventSpec(
        "building_permit",
        1,
        summary="A building permit submitted, approved or rejected, with its size.",
        measures=(
            Measure("floor_area", "m2"),
            Measure("floors", "floors"),
            Measure("processing_days", "d"),
        ),
    )

    status: Literal["submitted", "in_review", "approved", "rejected", "expired"]
    use: Literal["residential", "commercial", "industrial", "public", "mixed"]
    floor_area: float = Field(gt=0, le=1_000_000, description="Gross floor area, m2")
    floors: int = Field(ge=1, le=100)
    processing_days: int | None = Field(None, ge=0, le=3650)


class ConstructionViolation(DomainEvent):
    """An inspector's (or a camera's) construction-site violation."""

    spec = EventSpec(
        "construction_violation",
        1,
        summary="A construction-site violation found by an inspector, with the fine.",
        measures=(Measure("severity", "level"), Measure("fine", "VND")),
    )

    violation: Literal[
        "no_permit", "exceeds_permit", "encroachment", "unsafe_site", "dust_noise", "debris"
    ]
    severity: int = Field(ge=1, le=5)
    fine: float | None = Field(None, ge=0, le=10_000_000_000, description="VND")


class UtilityOutage(DomainEvent):
    """An electricity or water outage reported by the utility (entity = the feeder/network node)."""

    spec = EventSpec(
        "utility_outage",
        1,
        summary="An electricity, water or telecom outage with customers affected.",
        measures=(Measure("customers_affected", "customers"), Measure("expected_duration", "min")),
    )

    utility: Literal["electricity", "water", "telecom", "drainage"]
    state: Literal["started", "ongoing", "restored"]
    customers_affected: int = Field(ge=0, le=10_000_000)
    expected_duration: float | None = Field(None, ge=0, le=100_000, description="minutes")
    planned: bool = False


DOMAIN = Domain(
    "planning", "Urban planning", (BuildingPermit, ConstructionViolation, UtilityOutage)
)
