"""Builds the Dak Lak reference zone file: `python -m geo.reference [OUT]`.

No official boundary file can be fetched here, so the polygons are SYNTHETIC: the Voronoi cells of
real places' approximate centres, clipped to a rough outline of the province. Names and centres
are real (administrative units as before the 2025 reorganisation: Buon Ma Thuot's 13 wards and
8 communes, and the seats of the province's other districts and its town Buon Ho); the borders are
not. Every feature says so in its properties (`synthetic: true`, `boundary_source`).
"""

from __future__ import annotations

import json
import sys
import unicodedata
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry import MultiPoint, Polygon, mapping

from geo.zones import load_zones, reference_zone_file

CITY = "buon-ma-thuot"
PROVINCE = "dak-lak"
BOUNDARY_NOTE = (
    "SYNTHETIC boundary: Voronoi cell of the approximate centre, clipped to a rough provincial "
    "outline. Names and centres are real; borders are not official."
)

# (name, kind, lon, lat); approximate centres, WGS84.
BUON_MA_THUOT: tuple[tuple[str, str, float, float], ...] = (
    ("Thắng Lợi", "ward", 108.044, 12.683),
    ("Thống Nhất", "ward", 108.034, 12.674),
    ("Tân Tiến", "ward", 108.052, 12.674),
    ("Tân Lập", "ward", 108.063, 12.688),
    ("Tân Hòa", "ward", 108.080, 12.698),
    ("Tân An", "ward", 108.043, 12.705),
    ("Tân Lợi", "ward", 108.021, 12.690),
    ("Thành Công", "ward", 108.044, 12.661),
    ("Thành Nhất", "ward", 108.012, 12.668),
    ("Tân Thành", "ward", 108.064, 12.665),
    ("Tự An", "ward", 108.047, 12.646),
    ("Ea Tam", "ward", 108.030, 12.634),
    ("Khánh Xuân", "ward", 108.045, 12.612),
    ("Hòa Thắng", "commune", 108.093, 12.657),
    ("Hòa Xuân", "commune", 108.008, 12.595),
    ("Hòa Khánh", "commune", 108.064, 12.590),
    ("Hòa Phú", "commune", 107.985, 12.560),
    ("Ea Tu", "commune", 108.094, 12.727),
    ("Hòa Thuận", "commune", 108.036, 12.745),
    ("Cư ÊBur", "commune", 107.995, 12.705),
    ("Ea Kao", "commune", 108.098, 12.622),
)
# Districts by their seat (the district town), and the town Buon Ho.
DISTRICTS: tuple[tuple[str, str, float, float], ...] = (
    ("Buôn Hồ", "town", 108.272, 12.917),
    ("Ea H'leo (Ea Drăng)", "district", 108.205, 13.205),
    ("Ea Súp", "district", 107.890, 13.125),
    ("Krông Năng", "district", 108.392, 12.990),
    ("Krông Búk (Pơng Drang)", "district", 108.205, 12.845),
    ("Buôn Đôn (Ea Wer)", "district", 107.910, 12.845),
    ("Cư M'gar (Quảng Phú)", "district", 108.083, 12.830),
    ("Ea Kar", "district", 108.452, 12.808),
    ("M'Đrắk", "district", 108.770, 12.705),
    ("Krông Pắc (Phước An)", "district", 108.310, 12.700),
    ("Cư Kuin (Dray Bhăng)", "district", 108.190, 12.590),
    ("Krông Ana (Buôn Trấp)", "district", 108.030, 12.480),
    ("Krông Bông (Krông Kmar)", "district", 108.345, 12.505),
    ("Lắk (Liên Sơn)", "district", 108.175, 12.410),
)
# A rough outline of the province (not the official boundary).
OUTLINE = Polygon(
    [
        (107.50, 12.95), (107.75, 13.25), (108.05, 13.42), (108.35, 13.35), (108.60, 13.10),
        (108.90, 12.95), (108.98, 12.65), (108.75, 12.40), (108.45, 12.25), (108.15, 12.17),
        (107.95, 12.30), (107.75, 12.55), (107.55, 12.70), (107.50, 12.95),
    ]
)  # fmt: skip


def slug(name: str) -> str:
    base = name.split(" (")[0].replace("Đ", "D").replace("đ", "d")
    ascii_name = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode()
    return "-".join("".join(c if c.isalnum() else " " for c in ascii_name.lower()).split())


def build() -> dict[str, Any]:
    places = [(f"bmt-{slug(n)}", n, k, CITY, x, y) for n, k, x, y in BUON_MA_THUOT] + [
        (f"dl-{slug(n)}", n, k, PROVINCE, x, y) for n, k, x, y in DISTRICTS
    ]
    cells = shapely.voronoi_polygons(
        MultiPoint([(x, y) for *_, x, y in places]), extend_to=OUTLINE
    ).geoms
    features = []
    for zone_id, name, kind, parent, x, y in places:
        centre = shapely.Point(x, y)
        cell = next(c for c in cells if c.contains(centre))
        geom = shapely.set_precision(cell.intersection(OUTLINE), 1e-6)
        features.append(
            {
                "type": "Feature",
                "properties": {
                    "id": zone_id,
                    "name": name,
                    "kind": kind,
                    "parent": parent,
                    "centre": [x, y],
                    "synthetic": True,
                    "boundary_source": BOUNDARY_NOTE,
                },
                "geometry": mapping(geom),
            }
        )
    return {
        "type": "FeatureCollection",
        "name": "daklak_zones",
        "metadata": {
            "synthetic": True,
            "description": "Dak Lak reference zones for the IOC platform. " + BOUNDARY_NOTE,
            "crs": "WGS84 (EPSG:4326), [longitude, latitude]",
            "generator": "python -m geo.reference",
        },
        "features": features,
    }


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else reference_zone_file()
    doc = build()
    load_zones(doc)  # refuse to write a file the loader would reject
    out.write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    sys.stderr.write(f"wrote {len(doc['features'])} zones to {out}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
