"""Zones: loading and validating GeoJSON, point lookup on borders, outside, in batches."""

from __future__ import annotations

import csv
import json
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from geo import ZoneFileError, ZoneIndex, load_zones, reference_zone_file

DATA = Path(__file__).parent / "data"


def square(zone_id: str, x0: float, y0: float, size: float = 1.0, **props: object) -> dict:
    ring = [[x0, y0], [x0 + size, y0], [x0 + size, y0 + size], [x0, y0 + size], [x0, y0]]
    return {
        "type": "Feature",
        "properties": {"id": zone_id, "name": zone_id.upper(), **props},
        "geometry": {"type": "Polygon", "coordinates": [ring]},
    }


def collection(*features: dict) -> dict:
    return {"type": "FeatureCollection", "features": list(features)}


@pytest.fixture
def two_squares() -> ZoneIndex:
    # b is left of a, so the smaller id is on the right: the order of the file does not matter.
    return ZoneIndex(load_zones(collection(square("b", 0, 0), square("a", 1, 0))))


def test_points_inside_resolve_to_their_zone(two_squares: ZoneIndex) -> None:
    assert two_squares.lookup([0.5, 1.5], [0.5, 0.5]) == ["b", "a"]


def test_a_point_on_a_shared_border_goes_to_the_smallest_id(two_squares: ZoneIndex) -> None:
    assert two_squares.lookup([1.0, 1.0, 1.0], [0.0, 0.5, 1.0]) == ["a", "a", "a"]
    assert two_squares.lookup_one(0.0, 0.5) == "b"  # outer border: only b


def test_points_outside_are_none_and_counted(two_squares: ZoneIndex) -> None:
    result = two_squares.lookup([5.0, 0.5, -1.0, float("nan")], [5.0, 0.5, 0.2, 0.5])
    assert result == [None, "b", None, None]
    assert two_squares.outside == 3
    assert two_squares.looked_up == 4
    assert two_squares.lookup([], []) == []


def test_batch_lookup_matches_one_by_one_on_the_reference_zones() -> None:
    index = ZoneIndex.from_file()
    rng = np.random.default_rng(3)
    lons = rng.uniform(107.4, 109.5, 500)
    lats = rng.uniform(12.1, 13.8, 500)
    batch = index.lookup(lons, lats)
    single = [index.lookup_one(x, y) for x, y in zip(lons, lats, strict=True)]
    assert batch == single
    assert None in batch and any(z is not None for z in batch)


def test_the_shipped_zones_are_the_sources_102_units_with_their_official_codes() -> None:
    with (DATA / "daklak_units_2025.csv").open(encoding="utf-8", newline="") as fh:
        expected = {row["code"]: row["full_name"] for row in csv.DictReader(fh)}
    zones = load_zones(reference_zone_file())
    assert len(expected) == len(zones) == 102
    assert {z.id: z.properties["full_name"] for z in zones} == expected
    assert all(len(z.id) == 5 and z.id.isdigit() for z in zones)
    assert Counter(z.kind for z in zones) == {"commune": 88, "ward": 14}
    assert all(
        z.properties["full_name"] == ("Phường " if z.kind == "ward" else "Xã ") + z.name
        for z in zones
    )
    assert {z.parent for z in zones} == {"66"}
    assert all(z.properties["name_ascii"].isascii() for z in zones)
    assert (reference_zone_file().parent / "NOTICE").read_text().count("Thang Le Quoc") == 1


# Well-known places and the unit that holds them (coordinates read off the map, well inside).
PLACES = {
    "Buôn Ma Thuột ward: Ngã Sáu, the city centre": ((108.0381, 12.6667), "24133"),
    "Tuy Hoà ward: Nguyễn Huệ street by Tuy Hoà beach": ((109.3135, 13.0946), "22015"),
    "Buôn Đôn commune: Bản Đôn tourist area": ((107.7786, 12.8877), "24235"),
    "Liên Sơn Lắk commune: Lắk lake": ((108.1897, 12.4167), "24580"),
}


@pytest.mark.parametrize("place", PLACES)
def test_known_places_fall_in_their_unit(place: str) -> None:
    (lon, lat), zone_id = PLACES[place]
    assert ZoneIndex.from_file().lookup_one(lon, lat) == zone_id


def test_every_zones_representative_point_resolves_to_that_zone() -> None:
    index = ZoneIndex.from_file()
    points = [z.geometry.representative_point() for z in index.zones]
    assert index.lookup([p.x for p in points], [p.y for p in points]) == [z.id for z in index.zones]


def test_random_point_is_inside_its_zone() -> None:
    index = ZoneIndex.from_file()
    rng = random.Random(1)
    for zone in index.zones[:10]:
        lon, lat = index.random_point(zone.id, rng)
        assert index.lookup_one(lon, lat) == zone.id


def test_overlapping_polygons_are_refused_naming_both() -> None:
    with pytest.raises(ZoneFileError, match=r"'a' \(A\) and 'b' \(B\) overlap"):
        load_zones(collection(square("a", 0, 0), square("b", 0.5, 0)))


def test_an_invalid_polygon_is_refused_naming_the_feature() -> None:
    bowtie = square("bow", 0, 0)
    bowtie["geometry"]["coordinates"] = [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]
    with pytest.raises(
        ZoneFileError, match=r"feature #1 \(id 'bow'\): invalid polygon: Self-intersection"
    ):
        load_zones(collection(square("ok", 5, 5), bowtie))


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"type": "Feature"}, "expected a GeoJSON FeatureCollection"),
        (collection(), "has no features"),
        (collection(square("a", 0, 0), square("a", 3, 0)), "zone id 'a' appears twice"),
        (collection({**square("a", 0, 0), "properties": {"name": "x"}}), "properties.id"),
        (
            collection({**square("a", 0, 0), "geometry": {"type": "Point", "coordinates": [0, 0]}}),
            "must be a Polygon",
        ),
        (collection(square("far", 500, 0)), "not WGS84"),
    ],
)
def test_bad_files_say_what_is_wrong(doc: dict, message: str) -> None:
    with pytest.raises(ZoneFileError, match=message):
        load_zones(doc)


def test_unreadable_files_name_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "zones.geojson"
    broken.write_text("{not json")
    with pytest.raises(ZoneFileError, match=r"zones.geojson: not JSON"):
        load_zones(broken)
    with pytest.raises(ZoneFileError, match="cannot read"):
        load_zones(tmp_path / "missing.geojson")


def test_any_city_file_loads_from_disk(tmp_path: Path) -> None:
    path = tmp_path / "city.geojson"
    path.write_text(json.dumps(collection(square("north", 10, 11), square("south", 10, 10))))
    index = ZoneIndex.from_file(path)
    assert index.lookup([10.5, 10.5], [11.5, 10.5]) == ["north", "south"]


def test_the_build_script_refuses_overlaps_missing_units_and_a_wrong_outline() -> None:
    from shapely.geometry import box

    from geo.tools.build_zones import SourceError, ascii_name, check_coverage

    squares = [box(x, y, x + 1, y + 1) for x in range(17) for y in range(6)]  # 102 units
    codes = [f"{24000 + n}" for n in range(102)]
    province = box(0, 0, 17, 6)
    assert check_coverage(codes, squares, province, "grid")["symmetric_difference"] == 0
    with pytest.raises(SourceError, match="101 units, expected 102"):
        check_coverage(codes[1:], squares[1:], province, "grid")
    shifted = [box(0.5, 0, 1.5, 1), *squares[1:]]
    with pytest.raises(SourceError, match="units 24000 and 24006 overlap"):
        check_coverage(codes, shifted, province, "grid")
    with pytest.raises(SourceError, match="differs from the province"):
        check_coverage(codes, squares, box(0, 0, 17, 7), "grid")
    assert ascii_name("Đắk Lắk") == "Dak Lak" and ascii_name("Ea H'Leo") == "Ea H'Leo"
