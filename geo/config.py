"""Settings of the zone data, composed into `streams.settings.Settings` as `geo`."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class GeoSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    zone_file: Path | None = Field(
        None,
        description="GeoJSON FeatureCollection of the city's zones (IOC_GEO__ZONE_FILE); "
        "unset: the shipped zones, Dak Lak's 102 communes and wards (official codes as ids).",
    )
