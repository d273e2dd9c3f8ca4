"""Zones from GeoJSON and point -> zone lookup with a shapely 2 STRtree (pure: no I/O but reading
the file you name).

Any city's file works: a FeatureCollection of Polygon/MultiPolygon features whose properties have
`id` and `name` (and optionally `kind`, `parent`). The loader refuses invalid geometry, duplicate ids
and overlapping polygons, naming the feature. Zones may share borders: a point on a shared border
belongs to the zone with the smallest id (deterministic). A point in no zone gets None and is
counted in `ZoneIndex.outside`, never dropped.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

DEFAULT_ZONE_FILE = "daklak_communes_2025.geojson"
# Overlaps smaller than this fraction of the smaller zone's area are floating-point noise along a
# shared border, not an overlap.
OVERLAP_TOLERANCE = 1e-9


class ZoneFileError(ValueError):
    """The zone file is unusable; the message names the feature and what is wrong."""


@dataclass(frozen=True, slots=True)
class Zone:
    id: str
    name: str
    kind: str
    parent: str | None
    geometry: BaseGeometry = field(repr=False)
    properties: Mapping[str, Any] = field(default_factory=dict, repr=False)


def reference_zone_file() -> Path:
    """The shipped zones: Đắk Lắk's 102 communes and wards (official codes; see data/NOTICE)."""
    return Path(str(resources.files("geo") / "data" / DEFAULT_ZONE_FILE))


def load_zones(source: Path | str | Mapping[str, Any]) -> list[Zone]:
    """Read and validate a GeoJSON FeatureCollection (a path or the parsed document)."""
    if isinstance(source, Mapping):
        doc: Any = source
        name = "<document>"
    else:
        name = str(source)
        try:
            doc = json.loads(Path(source).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ZoneFileError(f"{name}: cannot read: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise ZoneFileError(f"{name}: not JSON: {exc}") from None
    if not isinstance(doc, Mapping) or doc.get("type") != "FeatureCollection":
        raise ZoneFileError(f"{name}: expected a GeoJSON FeatureCollection")
    features = doc.get("features")
    if not isinstance(features, list) or not features:
        raise ZoneFileError(f"{name}: the FeatureCollection has no features")
    zones = [_zone(name, n, feature) for n, feature in enumerate(features)]
    validate(zones, name)
    return zones


def _zone(file: str, n: int, feature: Any) -> Zone:
    where = f"{file}: feature #{n}"
    if not isinstance(feature, Mapping) or feature.get("type") != "Feature":
        raise ZoneFileError(f"{where}: not a GeoJSON Feature")
    props = feature.get("properties") or {}
    zone_id = props.get("id", feature.get("id"))
    if not isinstance(zone_id, str) or not zone_id:
        raise ZoneFileError(f"{where}: properties.id must be a non-empty string")
    where = f"{file}: feature #{n} (id {zone_id!r})"
    if not isinstance(props.get("name"), str):
        raise ZoneFileError(f"{where}: properties.name must be a string")
    geometry = feature.get("geometry")
    if not isinstance(geometry, Mapping) or geometry.get("type") not in ("Polygon", "MultiPolygon"):
        raise ZoneFileError(f"{where}: geometry must be a Polygon or MultiPolygon")
    try:
        geom = shapely.geometry.shape(geometry)
    except (ValueError, TypeError, AttributeError, IndexError) as exc:
        raise ZoneFileError(f"{where}: unreadable geometry: {exc}") from None
    if geom.is_empty:
        raise ZoneFileError(f"{where}: empty geometry")
    if not geom.is_valid:
        raise ZoneFileError(f"{where}: invalid polygon: {shapely.is_valid_reason(geom)}")
    minx, miny, maxx, maxy = geom.bounds
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise ZoneFileError(f"{where}: coordinates are not WGS84 longitude/latitude")
    parent = props.get("parent")
    return Zone(
        zone_id,
        props["name"],
        str(props.get("kind", "zone")),
        parent if isinstance(parent, str) else None,
        geom,
        dict(props),
    )


def validate(zones: Sequence[Zone], file: str = "<zones>") -> None:
    """Duplicate ids and overlapping polygons -> ZoneFileError naming both features."""
    seen: set[str] = set()
    for zone in zones:
        if zone.id in seen:
            raise ZoneFileError(f"{file}: zone id {zone.id!r} appears twice")
        seen.add(zone.id)
    geoms = [zone.geometry for zone in zones]
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    for i, j in zip(left.tolist(), right.tolist(), strict=True):
        if i >= j:
            continue
        a, b = zones[i], zones[j]
        shared = shapely.intersection(a.geometry, b.geometry).area
        if shared > OVERLAP_TOLERANCE * min(a.geometry.area, b.geometry.area):
            raise ZoneFileError(
                f"{file}: zones {a.id!r} ({a.name}) and {b.id!r} ({b.name}) overlap "
                f"(shared area {shared:.3g} square degrees)"
            )


class ZoneIndex:
    """Point -> zone id over an STRtree. Vectorised: one call resolves a whole batch."""

    def __init__(self, zones: Iterable[Zone]) -> None:
        # Sorted by id: the tree's index order is the id order, so "smallest index" is "smallest id".
        self.zones = sorted(zones, key=lambda zone: zone.id)
        self._by_id = {zone.id: zone for zone in self.zones}
        #: Every zone id, for membership tests.
        self.ids: frozenset[str] = frozenset(self._by_id)
        self._geoms = np.array([zone.geometry for zone in self.zones], dtype=object)
        shapely.prepare(self._geoms)  # prepared polygons answer point-in-polygon fast
        self._tree = shapely.STRtree(self._geoms)
        self._ids = np.array([zone.id for zone in self.zones] + [None], dtype=object)
        self.looked_up = 0
        self.outside = 0  # points that fell in no zone (zone_id None), cumulative

    @classmethod
    def from_file(cls, path: Path | str | None = None) -> ZoneIndex:
        return cls(load_zones(path or reference_zone_file()))

    def __len__(self) -> int:
        return len(self.zones)

    def zone(self, zone_id: str) -> Zone:
        return self._by_id[zone_id]

    def lookup(
        self, lons: Sequence[float | None] | np.ndarray, lats: Sequence[float | None] | np.ndarray
    ) -> list[str | None]:
        """Zone id of each (lon, lat), or None outside every zone (or for a missing coordinate)."""
        x = np.asarray(lons, dtype=float)
        y = np.asarray(lats, dtype=float)
        n = len(x)
        if n == 0:
            return []
        points = shapely.points(x, y)  # NaN coordinates give empty points: no candidate
        inputs, hits = self._tree.query(points)  # candidates: bounding boxes that hold the point
        inside = shapely.intersects_xy(self._geoms[hits], x[inputs], y[inputs])
        inputs, hits = inputs[inside], hits[inside]
        best = np.full(n, len(self.zones), dtype=np.intp)
        np.minimum.at(best, inputs, hits)
        self.looked_up += n
        self.outside += int(np.count_nonzero(best == len(self.zones)))
        return self._ids[best].tolist()

    def lookup_one(self, lon: float, lat: float) -> str | None:
        return self.lookup([lon], [lat])[0]

    def random_point(self, zone_id: str, rng: random.Random) -> tuple[float, float]:
        """A point inside the zone (rejection sampling in its bounds); `rng` is a random.Random."""
        geom = self._by_id[zone_id].geometry
        minx, miny, maxx, maxy = geom.bounds
        for _ in range(1000):
            lon, lat = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
            if shapely.contains_xy(geom, lon, lat):
                return round(lon, 6), round(lat, 6)
        point = geom.representative_point()
        return round(point.x, 6), round(point.y, 6)
