"""Anatomical phantoms: levels and TotalSegmentator ids, anatomical order and sides, HU, determinism, sizes, ct2yolo,
and the pretraining pipeline built on them."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy.stats import spearmanr

from yolo_spine.ct.convert import ct2yolo
from yolo_spine.errors import UserError
from yolo_spine.registry import load_registry
from yolo_spine.synth.anatomy import (
    LEVELS,
    MORPHOMETRY,
    TS_V2_IDS,
    Tissue,
    anatomical_phantom,
    write_anatomical_phantom,
)
from yolo_spine.synth.pretrain import PretrainPlan, study_options

ROOT = Path(__file__).resolve().parents[2]
REG = load_registry("spine")
TS_ID = {name: sid for sid, name in REG.source_id_map("totalsegmentator_v2").items()}
COARSE = (2.5, 2.5, 2.5)  # mm: a whole spine in about a second


@pytest.fixture(scope="module")
def whole():
    """C1 … sacrum at 2.5 mm, with its arrays (labels, HU, tissue) and voxel centres in LPS mm."""
    ph = anatomical_phantom(3, levels=("C1", "sacrum"), spacing_xyz=COARSE)
    return ph, sitk.GetArrayFromImage(ph.labels), sitk.GetArrayFromImage(ph.image), ph.tissue


def _centroid_lps(ph, lab: np.ndarray, ids) -> np.ndarray:
    """Mean LPS position (mm) of the voxels holding any of ``ids``."""
    k, j, i = np.nonzero(np.isin(lab, list(ids)))
    ijk = np.stack([i, j, k], 1).mean(0)
    return np.array(ph.labels.TransformContinuousIndexToPhysicalPoint(ijk.tolist()))


def test_every_level_present_with_its_totalsegmentator_id(whole):
    ph, lab, _, _ = whole
    assert ph.levels == list(REG.names)  # C1 … L5, S1, sacrum, in registry order
    voxels = np.bincount(lab.ravel(), minlength=256)
    for name in REG.names:
        ml = voxels[TS_ID[name]] * np.prod(COARSE) / 1000.0
        assert ml > 3.0, f"{name} (TotalSegmentator id {TS_ID[name]}) has only {ml:.1f} ml"
    assert TS_ID["C1"] == 50 and TS_ID["L5"] == 27 and TS_ID["sacrum"] == 25  # TotalSegmentator v2 numbering
    # every non-zero label is a TotalSegmentator-v2 id this generator declares
    known = set(TS_ID.values()) | set(TS_V2_IDS.values())
    assert set(np.unique(lab).tolist()) - {0} <= known


def test_requested_levels_crop_the_field_of_view():
    ph = anatomical_phantom(11, levels=("T11", "L2"), spacing_xyz=COARSE)
    lab = sitk.GetArrayFromImage(ph.labels)
    wanted = ["T11", "T12", "L1", "L2"]
    assert set(wanted) <= set(ph.levels)
    # only near neighbours may show partly (a thoracic spinous process sloping down, an endplate at the edge)
    assert set(ph.levels) <= set(wanted) | {"T9", "T10", "L3"}
    for name in set(ph.levels) - set(wanted):
        assert (lab == TS_ID[name]).sum() < 0.3 * (lab == TS_ID["L1"]).sum()
    with pytest.raises(UserError, match="not a vertebra"):
        anatomical_phantom(0, levels=("T13",), spacing_xyz=COARSE)
    with pytest.raises(UserError, match="unknown field of view"):
        anatomical_phantom(0, fov="pelvis", spacing_xyz=COARSE)


def test_vertebra_centroids_run_top_to_bottom(whole):
    ph, lab, _, _ = whole
    z = [_centroid_lps(ph, lab, [TS_ID[n]])[2] for n in REG.names]  # LPS z points superior
    gaps = -np.diff(z)
    assert (gaps > 0).all(), dict(zip(REG.names[1:], np.round(gaps, 1), strict=True))
    # stacked bodies with discs: consecutive thoracolumbar centroids 15–45 mm apart
    thoracolumbar = gaps[REG.names.index("T1") : REG.names.index("L5")]
    assert thoracolumbar.min() > 15.0 and thoracolumbar.max() < 45.0


def test_heart_left_lung_and_left_ribs_on_the_patients_left(whole):
    ph, lab, _, _ = whole
    spine_x = _centroid_lps(ph, lab, [TS_ID[f"T{i}"] for i in range(1, 13)])[0]
    x = lambda *names: _centroid_lps(ph, lab, [TS_V2_IDS[n] for n in names])[0] - spine_x  # noqa: E731
    # LPS: +x is the patient's left
    assert x("heart") > 10.0
    assert x("lung_upper_lobe_left", "lung_lower_lobe_left") > 40.0
    assert x("lung_upper_lobe_right", "lung_middle_lobe_right", "lung_lower_lobe_right") < -40.0
    for k in (1, 6, 12):
        assert x(f"rib_left_{k}") > 30.0 and x(f"rib_right_{k}") < -30.0
    assert x("spleen") > 30.0 and x("liver") < -20.0 and x("kidney_left") > 0 > x("kidney_right")
    # the right dome (over the liver) sits higher: the right lung's lowest voxel is above the left lung's
    right = np.isin(lab, [12, 13, 14]).any((1, 2)).nonzero()[0].min()
    left = np.isin(lab, [10, 11]).any((1, 2)).nonzero()[0].min()
    assert right > left


def test_bone_brighter_than_soft_tissue_brighter_than_fat_brighter_than_lung(whole):
    _, lab, hu, tissue = whole
    vertebrae = np.isin(lab, list(TS_ID.values()))
    median = {
        "vertebra": np.median(hu[vertebrae]),
        "soft": np.median(hu[tissue == Tissue.SOFT]),
        "fat": np.median(hu[tissue == Tissue.FAT]),
        "lung": np.median(hu[tissue == Tissue.LUNG]),
    }
    assert median["vertebra"] > median["soft"] + 50 > median["fat"] + 50 > median["lung"] + 50, median
    assert -150 < median["fat"] < -50 and 0 < median["soft"] < 100 and median["lung"] < -600, median
    # the cortical shell is brighter than the cancellous bone it wraps
    assert np.median(hu[tissue == Tissue.CORTEX]) > np.median(hu[tissue == Tissue.CANCELLOUS]) + 100
    assert hu.dtype == np.int16 and hu.min() >= -1024


def test_same_seed_same_phantom_other_seed_other_phantom():
    a = anatomical_phantom(21, levels=("L1", "L3"), spacing_xyz=(3.0, 3.0, 3.0))
    b = anatomical_phantom(21, levels=("L1", "L3"), spacing_xyz=(3.0, 3.0, 3.0))
    c = anatomical_phantom(22, levels=("L1", "L3"), spacing_xyz=(3.0, 3.0, 3.0))
    arr = lambda ph: (sitk.GetArrayFromImage(ph.image), sitk.GetArrayFromImage(ph.labels))  # noqa: E731
    assert all(np.array_equal(x, y) for x, y in zip(arr(a), arr(b), strict=True))
    assert a.image.GetOrigin() == b.image.GetOrigin() and a.info["subject"] == b.info["subject"]
    assert a.image.GetSize() != c.image.GetSize() or not np.array_equal(arr(a)[0], arr(c)[0])


def test_vertebra_size_grows_from_t1_to_l5_as_morphometry_says(whole):
    _, lab, _, _ = whole
    levels = LEVELS[LEVELS.index("T1") : LEVELS.index("L5") + 1]
    # the published table itself: endplate width and depth, body height increase caudally
    for dim in ("epw", "epd", "vbh"):
        table = [getattr(MORPHOMETRY[n], dim) for n in levels]
        assert spearmanr(range(len(levels)), table).statistic > 0.95, dim
    # and the drawn vertebrae follow it
    voxels = np.bincount(lab.ravel(), minlength=256)
    ml = np.array([voxels[TS_ID[n]] for n in levels]) * np.prod(COARSE) / 1000.0
    assert spearmanr(range(len(levels)), ml).statistic > 0.9, np.round(ml, 1)
    assert ml[-1] > 2.0 * ml[0]  # L5 more than twice T1
    assert 8.0 < ml[0] < 40.0 and 30.0 < ml[-1] < 120.0  # whole-vertebra volumes in plausible ranges (ml)


def test_ct2yolo_gives_polygons_for_every_level_present(tmp_path):
    ph = anatomical_phantom(5, levels=("T12", "L3"), spacing_xyz=(2.0, 2.0, 2.0))
    vol, lab = write_anatomical_phantom(ph, tmp_path / "vol", "ph5")
    # through the product's own reader: int16 HU and uint8 labels, identity LPS direction
    assert sitk.ReadImage(str(vol)).GetPixelID() == sitk.sitkInt16
    manifest = ct2yolo(
        tmp_path / "ds",
        volume=vol,
        labels=lab,
        anatomy="spine",
        planes=["sagittal", "coronal"],
        step=2,
        views=["ap", "lat"],
        drr={"size": 128, "n_samples": 48, "threads": 1, "min_area_px": 4},
        slice={"min_area_px": 4},
        progress=False,
    )
    structures = manifest["studies"][0]["structures"]
    for name in ("T12", "L1", "L2", "L3"):
        assert structures[name]["slice_instances"] > 0, name
        assert structures[name]["drr_instances"] >= 2, name  # seen in AP and lateral
    # ribs, organs and the rest are TotalSegmentator ids outside the spine registry: reported, not dropped silently
    assert manifest["studies"][0]["unmapped_label_ids"]


@pytest.mark.parametrize(
    ("fov", "must_show"),
    [("neck", {"C3", "C6"}), ("chest", {"T3", "T10"}), ("abdomen", {"L2", "L4"}), ("thoracolumbar", {"T12", "L2"})],
)
def test_field_of_view_presets_cover_their_region(fov, must_show):
    ph = anatomical_phantom(31, fov=fov, spacing_xyz=(3.0, 3.0, 3.0))
    assert ph.info["fov"] == fov
    assert must_show <= set(ph.levels), ph.levels


def test_generated_spacing_is_bounded():
    ph = anatomical_phantom(7, fov="chest", max_size=96)
    assert max(ph.image.GetSize()) <= 97
    sp = ph.image.GetSpacing()
    assert sp[0] == sp[1] and all(s >= 1.0 for s in sp)
    assert ph.image.GetDirection() == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


def test_phantom_code_never_reads_real_data():
    # the phantoms must never include the example CT nor anything measured on it: no import of yolo_spine.data
    for path in (
        ROOT / "yolo_spine" / "synth" / "anatomy.py",
        ROOT / "yolo_spine" / "synth" / "pretrain.py",
        ROOT / "scripts" / "pretrain_phantoms.py",
    ):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not any(m == "yolo_spine.data" or m.startswith("yolo_spine.data.") for m in imported), path
        assert "example_ct" not in path.read_text(encoding="utf-8"), path


def test_pretraining_split_and_ct2yolo_options_are_valid():
    plan = PretrainPlan(out=Path("unused"), phantoms=25, seed=100, val_every=10)
    splits = [plan.split(i) for i in range(25)]
    assert splits.count("val") == 2 and splits[9] == splits[19] == "val"
    assert [PretrainPlan(Path("u"), 3, 0).split(i) for i in range(3)] == ["train", "train", "val"]
    for i in range(20):
        opts = study_options(plan, i)  # ct2yolo accepts every draw (the options check it when built)
        assert opts.planes == ("sagittal", "coronal") and opts.views == ("ap", "lat")
    assert study_options(plan, 3) == study_options(plan, 3) != study_options(plan, 4)


@pytest.mark.slow
def test_pretrain_script_end_to_end_and_resume(tmp_path):
    out = tmp_path / "pt"
    weights = tmp_path / "w" / "tiny.pt"
    cmd = [sys.executable, str(ROOT / "scripts" / "pretrain_phantoms.py"), "--out", str(out), "--phantoms", "2"]
    cmd += ["--epochs", "1", "--imgsz", "64", "--batch", "8", "--step", "6", "--poses", "1", "--nice", "0"]
    cmd += ["--weights-out", str(weights)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    card = json.loads(weights.with_suffix(".json").read_text())
    from yolo_spine.provenance import sha256_file

    assert card["sha256"] == sha256_file(weights) and card["epochs_completed"] == 1
    assert card["classes"] == list(REG.names) and card["data"]["phantoms"] == 2
    assert "LIDC-IDRI-0001" in card["not_for"] and weights.with_suffix(".md").is_file()
    # the card names the session that trained it; --export-only rewrites it from best.pt without a new session
    assert [s["from_epoch"] for s in card["sessions"]] == [0] and card["sessions"][0]["threads"] == 1
    again_w = tmp_path / "w" / "again.pt"
    export = subprocess.run(
        [*cmd[:-1], str(again_w), "--resume", "--export-only"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert export.returncode == 0, export.stdout[-3000:] + export.stderr[-3000:]
    again_card = json.loads(again_w.with_suffix(".json").read_text())
    assert again_card["epochs_completed"] == 1 and again_card["best_epoch"] == 1 and not again_card["in_progress"]
    assert again_card["sessions"] == card["sessions"] and again_card["sha256"] == sha256_file(again_w)
    assert "Session from epoch 0" in again_w.with_suffix(".md").read_text()
    records = sorted((out / "studies").glob("*/phantom.json"))
    assert [json.loads(r.read_text())["split"] for r in records] == ["train", "val"]
    # the same folder again refuses without --resume; --resume on a finished run trains nothing and succeeds
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert again.returncode != 0 and "--resume" in again.stdout + again.stderr
    resumed = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "2 phantoms already made" in resumed.stdout
