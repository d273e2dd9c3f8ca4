"""Agriculture: coffee (and pepper, durian) farms' soil sensors, irrigation and pest reports."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from domains.base import Domain, DomainEvent, EventSpec, Measure

Crop = Literal["coffee", "pepper", "durian", "rice", "cassava", "rubber", "other"]


class SoilMoistureObserved(DomainEvent):
    """FIWARE AgriSoilState-like probe reading in a farm parcel."""

    spec = EventSpec(
        "soil_moisture",
        1,
        fiware="AgriSoilState",
        summary="Volumetric soil moisture and temperature at a farm probe.",
        measures=(
            Measure("soil_moisture", "%"),
            Measure("soil_temperature", "Cel"),
            Measure("depth", "cm"),
        ),
    )

    crop: Crop
    soil_moisture: float = Field(ge=0, le=100, description="Volumetric water content, %")
    soil_temperature: float | None = Field(None, ge=-10, le=70, description="Cel")
    depth: float = Field(30, ge=0, le=300, description="Probe depth, cm")


class IrrigationFlow(DomainEvent):
    """A farm pump or valve's flow (FIWARE AgriParcelOperation, operationType irrigation)."""

    spec = EventSpec(
        "irrigation_flow",
        1,
        fiware="AgriParcelOperation",
        summary="Irrigation flow and cumulative volume at a farm's pump.",
        measures=(Measure("flow_rate", "m3/h"), Measure("volume", "m3")),
    )

    crop: Crop
    flow_rate: float = Field(ge=0, le=5000, description="m3/h")
    volume: float = Field(ge=0, le=1_000_000, description="Volume since the cycle started, m3")
    water_source: Literal["well", "river", "reservoir", "canal", "rain_tank"]


class PestReport(DomainEvent):
    """A pest or disease seen by an extension officer or a trap (FIWARE AgriPest)."""

    spec = EventSpec(
        "pest_report",
        1,
        fiware="AgriPest",
        summary="A pest or crop disease report with severity and affected area.",
        measures=(Measure("severity", "level"), Measure("affected_area", "ha")),
    )

    crop: Crop
    pest: Literal[
        "coffee_berry_borer", "coffee_leaf_rust", "mealybug", "root_nematode",
        "pepper_foot_rot", "locust", "other",
    ]  # fmt: skip
    severity: int = Field(ge=1, le=5, description="1 (trace) .. 5 (crop loss)")
    affected_area: float = Field(ge=0, le=100_000, description="Hectares")


DOMAIN = Domain("agriculture", "Agriculture", (SoilMoistureObserved, IrrigationFlow, PestReport))
