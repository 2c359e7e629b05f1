"""Options of ``yolo_spine demo`` (the schema of ``configs/demo/default.yaml``; loaded by :mod:`yolo_spine.options`).

Every field's meaning, with its default, is commented in ``configs/demo/default.yaml``. The ct2yolo and train options
are presets of their own (``ct_config``, ``train_config``), checked by those stages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from yolo_spine.errors import UserError
from yolo_spine.options import StageOptions, preset_path, shipped_presets, spec


def _ct_preset(value: str) -> str | None:
    """Checked here so that a typo stops the demo before the CT is fetched, not after."""
    try:
        preset_path("ct", value)
    except UserError:
        return f"a ct preset ({', '.join(shipped_presets('ct'))}) or a YAML file"
    return None


def _train_preset(value: str) -> str | None:
    try:
        preset_path("train", value)
    except UserError:
        return f"a train preset ({', '.join(shipped_presets('train'))}) or a YAML file"
    return None


def _budget(value: str) -> str | None:
    from yolo_spine.train.plan import parse_budget

    try:
        parse_budget(value)
    except UserError:
        return "a duration such as 10m, 90s or 1h"
    return None


def _above_zero(value: float) -> str | None:
    return None if value > 0 else "a number above 0"


@dataclass(frozen=True)
class DemoOptions(StageOptions):
    """``configs/demo/default.yaml`` ← ``--config`` ← ``--set`` ← flags."""

    stage = "demo"

    ct_config: str = spec(check=_ct_preset)
    # train
    train_config: str = spec(check=_train_preset)
    weights: str | None
    epochs: int = spec(range=(1, None))
    train_budget: str | None = spec(check=_budget)
    imgsz: int = spec(range=(32, None))
    device: str | None
    # predict, lift, eval3d
    conf: float | Literal["auto"] = spec(range=(0, 1))
    lift_floor_conf: float | None = spec(range=(0, 1))
    max_gap: int = spec(range=(1, None))
    tolerance_mm: float = spec(check=_above_zero)
