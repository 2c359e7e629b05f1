"""Load a segmentation model for prediction (PyTorch ``.pt``, ONNX, OpenVINO) and resolve ``--conf auto``.

Every format loads through :mod:`yolo_spine.ultra` (offline Ultralytics, every CPU core). ONNX Runtime and
OpenVINO are this package's ``export`` extra: when one is missing the user is told to
``pip install -e .[export]`` instead of Ultralytics trying (and, offline, failing) to pip-install it.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path
from typing import Any, Literal

from yolo_spine.errors import MissingDependencyError, UserError

log = logging.getLogger("yolo_spine")

#: Where ``--conf auto`` looks for the review's ``metrics.json``, relative to the weights file's folder.
REVIEW_CANDIDATES = ("metrics.json", "../metrics.json", "../review/metrics.json", "review/metrics.json")
EXPORT_EXTRA_HINT = "pip install -e .[export]"


def model_format(weights: str | Path) -> str:
    """Return ``pt``, ``onnx`` or ``openvino`` for a weights path.

    Raises:
        UserError: If the path is missing or of another kind.
    """
    w = Path(weights)
    if not w.exists():
        raise UserError(f"weights not found: {w}")
    if w.is_dir():
        if any(w.glob("*.xml")):
            return "openvino"
        raise UserError(f"{w} is a folder without an OpenVINO model (*.xml); give a .pt, .onnx or OpenVINO folder")
    if w.suffix == ".xml":
        return "openvino"
    if w.suffix in {".pt", ".onnx"}:
        return w.suffix[1:]
    raise UserError(f"{w.name} is not a .pt, .onnx or OpenVINO model")


def require_runtime(fmt: str) -> None:
    """Raise :class:`MissingDependencyError` naming the extra when the runtime of ``fmt`` is not installed."""
    module = {"onnx": "onnxruntime", "openvino": "openvino"}.get(fmt)
    if module and importlib.util.find_spec(module) is None:
        raise MissingDependencyError(f"{fmt} models need {module}; install the export extra: {EXPORT_EXTRA_HINT}")


def load_model(weights: str | Path, threads: int | None = None) -> Any:
    """Load a YOLO segmentation model for prediction, offline.

    Args:
        weights: A ``.pt`` checkpoint, an ``.onnx`` file or an OpenVINO folder (``*_openvino_model``).
        threads: CPU threads for torch (default: every core this process may use).

    Returns:
        The Ultralytics ``YOLO`` model; ``model.names`` are the class names in id order.

    Raises:
        UserError: A missing or unreadable file, a model that is not a segmentation model.
        MissingDependencyError: ONNX Runtime or OpenVINO is needed and not installed.
    """
    from yolo_spine.parallel import available_cpus

    fmt = model_format(weights)
    require_runtime(fmt)
    from yolo_spine.ultra import load_segmentation_model

    w = Path(weights)
    if fmt == "openvino" and w.is_file():
        w = w.parent
    return load_segmentation_model(w, threads=threads or available_cpus())


def runtime_threads(model: Any) -> dict[str, Any]:
    """Return the CPU threads a loaded model runs on: torch's, and ONNX Runtime's or OpenVINO's where they run it.

    Call after the first prediction (Ultralytics builds its backend then). ``onnxruntime``: the session's
    ``intra_op_num_threads`` (0 is its default, one thread per physical core); ``openvino``: the compiled model's
    ``INFERENCE_NUM_THREADS``. Torch runs the network of a ``.pt`` and, for every format, the letterbox, NMS and
    mask assembly.
    """
    import torch

    out: dict[str, Any] = {"torch": torch.get_num_threads()}
    backend = getattr(getattr(getattr(model, "predictor", None), "model", None), "backend", None)
    session = getattr(backend, "session", None)
    if session is not None and hasattr(session, "get_session_options"):
        out["onnxruntime"] = int(session.get_session_options().intra_op_num_threads)
    compiled = getattr(backend, "ov_compiled_model", None)
    if compiled is not None:
        try:
            out["openvino"] = int(compiled.get_property("INFERENCE_NUM_THREADS"))
        except (RuntimeError, TypeError, ValueError):  # a plugin without the property
            out["openvino"] = None
    return out


def class_names(model: Any) -> list[str]:
    """Return the model's class names in id order."""
    names = model.names
    return [str(names[i]) for i in range(len(names))] if isinstance(names, dict) else [str(n) for n in names]


def find_review_metrics(weights: str | Path, review: str | Path | None = None) -> Path:
    """Find the review ``metrics.json`` for ``--conf auto``.

    Args:
        weights: The model path; its folder, the folder above and a ``review/`` folder there are searched.
        review: An explicit ``metrics.json`` or review folder (``--review``).

    Raises:
        UserError: If none is found.
    """
    if review is not None:
        r = Path(review)
        path = r / "metrics.json" if r.is_dir() else r
        if not path.is_file():
            raise UserError(f"no review metrics.json at {path}; write one with `yolo_spine val`")
        return path
    base = Path(weights)
    base = base if base.is_dir() else base.parent
    for rel in REVIEW_CANDIDATES:
        path = (base / rel).resolve()
        if path.is_file():
            return path
    raise UserError(
        f"--conf auto needs the review's metrics.json beside {Path(weights).name} (run `yolo_spine val`) "
        "or --review PATH; or give --conf as a number"
    )


def auto_conf(
    weights: str | Path, review: str | Path | None = None, fallback: float = 0.25
) -> tuple[float, dict[str, Any]]:
    """Return the best-F1 mask confidence of the model's review, or ``fallback`` when the model is not usable.

    A review whose model is not usable (:mod:`yolo_spine.review.usability`: best mean mask F1 near zero, or no
    positive F1 at all) has a best-F1 confidence that is noise (0.012 after one epoch); it is never used: a
    warning names the verdict and ``fallback`` is used instead.

    Returns:
        The confidence and its record for ``run.json``: ``from`` (``auto (review/metrics.json)`` or
        ``fallback_conf (…)``), and for a fallback the refused ``best_f1_conf``, ``best_mask_f1`` and ``reason``.

    Raises:
        UserError: No review, or an unreadable one.
    """
    from yolo_spine.review.usability import verdict_of

    path = find_review_metrics(weights, review)
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
        conf = metrics["best_conf"]["mask"]["all"]["conf"]
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"{path} is not a review metrics.json (no best_conf.mask.all.conf)") from None
    where = f"{path.parent.name}/{path.name}"
    verdict = verdict_of(metrics)
    if conf is None or (verdict is not None and not verdict["usable"]):
        reason = (verdict.get("message") if verdict else None) or "the review found no confidence with a positive F1"
        log.warning(
            "--conf auto: %s Its best-F1 confidence (%s) is not used; predicting at fallback_conf %.3f instead.",
            reason.rstrip(".") + ".",
            "none" if conf is None else f"{conf:.3f}",
            fallback,
        )
        return float(fallback), {
            "from": f"fallback_conf (the model of {where} is not usable)",
            "best_f1_conf": conf,
            "best_mask_f1": verdict.get("best_mask_f1") if verdict else None,
            "reason": reason,
        }
    log.info("confidence %.3f: best F1 of the review %s", conf, where)
    return float(conf), {"from": f"auto ({where})"}


def resolve_conf(
    conf: float | Literal["auto"], weights: str | Path, review: str | Path | None = None, fallback: float = 0.25
) -> tuple[float, dict[str, Any]]:
    """Turn a checked ``conf`` option (a number in ``[0, 1]`` or ``auto``) into a confidence and its record.

    Args:
        conf: The option.
        weights: The model (its review is searched beside it).
        review: An explicit review ``metrics.json`` or folder.
        fallback: Used by ``auto`` when the review says the model is not usable (``fallback_conf``).

    Returns:
        The confidence and ``{"from": …}`` (with the refused confidence and the reason after a fallback).

    Raises:
        UserError: ``auto`` without a readable review.
    """
    if conf == "auto":
        return auto_conf(weights, review, fallback)
    return conf, {"from": "given"}
