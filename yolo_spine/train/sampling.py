"""Repeat-factor sampling: training images that hold rarely seen classes are listed more than once per epoch.

The rule is LVIS's (Gupta, Dollár & Girshick, "LVIS: A Dataset for Large Vocabulary Instance Segmentation",
CVPR 2019, section 4; Detectron2's ``RepeatFactorTrainingSampler``): with ``f(c)`` the fraction of training
images that contain class ``c`` and a threshold ``t``,

* a class's repeat factor is ``r(c) = max(1, sqrt(t / f(c)))``;
* an image's is the largest over the classes it contains (an image with no instance keeps 1).

On a spine that a CT's field of view cuts, the end vertebrae (here C5–C7 at the top of the example CT) are in
fewer images than the thoracic ones, and their average precision is the lowest. Ultralytics has no sampler
option, so the repeats become a list of image paths (``train: list.txt``) that Ultralytics reads as is,
duplicates included. A fractional factor is rounded once, stochastically from the training seed (the expected
count stays ``r``), so a run, and its resumption, train on one fixed list.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from yolo_spine.errors import DataError


@dataclass(frozen=True)
class RepeatPlan:
    """What repeat-factor sampling made of a training split.

    Attributes:
        threshold: ``t`` of the rule.
        images: Training images found.
        listed: Entries of the list (images counted with their repeats).
        class_factors: ``r(c)`` by class name, for classes in at least one training image (registry order).
        repeated: Images listed more than once.
    """

    threshold: float
    images: int
    listed: int
    class_factors: dict[str, float]
    repeated: int

    def line(self) -> str:
        """One log line: how much longer an epoch is, and the classes sampled up."""
        up = ", ".join(f"{n} ×{r:.2f}" for n, r in self.class_factors.items() if r > 1.0) or "none"
        return (
            f"repeat-factor sampling (t = {self.threshold:g}): {self.images} training images listed {self.listed} "
            f"times per epoch ({self.repeated} repeated); classes sampled up: {up}"
        )


def class_repeat_factors(class_sets: Sequence[set[int]], threshold: float, n_classes: int) -> np.ndarray:
    """``r(c) = max(1, sqrt(t / f(c)))`` per class id (1 for classes in no image).

    Args:
        class_sets: The class ids present in each training image.
        threshold: ``t`` (a fraction of images, 0–1).
        n_classes: Classes of the dataset.
    """
    counts = np.zeros(n_classes, dtype=np.float64)
    for present in class_sets:
        for c in present:
            counts[c] += 1
    frac = counts / max(1, len(class_sets))
    with np.errstate(divide="ignore"):
        factors = np.where(frac > 0, np.sqrt(threshold / np.where(frac > 0, frac, 1.0)), 1.0)
    return np.maximum(1.0, factors)


def image_repeat_counts(class_sets: Sequence[set[int]], class_factors: np.ndarray, seed: int) -> list[int]:
    """Whole repeats per image: its largest class factor, rounded stochastically (expectation kept)."""
    rng = np.random.default_rng(seed)
    counts = []
    for present in class_sets:
        r = max((float(class_factors[c]) for c in present), default=1.0)
        whole = math.floor(r)
        counts.append(whole + int(rng.random() < r - whole))
    return counts


def write_repeat_list(
    image_dir: Path, label_dir: Path, names: Sequence[str], threshold: float, seed: int, out_txt: Path
) -> RepeatPlan:
    """Write the training list with repeats (absolute image paths, one per line, sorted as Ultralytics sorts).

    Args:
        image_dir: The training split's images.
        label_dir: Its YOLO label files (``<stem>.txt``; an image without one holds no instance).
        names: Class names in registry order.
        threshold: ``t`` of the rule (above 0).
        seed: Seed of the stochastic rounding (the training seed).
        out_txt: The list to write (replaced).

    Raises:
        DataError: The training split has no image.
    """
    from yolo_spine.io.atomic import write_text_atomic
    from yolo_spine.io.labels import read_yolo_labels
    from yolo_spine.io.xray import RASTER_SUFFIXES, list_images

    images = list_images(image_dir, RASTER_SUFFIXES)
    if not images:
        raise DataError(f"repeat-factor sampling found no training image in {image_dir}")
    class_sets = []
    for img in images:
        lf = label_dir / f"{img.stem}.txt"
        present = {i.cls for i in read_yolo_labels(lf).instances} if lf.is_file() else set()
        class_sets.append({c for c in present if 0 <= c < len(names)})
    factors = class_repeat_factors(class_sets, threshold, len(names))
    repeats = image_repeat_counts(class_sets, factors, seed)
    lines = [str(img.resolve()) for img, k in zip(images, repeats, strict=True) for _ in range(k)]
    write_text_atomic(out_txt, "\n".join(lines) + "\n")
    seen = set().union(*class_sets)
    return RepeatPlan(
        threshold=threshold,
        images=len(images),
        listed=len(lines),
        class_factors={names[c]: round(float(factors[c]), 3) for c in range(len(names)) if c in seen},
        repeated=sum(k > 1 for k in repeats),
    )


__all__ = ["RepeatPlan", "class_repeat_factors", "image_repeat_counts", "write_repeat_list"]
