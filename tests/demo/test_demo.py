"""The demo end to end on the real example CT, at a size the test suite affords (the full run is `yolo_spine demo`).

The session fixture ``trained_demo`` (tests/conftest.py) runs the demo with the demo's own recipe (the packaged
phantom checkpoint fine-tuned on slices and DRRs of the example CT) for a fixed number of epochs on a smaller
dataset. Two kinds of checks:

- figures a broken model cannot reach: test mask and box mAP50, mean vertebra Dice of the lifted prediction and
  the slice identification rate, above thresholds set from a measurement of this model and of the untrained
  checkpoint (numbers beside each threshold);
- every figure of the summary recomputed here, independently, from the files the stages wrote (the lifted NIfTI,
  the landmark file, the review's metrics) and the CT's own label map.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import SimpleITK as sitk

from yolo_spine.registry import load_registry

if TYPE_CHECKING:
    from tests.conftest import TrainedDemo

VERTEBRAE_IN_THE_CT = ["C5", "C6", "C7", *(f"T{i}" for i in range(1, 13)), "L1", "L2", "L3"]


def _voxel_centroids_lps_mm(image: sitk.Image, value_to_name: dict[int, str]) -> dict[str, np.ndarray]:
    """Each label's centroid as the mean of its voxels' physical points (LPS mm), from the index grid."""
    arr = sitk.GetArrayFromImage(image)  # (k, j, i)
    ijk_to_lps = np.array(image.GetDirection()).reshape(3, 3) @ np.diag(image.GetSpacing())
    out = {}
    for value, name in value_to_name.items():
        k, j, i = np.nonzero(arr == value)
        if len(i):
            out[name] = np.array(image.GetOrigin()) + ijk_to_lps @ np.array([i.mean(), j.mean(), k.mean()])
    return out


def _verse_rate(pred: dict[str, np.ndarray], gt: dict[str, np.ndarray], max_mm: float = 20.0) -> float:
    """VerSe: a ground-truth level counts when its own prediction is within max_mm and closer to it than to any other
    ground-truth level that was also predicted."""
    common = [k for k in gt if k in pred]
    hits = 0
    for k in common:
        d = {o: float(np.linalg.norm(pred[k] - gt[o])) for o in common}
        hits += d[k] <= max_mm and all(d[k] < v for o, v in d.items() if o != k)
    return hits / len(gt)


@pytest.mark.slow
def test_demo_runs_every_stage_on_the_real_ct(trained_demo: TrainedDemo) -> None:
    check_summary_against_the_files(trained_demo.out, trained_demo.summary, trained_demo.wall_s)


@pytest.mark.slow
def test_demo_model_finds_and_names_the_vertebrae(trained_demo: TrainedDemo) -> None:
    """The test-sized demo's figures on its held-out split, far above what the untrained checkpoint gets.

    Thresholds: about half of what ``trained_demo`` measured on 2026-12-05 (CPU, 2 busy cores; seed 0,
    deterministic; the packaged checkpoint of that day, 3 phantom epochs, SHA-256 2a12259e…; the 9-, 16- and
    19-epoch ones that replaced it on 2026-12-06 do better on the full demo, whose recipe now also samples the
    rare cervical levels up, repeat_threshold 0.5), far above the untrained phantom checkpoint on
    the same test split; the same recipe stopped at 20 epochs also passes them (figures in the comments).
    """
    s = trained_demo.summary
    figures = ("mask_mAP50_test", "box_mAP50_test", "mean_dice")
    figures += ("identification_rate_slices", "identification_rate_drr")
    print("test-sized demo:", {k: s[k] for k in figures}, "train", s["seconds"]["train"], "s")
    # measured 2026-12-05: fine-tuned 40 epochs (the fixture; three runs, threads following the load, the third on
    # main after DRR/realism changes) | 20 epochs |
    # untrained phantom checkpoint
    assert s["mask_mAP50_test"] >= 0.15  # 0.308, 0.309, 0.291 | 0.211 | 0.0035
    assert s["box_mAP50_test"] >= 0.28  # 0.554, 0.555, 0.524 | 0.399 | 0.055
    assert s["mean_dice"] >= 0.18  # 0.373, 0.384, 0.425 | 0.293 | 0.0 (18 vertebrae of the lifted, fused slices)
    assert s["identification_rate_slices"] >= 0.5  # 0.889, 0.778, 0.833 | 0.833 | 0.0 (VerSe: right level within 20 mm)
    # AP + lateral DRR triangulation (6 poses, few test views: the figure moves most between runs; 0.1 = 2 levels)
    assert s["identification_rate_drr"] >= 0.1  # 0.556, 0.500, 0.278 | 0.556 | 0.0


def check_summary_against_the_files(out: Path, s: dict, wall: float) -> None:
    """Every figure of the demo's summary, recomputed from what the stages wrote and the CT's own label map."""
    from yolo_spine.data import example_ct

    assert list(s["seconds"]) == ["fetch", "ct2yolo", "train", "review", "predict", "lift", "eval3d"]
    assert all(v >= 0 for v in s["seconds"].values()) and sum(s["seconds"].values()) <= wall + 1.0
    reg = load_registry("spine")
    ex = example_ct()

    # review: the summary reports the mask (not the box) mAP50 of the test split that review measured
    metrics = json.loads((out / "review" / "metrics.json").read_text())
    assert s["mask_mAP50_test"] == metrics["mask"]["mAP50"] and s["box_mAP50_test"] == metrics["box"]["mAP50"]
    # the operating point comes from the validation split's review, never from test: predict used that confidence
    val_metrics = json.loads((out / "review_val" / "metrics.json").read_text())
    assert val_metrics["split"] == "val" and metrics["split"] == "test"
    assert s["best_f1_conf"] == val_metrics["best_conf"]["mask"]["all"]["conf"] is not None
    predict_conf = json.loads((out / "predict" / "run.json").read_text())["conf"]
    assert predict_conf == {"value": s["best_f1_conf"], "from": "auto (review_val/metrics.json)"}, predict_conf
    # lift read predictions saved down to lift_floor_conf, at the operating confidence: its slices hold exactly
    # predict's instances, and only the DRR views' combination sees the weaker ones
    lift_record = json.loads((out / "lift" / "seg.json").read_text())
    assert lift_record["options"]["conf"] == s["best_f1_conf"] == s["lift_conf"]
    floor = json.loads((out / "predict_lift" / "run.json").read_text())["conf"]["value"]
    assert floor == 0.05 < s["best_f1_conf"]
    for path in sorted((out / "predict" / "labels").glob("*.txt")):
        weak = (out / "predict_lift" / "labels" / path.name).read_text().splitlines()
        assert sorted(path.read_text().splitlines()) == sorted(
            r for r in weak if float(r.split()[-1]) >= predict_conf["value"]
        )
    test_labels = sorted((out / "dataset" / "labels" / "test").glob("*.txt"))
    assert metrics["split"] == "test" and metrics["images"] == len(test_labels) > 0
    assert metrics["instances"] == sum(len(p.read_text().splitlines()) for p in test_labels)
    assert "Recommended confidence" in (out / "review" / "report.html").read_text()

    # the lifted NIfTI lies on the CT's grid and holds class id + 1 of spine classes only
    seg_img, ct_img, gt_img = (sitk.ReadImage(str(p)) for p in (s["nifti"], ex.volume, ex.labels))
    assert seg_img.GetSize() == ct_img.GetSize()
    np.testing.assert_allclose(seg_img.GetSpacing(), ct_img.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(seg_img.GetDirection(), ct_img.GetDirection(), atol=1e-9)
    np.testing.assert_allclose(seg_img.GetOrigin(), ct_img.GetOrigin(), atol=1e-3)
    seg, gt_ids = sitk.GetArrayFromImage(seg_img), sitk.GetArrayFromImage(gt_img)
    assert set(np.unique(seg).tolist()) <= set(range(reg.nc + 1))

    # per vertebra, recomputed voxel by voxel against the CT's TotalSegmentator map (its ids → names here):
    # the ground-truth volumes prove eval3d scored the right classes, also those the model missed
    gt = np.zeros_like(seg)
    for source_id, name in reg.source_id_map(ex.label_scheme).items():
        gt[gt_ids == source_id] = reg.index(name) + 1
    present = [n for n in reg.names if (gt == reg.index(n) + 1).any()]
    assert present == VERTEBRAE_IN_THE_CT == list(s["dice_per_vertebra"])
    seg_eval = json.loads((out / "eval" / "slices_metrics.json").read_text())
    rows = {r["class"]: r for r in seg_eval["classes"]}
    ml_per_voxel = float(np.prod(seg_img.GetSpacing())) / 1000.0
    for name in present:
        p, g = seg == reg.index(name) + 1, gt == reg.index(name) + 1
        dice = 2.0 * np.count_nonzero(p & g) / (np.count_nonzero(p) + np.count_nonzero(g))
        assert s["dice_per_vertebra"][name] == pytest.approx(dice, abs=1e-6), name
        assert rows[name]["gt_volume_ml"] == pytest.approx(np.count_nonzero(g) * ml_per_voxel, rel=1e-6), name
        assert rows[name]["pred_volume_ml"] == pytest.approx(np.count_nonzero(p) * ml_per_voxel, rel=1e-6), name
    assert s["mean_dice"] == pytest.approx(np.mean(list(s["dice_per_vertebra"].values())), abs=1e-9)
    with open(out / "eval" / "slices_metrics.csv") as f:
        csv_dice = {r["class"]: float(r["dice"]) for r in csv.DictReader(f) if r["class"] in present}
    assert csv_dice == pytest.approx(s["dice_per_vertebra"], abs=1e-5)

    # landmarks: ground-truth centroids recomputed from the label map's voxel grid (LPS mm), VerSe's rule re-applied
    names_by_value = {reg.index(n) + 1: n for n in reg.names}
    gt_classes_img = sitk.GetImageFromArray(gt)
    gt_classes_img.CopyInformation(seg_img)
    gt_ctd = _voxel_centroids_lps_mm(gt_classes_img, names_by_value)
    seg_ctd = _voxel_centroids_lps_mm(seg_img, names_by_value)
    per_class = seg_eval["landmarks"]["per_class"]
    for name in present:
        np.testing.assert_allclose(per_class[name]["gt_lps_mm"], gt_ctd[name], atol=1e-3, err_msg=name)
        assert (per_class[name]["pred_lps_mm"] is None) == (name not in seg_ctd), name
    assert s["identification_rate_slices"] == pytest.approx(_verse_rate(seg_ctd, gt_ctd), abs=1e-9)
    landmarks = json.loads((out / "lift" / "seg.centroids.json").read_text())  # named after lift's --out
    assert landmarks["frame"].startswith("LPS mm") and s["centroids"] == str(out / "lift" / "seg.centroids.json")
    assert set(landmarks["centroids_lps_mm"]) <= set(reg.names)
    drr_ctd = {k: np.asarray(v, float) for k, v in landmarks["centroids_lps_mm"].items()}
    assert s["identification_rate_drr"] == pytest.approx(_verse_rate(drr_ctd, gt_ctd), abs=1e-9)
    drr_rows = {r["class"]: r for r in json.loads((out / "eval" / "drr_centroids_metrics.json").read_text())["classes"]}
    for name, xyz in drr_ctd.items():  # the distance eval3d reports is the one between these two points
        if name not in gt_ctd:  # a level the CT does not hold (e.g. C1 from the phantom-pretrained start): no error
            assert drr_rows.get(name, {}).get("centroid_error_mm") is None, name
            continue
        assert drr_rows[name]["centroid_error_mm"] == pytest.approx(np.linalg.norm(xyz - gt_ctd[name]), abs=1e-3)

    # the run record and the human-readable summary say the same as summary.json
    saved = json.loads((out / "summary.json").read_text())
    assert saved["manifest"]["command"] == "demo" and saved["manifest"]["options"]["conf"] == "auto"
    assert saved["manifest"]["options"]["options_from"] == {
        "ct_config": "config",
        "epochs": "config",
        "train_budget": "config",
        "imgsz": "config",
        "device": "argument",
    }

    # the file names outputs relative to the demo folder (folder names may identify a patient); the rest is the same
    def rel(path: str | None) -> str | None:
        return None if path is None else Path(path).resolve().relative_to(out.resolve()).as_posix()

    shown = {**s, **{k: rel(s[k]) for k in ("report", "nifti", "centroids", "picture")}}
    shown["metrics_csv"] = [rel(p) for p in s["metrics_csv"]]
    assert saved["report"] == "review/report.html" and saved["centroids"] == "lift/seg.centroids.json"
    assert {k: v for k, v in saved.items() if k != "manifest"} == json.loads(json.dumps(shown))
    md = (out / "summary.md").read_text()
    for name, dice in s["dice_per_vertebra"].items():
        assert f"| {name} | {dice:.3f} |" in md
    assert f"| mask mAP50 (test split) | {s['mask_mAP50_test']:.3f} | ≥ 0.70 |" in md
    met = "met" if s["mask_mAP50_test"] >= 0.70 else "**missed**"
    assert f"≥ 0.70 | {met} |" in md  # the verdict beside the target follows the figure
    assert (out / saved["picture"]).is_file() and f"]({saved['picture']})" in md
    for name, row in s["per_vertebra"].items():  # per vertebra: the Dice of the summary, and identification
        if "dice" in row:
            assert row["dice"] == s["dice_per_vertebra"][name]


def test_demo_conf_falls_back_when_the_review_found_no_best_f1() -> None:
    from yolo_spine.demo.run import _demo_conf

    found = {"best_conf": {"mask": {"all": {"conf": 0.31}}}}
    none = {"best_conf": {"mask": {"all": {"conf": None}}}}
    assert _demo_conf("auto", found) == "auto" and _demo_conf("auto", none) == 0.25
    assert _demo_conf(0.001, none) == 0.001 and _demo_conf(0.5, found) == 0.5


def test_training_eta_is_logged_after_every_epoch(caplog: pytest.LogCaptureFixture) -> None:
    """While the demo trains it says the epoch and the time left: mean epoch time so far × epochs left."""
    from types import SimpleNamespace

    from yolo_spine.demo.run import training_eta_logger

    now = [100.0]
    callback = training_eta_logger(clock=lambda: now[0])
    trainer = SimpleNamespace(epoch=0, epochs=20, start_epoch=0, epoch_time=12.0)
    with caplog.at_level("INFO", logger="yolo_spine"):
        callback(trainer)  # epoch 1 took 12 s: 19 left → 228 s
        now[0] += 18.0
        trainer.epoch, trainer.epoch_time = 1, 18.0
        callback(trainer)  # (12 + 18) / 2 = 15 s each, 18 left → 270 s
        trainer.epoch = 20  # Ultralytics' final validation: the event again, at epochs + 1
        callback(trainer)
    first, second = (r.getMessage() for r in caplog.records)
    assert "epoch 1/20 (12 s each): about 3.8 min left in training" in first, first
    assert "epoch 2/20 (15 s each): about 4.5 min left in training" in second, second
