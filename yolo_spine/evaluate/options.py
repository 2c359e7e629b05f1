"""Options of ``yolo_spine eval3d`` (the schema of ``configs/eval3d/*.yaml``; loaded by :mod:`yolo_spine.options`).

Every field's meaning, with its default, is commented in ``configs/eval3d/default.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass

from yolo_spine.batch import BatchSettings
from yolo_spine.options import StageOptions, spec


def _above_zero(value: float) -> str | None:
    return None if value > 0 else "a number above 0"


@dataclass(frozen=True)
class Eval3dOptions(StageOptions):
    """``configs/eval3d/default.yaml`` ← ``--config`` ← ``--set`` ← flags."""

    stage = "eval3d"

    tolerance_mm: float = spec(range=(0, None))
    max_dist_mm: float = spec(check=_above_zero)
    landmarks: bool
    gt_scheme: str | None
    pred_scheme: str | None
    batch: BatchSettings  # --csv only: how studies run (never changes an output)
