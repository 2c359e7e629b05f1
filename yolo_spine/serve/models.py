"""The models a ``serve`` process holds: loaded once at start-up, described for clients, run one request at a time.

:func:`load_served_models` loads every ``--weights`` through :func:`yolo_spine.predict.model.load_model` (the
offline Ultralytics loader every stage uses) and runs each once on a blank frame, so the first request does not
pay for start-up. :meth:`ServedModel.predict` returns instances in pixels of the image it was given: the
``box_xyxy`` and ``polygon_xy`` of :func:`yolo_spine.predict.run.result_instances`, in the service's contract
names (``name``, ``confidence``).

Inference is not thread-safe in Ultralytics and two concurrent runs on the same cores would each slow the other
(see :mod:`yolo_spine.parallel`), so the app serialises calls with one lock (:mod:`yolo_spine.serve.app`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from yolo_spine.errors import UserError
from yolo_spine.serve.options import ServeOptions

log = logging.getLogger("yolo_spine")

#: Weight file stems that say nothing about the model (``runs/<name>/weights/best.pt``): the run folder names it.
GENERIC_STEMS = frozenset({"best", "last", "model", "weights"})


@dataclass
class ServedModel:
    """One loaded segmentation model and what clients are told about it.

    Attributes:
        name: The name clients use (``?model=NAME``, ``/infer/NAME``).
        classes: Class names in id order (the registry's order for a shipped anatomy).
        anatomy: The registry whose classes these are, or ``None`` for a model of other classes.
        default_conf: Confidence threshold used when a request gives none.
        sha256_12: The first 12 hex digits of the weights' SHA-256 (what a report cites).
        model: The Ultralytics ``YOLO`` model.
        weights: The weights file or folder (for the algorithm identification of a DICOM-SEG).
        predict_args: Keyword arguments of every ``model.predict`` call except ``conf``.
    """

    name: str
    classes: list[str]
    anatomy: str | None
    default_conf: float
    sha256_12: str
    model: Any = field(repr=False)
    weights: Path | None = None
    predict_args: dict[str, Any] = field(default_factory=dict, repr=False)

    def describe(self) -> dict[str, Any]:
        """The model's entry in ``GET /v1/models``."""
        return {
            "name": self.name,
            "anatomy": self.anatomy,
            "classes": list(self.classes),
            "default_conf": self.default_conf,
            "sha256_12": self.sha256_12,
        }

    def predict(self, image_bgr: np.ndarray, conf: float) -> list[dict[str, Any]]:
        """Segment one image; not thread-safe (callers hold the app's inference lock).

        Args:
            image_bgr: ``(H, W, 3)`` ``uint8`` BGR pixels.
            conf: Confidence threshold in ``[0, 1]``.

        Returns:
            Instances in descending confidence: ``class_id``, ``name``, ``confidence``, ``box_xyxy``
            (``[x1, y1, x2, y2]``) and ``polygon_xy`` (``[[x, y], …]``), in pixels of ``image_bgr``.
        """
        from yolo_spine.predict.run import result_instances

        result = self.model.predict(image_bgr, conf=conf, **self.predict_args)[0]
        out = [
            {
                "class_id": inst["class_id"],
                "name": inst["class"],
                "confidence": inst["conf"],
                "box_xyxy": inst["box_xyxy"],
                "polygon_xy": inst["polygon_xy"],
            }
            for inst in result_instances(result, self.classes)
        ]
        out.sort(key=lambda i: -i["confidence"])
        return out


def weights_name(weights: Path) -> str:
    """The name a model is served under: the file stem, or the run folder for ``runs/<name>/weights/best.pt``."""
    w = Path(weights)
    stem = w.name.removesuffix("_openvino_model") if w.name.endswith("_openvino_model") else w.stem
    if stem in GENERIC_STEMS and w.parent.name == "weights" and w.parent.parent.name:
        return w.parent.parent.name
    if stem in GENERIC_STEMS and w.parent.name:
        return w.parent.name
    return stem


def parse_weights_arg(text: str) -> tuple[str | None, Path]:
    """Split ``--weights [NAME=]PATH`` into the optional name and the path."""
    name, sep, path = text.partition("=")
    if sep and name and "/" not in name and not Path(text).exists():
        return name, Path(path)
    return None, Path(text)


def _weights_hash(weights: Path) -> str:
    from yolo_spine.provenance import sha256_file, sha256_files

    if weights.is_dir():
        return sha256_files(sorted(p for p in weights.rglob("*") if p.is_file()), root=weights)
    return sha256_file(weights)


def load_served_model(weights: str | Path, options: ServeOptions, name: str | None = None) -> ServedModel:
    """Load one model for serving and warm it up.

    Args:
        weights: ``.pt``, ``.onnx`` or an OpenVINO folder.
        options: The service's options (threads, device, conf, NMS settings).
        name: The name clients use (default: :func:`weights_name`).

    Raises:
        UserError: A missing or unusable model, a ``default_conf: auto`` without a review, a device not here.
    """
    from yolo_spine.predict.model import class_names, load_model, resolve_conf
    from yolo_spine.predict.run import registry_for_names

    w = Path(weights)
    conf, _ = resolve_conf(options.default_conf, w, None, options.fallback_conf)
    model = load_model(w, threads=options.threads)
    classes = class_names(model)
    reg = registry_for_names(classes, None)
    args: dict[str, Any] = {"iou": options.iou, "max_det": options.max_det, "verbose": False, "save": False}
    if options.imgsz:
        args["imgsz"] = options.imgsz
    if options.device is not None:
        args["device"] = options.device
    served = ServedModel(
        name=name or weights_name(w),
        classes=classes,
        anatomy=reg.name if reg is not None else None,
        default_conf=float(conf),
        sha256_12=_weights_hash(w)[:12],
        model=model,
        weights=w,
        predict_args=args,
    )
    blank = options.imgsz or 640
    try:
        served.predict(np.zeros((blank, blank, 3), np.uint8), conf=served.default_conf)  # load + warm up
    except ValueError as exc:  # Ultralytics' select_device: a GPU that is not there
        if options.device is None:
            raise
        raise UserError(f"device {options.device} cannot be used here: {str(exc).splitlines()[0]}") from None
    return served


def load_served_models(weights: list[str | Path], options: ServeOptions) -> list[ServedModel]:
    """Load every ``--weights [NAME=]PATH`` once; names must be unique.

    Raises:
        UserError: No weights, a duplicate name, or a model that cannot be loaded.
    """
    if not weights:
        raise UserError("give at least one --weights")
    models: list[ServedModel] = []
    for item in weights:
        name, path = parse_weights_arg(str(item))
        served = load_served_model(path, options, name)
        if any(m.name == served.name for m in models):
            raise UserError(f"two models would be served as '{served.name}'; name them with --weights NAME=PATH")
        models.append(served)
        log.info("model '%s': %d classes, weights sha256 %s…", served.name, len(served.classes), served.sha256_12)
    return models
