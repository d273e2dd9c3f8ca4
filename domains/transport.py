"""Transport: Buon Ma Thuot's traffic counters, car parks and city buses, and the coast's
ports (open, restricted or closed by the port authority)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from domains.base import Domain, DomainEvent, EventSpec, Measure


class TrafficFlowObserved(DomainEvent):
    """FIWARE TrafficFlowObserved at a road counter or signal controller (one lane group)."""

    spec = EventSpec(
        "traffic_flow",
        1,
        fiware="TrafficFlowObserved",
        summary="Vehicles per hour, speed and occupancy at a road segment.",
        measures=(
            Measure("intensity", "veh/h"),
            Measure("average_vehicle_speed", "km/h"),
            Measure("occupancy", "ratio"),
            Measure("motorbike_share", "ratio"),
        ),
    )

    road: str = Field(min_length=1, max_length=120, description="Street name")
    intensity: int = Field(ge=0, le=20_000, description="Vehicles per hour")
    average_vehicle_speed: float = Field(ge=0, le=200, description="km/h")
    occupancy: float = Field(ge=0, le=1, description="Fraction of time the detector is occupied")
    motorbike_share: float | None = Field(None, ge=0, le=1, description="Fraction of motorbikes")
    congested: bool = False


class ParkingOccupancy(DomainEvent):
    """FIWARE OffStreetParking: free and total spaces of a car park."""

    spec = EventSpec(
        "parking",
        1,
        fiware="OffStreetParking",
        summary="Free and total spaces of a car park.",
        measures=(
            Measure("available_spot_number", "spaces"),
            Measure("occupancy", "ratio"),
        ),
    )

    name: str = Field(min_length=1, max_length=120)
    total_spot_number: int = Field(ge=1, le=10_000)
    available_spot_number: int = Field(ge=0, le=10_000)
    occupancy: float = Field(ge=0, le=1, description="Occupied / total")


class BusPosition(DomainEvent):
    """A city bus's GPS fix (FIWARE Vehicle), with delay against its timetable."""

    spec = EventSpec(
        "bus_position",
        1,
        fiware="Vehicle",
        summary="A bus's position, speed, delay and load.",
        measures=(
            Measure("speed", "km/h"),
            Measure("delay", "s"),
            Measure("passengers", "persons"),
        ),
    )

    route_id: str = Field(min_length=1, max_length=40)
    speed: float = Field(ge=0, le=150, description="km/h")
    heading: float | None = Field(None, ge=0, lt=360, description="Degrees from north")
    delay: int = Field(ge=-3600, le=86_400, description="Seconds behind the timetable")
    passengers: int | None = Field(None, ge=0, le=200)


class PortStatus(DomainEvent):
    """A sea or fishing port's operational status, as its port authority or harbour master
    declares it (FIWARE MarineTransport `Port` has no status; named after it): open,
    restricted (no departures, small craft kept in) or closed (no traffic in or out, as in a
    storm ban)."""

    spec = EventSpec(
        "port_status",
        1,
        fiware="Port",
        summary="A port's status (open, restricted, closed) with the reason and vessels sheltering.",
        measures=(Measure("vessels_in_port", "vessels"), Measure("wave_height", "m")),
    )

    name: str = Field(min_length=1, max_length=160, description="The port's name")
    status: Literal["open", "restricted", "closed"]
    closure_reason: (
        Literal["storm", "high_waves", "fog", "flood", "maintenance", "security", "other"] | None
    ) = Field(None, description="Why it is restricted or closed (absent when open)")
    vessels_in_port: int | None = Field(None, ge=0, le=10_000, description="Vessels in port")
    wave_height: float | None = Field(None, ge=0, le=30, description="Significant wave height, m")


DOMAIN = Domain(
    "transport",
    "Transport",
    (TrafficFlowObserved, ParkingOccupancy, BusPosition, PortStatus),
)
