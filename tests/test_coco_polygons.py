"""COCO polygons are painted pixel for pixel as pycocotools paints them.

``convert`` from COCO painted a polygon ``segmentation`` with Pillow's ``ImageDraw.polygon``,
which fills edges inclusively: small objects grew (the 2x2 square ``[0,0, 2,0, 2,2, 0,2]`` became
9 pixels where pycocotools, and with it ``annToMask``, COCOeval and the trainers, gives 4), a
silent change of the user's annotation. The rasteriser is now a numpy port of pycocotools'
``rleFrPoly``; these tests hold it to pycocotools itself (a test dependency only), exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from tests.jobs_helpers import run_cli
from totask_manifest._analytics.coco_polygons import (
    MAX_COORDINATE,
    boundary_points,
    fill_flat,
    polygons_to_mask,
)
from totask_manifest._analytics.masks import read_mask, segmentation_to_mask

#: a test dependency ([test] extra); without it these checks against pycocotools are skipped
mask_utils = pytest.importorskip("pycocotools.mask")


def pycocotools_mask(polygons: list[list[float]], width: int, height: int) -> np.ndarray:
    """What ``COCO.annToMask`` paints for a polygon segmentation: each polygon's RLE, merged."""
    rles = mask_utils.frPyObjects(polygons, height, width)
    return mask_utils.decode(mask_utils.merge(rles)).astype(bool)


def test_the_2x2_square_is_4_pixels_as_pycocotools_paints_it() -> None:
    square = [[0, 0, 2, 0, 2, 2, 0, 2]]
    mask = polygons_to_mask(square, 5, 5)
    expected = np.zeros((5, 5), dtype=bool)
    expected[:2, :2] = True
    assert np.array_equal(mask, expected), mask.astype(int)  # Pillow painted 9: rows and columns 0..2
    assert np.array_equal(mask, pycocotools_mask(square, 5, 5))


CASES = {
    "triangle, fractional": ([[0.3, 0.7, 7.9, 1.2, 3.4, 6.6]], 9, 8),
    "self-intersecting bow tie": ([[0, 0, 8, 8, 8, 0, 0, 8]], 10, 10),
    "star, even-odd": ([[5, 0, 6.5, 9, 0, 3, 10, 3, 3.5, 9]], 11, 10),
    "over every border": ([[-3, -2, 14, -1, 15, 12, -4, 11]], 10, 9),
    "far outside, one edge through": ([[-5000, 2, 9000, 3, 9000, 30000, -5000, 30000]], 12, 10),
    "thin sliver": ([[0, 0, 9.9, 0.1, 0, 0.2]], 10, 3),
    "repeated vertices": ([[1, 1, 1, 1, 6, 1, 6, 1, 6, 6, 1, 6]], 8, 8),
    "two overlapping polygons": ([[0, 0, 5, 0, 5, 5, 0, 5], [3, 3, 8, 3, 8, 8, 3, 8]], 9, 9),
    "a hole drawn as a second polygon is united, not cut": (
        [[0, 0, 9, 0, 9, 9, 0, 9], [3, 3, 6, 3, 6, 6, 3, 6]],
        10,
        10,
    ),
    "tiny, inside one pixel": ([[2.2, 2.2, 2.8, 2.3, 2.5, 2.7]], 5, 5),
    "on the pixel-centre grid": ([[0.5, 0.5, 3.5, 0.5, 3.5, 2.5, 0.5, 2.5]], 5, 4),
    "1x1 image": ([[0, 0, 1, 0, 1, 1]], 1, 1),
    # after a real polygon (pycocotools reads a first one of 4 numbers as a box [x, y, w, h])
    "a 2-point polygon encloses nothing": ([[0, 0, 4, 0, 4, 4], [1, 1, 5, 5]], 6, 6),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_named_polygons_equal_pycocotools(name: str) -> None:
    polygons, width, height = CASES[name]
    mask = polygons_to_mask(polygons, width, height)
    assert mask.shape == (height, width) and mask.dtype == bool
    assert np.array_equal(mask, pycocotools_mask(polygons, width, height)), name


def test_a_damaged_polygon_is_refused_naming_it() -> None:
    for bad, words in [
        ([[0, 0, 4, 0, 4]], "polygon 0 must be an even count"),
        ([[0, 0, 4, 0, 4, 4], [0, "1", 2, 2, 3, 3]], "polygon 1 must be an even count"),
        ([[0, 0, float("inf"), 0, 4, 4]], "polygon 0: coordinate inf is not a finite"),
        ([[0, 0, float("nan"), 0, 4, 4]], "polygon 0: coordinate nan is not a finite"),
        ([[0, 0, 4, 0, 4, 10**400]], "polygon 0: coordinate inf is not a finite"),
        ([[0, 0, 4, 0, 4, 2 * MAX_COORDINATE]], "polygon 0: coordinate 2000000.0 is not a finite"),
        # pycocotools reads these as boxes [x, y, w, h]; it painted nothing here, unsaid
        ([[1, 1, 3, 3], [0, 0, 4, 0, 4, 4]], "polygon 0 has 4 numbers, under 3 points"),
        ([[1, 1]], "polygon 0 has 2 numbers, under 3 points"),
        ([[]], "polygon 0 has 0 numbers, under 3 points"),
    ]:
        with pytest.raises(ValueError, match="^" + words):
            segmentation_to_mask(bad, 6, 6)


# -- the property: random polygons, pixel for pixel -------------------------------------------------

#: coordinates of the kinds real files hold: on the integer grid, on pycocotools' 1/5 grid (where
#: its rounding ties fall), arbitrary floats, and over the image's borders
_coordinate = st.one_of(
    st.integers(-4, 44).map(float),
    st.integers(-20, 220).map(lambda v: v / 5),
    st.integers(-40, 440).map(lambda v: v / 10),
    st.floats(-12.0, 52.0, allow_nan=False, allow_infinity=False),
)


@st.composite
def _polygon(draw: st.DrawFn) -> list[float]:
    n = draw(st.integers(3, 9))
    if draw(st.booleans()):  # a tiny one, around one point: a pixel or less
        cx, cy = draw(_coordinate), draw(_coordinate)
        offsets = st.floats(-1.5, 1.5, allow_nan=False, allow_infinity=False)
        return [v for _ in range(n) for v in (cx + draw(offsets), cy + draw(offsets))]
    return [draw(_coordinate) for _ in range(2 * n)]


@pytest.mark.slow
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    polygons=st.lists(_polygon(), min_size=1, max_size=4), width=st.integers(1, 40), height=st.integers(1, 40)
)
def test_random_polygons_equal_pycocotools_pixel_for_pixel(
    polygons: list[list[float]], width: int, height: int
) -> None:
    """Self-intersecting (random vertex order), tiny, over the borders, non-integer, several to a
    segmentation (united as ``annToRLE`` merges them)."""
    expected = pycocotools_mask(polygons, width, height)
    assert np.array_equal(polygons_to_mask(polygons, width, height), expected)
    # C's own reading of the points (one column-major run over the image), kept for a column with
    # an odd count, which a closed walk never leaves: it agrees too
    flat = np.zeros((height, width), dtype=bool)
    for poly in polygons:
        fill_flat(flat, *boundary_points(np.asarray(poly, dtype=np.float64).reshape(-1, 2), width, height))
    assert np.array_equal(flat, expected)


@pytest.mark.slow
@settings(max_examples=60, deadline=None)
@given(
    polygon=st.lists(st.floats(-3000.0, 3000.0, allow_nan=False), min_size=6, max_size=16).filter(
        lambda p: len(p) % 2 == 0
    ),
    width=st.integers(1, 300),
    height=st.integers(1, 300),
)
def test_edges_from_far_outside_equal_pycocotools(polygon: list[float], width: int, height: int) -> None:
    """Only the steps of an edge that cross a pixel column inside the image are computed; an edge
    thousands of pixels long gives pycocotools' mask all the same."""
    assert np.array_equal(
        polygons_to_mask([polygon], width, height), pycocotools_mask([polygon], width, height)
    )


# -- through the CLI: convert --to manifest, then --to coco and back ---------------------------------


def _doc(polygons: list[list[float]], width: int, height: int) -> dict:
    return {
        "images": [{"id": 1, "file_name": "a.jpg", "width": width, "height": height}],
        "categories": [{"id": 1, "name": "pebble"}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "bbox": [2, 3, 3, 2],
                "area": 6,
                "iscrowd": 0,
                "segmentation": polygons,
            }
        ],
    }


@pytest.mark.slow
def test_convert_writes_pycocotools_pixels_and_the_coco_round_trip_changes_nothing(tmp_path: Path) -> None:
    polygons = [[2, 3, 5, 3, 5, 5, 2, 5], [7.2, 1.1, 8.9, 1.4, 8.1, 2.8]]
    width, height = 12, 8
    src = tmp_path / "c.json"
    src.write_text(json.dumps(_doc(polygons, width, height)))
    expected = pycocotools_mask(polygons, width, height)
    assert expected.sum() == 6 + 2  # the small square 3x2 (Pillow painted 4x3 = 12), the sliver 2

    def converted(doc: Path, out: Path) -> np.ndarray:
        r = run_cli("convert", str(doc), str(out / "m.manifest"), "--to", "manifest")
        assert r.returncode == 0, r.stderr
        (line,) = out.joinpath("m.manifest").read_bytes().splitlines()
        row = orjson.loads(line)
        path = out / row["label-ref"]
        mask = read_mask(str(path), row["label-ref-metadata"]["internal-color-map"])
        assert np.asarray(Image.open(path)).shape == (height, width)
        return mask

    first = converted(src, tmp_path / "a")
    assert np.array_equal(first == 1, expected), (first == 1).astype(int)
    assert int((first == 1).sum()) == int(
        mask_utils.area(mask_utils.merge(mask_utils.frPyObjects(polygons, height, width)))
    )

    back = tmp_path / "back.json"
    r = run_cli("convert", str(tmp_path / "a" / "m.manifest"), str(back), "--to", "coco")
    assert r.returncode == 0, r.stderr
    (ann,) = orjson.loads(back.read_bytes())["annotations"]
    assert np.array_equal(
        mask_utils.decode(mask_utils.frPyObjects(ann["segmentation"], height, width)) == 1, expected
    )  # the RLE written is pycocotools' own mask of the polygons
    second = converted(back, tmp_path / "b")
    assert np.array_equal(second, first)
    assert (tmp_path / "a" / "masks" / "1.png").read_bytes() == (
        tmp_path / "b" / "masks" / "1.png"
    ).read_bytes()
