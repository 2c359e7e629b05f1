"""The ``xray-sim2real`` augment preset (SyntheX's strong randomisation), polygon-exact through augment's path."""

from __future__ import annotations

import numpy as np
import pytest

from yolo_spine.datasets.augment import augment_sample, build_pipeline
from yolo_spine.datasets.options import AugmentOptions
from yolo_spine.errors import UserError
from yolo_spine.io.labels import SegInstance

SIM2REAL_ONLY = {
    "InvertImg",
    "MultiplicativeNoise",
    "ContrastCurve",
    "SaltAndPepper",
    "GaussianBlur",
    "Sharpen",
    "Emboss",
    "Downscale",
    "PixelDropout",
    "CoarseDropout",
    "ElasticTransform",
}


def _square(x0: float, y0: float, side: float) -> SegInstance:
    poly = np.array([[x0, y0], [x0 + side, y0], [x0 + side, y0 + side], [x0, y0 + side]])
    return SegInstance(cls=0, polygon_xy_norm=poly)


def test_preset_builds_every_synthex_transform():
    opts = AugmentOptions.load("xray-sim2real")
    names = {type(t).__name__ for t in build_pipeline(opts).transforms}
    assert names >= SIM2REAL_ONLY
    assert {"Affine", "RandomGamma", "GaussNoise", "HorizontalFlip"} <= names
    assert opts.vflip == 0 and opts.rot90 == 0  # vertebra order kept


def test_intensity_transforms_leave_polygons_exact_and_spatial_ones_move_them():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (128, 128), dtype=np.uint8)
    insts = [_square(0.25, 0.25, 0.25), _square(0.55, 0.55, 0.2)]
    identity = augment_sample(img, insts, build_pipeline(AugmentOptions.load("default")), seed=0, min_area_px=1)
    assert np.array_equal(identity.pixels, img)
    intensity = build_pipeline(AugmentOptions.load("xray-sim2real", hflip=0.0, **{"affine.p": 0.0, "elastic.p": 0.0}))
    seen: set[str] = set()
    changed = 0
    for seed in range(30):
        res = augment_sample(img, insts, intensity, seed=seed, min_area_px=1)
        seen |= set(res.params["transforms"])
        changed += int(not np.array_equal(res.pixels, img))
        assert len(res.instances) == 2  # boxes and dropout hide pixels, never labels
        for a, b in zip(identity.instances, res.instances, strict=True):
            assert np.array_equal(a.polygon_xy_norm, b.polygon_xy_norm)
    assert changed >= 27 and len(seen) >= 8  # a copy may draw no transform (or only the linear curve)
    curves = [augment_sample(img, [], intensity, seed=s).params["detail"].get("ContrastCurve") for s in range(40)]
    assert {c["curve"] for c in curves if c} >= {"gamma", "log", "sigmoid"}  # the curves are drawn
    spatial = build_pipeline(
        AugmentOptions.load("default", **{"elastic.p": 1.0, "elastic.alpha": 400.0, "elastic.sigma": 6.0})
    )
    moved = augment_sample(img, insts, spatial, seed=3, min_area_px=1)
    assert "ElasticTransform" in moved.params["transforms"]
    a, b = identity.instances[0].polygon_xy_norm, moved.instances[0].polygon_xy_norm
    assert a.shape != b.shape or not np.allclose(a, b)  # the masks moved with the image


def test_same_seed_same_copy():
    img = np.random.default_rng(1).integers(0, 255, (64, 64), dtype=np.uint8)
    pipe = build_pipeline(AugmentOptions.load("xray-sim2real"))
    a = augment_sample(img, [_square(0.2, 0.2, 0.4)], pipe, seed=5, min_area_px=1)
    b = augment_sample(img, [_square(0.2, 0.2, 0.4)], pipe, seed=5, min_area_px=1)
    assert np.array_equal(a.pixels, b.pixels) and a.params == b.params


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"downscale.p": 0.5, "downscale.range": [0.5, 2.0]}, "at least 1"),
        ({"dropout.p": 0.5, "dropout.range": [0.1, 1.5]}, "below 1"),
    ],
)
def test_bad_values_are_refused(values, words):
    with pytest.raises(UserError, match=words):
        AugmentOptions.load("xray-sim2real", **values)
