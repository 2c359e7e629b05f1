"""Options of ``yolo_spine pacs`` (the schema of ``configs/pacs/default.yaml``; loaded by :mod:`yolo_spine.options`).

Every field's meaning, with its default, is commented in ``configs/pacs/default.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from yolo_spine.layout import Plane
from yolo_spine.options import StageOptions, spec


def _window(value: tuple[float, float] | None) -> str | None:
    return None if value is None or value[1] > 0 else "[center, width] with a width above 0"


def _above_zero(value: float) -> str | None:
    return None if value > 0 else "a number above 0"


@dataclass(frozen=True)
class PacsOptions(StageOptions):
    """``configs/pacs/default.yaml`` ← ``--config`` ← ``--set`` ← flags."""

    stage = "pacs"

    conf: float = spec(range=(0, 1))
    iou: float = spec(range=(0, 1))
    imgsz: int | None = spec(range=(1, None))
    max_det: int = spec(range=(1, None))
    device: str | None
    planes: tuple[Plane, ...] | None
    step: int = spec(range=(1, None))
    window_hu: tuple[float, float] | None = spec(check=_window)
    fusion: Literal["vote", "weighted"]
    largest_cc: bool
    timeout_s: float = spec(check=_above_zero)
    study_id_salt: str
