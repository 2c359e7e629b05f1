"""Small generated 2D X-ray-like datasets in the merged-dataset layout, for tests, benchmarks and examples.

These images are phantoms, not patients: bright rounded shapes on a noisy dark background, placed where the
anatomy would be (a vertebral column, two dental arches, two brain hemispheres), labelled with exact
polygons in the registry's class order. They let every stage be exercised offline in seconds; no report
presents them as real data (the manifest says ``"synthetic": true``).

Conventions match real images: the spine runs top (C1) to bottom (sacrum); teeth and brain images use the
radiological convention, the patient's right on the image's left, so the patient-left classes (21–28,
31–38, ``*_left``) sit on the image's right half.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from yolo_spine.geometry import mask_to_polygons
from yolo_spine.io.labels import SegInstance, write_data_yaml, write_yolo_labels
from yolo_spine.io.xray import write_png
from yolo_spine.layout import SPLITS
from yolo_spine.registry import AnatomyRegistry, load_registry


@dataclass
class SynthImage:
    """One generated image with its instances (pixel polygons) before writing."""

    pixels: np.ndarray
    instances: list[SegInstance]


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    base = 30 + 25 * (1 - (xx - 0.5) ** 2 - (yy - 0.5) ** 2) + rng.normal(0, 6, (size, size))
    return base.astype(np.float32)


def _finish(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    img = cv2.GaussianBlur(img, (0, 0), 0.8) + rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _add_shape(img: np.ndarray, shape_mask: np.ndarray, brightness: float, cls: int, out: list[SegInstance]) -> None:
    polys, _ = mask_to_polygons(shape_mask)
    if not polys:
        return
    img[shape_mask.astype(bool)] = brightness
    h, w = shape_mask.shape
    out.append(SegInstance(cls, polys[0] / np.array([w, h], dtype=np.float64)))


def _ellipse_mask(size: int, center: tuple[float, float], axes: tuple[float, float], angle: float) -> np.ndarray:
    m = np.zeros((size, size), dtype=np.uint8)
    cv2.ellipse(
        m, (round(center[0]), round(center[1])), (max(1, round(axes[0])), max(1, round(axes[1]))), angle, 0, 360, 1, -1
    )
    return m


def spine_image(reg: AnatomyRegistry, rng: np.random.Generator, size: int) -> SynthImage:
    """Draw a column of 6–12 consecutive vertebrae, cranial at the top, with a gentle curve and tilt."""
    n_levels = int(rng.integers(6, min(13, reg.nc + 1)))
    first = int(rng.integers(0, reg.nc - n_levels + 1))
    img = _background(rng, size)
    pitch = size * 0.86 / n_levels
    top = size * 0.07 + rng.uniform(-0.02, 0.02) * size
    curve = rng.uniform(-0.08, 0.08) * size
    instances: list[SegInstance] = []
    for k in range(n_levels):
        cy = top + (k + 0.5) * pitch
        t = (k + 0.5) / n_levels
        cx = size / 2 + curve * np.sin(np.pi * t) + rng.uniform(-0.01, 0.01) * size
        half_w = size * rng.uniform(0.09, 0.12) * (1 + 0.4 * (first + k) / reg.nc)
        half_h = pitch * rng.uniform(0.30, 0.38)
        angle = float(rng.uniform(-8, 8))
        box = cv2.boxPoints(((cx, cy), (2 * half_w, 2 * half_h), angle))
        m = np.zeros((size, size), dtype=np.uint8)
        cv2.fillPoly(m, [np.round(box).astype(np.int32)], 1)
        opened = cv2.morphologyEx(m, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        _add_shape(img, opened, float(rng.uniform(150, 220)), first + k, instances)
    return SynthImage(_finish(img, rng), instances)


def teeth_image(reg: AnatomyRegistry, rng: np.random.Generator, size: int) -> SynthImage:
    """Draw upper and lower dental arches (panoramic-like), patient's right on the image's left."""
    if reg.order is None or len(reg.order.sequences) != 2:
        raise ValueError(f"registry '{reg.name}' needs two arch sequences (upper, lower) for a teeth phantom")
    img = _background(rng, size)
    instances: list[SegInstance] = []
    for row, seq in enumerate(reg.order.sequences):
        n = len(seq)
        y0 = size * (0.38 if row == 0 else 0.62)
        for k, name in enumerate(seq):
            if rng.random() < 0.1:  # missing tooth
                continue
            x = size * (0.06 + 0.88 * (k + 0.5) / n)
            bend = ((x / size - 0.5) ** 2) * size * 0.35
            y = y0 - bend if row == 0 else y0 + bend
            m = _ellipse_mask(size, (x, y), (size * 0.022, size * 0.07), float(rng.uniform(-6, 6)))
            _add_shape(img, m, float(rng.uniform(170, 230)), reg.index(name), instances)
    return SynthImage(_finish(img, rng), instances)


def brain_image(reg: AnatomyRegistry, rng: np.random.Generator, size: int) -> SynthImage:
    """Draw two mirror-symmetric hemispheres of ASPECTS-like regions; patient-left regions on the image right."""
    img = _background(rng, size)
    cv2.ellipse(img, (size // 2, size // 2), (int(size * 0.42), int(size * 0.46)), 0, 0, 360, 70, -1)
    instances: list[SegInstance] = []
    right_names = [n for n in reg.names if n.endswith("_right")]
    for k, name in enumerate(right_names):
        ring = k / len(right_names)
        dx = size * (0.08 + 0.28 * ring)
        dy = size * 0.30 * np.sin(2 * np.pi * ring + 0.3)
        axes = (size * 0.035, size * 0.05)
        level = float(rng.uniform(120, 200))
        for side_name, sign in ((name, -1), (reg.mirror[name], +1)):  # right on the left of the image
            m = _ellipse_mask(size, (size / 2 + sign * dx, size / 2 + dy), axes, 0.0)
            _add_shape(img, m, level + rng.uniform(-5, 5), reg.index(side_name), instances)
    return SynthImage(_finish(img, rng), instances)


_DRAWERS = {"spine": spine_image, "teeth": teeth_image, "brain": brain_image}


def make_xray_dataset(
    out: str | Path,
    anatomy: str = "spine",
    n_train: int = 8,
    n_val: int = 2,
    n_test: int = 2,
    imgsz: int = 128,
    seed: int = 0,
) -> Path:
    """Write a generated dataset in the merged layout and return the path of its ``data.yaml``.

    Layout: ``images|labels/{train,val,test}``, ``data.yaml`` (absolute ``path``, ``names`` in registry
    order, ``anatomy``) and ``manifest.json`` (marked ``synthetic``).

    Args:
        out: Output folder (created; existing files with the same names are replaced).
        anatomy: Registry name: ``spine``, ``teeth`` or ``brain``.
        n_train: Training images.
        n_val: Validation images.
        n_test: Test images.
        imgsz: Square image size in pixels.
        seed: Random seed; the same seed gives byte-identical datasets.
    """
    reg = load_registry(anatomy)
    draw = _DRAWERS.get(reg.name)
    if draw is None:
        raise ValueError(f"no 2D phantom for anatomy '{reg.name}'")
    out = Path(out).resolve()
    rng = np.random.default_rng(seed)
    images_meta = []
    for split, n in zip(SPLITS, (n_train, n_val, n_test), strict=True):
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            sample = draw(reg, rng, imgsz)
            stem = f"{reg.name}_{split}_{i:04d}"
            write_png(out / "images" / split / f"{stem}.png", sample.pixels)
            write_yolo_labels(out / "labels" / split / f"{stem}.txt", sample.instances)
            images_meta.append(
                {
                    "file": f"images/{split}/{stem}.png",
                    "split": split,
                    "group": stem,
                    "source": "synthetic",
                    "status": "kept",
                }
            )
    write_data_yaml(out, reg.names_dict, reg.name)
    manifest = {
        "schema": 1,
        "anatomy": reg.name,
        "created_by": "yolo_spine.synth.make_xray_dataset",
        "synthetic": True,
        "seed": seed,
        "imgsz": imgsz,
        "sources": [],
        "images": images_meta,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return out / "data.yaml"
