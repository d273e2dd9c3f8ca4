"""Builds the shipped zone file from the official boundaries of Đắk Lắk's 102 communes and wards.

    python -m geo.tools.build_zones SOURCE_DIR [--out geo/data/daklak_communes_2025.geojson]
                                    [--tolerance 0.001]

SOURCE_DIR is `json/geojson/66_dak_lak/` of thanglequoc/vietnamese-provinces-database (MIT,
"Copyright (c) 2021 Thang Le Quoc"): `66_dak_lak.geojson` (the province) and `wards/<code>_<name>
.geojson` (one unit per file, with its official code, names and area). Get it with git, e.g.

    git clone --depth 1 https://github.com/thanglequoc/vietnamese-provinces-database src
    python -m geo.tools.build_zones src/json/geojson/66_dak_lak

(Its other copy, under `dataset-generation-scripts/`, has two self-intersecting units: not that one.)

Each unit keeps its official 5-digit code as the zone id, its Vietnamese name, an ASCII name, its
kind (`ward` for a phường, `commune` for a xã) and the province as `parent`. The polygons are
simplified together with `shapely.coverage_simplify` (shapely >= 2.1), which moves every shared
border once for both neighbours: the result has no overlaps and no gaps. Simplifying each polygon
on its own, even with preserve_topology, makes hundreds of neighbouring pairs overlap.

The script refuses to write unless: there are 102 units with distinct 5-digit codes, every polygon
is valid before and after, no two units overlap, and their union matches the province polygon.
Then the shipped loader (`geo.zones.load_zones`) must accept the result. Not imported by the
library: `geo` only reads the file it writes.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import unicodedata
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

from geo.zones import load_zones

UNITS = 102  # communes and wards of Đắk Lắk since 1 July 2025 (merged with Phú Yên)
PROVINCE_CODE = "66"
PROVINCE_NAME = "Đắk Lắk"
TOLERANCE = 0.001  # degrees, ~110 m; the largest distance a simplified border moves
# The units' union vs the province polygon. The source draws the province at a coarser scale than
# its units (5,252 vertices against 44,068 for the union; measured 2026-12-01: areas differ by
# 0.08 %, the symmetric difference is 0.97 % of the area, mostly coastline and islets), so "matches"
# means: areas within 0.5 %, and at most 2 % of the area on one side only.
AREA_TOLERANCE = 0.005
SYMMETRIC_TOLERANCE = 0.02
KINDS = {"Phường": "ward", "Xã": "commune"}
CODE = re.compile(r"^\d{5}$")
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "data" / "daklak_communes_2025.geojson"
SOURCE = {
    "repository": "https://github.com/thanglequoc/vietnamese-provinces-database",
    "path": "json/geojson/66_dak_lak/",
    "licence": "MIT, Copyright (c) 2021 Thang Le Quoc",
    "derived_from": "Vietnam Administrative Units Reference Map (sapnhap.bando.com.vn)",
}


class SourceError(ValueError):
    """The source files are not what this script expects; the message says what."""


def ascii_name(name: str) -> str:
    """'Buôn Ma Thuột' -> 'Buon Ma Thuot' (Đ/đ are letters of their own, not D + a mark)."""
    base = name.replace("Đ", "D").replace("đ", "d")
    return unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode()


def _single_feature(path: Path) -> dict[str, Any]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    features = doc.get("features") or []
    if len(features) != 1:
        raise SourceError(f"{path.name}: expected one feature, found {len(features)}")
    return features[0]


def read_units(source: Path) -> list[tuple[dict[str, Any], BaseGeometry]]:
    """(properties, geometry) of every unit file under SOURCE/wards, sorted by code."""
    files = sorted((source / "wards").glob("*.geojson"))
    units = []
    for path in files:
        feature = _single_feature(path)
        props = feature["properties"]
        geom = shape(feature["geometry"])
        if not geom.is_valid:
            raise SourceError(f"{path.name}: invalid polygon: {shapely.is_valid_reason(geom)}")
        units.append((props, geom))
    return sorted(units, key=lambda unit: unit[0]["code"])


def check_coverage(
    codes: list[str], geoms: list[BaseGeometry], province: BaseGeometry, what: str
) -> dict[str, float]:
    """Every check on a set of unit polygons; returns the measured figures."""
    if len(codes) != UNITS:
        raise SourceError(f"{what}: {len(codes)} units, expected {UNITS}")
    if len(set(codes)) != len(codes) or not all(CODE.match(code) for code in codes):
        raise SourceError(f"{what}: codes must be distinct 5-digit official codes")
    for code, geom in zip(codes, geoms, strict=True):
        if geom.is_empty or not geom.is_valid:
            raise SourceError(f"{what}: unit {code} is empty or invalid")
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    overlap = 0.0
    for i, j in zip(left.tolist(), right.tolist(), strict=True):
        if i < j:
            shared = shapely.intersection(geoms[i], geoms[j]).area
            if shared > 1e-12:
                raise SourceError(f"{what}: units {codes[i]} and {codes[j]} overlap ({shared:.3g})")
            overlap += shared
    union = shapely.union_all(geoms)
    area = abs(union.area - province.area) / province.area
    symmetric = shapely.symmetric_difference(union, province).area / province.area
    if area > AREA_TOLERANCE or symmetric > SYMMETRIC_TOLERANCE:
        raise SourceError(
            f"{what}: the units' union differs from the province: area by {area:.2%},"
            f" symmetric difference {symmetric:.2%} of its area"
        )
    return {"overlap_area": overlap, "area_difference": area, "symmetric_difference": symmetric}


def build(source: Path, tolerance: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """The zone document and a report of the checks."""
    province = shape(_single_feature(source / f"{PROVINCE_CODE}_dak_lak.geojson")["geometry"])
    units = read_units(source)
    codes = [props["code"] for props, _ in units]
    raw = [geom for _, geom in units]
    before = check_coverage(codes, raw, province, "source")
    simplified = list(shapely.coverage_simplify(raw, tolerance, simplify_boundary=True))
    simplified = [shapely.set_precision(geom, 1e-6) for geom in simplified]
    after = check_coverage(codes, simplified, province, f"simplified at {tolerance}")
    features = []
    for (props, _), geom in zip(units, simplified, strict=True):
        kind_word = props["fullName"].split(" ", 1)[0]
        if kind_word not in KINDS:
            raise SourceError(f"unit {props['code']}: unknown kind in {props['fullName']!r}")
        features.append(
            {
                "type": "Feature",
                "properties": {
                    "id": props["code"],
                    "name": props["name"],
                    "name_ascii": ascii_name(props["name"]),
                    "full_name": props["fullName"],
                    "kind": KINDS[kind_word],
                    "parent": PROVINCE_CODE,
                    "parent_name": PROVINCE_NAME,
                    "area_km2": props["areaKm2"],
                },
                "geometry": mapping(geom),
            }
        )
    doc = {
        "type": "FeatureCollection",
        "name": "daklak_communes_2025",
        "metadata": {
            "description": (
                "The 102 communes and wards of Đắk Lắk province (units in force since 1 July 2025),"
                " official codes as zone ids"
            ),
            "crs": "WGS84 (EPSG:4326), [longitude, latitude]",
            "source": SOURCE,
            "simplification": f"shapely.coverage_simplify, tolerance {tolerance} degrees",
            "generator": "python -m geo.tools.build_zones",
        },
        "features": features,
    }
    vertices = {
        "before": int(sum(shapely.get_num_coordinates(raw))),
        "after": int(sum(shapely.get_num_coordinates(simplified))),
    }
    return doc, {"source": before, "simplified": after, "vertices": vertices}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="json/geojson/66_dak_lak of the source repo")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--tolerance", type=float, default=TOLERANCE, help="degrees")
    args = parser.parse_args(argv)
    try:
        doc, report = build(args.source, args.tolerance)
    except (SourceError, OSError, KeyError, ValueError) as exc:
        sys.stderr.write(f"build_zones: {exc}\n")
        return 1
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n"
    load_zones(json.loads(text))  # the shipped loader must accept exactly what is written
    args.out.write_text(text, encoding="utf-8")
    sys.stderr.write(
        f"wrote {len(doc['features'])} zones to {args.out} ({len(text.encode()) / 1024:.0f} KB);"
        f" vertices {report['vertices']['before']:,} -> {report['vertices']['after']:,};"
        f" overlaps 0; union vs province (area, symmetric difference): source"
        f" {report['source']['area_difference']:.2%}, {report['source']['symmetric_difference']:.2%};"
        f" simplified {report['simplified']['area_difference']:.2%},"
        f" {report['simplified']['symmetric_difference']:.2%}\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
