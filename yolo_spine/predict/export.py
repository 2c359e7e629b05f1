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
import typing
import warnings
from pathlib import Path
from typing import Any

from yolo_spine.errors import MissingDependencyError, UserError
from yolo_spine.predict.options import ExportFormat, ExportOptions

log = logging.getLogger("yolo_spine")

FORMATS: tuple[str, ...] = typing.get_args(ExportFormat)
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
    options: ExportOptions | None = None,
    *,
    out: str | Path | None = None,
    data: str | Path | None = None,
    overwrite: bool = False,
    **option_values: Any,
) -> Path:
    """Export a segmentation checkpoint to ONNX or OpenVINO.

    Args:
        weights: A ``.pt`` segmentation checkpoint (from ``yolo_spine train``).
        options: Format, input size, INT8, dynamic shapes (default: ``configs/export/default.yaml``).
        out: The exported file (ONNX) or folder (OpenVINO); default: beside the weights, named as Ultralytics does.
        data: A dataset ``data.yaml`` whose images calibrate INT8.
        overwrite: Replace an existing export.
        **option_values: Option values replacing those of ``options`` (e.g. ``format="openvino"``, ``imgsz=320``).

    Returns:
        The path of the exported model.

    Raises:
        UserError: Bad options, a model that is not a ``.pt`` segmentation model, INT8 without data or for ONNX,
            an existing output.
        MissingDependencyError: A package of the ``export`` extra is missing.
    """
    from yolo_spine.io.atomic import atomic_output, write_json_atomic
    from yolo_spine.options import resolve_options
    from yolo_spine.predict.model import load_model, model_format
    from yolo_spine.provenance import run_manifest
    from yolo_spine.ultra import quiet_loggers, skip_requirement_checks

    opts = resolve_options(ExportOptions, options, option_values)
    format, int8 = opts.format, opts.int8
    weights = Path(weights)
    if model_format(weights) != "pt":
        raise UserError(f"export starts from a .pt checkpoint, not {weights.name}")
    if int8 and data is None:
        raise UserError("--int8 needs --data DATA_YAML: its images calibrate the quantisation")
    if data is not None and not Path(data).is_file():
        raise UserError(f"dataset not found: {data}")
    require_export_dependencies(format, int8)
    out = Path(out) if out else default_export_path(weights, format, int8)
    with atomic_output(out, overwrite, is_dir=False) as target:
        work_weights = target.parent / f"{weights.stem}.pt"  # Ultralytics writes the export beside the weights
        shutil.copyfile(weights, work_weights)
        skip_requirement_checks("exporter")
        args: dict[str, Any] = {"format": format, "dynamic": opts.dynamic, "verbose": False}
        if format == "onnx":
            args["simplify"] = False  # onnxslim is not in the export extra
        if opts.imgsz:
            args["imgsz"] = list(opts.imgsz) if isinstance(opts.imgsz, tuple) else opts.imgsz
        if int8:
            args.update(quantize=8, data=str(Path(data).resolve()))  # Ultralytics' name; `int8` is deprecated
        log.info("exporting %s to %s%s ...", weights.name, format, " INT8" if int8 else "")
        if int8:
            import nncf  # noqa: F401  (its import sets its logger to INFO: import it before quietening it)
        try:
            # Ultralytics would print paths in the temporary folder (gone once the export moves into place), NNCF
            # one INFO line per operation it leaves unquantised, torch that the tracing Ultralytics uses is deprecated
            with quiet_loggers("nncf"), warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=r"`torch\.jit\.trace", category=FutureWarning)
                model = load_model(work_weights)
                exported = Path(model.export(**args))
        except (RuntimeError, AssertionError, ValueError) as exc:
            raise UserError(f"export to {format} failed: {exc}") from None
        if not exported.exists():
            raise UserError(f"export to {format} wrote nothing")
        os.replace(exported, target)
    out = out.resolve()
    manifest = run_manifest(
        "export",
        {"weights": str(weights), "out": str(out), "data": data, **opts.record()},
        inputs={"weights": weights},
        extra={"exported": out.name},
    )
    write_json_atomic(Path(f"{out}.json"), manifest)
    log.debug("exported %s -> %s", weights.name, out)  # the command says where it went
    return out
