"""Options of ``yolo_spine lift`` (the schema of ``configs/lift/*.yaml``; loaded by :mod:`yolo_spine.options`).

Every field's meaning, with its default, is commented in ``configs/lift/default.yaml``. The order-fix penalties
carry the names ``predict`` uses (``order_move_penalty``, ``order_skip_cost``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from yolo_spine.batch import BatchSettings
from yolo_spine.layout import Plane
from yolo_spine.options import StageOptions, spec


@dataclass(frozen=True)
class LiftOptions(StageOptions):
    """``configs/lift/default.yaml`` ← ``--config`` ← ``--set`` ← flags."""

    stage = "lift"

    planes: tuple[Plane, ...] | None  # None or []: every plane the sidecars hold
    fusion: Literal["vote", "weighted"]
    background_weight: float = spec(range=(0, 1))
    max_gap: int | None = spec(range=(1, None))
    largest_cc: bool
    order_fix: bool
    order_move_penalty: float | None = spec(range=(0, None))
    order_skip_cost: float | None = spec(range=(0, None))
    conf: float | None = spec(range=(0, 1))
    centroid_weight_power: float = spec(range=(0, None))
    hull: bool
    batch: BatchSettings  # --csv only: how studies run (never changes an output)
