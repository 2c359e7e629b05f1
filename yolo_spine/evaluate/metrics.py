"""Segmentation and landmark metrics on numpy label arrays, with the empty-mask rules written down.

Arrays are SimpleITK's ``(z, y, x)`` order and every spacing here is in the SAME order (``spacing_zyx``, mm):
``sitk.Image.GetSpacing()`` is ``(x, y, z)``, so reverse it. A direction matrix does not change distances
(it is a rotation), so index offsets scaled by ``spacing_zyx`` are physical millimetres.

Implementations:

* Dice, IoU, precision, recall, volume difference, the false-positive and false-negative volume ratios, the
  misclassification rate and Cohen's kappa come from voxel counts.
* Surface distances come from MONAI (``monai.metrics.utils.get_edge_surface_distance``, the routine behind
  ``compute_hausdorff_distance``, ``compute_average_surface_distance`` and ``compute_surface_dice``): it finds
  the edge voxels of each mask (foreground voxels with a 6-connected background neighbour) and measures exact
  Euclidean distances between edge-voxel centres in mm, honouring anisotropic spacing. One call gives both
  directed distance sets, reduced the way those three MONAI functions reduce them (the tests check equality
  with them): HD95 is the larger of the two directed 95th percentiles (linear interpolation,
  ``torch.quantile``); ASSD is the mean of all distances of both directions pooled; NSD is the fraction of
  edge voxels of both masks within the tolerance (``<=``) of the other mask's edge voxels (MONAI's default
  voxel-count form, not the surface-area-weighted one). Boundary F1 (Csurka et al., BMVC 2013, "What is a
  good evaluation measure for semantic segmentation?") takes the two directed sets apart: its precision is the
  fraction of the prediction's edge voxels within the tolerance of the ground truth's edge, its recall the
  fraction of the ground truth's edge voxels within the tolerance of the prediction's, and BF1 their harmonic
  mean, at the same tolerance as NSD (NSD pools the two sets, BF1 weighs each direction equally).
* Each class is cropped to the bounding box of the union of its two masks, padded by one voxel, before MONAI
  sees it: distances are between the two masks' surfaces, which both lie inside that box, and the one-voxel
  pad keeps every edge voxel an edge voxel, so cropping changes no distance but makes 18 vertebrae on a
  512×512×133 CT a matter of a second instead of a one-hot volume per class.

With P the predicted and G the ground-truth voxels of one class, |·| a voxel count:

* false-positive volume ratio ``fp_volume_ratio`` = |P ∖ G| / |G| (predicted volume outside the ground truth,
  relative to the ground-truth volume; can exceed 1);
* false-negative volume ratio ``fn_volume_ratio`` = |G ∖ P| / |G| (ground truth not predicted as this class,
  = 1 − recall; it includes voxels labelled as another class);
* misclassification rate ``misclassification_rate`` = |{v ∈ G : label_pred(v) ∉ {0, this class}}| / |G|: the
  share of this class's ground truth labelled as ANOTHER class (a vertebra named as its neighbour), as opposed
  to missed (labelled background). Only a label map has other classes: for a binary mask pair it is 0;
* Cohen's kappa ``kappa_bbox`` of the binary "this class or not" ratings of the two maps over the N voxels of
  the bounding box of P ∪ G (no margin; over the whole volume the background would dominate and push kappa
  towards Dice). With a = |P ∩ G|, b = |P ∖ G|, c = |G ∖ P|, d = N − a − b − c:
  p_o = (a + d)/N, p_e = ((a+b)(a+c) + (c+d)(b+d))/N², kappa = (p_o − p_e)/(1 − p_e)
  = 2(ad − bc) / ((a+b)(b+d) + (a+c)(c+d)). When that denominator is 0 both masks fill the box
  identically (p_o = p_e = 1) and kappa is 1. Inside a tight box there is little background, so kappa can be
  0 or negative for a good overlap; it measures agreement beyond chance in the structure's neighbourhood.

Empty-mask rules (``NaN`` = missing: ``NaN`` in memory, an empty cell in CSV, ``null`` in JSON; never 0):

=====================  =====  =====  =========  ======  ==============  ========  ==============  ============
case                   Dice   IoU    precision  recall  HD95 and ASSD   NSD, BF1  volume diff     in the mean
=====================  =====  =====  =========  ======  ==============  ========  ==============  ============
gt and pred present    value  value  value      value   value           value     pred − gt       yes
gt present, no pred    0      0      missing    0       missing         0         −gt volume      yes
no gt, pred present    0      0      0          missing missing         0         +pred volume    no
neither                (no row: the class is not reported)
=====================  =====  =====  =========  ======  ==============  ========  ==============  ============

=====================  ===============  ===============  ==================  ==========
case                   FP volume ratio  FN volume ratio  misclassification   kappa_bbox
=====================  ===============  ===============  ==================  ==========
gt and pred present    value            value            value               value
gt present, no pred    0                1                value (0 if binary) 0
no gt, pred present    missing          missing          missing             0
=====================  ===============  ===============  ==================  ==========

Precision of an unpredicted class is 0/0 and recall of a class absent from the ground truth is 0/0: both are
missing, not 0 or 1; so are the three ratios of a class absent from the ground truth (they divide by |G|).
When exactly one mask is empty, every voxel of the box is rated alike by one map, so p_o = p_e and kappa is 0.
Distances to an empty mask do not exist, so they are missing, never 0 (a 0 would read as
a perfect result). NSD and BF1 behave like Dice: no edge voxel of either mask is within the tolerance of the
other's, so it is 0 when exactly one mask is empty. The ``mean`` over classes present in the ground truth
averages each metric over the classes where it is defined and records how many classes that was
(see :func:`mean_metrics`), so a missed class pulls Dice, IoU, recall and NSD down and leaves the distance
means over the classes that were found — the count says how many.

Volume difference is signed, prediction minus ground truth, in millilitres (1 ml = 1000 mm³).

Landmarks (:func:`identification_rate`) follow the VerSe challenge's evaluation code
(``anjany/verse``, ``utils/eval_utilities.py: get_hits``): a ground-truth vertebra counts as identified when a
prediction with the same label exists, the ground-truth landmark of that label is the closest to the
prediction among the ground-truth landmarks of the labels present in both sets, and the distance is at most
``max_dist_mm`` (20 mm). The rate divides by the number of ground-truth landmarks, so a missed vertebra counts
as not identified; predictions of labels absent from the ground truth are ignored.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from yolo_spine.errors import UserError

NAN = float("nan")
HD_PERCENTILE = 95.0  # the "95" of HD95

#: Metric columns of the per-class table (the CSV adds ``class`` in front).
METRIC_FIELDS: tuple[str, ...] = (
    "dice",
    "iou",
    "precision",
    "recall",
    "hd95_mm",
    "assd_mm",
    "nsd",
    "volume_diff_ml",
    "fp_volume_ratio",
    "fn_volume_ratio",
    "misclassification_rate",
    "bf1",
    "kappa_bbox",
)


@dataclass(frozen=True)
class SegmentationMetrics:
    """Metrics of one class; ``NaN`` marks a missing (undefined) value.

    Attributes:
        dice: 2|P∩G| / (|P| + |G|).
        iou: |P∩G| / |P∪G|.
        precision: |P∩G| / |P| (missing when nothing is predicted).
        recall: |P∩G| / |G| (missing when the ground truth is empty).
        hd95_mm: 95th-percentile symmetric Hausdorff distance between the surfaces, mm.
        assd_mm: Average symmetric surface distance, mm.
        nsd: Normalised surface Dice at the tolerance, 0..1.
        volume_diff_ml: Prediction volume minus ground-truth volume, ml (signed).
        fp_volume_ratio: |P ∖ G| / |G| (missing when the ground truth is empty).
        fn_volume_ratio: |G ∖ P| / |G| = 1 − recall (missing when the ground truth is empty).
        misclassification_rate: Share of |G| labelled as another class (missing when the ground truth is empty).
        bf1: Boundary F1 at the tolerance, 0..1.
        kappa_bbox: Cohen's kappa of the two masks over the bounding box of their union (not the whole volume).
        gt_present: The class has at least one ground-truth voxel.
        pred_present: The class has at least one predicted voxel.
        gt_volume_ml: Ground-truth volume, ml.
        pred_volume_ml: Predicted volume, ml.
    """

    dice: float
    iou: float
    precision: float
    recall: float
    hd95_mm: float
    assd_mm: float
    nsd: float
    volume_diff_ml: float
    fp_volume_ratio: float
    fn_volume_ratio: float
    misclassification_rate: float
    bf1: float
    kappa_bbox: float
    gt_present: bool
    pred_present: bool
    gt_volume_ml: float = 0.0
    pred_volume_ml: float = 0.0

    def as_dict(self) -> dict[str, float | bool]:
        """Return the fields as a plain mapping (``NaN`` kept; writers turn it into null / empty)."""
        return asdict(self)


def _check_spacing(spacing_zyx: Sequence[float], ndim: int) -> tuple[float, ...]:
    spacing = tuple(float(s) for s in spacing_zyx)
    if len(spacing) != ndim or not all(math.isfinite(s) and s > 0 for s in spacing):
        raise ValueError(f"spacing_zyx must hold {ndim} positive finite values in array axis order, got {spacing}")
    return spacing


def _check_tolerance(tolerance_mm: float, hd_percentile: float) -> None:
    if not (math.isfinite(tolerance_mm) and tolerance_mm >= 0):
        raise UserError(f"the surface Dice tolerance must be a finite number of mm >= 0, not {tolerance_mm}")
    if not (0 < hd_percentile <= 100):
        raise UserError(f"the Hausdorff percentile must lie in (0, 100], not {hd_percentile}")


def surface_metrics(
    pred_mask: np.ndarray,
    gt_mask: np.ndarray,
    spacing_zyx: Sequence[float],
    tolerance_mm: float = 2.0,
    hd_percentile: float = HD_PERCENTILE,
) -> tuple[float, float, float]:
    """Return (HD95 mm, ASSD mm, NSD) of two binary masks with MONAI, applying the empty-mask rules.

    :func:`surface_scores` gives boundary F1 as well.

    The masks should already be cropped (see :func:`segmentation_metrics`); this function hands them to
    MONAI as they are.

    Args:
        pred_mask: Predicted mask, (z, y, x) or (y, x), any dtype (non-zero = inside).
        gt_mask: Ground-truth mask of the same shape.
        spacing_zyx: Voxel size in mm, in array axis order.
        tolerance_mm: NSD tolerance in mm.
        hd_percentile: Percentile of the Hausdorff distance (95 for HD95, 100 for the maximum).

    Returns:
        ``(hd_mm, assd_mm, nsd)``; distances are ``NaN`` when either mask is empty, NSD is 0 when exactly one
        is empty and ``NaN`` when both are.
    """
    return surface_scores(pred_mask, gt_mask, spacing_zyx, tolerance_mm, hd_percentile)[:3]


def surface_scores(
    pred_mask: np.ndarray,
    gt_mask: np.ndarray,
    spacing_zyx: Sequence[float],
    tolerance_mm: float = 2.0,
    hd_percentile: float = HD_PERCENTILE,
) -> tuple[float, float, float, float]:
    """Return (HD95 mm, ASSD mm, NSD, boundary F1) of two binary masks from one MONAI pass.

    Args:
        pred_mask: Predicted mask, (z, y, x) or (y, x), any dtype (non-zero = inside).
        gt_mask: Ground-truth mask of the same shape.
        spacing_zyx: Voxel size in mm, in array axis order.
        tolerance_mm: NSD and boundary-F1 tolerance in mm.
        hd_percentile: Percentile of the Hausdorff distance.

    Returns:
        ``(hd_mm, assd_mm, nsd, bf1)``; BF1 follows NSD's empty-mask rule (0 when exactly one mask is empty).
    """
    pred = np.asarray(pred_mask).astype(bool, copy=False)
    gt = np.asarray(gt_mask).astype(bool, copy=False)
    if pred.shape != gt.shape:
        raise ValueError(f"masks differ in shape: {pred.shape} vs {gt.shape}")
    spacing = _check_spacing(spacing_zyx, pred.ndim)
    _check_tolerance(tolerance_mm, hd_percentile)
    has_pred, has_gt = bool(pred.any()), bool(gt.any())
    if not (has_pred and has_gt):
        one = 0.0 if (has_pred or has_gt) else NAN
        return NAN, NAN, one, one

    import torch
    from monai.metrics.utils import get_edge_surface_distance

    with warnings.catch_warnings():
        # MONAI 1.5+ passes its own deprecated argument internally (get_mask_edges: always_return_as_numpy).
        warnings.filterwarnings("ignore", message=".*always_return_as_numpy.*", category=FutureWarning)
        # Empty masks never reach MONAI (the rules above); this keeps its empty-mask warning quiet in any case.
        warnings.filterwarnings("ignore", message=".*is all 0, this may result in nan/inf distance.*")
        # One MONAI pass gives the edge voxels and both directed distance sets (mm); HD95, ASSD and NSD are then
        # exactly what compute_hausdorff_distance, compute_average_surface_distance(symmetric=True) and
        # compute_surface_dice reduce them to (tests check the equality), at a third of the cost of three calls.
        _, distances, _ = get_edge_surface_distance(
            torch.from_numpy(np.ascontiguousarray(pred)),
            torch.from_numpy(np.ascontiguousarray(gt)),
            distance_metric="euclidean",
            spacing=list(spacing),
            symmetric=True,
        )
    d_pred_gt, d_gt_pred = (torch.as_tensor(d, dtype=torch.float32).reshape(-1) for d in distances)
    q = hd_percentile / 100.0
    hd = max(float(torch.quantile(d, q)) if q < 1 else float(d.max()) for d in (d_pred_gt, d_gt_pred))
    pooled = torch.cat([d_pred_gt, d_gt_pred])
    assd = float(pooled.mean())
    nsd = float((pooled <= tolerance_mm).sum()) / pooled.numel()
    bf_precision = float((d_pred_gt <= tolerance_mm).float().mean())  # prediction's edge near the truth's
    bf_recall = float((d_gt_pred <= tolerance_mm).float().mean())  # truth's edge near the prediction's
    bf_sum = bf_precision + bf_recall
    bf1 = 2.0 * bf_precision * bf_recall / bf_sum if bf_sum > 0 else 0.0
    return hd, assd, nsd, bf1


def kappa_in_box(n_both: int, n_pred_only: int, n_gt_only: int, n_box: int) -> float:
    """Cohen's kappa of two binary ratings from their counts over ``n_box`` voxels (exact integer arithmetic).

    Args:
        n_both: a = voxels both rate inside.
        n_pred_only: b = voxels only the prediction rates inside.
        n_gt_only: c = voxels only the ground truth rates inside.
        n_box: N, all voxels rated (d = N − a − b − c rated outside by both).

    Returns:
        2(ad − bc) / ((a+b)(b+d) + (a+c)(c+d)); 1 when that denominator is 0 (both rate every voxel alike),
        ``NaN`` for an empty box.
    """
    a, b, c = n_both, n_pred_only, n_gt_only
    d = n_box - a - b - c
    if n_box <= 0:
        return NAN
    if d < 0:
        raise ValueError(f"counts exceed the box: a={a}, b={b}, c={c}, N={n_box}")
    denominator = (a + b) * (b + d) + (a + c) * (c + d)
    return 2.0 * (a * d - b * c) / denominator if denominator else 1.0


def union_bbox(pred_mask: np.ndarray, gt_mask: np.ndarray, margin: int = 1) -> tuple[slice, ...] | None:
    """Return the bounding box of ``pred | gt`` padded by ``margin`` voxels (clipped to the array), or ``None``."""
    union = np.asarray(pred_mask, bool) | np.asarray(gt_mask, bool)
    if not union.any():
        return None
    box = []
    for axis in range(union.ndim):
        other = tuple(a for a in range(union.ndim) if a != axis)
        idx = np.flatnonzero(union.any(axis=other))
        box.append(slice(max(int(idx[0]) - margin, 0), min(int(idx[-1]) + 1 + margin, union.shape[axis])))
    return tuple(box)


def _metrics_from_crop(
    pred: np.ndarray,
    gt: np.ndarray,
    spacing: tuple[float, ...],
    tolerance_mm: float,
    hd_percentile: float,
    n_other: int = 0,
) -> SegmentationMetrics:
    """Metrics of a cropped mask pair; ``n_other`` = ground-truth voxels the prediction gave another class."""
    voxel_ml = float(np.prod(spacing)) / 1000.0
    n_pred, n_gt = int(pred.sum()), int(gt.sum())
    n_both = int(np.count_nonzero(pred & gt))
    n_union = n_pred + n_gt - n_both
    hd, assd, nsd, bf1 = surface_scores(pred, gt, spacing, tolerance_mm, hd_percentile)
    tight = union_bbox(pred, gt, margin=0)  # the crop carries a one-voxel margin; kappa counts the exact box
    n_box = int(np.prod([s.stop - s.start for s in tight])) if tight is not None else 0
    return SegmentationMetrics(
        dice=2.0 * n_both / (n_pred + n_gt) if n_union else NAN,
        iou=n_both / n_union if n_union else NAN,
        precision=n_both / n_pred if n_pred else NAN,
        recall=n_both / n_gt if n_gt else NAN,
        hd95_mm=hd,
        assd_mm=assd,
        nsd=nsd,
        volume_diff_ml=(n_pred - n_gt) * voxel_ml,
        fp_volume_ratio=(n_pred - n_both) / n_gt if n_gt else NAN,
        fn_volume_ratio=(n_gt - n_both) / n_gt if n_gt else NAN,
        misclassification_rate=n_other / n_gt if n_gt else NAN,
        bf1=bf1,
        kappa_bbox=kappa_in_box(n_both, n_pred - n_both, n_gt - n_both, n_box) if n_union else NAN,
        gt_present=n_gt > 0,
        pred_present=n_pred > 0,
        gt_volume_ml=n_gt * voxel_ml,
        pred_volume_ml=n_pred * voxel_ml,
    )


def segmentation_metrics(
    pred_mask: np.ndarray,
    gt_mask: np.ndarray,
    spacing_zyx: Sequence[float],
    tolerance_mm: float = 2.0,
    hd_percentile: float = HD_PERCENTILE,
) -> SegmentationMetrics:
    """Compute every per-class metric of one binary mask pair, with the empty-mask rules of this module.

    Args:
        pred_mask: Predicted mask, (z, y, x) (or (y, x)); non-zero = inside.
        gt_mask: Ground-truth mask on the same grid.
        spacing_zyx: Voxel size in mm, in array axis order (reverse of SimpleITK's ``GetSpacing()``).
        tolerance_mm: NSD tolerance in mm.
        hd_percentile: Hausdorff percentile (95 → HD95).

    Returns:
        The metrics; when both masks are empty every value is ``NaN`` and both presence flags are false
        (callers drop such a class). A binary pair has no other class, so its misclassification rate is 0
        (use :func:`label_map_metrics` for label maps).
    """
    pred = np.asarray(pred_mask).astype(bool, copy=False)
    gt = np.asarray(gt_mask).astype(bool, copy=False)
    if pred.shape != gt.shape:
        raise ValueError(f"masks differ in shape: {pred.shape} vs {gt.shape}")
    spacing = _check_spacing(spacing_zyx, pred.ndim)
    _check_tolerance(tolerance_mm, hd_percentile)
    box = union_bbox(pred, gt, margin=1)
    if box is None:
        return SegmentationMetrics(**dict.fromkeys(METRIC_FIELDS, NAN), gt_present=False, pred_present=False)
    return _metrics_from_crop(pred[box], gt[box], spacing, tolerance_mm, hd_percentile)


def label_map_metrics(
    pred_labels: np.ndarray,
    gt_labels: np.ndarray,
    spacing_zyx: Sequence[float],
    labels: Iterable[int],
    tolerance_mm: float = 2.0,
    hd_percentile: float = HD_PERCENTILE,
    progress: bool = False,
) -> dict[int, SegmentationMetrics]:
    """Compute per-label metrics of two integer label maps on the same grid.

    Each label is cropped to the union of its bounding boxes in both maps (one pass of
    ``scipy.ndimage.find_objects`` per map), padded by one voxel, so the cost follows the structures' size,
    not the volume's. A ground-truth voxel of a label that the prediction gives any other non-zero label
    counts towards that label's misclassification rate.

    Args:
        pred_labels: Predicted label map, (z, y, x), non-negative integers (0 = background).
        gt_labels: Ground-truth label map on the same grid.
        spacing_zyx: Voxel size in mm, in array axis order.
        labels: Label values to score (positive integers).
        tolerance_mm: NSD tolerance in mm.
        hd_percentile: Hausdorff percentile.
        progress: Show a tqdm bar.

    Returns:
        ``{label: metrics}`` for each requested label present in at least one map (absent from both: left out).
    """
    from scipy import ndimage

    pred_labels = np.asarray(pred_labels)
    gt_labels = np.asarray(gt_labels)
    if pred_labels.shape != gt_labels.shape:
        raise ValueError(f"label maps differ in shape: {pred_labels.shape} vs {gt_labels.shape}")
    spacing = _check_spacing(spacing_zyx, gt_labels.ndim)
    _check_tolerance(tolerance_mm, hd_percentile)
    wanted = sorted({int(v) for v in labels})
    if any(v <= 0 for v in wanted):
        raise ValueError("labels to score must be positive (0 is background)")
    max_label = max(wanted, default=0)
    boxes_gt = ndimage.find_objects(gt_labels, max_label=max_label) if max_label else []
    boxes_pred = ndimage.find_objects(pred_labels, max_label=max_label) if max_label else []

    todo = [v for v in wanted if boxes_gt[v - 1] is not None or boxes_pred[v - 1] is not None]
    out: dict[int, SegmentationMetrics] = {}
    iterator: Iterable[int] = todo
    if progress:
        from tqdm import tqdm

        iterator = tqdm(todo, desc="scoring classes", unit="class", leave=False)
    for v in iterator:
        box = _merge_boxes(boxes_gt[v - 1], boxes_pred[v - 1], gt_labels.shape, margin=1)
        pred_crop, gt_crop = pred_labels[box], gt_labels[box] == v
        n_other = int(np.count_nonzero(gt_crop & (pred_crop != v) & (pred_crop != 0)))
        out[v] = _metrics_from_crop(pred_crop == v, gt_crop, spacing, tolerance_mm, hd_percentile, n_other)
    return out


def _merge_boxes(
    a: tuple[slice, ...] | None, b: tuple[slice, ...] | None, shape: tuple[int, ...], margin: int
) -> tuple[slice, ...]:
    boxes = [x for x in (a, b) if x is not None]
    return tuple(
        slice(max(min(bx[d].start for bx in boxes) - margin, 0), min(max(bx[d].stop for bx in boxes) + margin, n))
        for d, n in enumerate(shape)
    )


@dataclass(frozen=True)
class MeanMetrics:
    """The ``mean`` row: each metric averaged over ground-truth classes where it is defined.

    Attributes:
        values: Metric name → mean (``NaN`` when no class defines it).
        counts: Metric name → number of classes that went into that mean.
        n_gt_classes: Classes present in the ground truth (the classes the mean is over).
        n_gt_classes_predicted: Of those, the classes with at least one predicted voxel.
    """

    values: dict[str, float]
    counts: dict[str, int]
    n_gt_classes: int
    n_gt_classes_predicted: int


def mean_metrics(per_class: Iterable[SegmentationMetrics]) -> MeanMetrics:
    """Average the per-class metrics over classes present in the ground truth (missing values skipped)."""
    rows = [m for m in per_class if m.gt_present]
    values: dict[str, float] = {}
    counts: dict[str, int] = {}
    for name in METRIC_FIELDS:
        col = np.array([getattr(m, name) for m in rows], dtype=float)
        ok = np.isfinite(col)
        counts[name] = int(ok.sum())
        values[name] = float(col[ok].mean()) if ok.any() else NAN
    return MeanMetrics(values, counts, len(rows), sum(m.pred_present for m in rows))


# --------------------------------------------------------------------------------------------------- landmarks


@dataclass(frozen=True)
class IdentificationResult:
    """Landmark identification as the VerSe challenge counts it.

    Attributes:
        rate: Identified ground-truth landmarks / ground-truth landmarks (``NaN`` with no ground truth).
        n_identified: Ground-truth landmarks identified.
        n_gt: Ground-truth landmarks.
        max_dist_mm: Distance limit used.
        identified: Label → whether it was identified, for every ground-truth label.
        error_mm: Label → distance between the predicted and ground-truth landmark of that label, for labels
            in both sets.
        mean_error_mm: Mean of ``error_mm`` (``NaN`` when no label is in both sets).
    """

    rate: float
    n_identified: int
    n_gt: int
    max_dist_mm: float
    identified: dict[Hashable, bool] = field(default_factory=dict)
    error_mm: dict[Hashable, float] = field(default_factory=dict)
    mean_error_mm: float = NAN


def centroid_errors_mm(
    pred_centroids_mm: Mapping[Any, ArrayLike], gt_centroids_mm: Mapping[Any, ArrayLike]
) -> dict[Hashable, float]:
    """Return ``{label: ||pred − gt||}`` in mm for labels present in both mappings (ground-truth order)."""
    return {
        k: float(np.linalg.norm(np.asarray(pred_centroids_mm[k], float) - np.asarray(gt_centroids_mm[k], float)))
        for k in gt_centroids_mm
        if k in pred_centroids_mm
    }


def identification_rate(
    pred_centroids_mm: Mapping[Any, ArrayLike],
    gt_centroids_mm: Mapping[Any, ArrayLike],
    max_dist_mm: float = 20.0,
) -> IdentificationResult:
    """Score landmark identification the way the VerSe challenge does.

    A ground-truth landmark of label ``k`` is identified when a prediction of label ``k`` exists, the
    ground-truth landmark of ``k`` is strictly the closest to that prediction among the ground-truth landmarks
    of all labels present in both sets (the VerSe evaluation code restricts the candidates so), and their
    distance is at most ``max_dist_mm``. Coordinates may be in any common frame (world LPS mm here).

    Args:
        pred_centroids_mm: Label → predicted landmark (3 coordinates, mm).
        gt_centroids_mm: Label → ground-truth landmark.
        max_dist_mm: Largest distance that still counts (VerSe: 20 mm).

    Returns:
        The rate, counts, per-label flags and localisation errors.
    """
    if not (math.isfinite(max_dist_mm) and max_dist_mm > 0):
        raise UserError(f"the identification distance must be a positive number of mm, not {max_dist_mm}")
    gt = {k: np.asarray(v, float).reshape(-1) for k, v in gt_centroids_mm.items()}
    pred = {k: np.asarray(v, float).reshape(-1) for k, v in pred_centroids_mm.items()}
    common = [k for k in gt if k in pred]
    identified = {k: False for k in gt}
    if common:
        gt_xyz = np.stack([gt[k] for k in common])
        for k in common:
            d = np.linalg.norm(gt_xyz - pred[k], axis=1)  # this prediction to every common ground-truth landmark
            i = common.index(k)
            others = np.delete(d, i)
            identified[k] = bool(d[i] <= max_dist_mm and (others.size == 0 or d[i] < others.min()))
    errors = centroid_errors_mm(pred, gt)
    n_id = sum(identified.values())
    return IdentificationResult(
        rate=n_id / len(gt) if gt else NAN,
        n_identified=n_id,
        n_gt=len(gt),
        max_dist_mm=float(max_dist_mm),
        identified=identified,
        error_mm=errors,
        mean_error_mm=float(np.mean(list(errors.values()))) if errors else NAN,
    )


# ------------------------------------------------------------------------------------------------ eval3d result


@dataclass
class Eval3dResult:
    """Everything ``eval3d`` measured, ready for :mod:`yolo_spine.evaluate.report`.

    It lives here, beside the metrics it holds, so that ``report`` (which writes it) does not import ``eval3d``
    (which computes it and imports ``report``).

    Attributes:
        anatomy: Registry name.
        mode: ``"segmentation"`` (label maps) or ``"landmarks"`` (at least one input is a centroid file).
        classes: Class names of the rows, registry order (present in either input).
        per_class: Class name → segmentation metrics (empty in landmark mode).
        mean: The mean over classes present in the ground truth (``None`` in landmark mode).
        landmarks: Identification rate and centroid errors, when computed.
        centroids_lps_mm: ``{"gt": {name: [x, y, z]}, "pred": {...}}`` when landmarks were computed.
        geometry: Grids and whether the prediction was resampled.
        unmapped_labels: ``{"gt": {id: voxels}, "pred": {...}}`` for label ids that name no class.
        options: The options used (tolerance, the schemes read, what decided them (``decided_by``), distances).
        inputs: ``{"pred": path, "gt": path}``.
        seconds: Wall time of the evaluation.
    """

    anatomy: str
    mode: str
    classes: list[str]
    per_class: dict[str, SegmentationMetrics] = field(default_factory=dict)
    mean: MeanMetrics | None = None
    landmarks: IdentificationResult | None = None
    centroids_lps_mm: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    geometry: dict[str, Any] = field(default_factory=dict)
    unmapped_labels: dict[str, dict[int, int]] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
