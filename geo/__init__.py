"""City zones: load a GeoJSON zone file and resolve points to zones (pure library, shapely 2).

    from geo import ZoneIndex
    zones = ZoneIndex.from_file(path)          # None: the shipped Dak Lak reference zones
    zones.lookup(lons, lats) -> list[str | None]   # vectorised; None = outside (counted)

The reference file `geo/data/daklak_zones.geojson` has real names and approximate centres of Buon
Ma Thuot's wards and communes and Dak Lak's district towns, with SYNTHETIC polygons (Voronoi cells
clipped to a rough provincial outline), built by `python -m geo.reference`.
"""

from geo.zones import Zone, ZoneFileError, ZoneIndex, load_zones, reference_zone_file, validate

__all__ = ["Zone", "ZoneFileError", "ZoneIndex", "load_zones", "reference_zone_file", "validate"]
