"""Options of ``yolo_spine val`` (the schema of ``configs/review/default.yaml``; see :mod:`yolo_spine.options`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from yolo_spine.options import StageOptions, spec


@dataclass(frozen=True)
class ReviewOptions(StageOptions):
    """``configs/review/default.yaml`` ← ``--config`` ← ``--set`` ← flags."""

    stage = "review"

    split: Literal["val", "test"]
    imgsz: int | None = spec(range=(1, None))
    batch: int = spec(range=(1, None))
    device: str | None
    error_images: int = spec(range=(0, None))
    min_usable_f1: float = spec(range=(0, 1))
