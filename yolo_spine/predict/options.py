"""Options of ``yolo_spine predict`` and ``export`` (the schemas of ``configs/predict`` and ``configs/export``).

Every field's meaning, with its default, is commented in the stage's ``default.yaml``; the loader is
:mod:`yolo_spine.options`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from yolo_spine.errors import UserError
from yolo_spine.options import StageOptions, spec

_POSITIVE = (1, None)
#: Runtimes ``export`` writes for.
ExportFormat = Literal["onnx", "openvino"]
#: Dataset splits the INT8 guard may measure on, and the ones it may calibrate on (never the test split).
GuardSplit = Literal["train", "val", "test"]
CalibrationSplit = Literal["train", "val"]
#: When INT8 export uses NNCF's accuracy-aware quantisation.
AccuracyAware = Literal["auto", "always", "never"]


def _fourcc(code: str) -> str | None:
    return None if len(code) == 4 else "a four-character FourCC code such as mp4v"


def _above_zero(value: float) -> str | None:
    return None if value > 0 else "a number above 0"


@dataclass(frozen=True)
class PredictOptions(StageOptions):
    """``configs/predict/default.yaml`` ← ``--config`` ← ``--set`` ← flags."""

    stage = "predict"

    # detection
    conf: float | Literal["auto"] = spec(range=(0, 1))
    fallback_conf: float = spec(range=(0, 1))
    iou: float = spec(range=(0, 1))
    max_det: int = spec(range=_POSITIVE)
    imgsz: int | None = spec(range=_POSITIVE)
    device: str | None
    threads: int | None = spec(range=_POSITIVE)
    # anatomical order (lift uses the same names)
    anatomy: str | None
    order_fix: bool
    order_move_penalty: float = spec(range=(0, None), aliases=("move_penalty",))
    order_skip_cost: float = spec(range=(0, None), aliases=("skip_cost",))
    # outputs
    save_annotated: bool
    save_txt: bool
    dicom_seg: bool
    mask_alpha: float = spec(range=(0, 1))
    line_width: int | None = spec(range=_POSITIVE)
    video_codec: str = spec(check=_fourcc)
    video_fps: float = spec(check=_above_zero)
    show: bool
    live_latest: bool
    # folders
    watch: bool
    watch_timeout: float | None = spec(range=(0, None))
    poll_s: float = spec(check=_above_zero)


@dataclass(frozen=True)
class ExportOptions(StageOptions):
    """``configs/export/default.yaml`` ← ``--config`` ← ``--set`` ← flags."""

    stage = "export"

    format: ExportFormat
    imgsz: int | tuple[int, int] | None = spec(range=_POSITIVE)
    int8: bool
    dynamic: bool
    calibration_split: CalibrationSplit
    eval_split: GuardSplit
    max_drop: float = spec(range=(0, 100))
    accuracy_aware: AccuracyAware
    tuning_split: CalibrationSplit

    def __post_init__(self) -> None:
        if self.int8 and self.format != "openvino":
            raise UserError("--int8 is available for --format openvino")
