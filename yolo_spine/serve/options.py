"""Options of ``yolo_spine serve`` (the schema of ``configs/serve/default.yaml``).

Every field's meaning, with its default, is commented in the YAML; the loader is :mod:`yolo_spine.options`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from yolo_spine.options import StageOptions, spec

#: Upload kinds the service can read (recognised by their first bytes).
UploadKind = Literal["png", "jpeg", "tiff", "dicom"]


def _non_empty(values: tuple[str, ...]) -> str | None:
    return None if values else "at least one upload kind"


@dataclass(frozen=True)
class ServeOptions(StageOptions):
    """``configs/serve/default.yaml`` ← ``--config`` ← ``--set`` ← flags."""

    stage = "serve"

    # network
    host: str
    port: int = spec(range=(0, 65535))
    # uploads
    max_upload_mb: float = spec(range=(0.001, None))
    allowed_types: tuple[UploadKind, ...] = spec(check=_non_empty)
    # inference
    default_conf: float | Literal["auto"] = spec(range=(0, 1))
    fallback_conf: float = spec(range=(0, 1))
    iou: float = spec(range=(0, 1))
    max_det: int = spec(range=(1, None))
    imgsz: int | None = spec(range=(1, None))
    device: str | None
    threads: int | None = spec(range=(1, None))
    mask_alpha: float = spec(range=(0, 1))

    @property
    def max_upload_bytes(self) -> int:
        """The upload limit in bytes."""
        return int(self.max_upload_mb * 2**20)
