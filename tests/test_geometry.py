import cv2
import numpy as np
import pytest

from yolo_spine.geometry import (
    clip_polygon_to_rect,
    mask_to_polygons,
    polygon_area,
    polygon_centroid,
    polygons_to_mask,
)


def _random_mask(rng: np.random.Generator, h: int = 64, w: int = 80) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        center = (int(rng.integers(5, w - 5)), int(rng.integers(5, h - 5)))
        axes = (int(rng.integers(1, 20)), int(rng.integers(1, 15)))
        cv2.ellipse(m, center, axes, float(rng.integers(0, 180)), 0, 360, 1, -1)
    if rng.random() < 0.5:
        cv2.circle(m, (w // 2, h // 2), int(rng.integers(1, 6)), 0, -1)  # a hole, often
    if rng.random() < 0.3:
        m[int(rng.integers(0, h)), int(rng.integers(0, w))] = 1  # an isolated pixel
    return m.astype(bool)


def test_mask_polygon_round_trip_is_exact():
    rng = np.random.default_rng(0)
    for _ in range(100):
        m = _random_mask(rng)
        polys, dropped = mask_to_polygons(m)
        assert dropped == []
        np.testing.assert_array_equal(polygons_to_mask(polys, *m.shape), m)


def test_hole_stays_out_of_the_polygon():
    m = np.zeros((40, 40), bool)
    m[5:35, 5:35] = True
    m[15:25, 15:25] = False
    polys, _ = mask_to_polygons(m)
    assert len(polys) == 1  # one instance, hole bridged
    back = polygons_to_mask(polys, 40, 40)
    assert not back[20, 20] and back[6, 6]
    np.testing.assert_array_equal(back, m)


def test_components_and_min_area():
    m = np.zeros((30, 30), bool)
    m[2:12, 2:12] = True  # 100 px
    m[20:22, 20:22] = True  # 4 px
    polys, dropped = mask_to_polygons(m, min_area_px=10)
    assert len(polys) == 1 and dropped == [4.0]
    assert polygon_area(polys[0]) == pytest.approx(81.0)  # index coordinates: 9 x 9 between pixel centres


def test_clip_polygon_cuts_not_clamps():
    square = np.array([[0.5, 0.5], [1.5, 0.5], [1.5, 1.5], [0.5, 1.5]])
    clipped = clip_polygon_to_rect(square)
    assert polygon_area(clipped) == pytest.approx(0.25)
    assert clipped.min() >= 0 and clipped.max() <= 1
    tri = np.array([[-1.0, 0.5], [0.5, -1.0], [0.5, 0.5]])  # partly outside two edges
    c = clip_polygon_to_rect(tri)
    assert c.min() >= 0 and polygon_area(c) > 0
    assert len(clip_polygon_to_rect(np.array([[2.0, 2.0], [3.0, 2.0], [3.0, 3.0]]))) == 0


def test_centroid():
    sq = np.array([[0, 0], [4, 0], [4, 2], [0, 2]], float)
    np.testing.assert_allclose(polygon_centroid(sq), [2, 1])
