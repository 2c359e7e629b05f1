"""Metric functions against hand-computed cases, the empty-mask rules, cropping invariance, VerSe identification."""

import math

import numpy as np
import pytest

from yolo_spine.errors import UserError
from yolo_spine.evaluate.metrics import (
    METRIC_FIELDS,
    identification_rate,
    kappa_in_box,
    label_map_metrics,
    mean_metrics,
    segmentation_metrics,
    surface_metrics,
)

# Anisotropic grid, arrays in (z, y, x): x voxels are 0.8 mm, y 0.5 mm, z 2.0 mm. A bug that passed SimpleITK's
# (x, y, z) spacing to the (z, y, x) array would measure an x shift in 2.0 mm steps and fail every test below.
SPACING_ZYX = (2.0, 0.5, 0.8)
VOXEL_ML = 2.0 * 0.5 * 0.8 / 1000.0


def slabs_shifted_along_x():
    """Two 2×10×40-voxel slabs, the prediction shifted by 3 voxels (2.4 mm) along x.

    Both slabs are 2 voxels thick in z, so EVERY voxel is an edge voxel (each has a background neighbour in z)
    and the surface distances are plain voxel-to-nearest-voxel distances:
      * 37 x-columns overlap: 2·10·37 = 740 voxels; each slab has 800 → Dice 2·740/1600 = 0.925,
        IoU 740/(1600−740) = 740/860, precision = recall = 0.925.
      * pred → gt: the 740 shared voxels are at 0 mm; the 3 columns past gt's end (20 voxels each) lie 1, 2, 3
        columns away = 0.8, 1.6, 2.4 mm. gt → pred is the mirror image. Each direction: 740×0, 20×0.8, 20×1.6,
        20×2.4 (n = 800).
      * ASSD = both directions pooled: 2·20·(0.8+1.6+2.4) / 1600 = 0.12 mm.
      * HD95 (MONAI: torch.quantile, linear): position 0.95·(800−1) = 759.05 between sorted[759] = 0.8 and
        sorted[760] = 1.6 → 0.8 + 0.05·0.8 = 0.84 mm in each direction → 0.84 mm. The maximum (HD100) is 2.4 mm.
      * NSD at 1 mm: distances ≤ 1 mm are 740 + 20 per direction → 1520/1600 = 0.95; at 2 mm: 1560/1600 = 0.975.
    """
    gt = np.zeros((20, 30, 60), bool)
    pred = np.zeros_like(gt)
    gt[10:12, 10:20, 10:50] = True
    pred[10:12, 10:20, 13:53] = True
    return pred, gt


def test_two_slabs_shifted_along_x_match_hand_computation():
    pred, gt = slabs_shifted_along_x()
    m = segmentation_metrics(pred, gt, SPACING_ZYX, tolerance_mm=1.0)
    assert m.dice == pytest.approx(0.925)
    assert m.iou == pytest.approx(740 / 860)
    assert m.precision == pytest.approx(0.925) and m.recall == pytest.approx(0.925)
    assert m.hd95_mm == pytest.approx(0.84, abs=1e-4)  # float32 inside MONAI
    assert m.assd_mm == pytest.approx(0.12, abs=1e-5)
    assert m.nsd == pytest.approx(0.95, abs=1e-6)
    assert m.volume_diff_ml == 0.0
    assert m.gt_volume_ml == pytest.approx(800 * VOXEL_ML)
    assert segmentation_metrics(pred, gt, SPACING_ZYX, tolerance_mm=2.0).nsd == pytest.approx(0.975, abs=1e-6)
    hd_max, _, _ = surface_metrics(pred, gt, SPACING_ZYX, hd_percentile=100)
    assert hd_max == pytest.approx(2.4, abs=1e-5)


def test_two_slabs_shifted_along_z_use_the_z_spacing():
    """Slabs 2 voxels thick in x (all voxels are edges), 20 slices, the prediction one slice (2.0 mm) lower.

    19 of 20 slices overlap: 380 of 400 voxels → Dice 0.95. Per direction 380 distances of 0 and 20 of 2.0 mm:
    ASSD = 2·20·2.0/800 = 0.1 mm; HD95 at position 0.95·399 = 379.05 between 0 and 2.0 → 0.1 mm; NSD at 1 mm =
    760/800 = 0.95 and at 2 mm (≤) = 1.0.
    """
    gt = np.zeros((30, 30, 30), bool)
    pred = np.zeros_like(gt)
    gt[5:25, 10:20, 10:12] = True
    pred[6:26, 10:20, 10:12] = True
    m = segmentation_metrics(pred, gt, SPACING_ZYX, tolerance_mm=1.0)
    assert m.dice == pytest.approx(0.95)
    assert m.assd_mm == pytest.approx(0.1, abs=1e-5)
    assert m.hd95_mm == pytest.approx(0.1, abs=1e-4)
    assert m.nsd == pytest.approx(0.95, abs=1e-6)
    assert segmentation_metrics(pred, gt, SPACING_ZYX, tolerance_mm=2.0).nsd == pytest.approx(1.0)


def test_ratios_boundary_f1_and_kappa_of_a_short_prediction():
    """Slabs 2 voxels thick in z (every voxel an edge voxel): gt x 10:50, the prediction x 10:45 (inside gt).

    |G| = 800, |P| = 700, all of P in G: FP ratio 0/800 = 0, FN ratio 100/800 = 0.125, no other class → 0.
    pred → gt edge distances are all 0 (BF precision 1); gt → pred: 700 at 0 mm and the 5 columns past the
    prediction's end (20 voxels each) at 0.8, 1.6, 2.4, 3.2, 4.0 mm, so at 2 mm BF recall = 740/800 = 0.925 and
    BF1 = 2·0.925/1.925 = 74/77, while NSD pools both: (700 + 740)/1500 = 0.96.
    Kappa over the union box (= gt's 2·10·40 = 800 voxels): a = 700, b = 0, c = 100, d = 0 →
    2(ad − bc) = 0 → kappa 0 (no background in the box: no agreement beyond chance).
    """
    gt = np.zeros((20, 30, 60), bool)
    pred = np.zeros_like(gt)
    gt[10:12, 10:20, 10:50] = True
    pred[10:12, 10:20, 10:45] = True
    m = segmentation_metrics(pred, gt, SPACING_ZYX, tolerance_mm=2.0)
    assert (m.fp_volume_ratio, m.fn_volume_ratio, m.misclassification_rate) == (0.0, 0.125, 0.0)
    assert m.bf1 == pytest.approx(74 / 77, abs=1e-6)
    assert m.nsd == pytest.approx(0.96, abs=1e-6)
    assert m.kappa_bbox == 0.0
    # the other way round the prediction overflows: FP ratio 100/700 of the (now smaller) ground truth
    swapped = segmentation_metrics(gt, pred, SPACING_ZYX, tolerance_mm=2.0)
    assert (swapped.fp_volume_ratio, swapped.fn_volume_ratio) == (pytest.approx(100 / 700), 0.0)
    assert swapped.bf1 == pytest.approx(74 / 77, abs=1e-6)  # symmetric in the two masks


def test_kappa_counts_only_the_union_bounding_box():
    """One row of voxels: gt at x 1..6, prediction at x 1..4 and 9..10; the union box is x 1..10 (N = 10).

    a = 4 (x 1..4), b = 2 (9, 10), c = 2 (5, 6), d = 2 (7, 8): p_o = 6/10, p_e = (6·6 + 4·4)/100 = 0.52,
    kappa = 0.08/0.48 = 1/6 = 2(ad − bc)/((a+b)(b+d) + (a+c)(c+d)) = 8/48. The 2 voxels of background around
    the row (and the volume's other 33) are outside the box and must not count: over the whole 3·3·12 volume
    kappa would be 2(4·30 − 4)/(6·32 + 6·32) = 232/384.
    """
    gt = np.zeros((3, 3, 12), bool)
    pred = np.zeros_like(gt)
    gt[1, 1, 1:7] = True
    pred[1, 1, [1, 2, 3, 4, 9, 10]] = True
    assert kappa_in_box(4, 2, 2, 10) == pytest.approx(1 / 6)
    m = segmentation_metrics(pred, gt, SPACING_ZYX)
    assert m.kappa_bbox == pytest.approx(1 / 6)
    assert (m.fp_volume_ratio, m.fn_volume_ratio) == (pytest.approx(2 / 6), pytest.approx(2 / 6))
    assert kappa_in_box(5, 0, 0, 5) == 1.0  # both fill the box alike: 0/0 in the formula, perfect agreement
    assert kappa_in_box(0, 0, 5, 5) == 0.0 and kappa_in_box(0, 0, 3, 9) == 0.0  # one rater marks nothing
    assert math.isnan(kappa_in_box(0, 0, 0, 0))
    with pytest.raises(ValueError):
        kappa_in_box(4, 4, 4, 10)


def test_misclassification_counts_voxels_given_another_label():
    """Label 1 (64 voxels): its lower half predicted 1, its upper half predicted 2. Label 2 (64) found exactly.

    Label 1: misclassification 32/64 = 0.5, FN ratio 32/64 = 0.5 (the misclassified voxels are missing from
    label 1 too), FP ratio 0. Label 2: FP ratio 32/64 = 0.5 (label 1's voxels), FN 0, misclassification 0.
    Label 3 (64, half missed as background, half right): misclassification 0, FN ratio 0.5.
    """
    gt = np.zeros((20, 20, 20), np.uint8)
    pred = np.zeros_like(gt)
    gt[2:6, 2:6, 2:6] = 1
    pred[2:4, 2:6, 2:6] = 1
    pred[4:6, 2:6, 2:6] = 2
    gt[10:14, 10:14, 10:14] = 2
    pred[10:14, 10:14, 10:14] = 2
    gt[10:14, 2:6, 2:6] = 3
    pred[10:12, 2:6, 2:6] = 3
    rows = label_map_metrics(pred, gt, SPACING_ZYX, labels=[1, 2, 3])
    assert (rows[1].misclassification_rate, rows[1].fn_volume_ratio, rows[1].fp_volume_ratio) == (0.5, 0.5, 0.0)
    assert (rows[2].misclassification_rate, rows[2].fn_volume_ratio, rows[2].fp_volume_ratio) == (0.0, 0.0, 0.5)
    assert (rows[3].misclassification_rate, rows[3].fn_volume_ratio) == (0.0, 0.5)
    mean = mean_metrics(rows.values())
    assert mean.values["misclassification_rate"] == pytest.approx(0.5 / 3)
    assert mean.counts["kappa_bbox"] == 3


def test_volume_difference_is_prediction_minus_ground_truth_in_ml():
    gt = np.zeros((12, 12, 12), bool)
    gt[1:11, 1:11, 1:11] = True  # 1000 voxels
    pred = gt.copy()
    pred[1:3] = False  # 800 voxels, all inside gt
    m = segmentation_metrics(pred, gt, SPACING_ZYX)
    assert m.volume_diff_ml == pytest.approx(-200 * VOXEL_ML)  # −0.16 ml
    assert m.precision == 1.0 and m.recall == pytest.approx(0.8) and m.dice == pytest.approx(1600 / 1800)
    # pred's top face is 2 slices (4 mm) inside gt's: gt→pred has distances 4 mm, so HD95 is 4 mm exactly
    assert m.hd95_mm == pytest.approx(4.0, abs=1e-5)


def test_identical_masks_are_perfect():
    gt = np.zeros((10, 10, 10), bool)
    gt[2:8, 3:7, 1:9] = True
    m = segmentation_metrics(gt, gt, SPACING_ZYX)
    assert (m.dice, m.iou, m.precision, m.recall, m.hd95_mm, m.assd_mm, m.nsd, m.volume_diff_ml) == (
        1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0,
    )  # fmt: skip
    assert (m.fp_volume_ratio, m.fn_volume_ratio, m.misclassification_rate, m.bf1, m.kappa_bbox) == (0, 0, 0, 1, 1)


def test_empty_mask_rules():
    gt = np.zeros((10, 10, 10), bool)
    gt[2:5, 2:5, 2:5] = True
    empty = np.zeros_like(gt)

    missed = segmentation_metrics(empty, gt, SPACING_ZYX)  # ground truth present, nothing predicted
    assert (missed.dice, missed.iou, missed.recall, missed.nsd) == (0.0, 0.0, 0.0, 0.0)
    assert math.isnan(missed.precision) and math.isnan(missed.hd95_mm) and math.isnan(missed.assd_mm)
    assert missed.gt_present and not missed.pred_present
    assert missed.volume_diff_ml == pytest.approx(-27 * VOXEL_ML)
    assert (missed.fp_volume_ratio, missed.fn_volume_ratio, missed.misclassification_rate) == (0.0, 1.0, 0.0)
    assert (missed.bf1, missed.kappa_bbox) == (0.0, 0.0)

    extra = segmentation_metrics(gt, empty, SPACING_ZYX)  # predicted, absent from the ground truth
    assert (extra.dice, extra.iou, extra.precision, extra.nsd) == (0.0, 0.0, 0.0, 0.0)
    assert math.isnan(extra.recall) and math.isnan(extra.hd95_mm) and math.isnan(extra.assd_mm)
    assert not extra.gt_present and extra.pred_present
    assert extra.volume_diff_ml == pytest.approx(27 * VOXEL_ML)
    assert all(math.isnan(v) for v in (extra.fp_volume_ratio, extra.fn_volume_ratio, extra.misclassification_rate))
    assert (extra.bf1, extra.kappa_bbox) == (0.0, 0.0)

    neither = segmentation_metrics(empty, empty, SPACING_ZYX)
    assert not neither.gt_present and not neither.pred_present
    assert all(math.isnan(getattr(neither, f)) for f in METRIC_FIELDS)


def test_label_maps_rows_and_mean_follow_the_rules():
    gt = np.zeros((20, 20, 20), np.uint16)
    pred = np.zeros_like(gt)
    gt[2:6, 2:6, 2:6] = 1  # found exactly
    pred[2:6, 2:6, 2:6] = 1
    gt[10:14, 10:14, 10:14] = 2  # missed
    pred[15:18, 2:5, 2:5] = 3  # predicted, not in the ground truth
    rows = label_map_metrics(pred, gt, SPACING_ZYX, labels=[1, 2, 3, 4])
    assert sorted(rows) == [1, 2, 3]  # label 4 is in neither map: no row
    assert rows[1].dice == 1.0 and rows[2].dice == 0.0 and not rows[3].gt_present
    mean = mean_metrics(rows.values())
    assert mean.n_gt_classes == 2 and mean.n_gt_classes_predicted == 1  # label 3 is not in the mean
    assert mean.values["dice"] == pytest.approx(0.5) and mean.counts["dice"] == 2
    assert mean.values["hd95_mm"] == 0.0 and mean.counts["hd95_mm"] == 1  # the miss is missing, not 0
    assert mean.values["precision"] == 1.0 and mean.counts["precision"] == 1


@pytest.mark.filterwarnings("ignore:.*always_return_as_numpy:FutureWarning")
def test_cropping_changes_no_distance():
    """Cropping and the one-pass reduction must give MONAI's own functions' numbers on the full arrays.

    Also for a shape touching the volume border, at a tolerance where NSD is neither 0 nor 1.
    """
    import torch
    from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance, compute_surface_dice

    rng = np.random.default_rng(0)
    from scipy import ndimage

    field = ndimage.gaussian_filter(rng.normal(size=(16, 40, 40)), 3)
    gt = field > 0.02
    pred = ndimage.shift(field, (0, 1.5, -2), order=1, mode="nearest") > 0.0
    assert gt[0].any() and gt.sum() > 500  # touches the volume border: the crop must not invent a surface
    ours = label_map_metrics(pred.astype(np.uint8), gt.astype(np.uint8), SPACING_ZYX, [1], tolerance_mm=1.0)[1]
    yp, y = torch.from_numpy(pred[None, None]), torch.from_numpy(gt[None, None])
    hd = compute_hausdorff_distance(yp, y, include_background=True, percentile=95, spacing=list(SPACING_ZYX))
    asd = compute_average_surface_distance(yp, y, include_background=True, symmetric=True, spacing=list(SPACING_ZYX))
    assert ours.hd95_mm == pytest.approx(float(hd[0, 0]), rel=1e-6)
    assert ours.assd_mm == pytest.approx(float(asd[0, 0]), rel=1e-6)
    nsd = compute_surface_dice(yp, y, class_thresholds=[1.0], include_background=True, spacing=list(SPACING_ZYX))
    assert 0.05 < float(nsd[0, 0]) < 0.95
    assert ours.nsd == pytest.approx(float(nsd[0, 0]), rel=1e-6)


def test_bad_arguments_are_one_sentence_errors():
    gt = np.ones((3, 3, 3), bool)
    with pytest.raises(UserError, match="tolerance"):
        segmentation_metrics(gt, gt, SPACING_ZYX, tolerance_mm=-1)
    with pytest.raises(ValueError, match="spacing"):
        segmentation_metrics(gt, gt, (1.0, 1.0))


def test_identification_rate_as_verse_counts_it():
    # Ground-truth centroids 30 mm apart along z (LPS mm).
    gt = {n: (0.0, 0.0, -30.0 * i) for i, n in enumerate(["C7", "T1", "T2", "T3", "T4", "T5", "T6"])}
    pred = {
        "C7": (2.0, 0.0, 0.0),  # 2 mm off: identified
        "T1": (0.0, 1.0, -60.0),  # swapped with T2: each sits on the other's ground truth
        "T2": (0.0, 0.0, -30.0),
        "T3": (0.0, 0.0, -90.0 - 16.0),  # 16 mm off (< 20) but 14 mm from T4's ground truth: not closest
        "T4": (25.0, 0.0, -120.0),  # closest to its own ground truth but 25 mm away (> 20)
        "T5": (0.0, 3.0, -150.0 + 4.0),  # 5 mm off: identified
        # T6 not predicted: counts as not identified
        "L1": (0.0, 0.0, -400.0),  # not in the ground truth: ignored
    }
    res = identification_rate(pred, gt, max_dist_mm=20.0)
    assert res.identified == {
        "C7": True, "T1": False, "T2": False, "T3": False, "T4": False, "T5": True, "T6": False,
    }  # fmt: skip
    assert (res.n_identified, res.n_gt) == (2, 7)
    assert res.rate == pytest.approx(2 / 7)
    assert res.error_mm["C7"] == pytest.approx(2.0) and res.error_mm["T1"] == pytest.approx(math.hypot(1, 30))
    assert res.error_mm["T4"] == pytest.approx(25.0) and res.error_mm["T5"] == pytest.approx(5.0)
    assert "T6" not in res.error_mm and "L1" not in res.error_mm
    # A looser limit identifies T4; T3 stays wrong (another label's ground truth is closer).
    loose = identification_rate(pred, gt, max_dist_mm=30.0)
    assert loose.identified["T4"] and not loose.identified["T3"] and loose.n_identified == 3
    assert math.isnan(identification_rate(pred, {}).rate)
