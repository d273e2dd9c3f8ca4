"""City zones: load a GeoJSON zone file and resolve points to zones (pure library, shapely 2).

    from geo import ZoneIndex
    zones = ZoneIndex.from_file(path)          # None: the shipped Dak Lak zones
    zones.lookup(lons, lats) -> list[str | None]   # vectorised; None = outside (counted)

The shipped file `geo/data/daklak_communes_2025.geojson` holds the official boundaries of Dak Lak's
102 communes and wards (the units in force since 1 July 2025), the official 5-digit code as the zone
id, simplified together with shapely.coverage_simplify at 0.001 degrees. `geo/data/NOTICE` gives the
source and licence; `python -m geo.tools.build_zones` rebuilds it (a tool, never imported here).
"""

from geo.zones import Zone, ZoneFileError, ZoneIndex, load_zones, reference_zone_file, validate

__all__ = ["Zone", "ZoneFileError", "ZoneIndex", "load_zones", "reference_zone_file", "validate"]
