"""Health: hospital beds, ambulance dispatch (115) and notifiable disease reports (dengue)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from domains.base import Domain, DomainEvent, EventSpec, Measure, Rule


class HospitalBedOccupancy(DomainEvent):
    """A hospital's bed census (FIWARE MedicalFacility has no census model; named plainly)."""

    spec = EventSpec(
        "hospital_beds",
        1,
        summary="Occupied and total beds (all and ICU) of a hospital.",
        measures=(
            Measure("beds_occupied", "beds"),
            Measure("occupancy", "ratio"),
            Measure("icu_occupied", "beds"),
            Measure("emergency_waiting", "persons"),
        ),
    )

    facility: str = Field(min_length=1, max_length=160)
    beds_total: int = Field(ge=1, le=10_000)
    beds_occupied: int = Field(ge=0, le=20_000, description="May exceed total (corridor beds)")
    occupancy: float = Field(ge=0, le=3, description="Occupied / total")
    icu_total: int | None = Field(None, ge=0, le=1000)
    icu_occupied: int | None = Field(None, ge=0, le=2000)
    emergency_waiting: int | None = Field(None, ge=0, le=5000)


class AmbulanceDispatch(DomainEvent):
    """A 115 ambulance dispatch: priority and the time from the call to arrival."""

    spec = EventSpec(
        "ambulance_dispatch",
        1,
        summary="An ambulance dispatched by the 115 centre, with response time.",
        measures=(Measure("response_time", "s"), Measure("distance", "km")),
    )

    incident_id: str = Field(min_length=1, max_length=80)
    priority: Literal["P1", "P2", "P3"]
    status: Literal["dispatched", "on_scene", "transporting", "arrived", "cancelled"]
    response_time: int | None = Field(None, ge=0, le=86_400, description="Call to on-scene, s")
    distance: float | None = Field(None, ge=0, le=1000, description="km")


class DiseaseCaseReport(DomainEvent):
    """New cases of a notifiable disease reported by a health station for a zone and day."""

    spec = EventSpec(
        "disease_cases",
        1,
        summary="New and hospitalised cases of a notifiable disease (dengue, HFMD, ...).",
        measures=(Measure("new_cases", "cases"), Measure("hospitalised", "cases")),
        rules=(Rule("hospitalised <= new_cases", lambda e: e.hospitalised <= e.new_cases),),
    )

    disease: Literal["dengue", "hand_foot_mouth", "measles", "malaria", "influenza", "covid19"]
    new_cases: int = Field(ge=0, le=100_000)
    hospitalised: int = Field(0, ge=0, le=100_000)


DOMAIN = Domain("health", "Health", (HospitalBedOccupancy, AmbulanceDispatch, DiseaseCaseReport))
