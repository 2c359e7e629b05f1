"""``yolo_spine export``: a trained ``.pt`` to ONNX or OpenVINO (optionally INT8) for real time on the CPU.

The exported model keeps the class names and task in its metadata, so ``predict`` (and ``val``) accept it like
the ``.pt``. ONNX, ONNX Runtime, OpenVINO and NNCF (INT8) are this package's ``export`` extra: Ultralytics would
try to pip-install them at export time, which fails offline, so a missing one is reported with
``pip install -e .[export]``. The export runs in a temporary folder and is moved into place when it succeeded;
``<OUT>.json`` beside it is the run manifest.

INT8 guard: ``--int8`` quantises with NNCF's post-training quantisation (Ultralytics' recipe: mixed preset,
calibrated on every image of ``calibration_split``, train or val, never test), then also exports FP32 OpenVINO
and validates both on ``eval_split`` (Ultralytics' validator, conf 0.001, batch 1). The drop is
``100 × (FP32 − INT8)`` mask mAP50-95, in points. When it exceeds ``max_drop`` and ``accuracy_aware`` is ``auto``
(the default), NNCF's accuracy-aware quantisation (:mod:`yolo_spine.predict.quantize`: the most sensitive layers
go back to FP32 until the metric on ``tuning_split`` is within the limit) replaces it and the guard measures
again; ``always`` skips the plain attempt, ``never`` refuses at once. A model still above the limit is refused
and nothing is written. The figures go into the run manifest (``int8_check``).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import typing
import warnings
from dataclasses import asdict, dataclass, replace
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


@dataclass(frozen=True)
class Int8Check:
    """INT8 against FP32 OpenVINO on one split (mAP in 0..1, the drop in points of 100).

    Attributes:
        eval_split: The split both models were validated on.
        calibration_split: The split whose images calibrated the quantisation.
        images: Images in ``eval_split``.
        fp32_mask_map50_95: Mask mAP50-95 of the FP32 OpenVINO model.
        int8_mask_map50_95: Mask mAP50-95 of the INT8 model.
        fp32_mask_map50: Mask mAP50 of the FP32 model.
        int8_mask_map50: Mask mAP50 of the INT8 model.
        drop_points: ``100 × (fp32_mask_map50_95 − int8_mask_map50_95)`` (negative: INT8 scored higher).
        max_drop: The limit, points.
        passed: ``drop_points <= max_drop``.
        method: ``post-training`` (Ultralytics' NNCF recipe) or ``accuracy-aware``.
        post_training_drop_points: The plain recipe's drop when accuracy-aware quantisation replaced it.
        accuracy_aware: The accuracy-aware run's record (:class:`~yolo_spine.predict.quantize.AccuracyAwareRecord`).
    """

    eval_split: str
    calibration_split: str
    images: int
    fp32_mask_map50_95: float
    int8_mask_map50_95: float
    fp32_mask_map50: float
    int8_mask_map50: float
    drop_points: float
    max_drop: float
    passed: bool
    method: str = "post-training"
    post_training_drop_points: float | None = None
    accuracy_aware: dict[str, Any] | None = None

    @property
    def vacuous(self) -> bool:
        """FP32 scores no more than the limit on the split, so the drop (at most FP32's score) cannot exceed it."""
        return 100.0 * self.fp32_mask_map50_95 <= self.max_drop

    def sentence(self) -> str:
        """One line for the console and the log."""
        text = (
            f"INT8 mask mAP50-95 on {self.eval_split} ({self.images} images) {100 * self.int8_mask_map50_95:.2f} "
            f"vs FP32 {100 * self.fp32_mask_map50_95:.2f}: drop {self.drop_points:.2f} points "
            f"(limit {self.max_drop:g}; {self.method} quantisation calibrated on {self.calibration_split})"
        )
        if self.post_training_drop_points is not None:
            text += f"; plain post-training INT8 had dropped {self.post_training_drop_points:.2f} points"
        if self.accuracy_aware:
            aa = self.accuracy_aware
            text += f"; tuned on {aa['tuning_split']} ({aa['tuning_images']} images)"
        if self.vacuous:
            text += (
                f"; FP32 itself scores no more than the limit on {self.eval_split}, so this check cannot fail: "
                "measure on a split where the model finds its targets"
            )
        return text


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
        data: A dataset ``data.yaml``: its ``calibration_split`` calibrates INT8, its ``eval_split`` measures the drop.
        overwrite: Replace an existing export.
        **option_values: Option values replacing those of ``options`` (e.g. ``format="openvino"``, ``imgsz=320``).

    Returns:
        The path of the exported model; with INT8 its run manifest holds ``int8_check`` (see :class:`Int8Check`).

    Raises:
        UserError: Bad options, a model that is not a ``.pt`` segmentation model, INT8 without data or for ONNX,
            an existing output, an INT8 model whose mask mAP50-95 drop exceeds ``max_drop`` (nothing written).
        DataError: INT8 with a dataset that lacks the calibration or evaluation split.
        MissingDependencyError: A package of the ``export`` extra is missing.
    """
    from yolo_spine.io.atomic import atomic_output, write_json_atomic
    from yolo_spine.options import resolve_options
    from yolo_spine.predict.model import load_model, model_format
    from yolo_spine.provenance import run_manifest
    from yolo_spine.ultra import skip_requirement_checks

    opts = resolve_options(ExportOptions, options, option_values)
    format, int8 = opts.format, opts.int8
    weights = Path(weights)
    if model_format(weights) != "pt":
        raise UserError(f"export starts from a .pt checkpoint, not {weights.name}")
    if int8 and data is None:
        raise UserError("--int8 needs --data DATA_YAML: its images calibrate the quantisation")
    if data is not None and not Path(data).is_file():
        raise UserError(f"dataset not found: {data}")
    if int8 and data is not None:  # (int8 without data was refused above)
        from yolo_spine.io.labels import split_images

        for split in {opts.calibration_split, opts.tuning_split} - {opts.eval_split}:
            split_images(data, split, "the INT8 check")  # a missing split is an error before any work
        n_eval = len(split_images(data, opts.eval_split, "the INT8 check"))
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
        log.info("exporting %s to %s%s ...", weights.name, format, " INT8" if int8 else "")
        model = load_model(work_weights)
        exported = _run_export(model, args, format)
        check: Int8Check | None = None
        if int8 and data is not None:  # the plain export above is the FP32 reference (Ultralytics exports a copy)
            exported, check = _int8(model, args, exported, Path(data).resolve(), opts, n_eval, target.parent)
        os.replace(exported, target)
    out = out.resolve()
    manifest = run_manifest(
        "export",
        {"weights": str(weights), "out": str(out), "data": data, **opts.record()},
        inputs={"weights": weights},
        extra={"exported": out.name, "int8_check": asdict(check) if check else None},
    )
    write_json_atomic(Path(f"{out}.json"), manifest)
    log.debug("exported %s -> %s", weights.name, out)  # the command says where it went
    return out


def _int8(
    model: Any, args: dict[str, Any], fp32: Path, data: Path, opts: ExportOptions, n_eval: int, work: Path
) -> tuple[Path, Int8Check]:
    """Quantise (post-training, then accuracy-aware if that misses) and guard; return the INT8 folder and check.

    Raises:
        UserError: The INT8 model's drop exceeds ``max_drop`` (nothing is written).
    """
    plain: Int8Check | None = None
    if opts.accuracy_aware != "always":
        # quantize=8: Ultralytics' name (`int8` is deprecated); calibration on calibration_split only
        int8_args = {**args, "quantize": 8, "data": str(data), "split": opts.calibration_split}
        exported = _run_export(model, int8_args, "openvino")
        plain = measure_int8_drop(fp32, exported, data, opts, n_eval, scratch=work)
        log.log(logging.WARNING if plain.vacuous else logging.INFO, "%s", plain.sentence())
        if plain.passed or opts.accuracy_aware == "never":
            return exported, _guard(plain)
    exported, check = _accuracy_aware(fp32, data, opts, n_eval, work, plain)
    return exported, _guard(check)


def _accuracy_aware(
    fp32: Path, data: Path, opts: ExportOptions, n_eval: int, work: Path, plain: Int8Check | None
) -> tuple[Path, Int8Check]:
    """NNCF's accuracy-aware INT8 of the FP32 export, checked like the plain one (FP32 scored once: ``plain``'s)."""
    from yolo_spine.predict.quantize import accuracy_aware_int8

    log.info(
        "accuracy-aware INT8: returning the most sensitive layers to FP32 until mask mAP50-95 on %s is within "
        "%g points (minutes: it validates once per step) ...",
        opts.tuning_split,
        opts.max_drop,
    )
    aa_dir = work / f"{fp32.name.removesuffix('_openvino_model')}_int8_aa_openvino_model"
    record = accuracy_aware_int8(
        fp32,
        data,
        calibration_split=opts.calibration_split,
        tuning_split=opts.tuning_split,
        size=_square(_export_imgsz(fp32)),
        max_drop=opts.max_drop,
        out=aa_dir,
        scratch=work / "accuracy_aware",
    )
    fp32_scores = None if plain is None else (plain.fp32_mask_map50_95, plain.fp32_mask_map50)
    check = replace(
        measure_int8_drop(fp32, aa_dir, data, opts, n_eval, scratch=work, fp32_scores=fp32_scores),
        method="accuracy-aware",
        post_training_drop_points=None if plain is None else plain.drop_points,
        accuracy_aware=asdict(record),
    )
    log.log(logging.WARNING if check.vacuous else logging.INFO, "%s", check.sentence())
    return aa_dir, check


def _guard(check: Int8Check) -> Int8Check:
    """``check`` when its drop is within ``--max-drop``; otherwise refuse in one sentence."""
    if not check.passed:
        raise UserError(
            f"refusing to write the INT8 model: {check.sentence()} exceeds --max-drop; nothing was written "
            "(calibrate on more images, raise --max-drop, or use FP32 OpenVINO)"
        )
    return check


def _square(size: int | list[int]) -> int:
    """The side of a square input size (accuracy-aware quantisation letterboxes to a square)."""
    if isinstance(size, int):
        return size
    if size[0] != size[1]:
        raise UserError(f"accuracy-aware INT8 needs a square input size, not {size[0]}x{size[1]}")
    return size[0]


def _run_export(model: Any, args: dict[str, Any], format: str) -> Path:
    from yolo_spine.ultra import quiet_loggers

    if args.get("quantize") == 8:
        import nncf  # noqa: F401  (its import sets its logger to INFO: import it before quietening it)
    try:
        # Ultralytics would print paths in the temporary folder (gone once the export moves into place), NNCF
        # one INFO line per operation it leaves unquantised, torch that the tracing Ultralytics uses is deprecated
        with quiet_loggers("nncf"), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"`torch\.jit\.trace", category=FutureWarning)
            exported = Path(model.export(**args))
    except (RuntimeError, AssertionError, ValueError) as exc:
        raise UserError(f"export to {format} failed: {exc}") from None
    if not exported.exists():
        raise UserError(f"export to {format} wrote nothing")
    return exported


def mask_map(model_path: Path, data: Path, split: str, imgsz: int | list[int], scratch: Path) -> tuple[float, float]:
    """Return (mask mAP50-95, mask mAP50) of a model on a dataset split, as Ultralytics' validator computes them.

    conf 0.001 (the validator's own default, so the precision-recall curve is complete) and batch 1 (a static
    OpenVINO export takes one image).
    """
    from yolo_spine.ultra import load_segmentation_model, quiet_loggers

    model = load_segmentation_model(model_path)
    with quiet_loggers():  # the validator's lines name the temporary folder; the result is logged by the caller
        metrics = model.val(
            data=str(data),
            split=split,
            imgsz=imgsz,
            batch=1,
            conf=0.001,
            plots=False,
            save_json=False,
            project=str(scratch),
            name=f"val_{model_path.name}",
            exist_ok=True,
            verbose=False,
        )
    return float(metrics.seg.map), float(metrics.seg.map50)


def measure_int8_drop(
    fp32: Path,
    int8: Path,
    data: Path,
    opts: ExportOptions,
    images: int,
    scratch: Path,
    fp32_scores: tuple[float, float] | None = None,
) -> Int8Check:
    """Validate the FP32 and the INT8 OpenVINO exports on ``opts.eval_split`` and compare their mask mAP50-95.

    Args:
        fp32: The FP32 OpenVINO folder.
        int8: The INT8 OpenVINO folder (same input size).
        data: The dataset ``data.yaml``.
        opts: Export options (``eval_split``, ``calibration_split``, ``max_drop``).
        images: Images in the split (recorded).
        scratch: A folder for the validator's run files.
        fp32_scores: The FP32 model's ``(mask mAP50-95, mask mAP50)`` on that split when already measured.

    Returns:
        The figures and whether the drop is within ``opts.max_drop``.
    """
    imgsz = _export_imgsz(int8)
    fp32_map, fp32_map50 = fp32_scores or mask_map(fp32, data, opts.eval_split, imgsz, scratch)
    int8_map, int8_map50 = mask_map(int8, data, opts.eval_split, imgsz, scratch)
    drop = 100.0 * (fp32_map - int8_map)
    return Int8Check(
        eval_split=opts.eval_split,
        calibration_split=opts.calibration_split,
        images=images,
        fp32_mask_map50_95=fp32_map,
        int8_mask_map50_95=int8_map,
        fp32_mask_map50=fp32_map50,
        int8_mask_map50=int8_map50,
        drop_points=drop,
        max_drop=opts.max_drop,
        passed=drop <= opts.max_drop,
    )


def _export_imgsz(folder: Path) -> int | list[int]:
    """The input size an OpenVINO export was written for (its ``metadata.yaml``): an int when square."""
    import yaml

    meta = yaml.safe_load((folder / "metadata.yaml").read_text(encoding="utf-8")) or {}
    size = meta.get("imgsz") or [640, 640]
    size = [int(v) for v in (size if isinstance(size, list) else [size, size])]
    return size[0] if size[0] == size[1] else size


def _quiet_requirements() -> None:
    """Keep Ultralytics' exporter from trying to pip-install what the export extra already provides."""
    import ultralytics.engine.exporter as exporter

    exporter.check_requirements = lambda *a, **k: True
