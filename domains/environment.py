"""Environment and resources: air quality, rivers and reservoirs, weather stations.

Dak Lak's concerns: dust and burning-season PM2.5 in Buon Ma Thuot, the Serepok and Krong Ana
rivers and the Lak and Ea Kao reservoirs in the rainy season (May to October), storms.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from domains.base import Domain, DomainEvent, EventSpec, Measure


class AirQualityObserved(DomainEvent):
    """FIWARE AirQualityObserved: concentrations at a station, averaged over the last interval."""

    spec = EventSpec(
        "air_quality",
        1,
        fiware="AirQualityObserved",
        summary="Air pollutant concentrations at a monitoring station.",
        measures=(
            Measure("pm25", "ug/m3"),
            Measure("pm10", "ug/m3"),
            Measure("no2", "ug/m3"),
            Measure("o3", "ug/m3"),
            Measure("co", "mg/m3"),
            Measure("aqi", "index"),
        ),
    )

    pm25: float = Field(ge=0, le=1000, description="PM2.5, ug/m3")
    pm10: float | None = Field(None, ge=0, le=2000, description="PM10, ug/m3")
    no2: float | None = Field(None, ge=0, le=2000, description="NO2, ug/m3")
    o3: float | None = Field(None, ge=0, le=1000, description="O3, ug/m3")
    co: float | None = Field(None, ge=0, le=100, description="CO, mg/m3")
    aqi: int | None = Field(None, ge=0, le=500, description="Air quality index (VN_AQI scale)")


class AirQualityObservedV2(DomainEvent):
    """Version 2: adds SO2, says which AQI standard `aqi` uses, and requires PM10.

    Both versions are accepted while stations migrate; both write the same metrics.
    """

    spec = EventSpec(
        "air_quality",
        2,
        fiware="AirQualityObserved",
        summary="Air pollutant concentrations at a monitoring station (v2: SO2, AQI standard).",
        measures=(
            *AirQualityObserved.spec.measures,
            Measure("so2", "ug/m3"),
        ),
    )

    pm25: float = Field(ge=0, le=1000, description="PM2.5, ug/m3")
    pm10: float = Field(ge=0, le=2000, description="PM10, ug/m3")
    no2: float | None = Field(None, ge=0, le=2000, description="NO2, ug/m3")
    o3: float | None = Field(None, ge=0, le=1000, description="O3, ug/m3")
    co: float | None = Field(None, ge=0, le=100, description="CO, mg/m3")
    so2: float | None = Field(None, ge=0, le=2000, description="SO2, ug/m3")
    aqi: int | None = Field(None, ge=0, le=500, description="Air quality index")
    aqi_standard: Literal["VN_AQI", "US_EPA"] = "VN_AQI"


class WaterLevelObserved(DomainEvent):
    """River or reservoir gauge (FIWARE WaterObserved family): level above the gauge datum."""

    spec = EventSpec(
        "water_level",
        1,
        fiware="WaterObserved",
        summary="Water level and flow at a river or reservoir gauge.",
        measures=(
            Measure("water_level", "m"),
            Measure("flow", "m3/s"),
            Measure("alert_level", "level"),
        ),
    )

    water_body: str = Field(min_length=1, max_length=100, description="River or reservoir name")
    water_body_kind: Literal["river", "reservoir", "lake", "canal"]
    water_level: float = Field(ge=-10, le=600, description="Level above gauge datum, m")
    flow: float | None = Field(None, ge=0, le=50_000, description="Discharge, m3/s")
    alert_level: int = Field(0, ge=0, le=3, description="National flood alert level 0-3")


class WeatherObserved(DomainEvent):
    """FIWARE WeatherObserved at an automatic weather station."""

    spec = EventSpec(
        "weather",
        1,
        fiware="WeatherObserved",
        summary="Temperature, humidity, rain and wind at a weather station.",
        measures=(
            Measure("temperature", "Cel"),
            Measure("relative_humidity", "%"),
            Measure("precipitation", "mm/h"),
            Measure("wind_speed", "m/s"),
            Measure("atmospheric_pressure", "hPa"),
        ),
    )

    temperature: float = Field(ge=-20, le=60, description="Air temperature, Cel")
    relative_humidity: float | None = Field(None, ge=0, le=100, description="Relative humidity, %")
    precipitation: float | None = Field(
        None, ge=0, le=500, description="Rain in the last hour, mm/h"
    )
    wind_speed: float | None = Field(None, ge=0, le=100, description="Wind speed, m/s")
    atmospheric_pressure: float | None = Field(None, ge=800, le=1100, description="hPa")


DOMAIN = Domain(
    "environment",
    "Environment and resources",
    (AirQualityObserved, AirQualityObservedV2, WaterLevelObserved, WeatherObserved),
)
