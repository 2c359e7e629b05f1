"""Benchmark ``yolo_spine augment``: copies per second for 640×640 spine images with 24 vertebrae each.

A generated full-spine dataset (C1–L5 as rotated, slightly rounded boxes along a curved column, noisy
X-ray-like background; labels are exact mask polygons) is augmented with the ``xray-spine`` preset, once with
1 worker and once with 2, ``--repeat`` times each. Copies per second = copies written / wall time of
:func:`yolo_spine.datasets.augment.augment_dataset` (reading, transforming, re-polygonising, writing PNGs and
labels, copying the originals and val/test, manifest). Medians are reported, with the 2-worker speed-up.

    python scripts/bench_augment.py                      # 60 images x 5 copies, 3 repeats
    python scripts/bench_augment.py --quick --no-write   # 8 images x 2 copies, 1 repeat, print only
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scripts._bench import command_line, git_rev, machine, median_seconds, write_section
from yolo_spine.geometry import mask_to_polygons
from yolo_spine.io.labels import SegInstance, write_data_yaml, write_yolo_labels
from yolo_spine.io.xray import write_png
from yolo_spine.registry import load_registry

TARGET_COPIES_PER_S = 50.0
#: What this section measures (scripts/check_benchmarks.py).
MEASURES = [
    "scripts/bench_augment.py",
    "yolo_spine/datasets/augment.py",
    "configs/augment/",
    "yolo_spine/io/labels.py",
    "yolo_spine/io/xray.py",
    "yolo_spine/geometry.py",
]


def _spine_image(rng: np.random.Generator, size: int, n_levels: int) -> tuple[np.ndarray, list[SegInstance]]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    img = 30 + 25 * (1 - (xx - 0.5) ** 2 - (yy - 0.5) ** 2) + rng.normal(0, 6, (size, size))
    pitch = size * 0.92 / n_levels
    curve = rng.uniform(-0.06, 0.06) * size
    instances = []
    for k in range(n_levels):
        cy = size * 0.04 + (k + 0.5) * pitch
        cx = size / 2 + curve * np.sin(np.pi * (k + 0.5) / n_levels)
        half_w = size * rng.uniform(0.05, 0.07) * (1 + 0.5 * k / n_levels)
        half_h = pitch * rng.uniform(0.32, 0.4)
        box = cv2.boxPoints(((cx, cy), (2 * half_w, 2 * half_h), float(rng.uniform(-8, 8))))
        m = np.zeros((size, size), np.uint8)
        cv2.fillPoly(m, [np.round(box).astype(np.int32)], 1)
        m = cv2.morphologyEx(m, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
        polys, _ = mask_to_polygons(m)
        img[m.astype(bool)] = rng.uniform(150, 220)
        instances.append(SegInstance(k, polys[0] / size))
    img = cv2.GaussianBlur(img, (0, 0), 1.0) + rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), instances


def generate(root: Path, n_train: int, size: int = 640, n_levels: int = 24, seed: int = 0) -> Path:
    """Write a spine dataset (``n_train`` train, 2 val, 2 test images) and return its ``data.yaml``."""
    reg = load_registry("spine")
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("val", 2), ("test", 2)):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i in range(n):
            pixels, insts = _spine_image(rng, size, n_levels)
            write_png(root / "images" / split / f"spine_{split}_{i:04d}.png", pixels)
            write_yolo_labels(root / "labels" / split / f"spine_{split}_{i:04d}.txt", insts)
    return write_data_yaml(root, reg.names_dict, reg.name)


def target_verdict(rates: list[float], med: float, target: float = TARGET_COPIES_PER_S) -> str:
    """The 2-worker target stated against every run (``rates``, copies/s), not only the median ``med``."""
    below = sum(r < target for r in rates)
    spread = f"runs {min(rates):.1f}–{max(rates):.1f} copies/s, median {med:.1f}"
    if below == 0:
        return f"Target ≥ {target:.0f} copies/s on 2 cores: met in every run ({spread})."
    if med >= target:
        return (
            f"Target ≥ {target:.0f} copies/s on 2 cores: met at the median only — {below} of {len(rates)} runs "
            f"missed it ({spread})."
        )
    return f"Target ≥ {target:.0f} copies/s on 2 cores: **MISSED** ({spread}; {below} of {len(rates)} runs below)."


def main() -> None:
    """Run the benchmark and write the ``augment`` section of BENCHMARKS.md."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="8 images x 2 copies, 1 repeat")
    ap.add_argument("--images", type=int, default=None, help="training images (default 60; quick 8)")
    ap.add_argument("--copies", type=int, default=None, help="copies per image (default 5; quick 2)")
    ap.add_argument("--repeat", type=int, default=None, help="runs per worker count (default 3; quick 1)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = ap.parse_args()
    n_img = args.images or (8 if args.quick else 60)
    copies = args.copies or (2 if args.quick else 5)
    repeat = args.repeat or (1 if args.quick else 3)

    from yolo_spine.datasets.augment import AugmentOptions, augment_dataset, build_pipeline

    options = AugmentOptions.load("xray-spine", copies=copies)
    build_pipeline(options)  # import albumentations before timing
    tmp = Path(tempfile.mkdtemp(prefix="bench_augment_"))
    try:
        data = generate(tmp / "src", n_img)
        n_inst = sum(len(p.read_text().splitlines()) for p in (tmp / "src" / "labels" / "train").glob("*.txt"))
        rows = []
        medians = {}
        rates: dict[int, list[float]] = {}
        for workers in (1, 2):
            out = tmp / f"out{workers}"
            summaries = []

            def run(workers: int = workers, out: Path = out, summaries: list = summaries) -> None:
                summaries.append(
                    augment_dataset(
                        data,
                        out,
                        options,
                        seed=0,
                        workers=workers,
                        overwrite=True,
                        progress=False,
                    )
                )

            med, times = median_seconds(run, repeat)
            n_copies = summaries[-1]["copies"]
            medians[workers] = n_copies / med
            rates[workers] = [n_copies / t for t in times]
            dropped = sum(summaries[-1]["instances"]["dropped"].values())
            rows.append(
                f"| {workers} | {n_copies} | {med:.2f} | {n_copies / med:.1f} | "
                f"{', '.join(f'{t:.2f}' for t in times)} | {', '.join(f'{r:.1f}' for r in rates[workers])} | "
                f"{dropped} |"
            )
            print(rows[-1], flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ratio = medians[2] / medians[1]
    body = "\n".join(
        [
            "## augment",
            "",
            f"`{command_line()}` at {git_rev(MEASURES)} on {machine()}.",
            "",
            f"{n_img} generated 640×640 spine images, {n_inst / n_img:.0f} instances each, preset `xray-spine`, "
            f"{copies} copies per image; wall time of the whole `augment_dataset` call, median of {repeat}.",
            "",
            "| workers | copies | median s | copies/s (median) | runs (s) | copies/s per run | dropped |",
            "|---|---|---|---|---|---|---|",
            *rows,
            "",
            f"2 workers vs 1: {ratio:.2f}×. {target_verdict(rates[2], medians[2])}",
        ]
    )
    print(body)
    if not args.no_write:
        write_section("augment", body, MEASURES)


if __name__ == "__main__":
    main()
