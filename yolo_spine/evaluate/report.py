"""Write ``eval3d`` results: ``metrics.csv``, ``metrics.json`` (with the run manifest) and ``metrics.md``.

CSV (segmentation mode) — columns exactly ``class, dice, iou, precision, recall, hd95_mm, assd_mm, nsd,
volume_diff_ml, fp_volume_ratio, fn_volume_ratio, misclassification_rate, bf1, kappa_bbox, gt_present,
pred_present`` (each described in JSON ``column_descriptions``; formulas in :mod:`yolo_spine.evaluate.metrics`;
``kappa_bbox`` is Cohen's kappa over the bounding box of ground truth and prediction together, not the whole
volume, where background would dominate); one row per registry class present in either map, in registry
order, then a ``mean`` row over the classes present in the ground truth. Missing values are empty cells,
booleans are ``true``/``false``, numbers have six significant digits. In the ``mean`` row, ``gt_present`` and
``pred_present`` hold counts: classes in the ground truth, and how many of them were predicted.

CSV (landmark mode, when an input is a centroid file) — ``class, identified, centroid_error_mm, gt_present,
pred_present`` and a ``mean`` row holding the identification rate and the mean centroid error.

JSON — ``column_descriptions`` (one sentence per column), the same rows under ``classes`` (plus
``gt_volume_ml`` and ``pred_volume_ml``) with ``null`` for missing, ``mean`` (values, per-metric ``counts``,
``n_gt_classes``, ``n_gt_classes_predicted``), ``landmarks`` (identification rate, per-class identified flag,
error and both centroids in LPS mm, or ``null``), ``geometry``, ``unmapped_labels``, ``conventions`` and ``manifest``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypedDict, cast

from yolo_spine.errors import UserError
from yolo_spine.evaluate.metrics import METRIC_FIELDS, Eval3dResult
from yolo_spine.identifiers import sanitize
from yolo_spine.io.atomic import atomic_output, ensure_can_write
from yolo_spine.provenance import to_jsonable

CSV_COLUMNS: tuple[str, ...] = ("class", *METRIC_FIELDS, "gt_present", "pred_present")
LANDMARK_CSV_COLUMNS: tuple[str, ...] = ("class", "identified", "centroid_error_mm", "gt_present", "pred_present")

CONVENTIONS = {
    "label_ids": "each map read in options.gt_scheme / options.pred_scheme (class_id+1: voxel value k = registry "
    "class k-1, 0 = background); options.decided_by says whether the scheme was given, taken from lift's record "
    "or recognised from the map's ids",
    "frame": "world coordinates are SimpleITK physical points, LPS millimetres",
    "volume_diff_ml": "signed: prediction volume minus ground-truth volume, millilitres",
    "missing": "null (JSON) or an empty cell (CSV) = undefined, never 0: precision with nothing predicted, "
    "recall with no ground truth, surface distances when either mask is empty",
    "mean": "over classes present in the ground truth; each metric over the classes where it is defined "
    "(see mean.counts)",
    "surface_metrics": "MONAI 'compute_hausdorff_distance' (95th percentile), "
    "'compute_average_surface_distance' (symmetric) and 'compute_surface_dice' on edge voxels, mm",
    "boundary_f1": "bf1 uses the same tolerance_mm as nsd: harmonic mean of the fractions of each mask's edge "
    "voxels within tolerance_mm of the other's",
    "kappa_bbox": "Cohen's kappa of 'this class or not' over the voxels inside the bounding box of ground truth and "
    "prediction together; over the whole volume the background would dominate",
    "identification": "VerSe: same-label ground-truth landmark closest to the prediction and within max_dist_mm",
}


#: One sentence per segmentation column (JSON ``column_descriptions``); P = predicted, G = ground-truth voxels.
COLUMN_DESCRIPTIONS: dict[str, str] = {
    "class": "registry class name, or 'mean' for the mean over classes present in the ground truth",
    "dice": "Dice coefficient 2|P∩G| / (|P| + |G|)",
    "iou": "intersection over union |P∩G| / |P∪G|",
    "precision": "|P∩G| / |P|; empty when nothing is predicted",
    "recall": "|P∩G| / |G|; empty when the ground truth is empty",
    "hd95_mm": "95th-percentile symmetric Hausdorff distance between the surfaces, mm",
    "assd_mm": "average symmetric surface distance, mm",
    "nsd": "normalised surface Dice: fraction of both masks' edge voxels within tolerance_mm of the other's edge",
    "volume_diff_ml": "prediction volume minus ground-truth volume, ml",
    "fp_volume_ratio": "false-positive volume ratio |P∖G| / |G| (may exceed 1)",
    "fn_volume_ratio": "false-negative volume ratio |G∖P| / |G| (= 1 − recall)",
    "misclassification_rate": "share of |G| that the prediction labels as another class (not background)",
    "bf1": "boundary F1 at tolerance_mm: harmonic mean of the share of predicted edge voxels within tolerance "
    "of the ground-truth edge and the share of ground-truth edge voxels within tolerance of the predicted edge",
    "kappa_bbox": "Cohen's kappa of 'this class or not' over the voxels inside the bounding box of ground truth "
    "and prediction together (not the whole volume, where background would dominate)",
    "gt_present": "the class is in the ground truth (mean row: how many classes are)",
    "pred_present": "the class is predicted (mean row: how many ground-truth classes are)",
}


def output_paths(out: str | Path, overwrite: bool) -> dict[str, Path]:
    """Return the CSV, JSON and Markdown paths for ``--out``, refusing existing files without ``overwrite``.

    Raises:
        UserError: If ``out`` does not end in ``.csv`` or a path is a folder.
        OutputExistsError: If a file exists and ``overwrite`` is false.
    """
    out = Path(out)
    if out.suffix.lower() != ".csv":
        raise UserError(f"--out must name a .csv file (metrics.json and metrics.md are written beside it), not {out}")
    paths = {"csv": out, "json": out.with_suffix(".json"), "md": out.with_suffix(".md")}
    for p in paths.values():
        if p.is_dir():
            raise UserError(f"{p} is a folder; --out must name a .csv file")
    return {k: ensure_can_write(p, overwrite) for k, p in paths.items()}


def _num(v: Any) -> float | None:
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    f = _num(v)
    return "" if f is None else f"{f:.6g}"


def table_rows(result: Eval3dResult) -> list[dict[str, Any]]:
    """Return the CSV rows (values unformatted; ``None`` = missing) including the final ``mean`` row."""
    rows: list[dict[str, Any]] = []
    if result.mode == "segmentation":
        for name in result.classes:
            m = result.per_class[name]
            row: dict[str, Any] = {"class": name}
            row.update({f: _num(getattr(m, f)) for f in METRIC_FIELDS})
            row.update(gt_present=m.gt_present, pred_present=m.pred_present)
            rows.append(row)
        mean = result.mean
        if mean is None:
            raise ValueError("a segmentation result needs its mean row")
        row = {"class": "mean", **{f: _num(mean.values[f]) for f in METRIC_FIELDS}}
        row.update(gt_present=mean.n_gt_classes, pred_present=mean.n_gt_classes_predicted)
        rows.append(row)
        return rows
    lm = result.landmarks
    if lm is None:
        raise ValueError("a landmark result needs its identification result")
    gt_ctd, pred_ctd = result.centroids_lps_mm.get("gt", {}), result.centroids_lps_mm.get("pred", {})
    for name in result.classes:
        rows.append(
            {
                "class": name,
                "identified": lm.identified.get(name) if name in gt_ctd else None,
                "centroid_error_mm": _num(lm.error_mm.get(name)),
                "gt_present": name in gt_ctd,
                "pred_present": name in pred_ctd,
            }
        )
    rows.append(
        {
            "class": "mean",
            "identified": _num(lm.rate),
            "centroid_error_mm": _num(lm.mean_error_mm),
            "gt_present": lm.n_gt,
            "pred_present": sum(1 for n in gt_ctd if n in pred_ctd),
        }
    )
    return rows


class Eval3dDoc(TypedDict):
    """``eval3d``'s ``metrics.json`` (:func:`result_to_json`; ``null`` for every missing value)."""

    schema: int
    kind: str  # "eval3d"
    mode: str  # "segmentation" or "landmarks"
    anatomy: str
    inputs: dict[str, Any]  # base names (full paths with --record-paths)
    options: dict[str, Any]
    columns: list[str]
    column_descriptions: dict[str, str] | None
    classes: list[dict[str, Any]]  # the CSV's rows (segmentation adds volumes)
    mean: dict[str, Any] | None
    landmarks: dict[str, Any] | None  # identification rate, errors, centroids per class
    geometry: dict[str, Any]
    unmapped_labels: dict[str, dict[str, int]]  # input → label id → voxels
    conventions: dict[str, str]
    seconds: float
    manifest: dict[str, Any] | None  # the run manifest


def read_eval3d_doc(path: Path) -> Eval3dDoc:
    """A ``metrics.json`` as :func:`result_to_json` wrote it (not validated: the file is this package's own output)."""
    import json

    return cast(Eval3dDoc, json.loads(path.read_text(encoding="utf-8")))


def _landmarks_json(result: Eval3dResult) -> dict[str, Any] | None:
    lm = result.landmarks
    if lm is None:
        return None
    gt_ctd, pred_ctd = result.centroids_lps_mm.get("gt", {}), result.centroids_lps_mm.get("pred", {})
    return {
        "max_dist_mm": lm.max_dist_mm,
        "identification_rate": _num(lm.rate),
        "n_identified": lm.n_identified,
        "n_gt": lm.n_gt,
        "mean_error_mm": _num(lm.mean_error_mm),
        "per_class": {
            name: {
                "identified": lm.identified.get(name) if name in gt_ctd else None,
                "error_mm": _num(lm.error_mm.get(name)),
                "gt_lps_mm": gt_ctd.get(name),
                "pred_lps_mm": pred_ctd.get(name),
            }
            for name in result.classes
            if name in gt_ctd or name in pred_ctd
        },
    }


def result_to_json(result: Eval3dResult, manifest: Mapping[str, Any] | None = None) -> Eval3dDoc:
    """Return the JSON document (``null`` for every missing value)."""
    classes = []
    for row in table_rows(result)[:-1]:
        if result.mode == "segmentation":
            m = result.per_class[row["class"]]
            row = {**row, "gt_volume_ml": _num(m.gt_volume_ml), "pred_volume_ml": _num(m.pred_volume_ml)}
        classes.append(row)
    mean: dict[str, Any] | None = None
    if result.mean is not None:
        mean = {f: _num(result.mean.values[f]) for f in METRIC_FIELDS}
        mean.update(
            counts=result.mean.counts,
            n_gt_classes=result.mean.n_gt_classes,
            n_gt_classes_predicted=result.mean.n_gt_classes_predicted,
        )
    doc = {
        "schema": 1,
        "kind": "eval3d",
        "mode": result.mode,
        "anatomy": result.anatomy,
        "inputs": sanitize(result.inputs),  # base names (or full paths with --record-paths)
        "options": result.options,
        "columns": list(CSV_COLUMNS if result.mode == "segmentation" else LANDMARK_CSV_COLUMNS),
        "column_descriptions": COLUMN_DESCRIPTIONS if result.mode == "segmentation" else None,
        "classes": classes,
        "mean": mean,
        "landmarks": _landmarks_json(result),
        "geometry": result.geometry,
        "unmapped_labels": {k: {str(i): n for i, n in v.items()} for k, v in result.unmapped_labels.items()},
        "conventions": CONVENTIONS,
        "seconds": round(result.seconds, 3),
        "manifest": dict(manifest) if manifest is not None else None,
    }
    return _nan_to_none(to_jsonable(doc))


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_nan_to_none(v) for v in obj]
    return obj


def _md(v: Any, digits: int) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    f = _num(v)
    return "—" if f is None else f"{f:.{digits}f}"


def markdown_report(result: Eval3dResult) -> str:
    """Return a short Markdown summary: the per-class table, the mean, and notes on geometry and landmarks."""
    pred, gt = Path(result.inputs.get("pred", "?")).name, Path(result.inputs.get("gt", "?")).name
    lines = [f"# eval3d — {result.anatomy}: `{pred}` against ground truth `{gt}`", ""]
    if result.geometry.get("pred_resampled"):
        lines += [f"The prediction was resampled onto the ground-truth grid ({result.geometry['resampling']}).", ""]
    rows = table_rows(result)
    if result.mode == "segmentation":
        tol = result.options.get("tolerance_mm")
        header = [
            "class",
            "Dice",
            "IoU",
            "precision",
            "recall",
            "HD95 (mm)",
            "ASSD (mm)",
            f"NSD@{tol:g} mm",
            "ΔV (ml)",
            "FP vol",
            "FN vol",
            "miscl.",
            f"BF1@{tol:g} mm",
            "κ (bbox)",
            "gt",
            "pred",
        ]
        digits = [3, 3, 3, 3, 2, 2, 3, 2, 3, 3, 3, 3, 3]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for row in rows:
            cells = [_md(row[f], d) for f, d in zip(METRIC_FIELDS, digits, strict=True)]
            name = f"**{row['class']}**" if row["class"] == "mean" else row["class"]
            lines.append(
                "| " + " | ".join([name, *cells, _md(row["gt_present"], 0), _md(row["pred_present"], 0)]) + " |"
            )
        mean = result.mean
        if mean is None:
            raise ValueError("a segmentation result needs its mean row")
        missed = mean.n_gt_classes - mean.n_gt_classes_predicted
        lines += [
            "",
            f"Mean over the {mean.n_gt_classes} classes present in the ground truth ({missed} not predicted); "
            f"HD95 and ASSD over the {mean.counts['hd95_mm']} classes where both masks exist. ΔV = prediction − "
            "ground truth. FP vol = |P∖G|/|G| and FN vol = |G∖P|/|G| (P predicted, G ground-truth voxels); "
            "miscl. = share of the ground truth labelled as another class; κ (bbox) = Cohen's kappa over the "
            "voxels inside the bounding box of ground truth and prediction together, not the whole volume. "
            "— = undefined (precision with nothing predicted, recall and the ratios with no ground truth, "
            "distances to an empty mask), never 0.",
        ]
    else:
        header = ["class", "identified", "centroid error (mm)", "gt", "pred"]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for row in rows[:-1]:
            lines.append(
                "| "
                + " | ".join(
                    [
                        row["class"],
                        _md(row["identified"], 0),
                        _md(row["centroid_error_mm"], 1),
                        _md(row["gt_present"], 0),
                        _md(row["pred_present"], 0),
                    ]
                )
                + " |"
            )
    lm = result.landmarks
    if lm is not None:
        rate = "—" if _num(lm.rate) is None else f"{100 * lm.rate:.1f} %"
        lines += [
            "",
            f"Identification rate (VerSe: same label closest and within {lm.max_dist_mm:g} mm): "
            f"{lm.n_identified}/{lm.n_gt} = {rate}; mean centroid error {_md(lm.mean_error_mm, 1)} mm "
            f"over {len(lm.error_mm)} classes in both.",
        ]
    return "\n".join(lines) + "\n"


def write_reports(
    result: Eval3dResult, paths: Mapping[str, Path], overwrite: bool, manifest: Mapping[str, Any] | None
) -> None:
    """Write the CSV, JSON and Markdown files, each through a temporary file renamed into place."""
    import json

    columns = CSV_COLUMNS if result.mode == "segmentation" else LANDMARK_CSV_COLUMNS
    with atomic_output(paths["csv"], overwrite, is_dir=False) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(columns)
        for row in table_rows(result):
            writer.writerow([_cell(row[c]) if c != "class" else row[c] for c in columns])
    with atomic_output(paths["json"], overwrite, is_dir=False) as tmp:
        tmp.write_text(json.dumps(result_to_json(result, manifest), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    with atomic_output(paths["md"], overwrite, is_dir=False) as tmp:
        tmp.write_text(markdown_report(result), encoding="utf-8")
