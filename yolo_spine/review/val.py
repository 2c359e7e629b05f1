"""``yolo_spine val``: the review a clinician or engineer reads, from one Ultralytics validation run.

Outputs in ``REVIEW_DIR``:

* ``BoxP_curve.png BoxR_curve.png BoxPR_curve.png BoxF1_curve.png MaskP_curve.png MaskR_curve.png
  MaskPR_curve.png MaskF1_curve.png`` and ``curves.csv`` (``curve, class, confidence, recall, value``: P, R and
  F1 rows are functions of confidence, PR rows of recall; ``class`` is a class name or ``all``);
* ``confusion_matrix.png`` / ``.csv`` at the best-F1 mask confidence (rows: ground truth, columns: prediction,
  last: background), not at Ultralytics' 0.001;
* ``metrics.json``: box and mask precision, recall, mAP50, mAP50-95 overall and per class (registry order);
  ``best_conf`` (``best_conf.mask.all.conf`` is what ``predict --conf auto`` uses); ``usability`` (is the model
  usable at all: best mean mask F1 ≥ ``min_usable_f1``, with a one-sentence ``message`` when not,
  :mod:`yolo_spine.review.usability`); a pycocotools cross-check
  of the mask mAP with its tolerance; confusions between anatomical neighbours;
* ``report.html``: everything above in one self-contained file; ``review.json``: the run manifest.
"""

from __future__ import annotations

import csv
import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from yolo_spine.errors import DataError, UserError
from yolo_spine.identifiers import sanitize
from yolo_spine.io.atomic import atomic_output, write_json_atomic
from yolo_spine.provenance import run_manifest
from yolo_spine.review.cocoeval import TOLERANCE, coco_mask_map, ground_truth_coco
from yolo_spine.review.curves import best_f1, curve_rows, curves_from_metric, plot_curve
from yolo_spine.review.matching import ImageInstances, match_split, neighbour_confusions
from yolo_spine.review.options import ReviewOptions
from yolo_spine.review.usability import Usability, usability

log = logging.getLogger("yolo_spine")

CURVE_FILES = [f"{p}{c}_curve.png" for p in ("Box", "Mask") for c in ("P", "R", "PR", "F1")]


# The metric names hold a hyphen ("mAP50-95"), hence the functional form.
ClassMetrics = TypedDict(
    "ClassMetrics", {"precision": float, "recall": float, "mAP50": float, "mAP50-95": float, "instances": int}
)
TaskMetrics = TypedDict(
    "TaskMetrics",
    {
        "precision": float,
        "recall": float,
        "mAP50": float,
        "mAP50-95": float,
        "per_class": dict[str, ClassMetrics],  # registry order; classes without instances left out
    },
)


class ReviewMetrics(TypedDict):
    """The review's ``metrics.json`` (also :func:`review`'s return value)."""

    schema: int
    weights: str  # base name unless --record-paths
    dataset: str
    anatomy: str | None
    split: str
    imgsz: int
    images: int
    instances: int
    names: list[str]
    box: TaskMetrics
    mask: TaskMetrics
    best_conf: dict[str, Any]  # task → class or "all" → conf, f1, precision, recall (best mean F1)
    usability: Usability
    pycocotools: dict[str, Any]  # mask mAP by pycocotools beside Ultralytics', their difference, agree
    confusion_matrix: dict[str, Any]  # conf, iou and the files
    errors_per_image: dict[str, int]  # most errors first
    has_order: bool
    neighbour_confusions: list[Any]
    curves_csv: str
    created_utc: str  # the run manifest's (review.json)


def _per_class(metric: Any, names: list[str], counts: dict[int, int]) -> dict[str, ClassMetrics]:
    out: dict[str, ClassMetrics] = {}
    for k, c in enumerate(np.asarray(metric.ap_class_index, dtype=int)):
        p, r, ap50, ap = (float(v) for v in metric.class_result(k))
        out[names[c]] = {"precision": p, "recall": r, "mAP50": ap50, "mAP50-95": ap, "instances": counts.get(c, 0)}
    return out


def _task_summary(metric: Any, names: list[str], counts: dict[int, int]) -> TaskMetrics:
    per = _per_class(metric, names, counts)
    ordered = {n: per[n] for n in names if n in per}  # registry order
    return {
        "precision": float(metric.mp),
        "recall": float(metric.mr),
        "mAP50": float(metric.map50),
        "mAP50-95": float(metric.map),
        "per_class": ordered,
    }


def _gt_instances(stem: str, lbl: Path, w: int, h: int) -> ImageInstances:
    from yolo_spine.geometry import polygons_to_mask
    from yolo_spine.io.labels import read_yolo_labels

    inst = read_yolo_labels(lbl).instances
    masks = (
        np.stack([polygons_to_mask([i.polygon_xy(w, h)], h, w) for i in inst]) if inst else np.zeros((0, h, w), bool)
    )
    return ImageInstances(stem, np.array([i.cls for i in inst], dtype=int), masks)


def _pred_instances(stem: str, dets: list[dict], w: int, h: int) -> ImageInstances:
    from pycocotools import mask as mask_utils

    if not dets:
        return ImageInstances(stem, np.zeros(0, int), np.zeros((0, h, w), bool), np.zeros(0))
    masks = np.stack([mask_utils.decode(d["segmentation"]).astype(bool) for d in dets])
    return ImageInstances(
        stem,
        np.array([d["category_id"] - 1 for d in dets], dtype=int),
        masks,
        np.array([d["score"] for d in dets], dtype=float),
    )


def _plot_confusion(matrix: np.ndarray, names: list[str], conf: float | None, out_png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    present = [i for i in range(len(names)) if matrix[i].sum() or matrix[:, i].sum()]
    idx = [*present, len(names)]
    labels = [names[i] for i in present] + ["background"]
    sub = matrix[np.ix_(idx, idx)].astype(float)
    norm = sub / np.maximum(sub.sum(1, keepdims=True), 1)
    n = len(idx)
    fig, ax = plt.subplots(figsize=(max(5, 0.38 * n + 2), max(4.5, 0.38 * n + 1.5)), dpi=110)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            if sub[i, j]:
                ax.text(
                    j,
                    i,
                    str(int(sub[i, j])),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black",
                )
    ax.set_xticks(range(n), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(n), labels, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    ax.set_title(
        f"instances at confidence {conf if conf is not None else 'n/a'} (mask IoU ≥ 0.5); colour: share of the row",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(out_png)
    plt.close(fig)


def review(
    weights: str | Path,
    data: str | Path,
    out: str | Path,
    options: ReviewOptions | None = None,
    *,
    overwrite: bool = False,
    **option_values: Any,
) -> ReviewMetrics:
    """Validate a model on a dataset split and write the review (see the module docstring for the files).

    Args:
        weights: Model (``.pt``, ``.onnx`` or OpenVINO folder).
        data: The dataset's ``data.yaml``.
        out: Review folder (written atomically; refused if it exists unless ``overwrite``).
        options: Split, inference size, batch, device, error images (default: ``configs/review/default.yaml``).
        overwrite: Replace an existing review.
        **option_values: Option values replacing those of ``options`` (e.g. ``split="test"``, ``imgsz=320``).

    Returns:
        The contents of ``metrics.json``.

    Raises:
        UserError: Bad options, missing files, a model that is not a segmentation model, an empty split.
    """
    from yolo_spine.options import resolve_options

    opts = resolve_options(ReviewOptions, options, option_values)
    split = opts.split
    from yolo_spine.io.labels import read_data_yaml
    from yolo_spine.registry import load_registry
    from yolo_spine.ultra import load_segmentation_model, skip_requirement_checks

    data = Path(data).resolve()
    lay = read_data_yaml(data)
    if split not in lay.image_dirs or not lay.image_dirs[split].is_dir():
        raise DataError(f"{data} has no '{split}' split")
    model = load_segmentation_model(weights)
    skip_requirement_checks("validator")
    names = [str(model.names[i]) for i in range(len(model.names))]
    if len(names) != len(lay.names):
        raise UserError(f"the model has {len(names)} classes but {data} has {len(lay.names)}")
    reg = load_registry(lay.anatomy) if lay.anatomy else None
    imgsz = opts.imgsz or int((getattr(model, "overrides", {}) or {}).get("imgsz") or 640)

    from PIL import Image

    from yolo_spine.io.xray import list_images

    images = list_images(lay.image_dirs[split])
    if not images:
        raise DataError(f"the '{split}' split of {data} has no images")
    sizes = {}
    for p in images:
        with Image.open(p) as im:
            sizes[p.stem] = im.size  # (w, h)

    with atomic_output(out, overwrite=overwrite) as tmp:
        metrics = model.val(
            data=str(data),
            split=split,
            imgsz=imgsz,
            batch=opts.batch,
            device=opts.device,
            conf=0.001,
            plots=True,
            save_json=True,
            project=str(tmp),
            name="ultralytics",
            exist_ok=True,
            verbose=False,
        )
        ul_dir = tmp / "ultralytics"
        counts: dict[int, int] = {}
        gt_images = []
        for p in images:
            lbl = lay.label_dirs[split] / f"{p.stem}.txt"
            gt_images.append((p.stem, lbl, *sizes[p.stem]))
        gt_coco = ground_truth_coco(gt_images, len(names))
        for a in gt_coco["annotations"]:
            counts[a["category_id"] - 1] = counts.get(a["category_id"] - 1, 0) + 1

        curves = {"Box": curves_from_metric(metrics.box), "Mask": curves_from_metric(metrics.seg)}
        curve_pngs = []
        with open(tmp / "curves.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["curve", "class", "confidence", "recall", "value"])
            for prefix, cs in curves.items():
                w.writerows(curve_rows(prefix, cs, names))
        for fname in CURVE_FILES:
            prefix, short = ("Box", fname[3:-10]) if fname.startswith("Box") else ("Mask", fname[4:-10])
            plot_curve(curves[prefix], names, short, f"{prefix} {short} ({split})", str(tmp / fname))
            curve_pngs.append(tmp / fname)
        best = {"box": best_f1(curves["Box"], names), "mask": best_f1(curves["Mask"], names)}
        conf = best["mask"]["all"]["conf"]
        verdict = usability(best, split, opts.min_usable_f1)
        if not verdict["usable"]:
            log.warning("%s", verdict["message"])

        pred_file = ul_dir / "predictions.json"
        predictions = json.loads(pred_file.read_text(encoding="utf-8")) if pred_file.is_file() else []
        by_image: dict[str, list[dict]] = {}
        for d in predictions:
            by_image.setdefault(str(d["image_id"]), []).append(d)
        nc = len(names)
        match_conf = conf if conf is not None else 0.25
        matrix = np.zeros((nc + 1, nc + 1), dtype=np.int64)
        errors: dict[str, int] = {}
        pairs: Counter | None = None
        for stem, lbl, wpx, hpx in gt_images:  # one image at a time: full-size masks never pile up
            g = _gt_instances(stem, lbl, wpx, hpx)
            pr = _pred_instances(stem, [d for d in by_image.get(stem, []) if d["score"] >= match_conf], wpx, hpx)
            res = match_split({stem: g}, {stem: pr}, nc, match_conf)
            matrix += res.matrix
            errors.update(res.errors)
            pairs = res.pairs if pairs is None else pairs + res.pairs
        _plot_confusion(matrix, names, conf, tmp / "confusion_matrix.png")
        with open(tmp / "confusion_matrix.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["ground_truth \\ predicted", *names, "background"])
            for i, row in enumerate(matrix):
                w.writerow([names[i] if i < nc else "background", *row.tolist()])

        cc = coco_mask_map(gt_coco, predictions)
        ul_map, ul_map50 = float(metrics.seg.map), float(metrics.seg.map50)
        diff, diff50 = abs(cc["mAP50-95"] - ul_map), abs(cc["mAP50"] - ul_map50)
        if max(diff, diff50) > TOLERANCE:
            log.warning(
                "pycocotools and Ultralytics disagree on mask mAP: %.3f vs %.3f (mAP50 %.3f vs %.3f)",
                cc["mAP50-95"],
                ul_map,
                cc["mAP50"],
                ul_map50,
            )
        manifest = run_manifest(
            "val",
            {"weights": Path(weights), "data": data, **opts.record(), "imgsz": imgsz},
            inputs={"weights": weights},
        )
        result: ReviewMetrics = {
            "schema": 1,
            # base names only (folders may carry identifiers); --record-paths keeps full paths
            "weights": sanitize(Path(weights).resolve()),
            "dataset": sanitize(data),
            "anatomy": lay.anatomy,
            "split": split,
            "imgsz": imgsz,
            "images": len(images),
            "instances": int(sum(counts.values())),
            "names": names,
            "box": _task_summary(metrics.box, names, counts),
            "mask": _task_summary(metrics.seg, names, counts),
            "best_conf": best,
            "usability": verdict,
            "pycocotools": {
                "mask_mAP50-95": cc["mAP50-95"],
                "mask_mAP50": cc["mAP50"],
                "ultralytics_mask_mAP50-95": ul_map,
                "ultralytics_mask_mAP50": ul_map50,
                "abs_diff_mAP50-95": diff,
                "abs_diff_mAP50": diff50,
                "tolerance": TOLERANCE,
                "agree": max(diff, diff50) <= TOLERANCE,
                "predictions": cc["predictions"],
            },
            "confusion_matrix": {
                "conf": match_conf,
                "iou": 0.5,
                "rows": "ground truth",
                "columns": "predicted",
                "csv": "confusion_matrix.csv",
                "png": "confusion_matrix.png",
            },
            "errors_per_image": dict(sorted(errors.items(), key=lambda kv: -kv[1])),
            "has_order": bool(reg and reg.order),
            "neighbour_confusions": neighbour_confusions(pairs or Counter(), reg) if reg else [],
            "curves_csv": "curves.csv",
            "created_utc": manifest["created_utc"],
        }
        write_json_atomic(tmp / "metrics.json", result)
        write_json_atomic(tmp / "review.json", manifest)

        worst = [s for s, n in result["errors_per_image"].items() if n > 0][: opts.error_images]
        drawings = []
        for stem in worst:
            img_path = next(p for p in images if p.stem == stem)
            from yolo_spine.io.xray import read_xray
            from yolo_spine.review.report import draw_instances

            bgr = read_xray(img_path).bgr()
            wpx, hpx = sizes[stem]
            g = _gt_instances(stem, lay.label_dirs[split] / f"{stem}.txt", wpx, hpx)
            pr = _pred_instances(stem, [d for d in by_image.get(stem, []) if d["score"] >= match_conf], wpx, hpx)
            drawings.append(
                (
                    stem,
                    draw_instances(bgr, g, names, "ground truth"),
                    draw_instances(bgr, pr, names, f"predicted (conf >= {match_conf:.2f})"),
                    errors[stem],
                )
            )
        from yolo_spine.review.report import write_report

        write_report(tmp / "report.html", result, curve_pngs, tmp / "confusion_matrix.png", drawings)
    return result
