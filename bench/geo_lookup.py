"""Point -> zone lookups per second: the STRtree batch lookup against a naive loop over polygons.

    .venv/bin/python bench/geo_lookup.py [--points 10000] [--zones 200] [--seed 7]
    .venv/bin/python bench/geo_lookup.py --zone-file shipped    # or a path to any zone file

By default 200 synthetic zones (Voronoi cells of random points in a 0.5 x 0.5 degree square);
with --zone-file, that file's zones (`shipped`: geo/data/daklak_communes_2025.geojson, Dak Lak's
102 units). 10,000 random points in the zones' bounds, a little beyond (some outside). Prints
both rates and their ratio.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import shapely
from shapely.geometry import MultiPoint, box, mapping

from geo.zones import ZoneIndex, load_zones, reference_zone_file

AREA = (108.0, 12.5, 108.5, 13.0)


def synthetic_zones(count: int, rng: np.random.Generator) -> dict:
    outline = box(*AREA)
    seeds = rng.uniform([AREA[0], AREA[1]], [AREA[2], AREA[3]], size=(count, 2))
    cells = shapely.voronoi_polygons(MultiPoint(seeds), extend_to=outline).geoms
    features = [
        {
            "type": "Feature",
            "properties": {"id": f"z{n:04d}", "name": f"zone {n}", "kind": "synthetic"},
            "geometry": mapping(cell.intersection(outline)),
        }
        for n, cell in enumerate(cells)
    ]
    return {"type": "FeatureCollection", "features": features}


def naive(zones: list, lons: np.ndarray, lats: np.ndarray) -> list[str | None]:
    out: list[str | None] = []
    for lon, lat in zip(lons.tolist(), lats.tolist(), strict=True):
        point = shapely.Point(lon, lat)
        found = None
        for zone in zones:
            if zone.geometry.intersects(point) and (found is None or zone.id < found):
                found = zone.id
        out.append(found)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--zones", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--zone-file", help="a GeoJSON zone file, or `shipped`")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    if args.zone_file:
        path = reference_zone_file() if args.zone_file == "shipped" else args.zone_file
        zones = load_zones(path)
        print(f"zone file {path}")
    else:
        zones = load_zones(synthetic_zones(args.zones, rng))
    minx, miny, maxx, maxy = shapely.total_bounds([zone.geometry for zone in zones])
    pad_x, pad_y = (maxx - minx) * 0.025, (maxy - miny) * 0.025
    lons = rng.uniform(minx - pad_x, maxx + pad_x, args.points)
    lats = rng.uniform(miny - pad_y, maxy + pad_y, args.points)

    index = ZoneIndex(zones)
    index.lookup(lons[:100], lats[:100])  # warm up
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        fast = index.lookup(lons, lats)
        best = min(best, time.perf_counter() - started)
    tree_rate = args.points / best

    started = time.perf_counter()
    slow = naive(zones, lons, lats)
    naive_rate = args.points / (time.perf_counter() - started)

    assert fast == slow, "the STRtree and the naive loop disagree"
    outside = sum(zone is None for zone in fast)
    print(f"{len(zones)} zones, {args.points} points ({outside} outside)")
    print(f"STRtree batch : {tree_rate:12,.0f} lookups/s")
    print(f"naive loop    : {naive_rate:12,.0f} lookups/s")
    print(f"ratio         : {tree_rate / naive_rate:12,.1f}x")


if __name__ == "__main__":
    main()
