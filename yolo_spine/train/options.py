"""Options of ``yolo_spine train`` (the schema of ``configs/train/*.yaml``; loaded by :mod:`yolo_spine.options`).

Every field's meaning, with its default, is commented in ``configs/train/default.yaml``. Values used to reach
Ultralytics unchecked; now a wrong type or a value out of range stops the command before anything is imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from yolo_spine.options import StageOptions, spec

_P = (0, 1)

#: Optimizers Ultralytics builds (``auto`` picks one by iteration count).
Optimizer = Literal["auto", "SGD", "Adam", "Adamax", "AdamW", "NAdam", "RAdam", "RMSProp"]


def _batch(value: int) -> str | None:
    return None if value == -1 or value >= 1 else "-1 (the largest batch that fits the GPU) or a whole number >= 1"


def _above_zero(value: float) -> str | None:
    return None if value > 0 else "a number above 0"


def _save_period(value: int) -> str | None:
    return None if value == -1 or value >= 1 else "-1 (only last.pt and best.pt) or a whole number of epochs >= 1"


@dataclass(frozen=True)
class TrainOptions(StageOptions):
    """``configs/train/default.yaml`` ← ``--config`` ← ``--set`` ← flags (every key reachable through ``--set``)."""

    stage = "train"

    # model
    model: str
    weights: str | None
    channels: Literal[1, 3]
    # schedule
    epochs: int = spec(range=(1, None))
    patience: int = spec(range=(0, None))
    imgsz: int = spec(range=(32, None))
    batch: int = spec(check=_batch)
    optimizer: Optimizer
    lr0: float = spec(check=_above_zero)
    lrf: float = spec(range=(0, 1))
    warmup_epochs: float = spec(range=(0, None))
    nbs: int = spec(range=(1, None))
    cos_lr: bool
    seed: int
    deterministic: bool
    # hardware
    device: str | None
    workers: int = spec(range=(0, None))
    threads: int | None = spec(range=(1, None))
    cache: bool | Literal["ram", "disk"]
    amp: bool
    # sampling
    repeat_threshold: float = spec(range=_P)
    # online augmentation
    fliplr: float = spec(range=_P)
    flipud: float = spec(range=_P)
    degrees: float = spec(range=(0, 180))
    translate: float = spec(range=_P)
    scale: float = spec(range=(0, None))
    shear: float = spec(range=(-180, 180))
    perspective: float = spec(range=(0, 0.001))
    mosaic: float = spec(range=_P)
    close_mosaic: int = spec(range=(0, None))
    mixup: float = spec(range=_P)
    copy_paste: float = spec(range=_P)
    hsv_h: float = spec(range=_P)
    hsv_s: float = spec(range=_P)
    hsv_v: float = spec(range=_P)
    overlap_mask: bool
    mask_ratio: int = spec(range=(1, None))
    # outputs
    plots: bool
    save_period: int = spec(check=_save_period)
    val: bool
