"""Tourism: visitor counts at sites (the coffee festival, Ban Don, Dray Nur falls, Lak lake) and
hotel occupancy."""

from __future__ import annotations

from pydantic import Field

from domains.base import Domain, DomainEvent, EventSpec, Measure


class VisitorCount(DomainEvent):
    """FIWARE CrowdFlowObserved at a tourist site's gates: people in, out, and present."""

    spec = EventSpec(
        "visitor_count",
        1,
        fiware="CrowdFlowObserved",
        summary="People entering, leaving and present at a tourist site.",
        measures=(
            Measure("people_count", "persons"),
            Measure("entries", "persons"),
            Measure("occupancy", "ratio"),
        ),
    )

    site: str = Field(min_length=1, max_length=160)
    people_count: int = Field(ge=0, le=500_000, description="Present now")
    entries: int = Field(0, ge=0, le=500_000, description="Entries in the last interval")
    exits: int = Field(0, ge=0, le=500_000)
    capacity: int = Field(ge=1, le=500_000)
    occupancy: float = Field(ge=0, le=5, description="Present / capacity")


class HotelOccupancy(DomainEvent):
    """A hotel's room census (FIWARE Hotel's occupancy attributes)."""

    spec = EventSpec(
        "hotel_occupancy",
        1,
        fiware="Hotel",
        summary="Occupied and total rooms of a hotel.",
        measures=(Measure("rooms_occupied", "rooms"), Measure("occupancy", "ratio")),
    )

    hotel: str = Field(min_length=1, max_length=160)
    stars: int | None = Field(None, ge=0, le=5)
    rooms_total: int = Field(ge=1, le=5000)
    rooms_occupied: int = Field(ge=0, le=5000)
    occupancy: float = Field(ge=0, le=1)


DOMAIN = Domain("tourism", "Tourism", (VisitorCount, HotelOccupancy))
