"""``yolo_spine export``: a trained ``.pt`` to ONNX or OpenVINO (optionally INT8) for real time on the CPU.

The exported model keeps the class names and task in its metadata, so ``predict`` (and ``val``) accept it like
the ``.pt``. ONNX, ONNX Runtime, OpenVINO and NNCF (INT8) are this package's ``export`` extra: Ultralytics would
try to pip-install them at export time, which fails offline, so a missing one is reported with
``pip install -e .[export]``. The export runs in a temporary folder and is moved into place when it succeeded;
``<OUT>.json`` beside it is the run manifest.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from yolo_spine.errors import MissingDependencyError, UserError

log = logging.getLogger("yolo_spine")

FORMATS = ("onnx", "openvino")
_NEEDS = {"onnx": ("onnx", "onnxruntime"), "openvino": ("openvino",)}


def default_export_path(weights: Path, fmt: str, int8: bool = False) -> Path:
    """Where Ultralytics would put the export: ``best.onnx`` or ``best[_int8]_openvino_model/`` beside the weights."""
    if fmt == "onnx":
        return weights.with_suffix(".onnx")
    return weights.parent / f"{weights.stem}{'_int8' if int8 else ''}_openvino_model"


def require_export_dependencies(fmt: str, int8: bool = False) -> None:
    """Raise :class:`MissingDependencyError` naming the ``export`` extra when a needed package is missing."""
    needed = [*_NEEDS[fmt], *(["nncf"] if int8 else [])]
    missing = [m for m in needed if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingDependencyError(
            f"exporting to {fmt}{' INT8' if int8 else ''} needs {', '.join(missing)}; "
            "install the export extra: pip install -e .[export]"
        )


def export_model(
    weights: str | Path,
    format: str = "onnx",
    out: str | Path | None = None,
    imgsz: int | list[int] | None = None,
    int8: bool = False,
    data: str | Path | None = None,
    dynamic: bool = False,
    overwrite: bool = False,
) -> Path:
    """Export a segmentation checkpoint to ONNX or OpenVINO.

    Args:
        weights: A ``.pt`` segmentation checkpoint (from ``yolo_spine train``).
        format: ``onnx`` or ``openvino``.
        out: The exported file (ONNX) or folder (OpenVINO); default: beside the weights, named as Ultralytics does.
        imgsz: Input size (an int, or ``[height, width]``); default: the training size.
        int8: OpenVINO INT8 post-training quantisation with NNCF (needs ``data``: calibration images).
        data: A dataset ``data.yaml`` whose images calibrate INT8.
        dynamic: Dynamic input shapes (rectangular inputs at prediction time; ONNX Runtime handles them well).
        overwrite: Replace an existing export.

    Returns:
        The path of the exported model.

    Raises:
        UserError: A bad format, a model that is not a ``.pt`` segmentation model, INT8 without data or for ONNX,
            an existing output.
        MissingDependencyError: A package of the ``export`` extra is missing.
    """
    from yolo_spine.io.atomic import atomic_output, write_json_atomic
    from yolo_spine.predict.model import load_model, model_format
    from yolo_spine.provenance import run_manifest

    if format not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)}, not {format!r}")
    weights = Path(weights)
    if model_format(weights) != "pt":
        raise UserError(f"export starts from a .pt checkpoint, not {weights.name}")
    if int8 and format != "openvino":
        raise UserError("--int8 is available for --format openvino")
    if int8 and data is None:
        raise UserError("--int8 needs --data DATA_YAML: its images calibrate the quantisation")
    if data is not None and not Path(data).is_file():
        raise UserError(f"dataset not found: {data}")
    require_export_dependencies(format, int8)
    out = Path(out) if out else default_export_path(weights, format, int8)
    with atomic_output(out, overwrite, is_dir=False) as target:
        work_weights = target.parent / f"{weights.stem}.pt"  # Ultralytics writes the export beside the weights
        shutil.copyfile(weights, work_weights)
        model = load_model(work_weights)
        _quiet_requirements()
        args: dict[str, Any] = {"format": format, "dynamic": dynamic, "verbose": False}
        if format == "onnx":
            args["simplify"] = False  # onnxslim is not in the export extra
        if imgsz:
            args["imgsz"] = imgsz
        if int8:
            args.update(int8=True, data=str(Path(data).resolve()))
        try:
            exported = Path(model.export(**args))
        except (RuntimeError, AssertionError, ValueError) as exc:
            raise UserError(f"export to {format} failed: {exc}") from None
        if not exported.exists():
            raise UserError(f"export to {format} wrote nothing")
        os.replace(exported, target)
    out = out.resolve()
    manifest = run_manifest(
        "export",
        {
            "weights": str(weights),
            "format": format,
            "out": str(out),
            "imgsz": imgsz,
            "int8": int8,
            "data": data,
            "dynamic": dynamic,
        },
        inputs={"weights": weights},
        extra={"exported": out.name},
    )
    write_json_atomic(Path(f"{out}.json"), manifest)
    log.info("exported %s -> %s", weights.name, out)
    return out


def _quiet_requirements() -> None:
    """Keep Ultralytics' exporter from trying to pip-install what the export extra already provides."""
    import ultralytics.engine.exporter as exporter

    exporter.check_requirements = lambda *a, **k: True
