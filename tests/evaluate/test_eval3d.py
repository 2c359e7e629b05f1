"""eval3d end to end: label-id schemes and anatomy (given, from lift's record, recognised), resampling, outputs
(CSV/JSON/MD), the CLI, the real example CT."""

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from yolo_spine.cli import main
from yolo_spine.errors import DataError, OutputExistsError, UserError
from yolo_spine.evaluate.eval3d import evaluate_volumes, run_eval3d
from yolo_spine.evaluate.report import CSV_COLUMNS
from yolo_spine.registry import CLASS_ID_SCHEME, load_registry

REG = load_registry("spine")
OURS = {"gt_scheme": CLASS_ID_SCHEME, "pred_scheme": CLASS_ID_SCHEME}  # both maps written as class id + 1
SPACING_XYZ = (0.8, 0.6, 2.0)
ORIGIN_XYZ = (-20.0, 15.0, -100.0)


def write_map(path: Path, labels_zyx: np.ndarray, spacing_xyz=SPACING_XYZ, origin_xyz=ORIGIN_XYZ, direction=None):
    img = sitk.GetImageFromArray(labels_zyx)
    img.SetSpacing(spacing_xyz)
    img.SetOrigin(origin_xyz)
    if direction is not None:
        img.SetDirection(direction)
    sitk.WriteImage(img, str(path))
    return path


def cls(name: str) -> int:
    """Label value of a class under the default convention: class id + 1."""
    return REG.index(name) + 1


@pytest.fixture
def maps(tmp_path: Path):
    """Ground truth with C5, T12, L1; prediction with C5 (shifted a slice), T12 (exact), T1 (extra), L1 missed."""
    gt = np.zeros((24, 40, 40), np.uint8)
    pred = np.zeros_like(gt)
    gt[2:6, 5:15, 5:15] = cls("C5")
    pred[3:7, 5:15, 5:15] = cls("C5")
    gt[10:14, 5:15, 20:30] = cls("T12")
    pred[10:14, 5:15, 20:30] = cls("T12")
    gt[16:20, 25:35, 25:35] = cls("L1")
    pred[16:20, 25:30, 5:10] = cls("T1")
    return write_map(tmp_path / "pred.nii.gz", pred), write_map(tmp_path / "gt.nii.gz", gt)


def test_defaults_are_shared_with_the_cli(tmp_path: Path):
    from yolo_spine.cli import build_parser
    from yolo_spine.evaluate.commands import _eval3d_options

    argv = ["eval3d", "--pred", "p.nii", "--gt", "g.nii", "--out", "m.csv"]
    args = build_parser().parse_args(argv)
    # no anatomy by default: the one lift recorded (a spine default would score a brain map as vertebrae)
    assert args.anatomy is None
    opts = _eval3d_options(args)  # configs/eval3d/default.yaml
    assert (opts.tolerance_mm, opts.max_dist_mm, opts.landmarks, opts.gt_scheme) == (2.0, 20.0, False, None)
    cfg = tmp_path / "mine.yaml"
    cfg.write_text("tolerance_mm: 1.0\nmax_dist_mm: 10\n")
    args = build_parser().parse_args([*argv, "--config", str(cfg), "--set", "landmarks=true", "--max-dist-mm", "15"])
    opts = _eval3d_options(args)
    assert (opts.tolerance_mm, opts.max_dist_mm, opts.landmarks) == (1.0, 15.0, True)
    assert opts.origins()["max_dist_mm"] == "flag" and opts.origins()["tolerance_mm"] == "config"


def test_outputs_rows_registry_order_and_empty_rules(maps, tmp_path: Path):
    pred, gt = maps
    out = tmp_path / "res" / "metrics.csv"
    result, paths = run_eval3d(pred, gt, "spine", out, landmarks=True, **OURS)
    assert result.classes == ["C5", "T1", "T12", "L1"]  # registry order, not label or alphabetical order

    with open(out, newline="") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == CSV_COLUMNS
    table = {r[0]: dict(zip(rows[0], r, strict=True)) for r in rows[1:]}
    assert [r[0] for r in rows[1:]] == ["C5", "T1", "T12", "L1", "mean"]
    # C5: 3 of 4 slices overlap → Dice 0.75; shifted 2 mm in z → NSD at 2 mm is 1.
    assert float(table["C5"]["dice"]) == pytest.approx(0.75) and float(table["C5"]["nsd"]) == pytest.approx(1.0)
    assert table["T12"]["dice"] == "1" and table["T12"]["hd95_mm"] == "0"
    # L1 missed: Dice/IoU/recall 0, precision and distances empty (missing), volume difference −gt volume.
    assert (table["L1"]["dice"], table["L1"]["recall"], table["L1"]["nsd"]) == ("0", "0", "0")
    assert table["L1"]["precision"] == table["L1"]["hd95_mm"] == table["L1"]["assd_mm"] == ""
    l1_ml = 4 * 10 * 10 * 0.8 * 0.6 * 2.0 / 1000
    assert float(table["L1"]["volume_diff_ml"]) == pytest.approx(-l1_ml)
    assert (table["L1"]["gt_present"], table["L1"]["pred_present"]) == ("true", "false")
    # T1 is absent from the ground truth: its own row, recall missing, excluded from the mean.
    assert table["T1"]["recall"] == "" and table["T1"]["gt_present"] == "false"
    assert float(table["mean"]["dice"]) == pytest.approx((0.75 + 1 + 0) / 3)
    assert float(table["mean"]["hd95_mm"]) == pytest.approx((2.0 + 0) / 2, abs=1e-4)  # over C5 and T12 only
    assert (table["mean"]["gt_present"], table["mean"]["pred_present"]) == ("3", "2")
    # C5, one slice off: a = 300, b = c = 100 over a 5·10·10 box with no background (d = 0) →
    # FP = FN ratio 100/400, kappa 2(0 − 100·100)/(400·100 + 400·100) = −0.25. L1 missed: FN 1, FP 0, kappa 0.
    assert (table["C5"]["fp_volume_ratio"], table["C5"]["fn_volume_ratio"]) == ("0.25", "0.25")
    assert (table["C5"]["kappa_bbox"], table["C5"]["misclassification_rate"]) == ("-0.25", "0")
    assert (table["L1"]["fn_volume_ratio"], table["L1"]["fp_volume_ratio"], table["L1"]["kappa_bbox"]) == (
        "1",
        "0",
        "0",
    )
    assert table["T1"]["fp_volume_ratio"] == table["T1"]["misclassification_rate"] == ""  # no ground truth
    assert (table["T12"]["bf1"], table["T12"]["kappa_bbox"]) == ("1", "1")

    doc = json.loads(paths["json"].read_text())
    assert doc["columns"] == list(CSV_COLUMNS)
    assert set(doc["column_descriptions"]) == set(CSV_COLUMNS)
    assert "bounding box of ground truth and prediction together" in doc["column_descriptions"]["kappa_bbox"]
    assert "κ (bbox)" in paths["md"].read_text() and "BF1@2 mm" in paths["md"].read_text()
    by_class = {r["class"]: r for r in doc["classes"]}
    assert by_class["L1"]["precision"] is None and by_class["L1"]["hd95_mm"] is None
    assert by_class["T1"]["recall"] is None and by_class["T1"]["gt_present"] is False
    assert doc["mean"]["counts"]["hd95_mm"] == 2 and doc["mean"]["n_gt_classes"] == 3
    assert doc["geometry"]["pred_resampled"] is False
    assert doc["manifest"]["command"] == "eval3d" and doc["manifest"]["inputs"]["gt"]["sha256"]
    lm = doc["landmarks"]
    assert lm["n_gt"] == 3 and lm["n_identified"] == 2  # C5 (2 mm off) and T12; L1 not predicted
    assert lm["per_class"]["C5"]["error_mm"] == pytest.approx(2.0, abs=1e-6)
    assert lm["per_class"]["L1"]["identified"] is False and lm["per_class"]["T1"]["identified"] is None

    md = paths["md"].read_text()
    assert "| L1 | 0.000 | 0.000 | — | 0.000 | — | — |" in md and "| **mean** |" in md
    assert "Identification rate" in md and "2/3" in md

    with pytest.raises(OutputExistsError, match="--overwrite"):
        run_eval3d(pred, gt, "spine", out, **OURS)
    run_eval3d(pred, gt, "spine", out, overwrite=True, **OURS)
    assert sorted(p.name for p in out.parent.iterdir()) == ["metrics.csv", "metrics.json", "metrics.md"]


def test_prediction_on_another_grid_is_resampled_onto_the_ground_truth(tmp_path: Path):
    gt = np.zeros((12, 20, 20), np.uint8)
    gt[3:9, 4:12, 5:15] = cls("T7")
    gt[9:11, 4:12, 5:15] = cls("T8")
    gt_path = write_map(tmp_path / "gt.nii.gz", gt)
    # Prediction: the same anatomy at half the voxel size in x and y, x flipped (direction diag(-1, 1, 1)) and
    # with extra margin. Fine voxels (2i, 2i+1) hold coarse voxel i, so every gt voxel centre falls between two
    # fine voxels of the same label and nearest-neighbour resampling reproduces the ground truth exactly.
    fine = np.repeat(np.repeat(gt, 2, axis=1), 2, axis=2)[:, :, ::-1]
    fine = np.pad(fine, ((0, 0), (3, 0), (5, 0)))
    sx, sy, sz = SPACING_XYZ
    nx_fine = fine.shape[2]
    # Unflipped, fine column f sits at x = Ox − sx/4 + f·sx/2. After the flip and 5 columns of padding in front,
    # column g = 5 + 39 − f, and with direction −x, x(g) = origin_x − g·sx/2 → origin_x = Ox + 19.25·sx + 5·sx/2.
    origin = (ORIGIN_XYZ[0] + (19 + 0.25) * sx + 5 * sx / 2, ORIGIN_XYZ[1] - 0.25 * sy - 3 * sy / 2, ORIGIN_XYZ[2])
    pred_path = write_map(
        tmp_path / "pred.mha", fine, (sx / 2, sy / 2, sz), origin, direction=(-1, 0, 0, 0, 1, 0, 0, 0, 1)
    )
    assert nx_fine == 45
    res = evaluate_volumes(pred_path, gt_path, "spine", landmarks=True)
    assert res.geometry["pred_resampled"] is True
    assert res.per_class["T7"].dice == 1.0 and res.per_class["T8"].dice == 1.0
    assert res.per_class["T7"].hd95_mm == 0.0
    before = res.geometry["pred_volume_ml_before_resampling"]["T7"]
    assert before == pytest.approx(res.geometry["pred_volume_ml_after_resampling"]["T7"])
    assert res.landmarks.error_mm["T7"] == pytest.approx(0.0, abs=1e-6)  # centroids agree in world space

    out = tmp_path / "m.csv"
    run_eval3d(pred_path, gt_path, "spine", out)
    assert "resampled onto the ground-truth grid" in out.with_suffix(".md").read_text()


def test_grids_that_do_not_overlap_are_a_clear_error(tmp_path: Path, cli_main):
    gt = np.zeros((8, 8, 8), np.uint8)
    gt[2:5, 2:5, 2:5] = cls("L2")
    gt_path = write_map(tmp_path / "gt.nii.gz", gt)
    pred_path = write_map(tmp_path / "pred.nrrd", gt, origin_xyz=(500.0, 0.0, 0.0))
    with pytest.raises(DataError, match="do not overlap"):
        evaluate_volumes(pred_path, gt_path, "spine", **OURS)
    proc = cli_main(
        "eval3d", "--pred", pred_path, "--gt", gt_path, "--out", tmp_path / "m.csv", "--anatomy", "spine",
        "--gt-scheme", CLASS_ID_SCHEME, "--pred-scheme", CLASS_ID_SCHEME, offline=True,
    )  # fmt: skip
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]  # after the info line about resampling
    assert last.startswith("yolo_spine eval3d: error: the prediction and the ground truth do not overlap")
    assert "Traceback" not in proc.stderr and not (tmp_path / "m.csv").exists()


def test_label_id_conventions_and_bad_inputs(tmp_path: Path):
    gt = np.zeros((8, 8, 8), np.uint8)
    gt[1:4, 1:4, 1:4] = cls("S1")
    gt[5:7, 5:7, 5:7] = 99  # past the last class: background, but reported
    gt_path = write_map(tmp_path / "gt.nii.gz", gt)
    res = evaluate_volumes(gt_path, gt_path, "spine", **OURS)
    assert res.classes == ["S1"] and res.unmapped_labels["gt"] == {99: 8}
    assert res.options["decided_by"] == {"anatomy": "option", "gt_scheme": "option", "pred_scheme": "option"}

    # The same anatomy in TotalSegmentator v2 ids (L5 = 27), read with --gt-scheme.
    ts = np.zeros((8, 8, 8), np.uint8)
    ts[1:4, 1:4, 1:4] = 27
    ts[5:7, 5:7, 5:7] = 5  # the liver: no spine class, reported
    ts_path = write_map(tmp_path / "ts.nii.gz", ts)
    ours = np.where(ts == 27, cls("L5"), 0).astype(np.uint8)
    ours_path = write_map(tmp_path / "ours.nii.gz", ours)
    res = evaluate_volumes(ours_path, ts_path, "spine", gt_scheme="totalsegmentator_v2", pred_scheme=CLASS_ID_SCHEME)
    assert res.classes == ["L5"] and res.per_class["L5"].dice == 1.0 and res.unmapped_labels["gt"] == {5: 8}
    res = evaluate_volumes(
        ts_path, ts_path, "spine", gt_scheme="totalsegmentator_v2", pred_scheme="totalsegmentator_v2"
    )
    assert res.per_class["L5"].dice == 1.0

    floats = write_map(tmp_path / "float.nii.gz", ours.astype(np.float32))  # whole-number floats are fine
    assert evaluate_volumes(floats, ours_path, "spine", **OURS).per_class["L5"].dice == 1.0
    halves = write_map(tmp_path / "halves.nii.gz", ours.astype(np.float32) + 0.5)
    with pytest.raises(DataError, match="non-integer"):
        evaluate_volumes(halves, ours_path, "spine", gt_scheme=CLASS_ID_SCHEME)
    only_organs = write_map(tmp_path / "organs.nii.gz", np.where(ts == 5, 200, 0).astype(np.uint8))
    with pytest.raises(DataError, match=r"label ids fit no label-id scheme of anatomy 'spine'.*pass --gt-scheme"):
        evaluate_volumes(ours_path, only_organs, "spine", pred_scheme=CLASS_ID_SCHEME)
    with pytest.raises(DataError, match=r"no class of anatomy 'spine' \(all ids unmapped under verse; pass --gt-"):
        evaluate_volumes(ours_path, only_organs, "spine", gt_scheme="verse", pred_scheme=CLASS_ID_SCHEME)
    with pytest.raises(UserError, match="no label-id scheme 'totalseg'"):
        evaluate_volumes(ours_path, ts_path, "spine", gt_scheme="totalseg")
    with pytest.raises(DataError, match="not found"):
        evaluate_volumes(tmp_path / "missing.nii.gz", ours_path, "spine", **OURS)
    (tmp_path / "junk.nii.gz").write_bytes(b"not an image")
    with pytest.raises(DataError, match="cannot read"):
        evaluate_volumes(tmp_path / "junk.nii.gz", ours_path, "spine", **OURS)
    with pytest.raises(UserError, match=r"\.csv"):
        run_eval3d(ours_path, ours_path, "spine", tmp_path / "metrics.txt")


def test_unmapped_ids_of_a_map_are_reported_once(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    """The demo scores one ground truth twice (slices, DRR centroids): its unmapped ids are one line, not two."""
    gt = np.zeros((8, 8, 8), np.uint8)
    gt[1:4, 1:4, 1:4] = cls("S1")
    gt[5:7, 5:7, 5:7] = 99
    gt_path = write_map(tmp_path / "gt.nii.gz", gt)
    with caplog.at_level("INFO", logger="yolo_spine"):
        for _ in range(2):
            assert evaluate_volumes(gt_path, gt_path, "spine", **OURS).unmapped_labels["gt"] == {99: 8}
        gt[5:7, 5:7, 5:7] = 98  # another map under the same name is news
        write_map(gt_path, gt)
        evaluate_volumes(gt_path, gt_path, "spine", **OURS)
    said = [r.getMessage() for r in caplog.records if "name no spine class" in r.getMessage()]
    # ground truth and prediction are the same file, read as two roles: one line each, per content
    assert [m.split(":")[0] for m in said] == ["ground truth", "prediction"] * 2, said
    assert said[0].endswith(": 99") and said[2].endswith(": 98"), said


def test_landmark_files(tmp_path: Path):
    gt = {"centroids_lps_mm": {"T11": [0, 0, 0], "T12": [0, 0, -30], "L1": [0, 0, -60]}}
    pred = {"vertebrae_T11": [0, 3, -4], "T12": [0, 0, -62], "L1": [0, 0, -28]}  # aliases; T12/L1 swapped
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "pred.json").write_text(json.dumps(pred))
    out = tmp_path / "lm.csv"
    assert main(["eval3d", "--pred", str(tmp_path / "pred.json"), "--gt", str(tmp_path / "gt.json"),
                 "--out", str(out), "--anatomy", "spine"]) == 0  # fmt: skip
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["class"] for r in rows] == ["T11", "T12", "L1", "mean"]
    assert rows[0]["identified"] == "true" and float(rows[0]["centroid_error_mm"]) == pytest.approx(5.0)
    assert rows[1]["identified"] == rows[2]["identified"] == "false"
    assert float(rows[3]["identified"]) == pytest.approx(1 / 3)
    (tmp_path / "bad.json").write_text(json.dumps({"T13": [0, 0, 0]}))
    with pytest.raises(DataError, match="'T13' is not a class"):
        run_eval3d(tmp_path / "bad.json", tmp_path / "gt.json", "spine", tmp_path / "x.csv")


def test_real_example_ct_against_itself(tmp_path: Path):
    """The real LIDC-IDRI-0001 TotalSegmentator label map scored against itself: perfect on C5..L3."""
    from yolo_spine.data import example_ct

    ct = example_ct()
    out = tmp_path / "self.csv"
    argv = ["eval3d", "--pred", str(ct.labels), "--gt", str(ct.labels), "--out", str(out), "--landmarks",
            "--anatomy", "spine", "--gt-scheme", "totalsegmentator_v2",
            "--pred-scheme", "totalsegmentator_v2"]  # fmt: skip
    assert main(argv) == 0
    doc = json.loads(out.with_suffix(".json").read_text())
    vertebrae = [r["class"] for r in doc["classes"]]
    assert vertebrae == list(REG.names[REG.index("C5") : REG.index("L3") + 1])  # 18 vertebrae, registry order
    for r in doc["classes"]:
        assert (r["dice"], r["hd95_mm"], r["assd_mm"], r["nsd"], r["volume_diff_ml"]) == (1.0, 0.0, 0.0, 1.0, 0.0)
    assert doc["landmarks"]["identification_rate"] == 1.0 and doc["landmarks"]["mean_error_mm"] == 0.0
    assert len(doc["unmapped_labels"]["gt"]) > 50  # the other TotalSegmentator structures, counted not dropped
    assert not math.isnan(doc["mean"]["dice"]) and doc["mean"]["n_gt_classes"] == 18


# ------------------------------------------------------------------ label-id schemes and anatomy that agree with lift


def test_ambiguous_maps_are_refused_with_one_sentence(maps, tmp_path: Path, cli_main):
    """Ids that read as vertebrae in one scheme and as something else in another are never scored on a guess."""
    pred, gt = maps  # C5, T1, T12, L1 as class id + 1 = 5, 8, 20, 21: TotalSegmentator v1 reads 20, 21 as L3, L2
    with pytest.raises(DataError) as err:
        evaluate_volumes(pred, gt, "spine")
    assert str(err.value) == (
        f"cannot tell how to read the ground truth {gt}: its label ids fit the schemes class_id+1, "
        "totalsegmentator_v1 and verse of anatomy 'spine' alike; pass --gt-scheme "
        "(class_id+1, totalsegmentator_v2, totalsegmentator_v1, verse)"
    )
    # A TotalSegmentator organ map whose ids all lie in the class-id range (spleen 1, liver 5, lung 10, small
    # bowel 18, colon 20): as class id + 1 it would be C1, C5, T3, T11, L1 and score Dice 0 without a word.
    organs = np.zeros((12, 12, 12), np.uint8)
    for n, sid in enumerate((1, 5, 10, 18, 20)):
        organs[2 * n : 2 * n + 2, 2:9, 2:9] = sid
    organs_path = write_map(tmp_path / "organs.nii.gz", organs)
    with pytest.raises(DataError, match=r"^cannot tell how to read the ground truth .*pass --gt-scheme \("):
        evaluate_volumes(pred, organs_path, "spine", pred_scheme=CLASS_ID_SCHEME)

    out = tmp_path / "cli" / "m.csv"
    proc = cli_main("eval3d", "--pred", pred, "--gt", gt, "--anatomy", "spine", "--out", out, offline=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if "error:" in ln]
    assert len(errors) == 1 and errors[0].startswith("yolo_spine eval3d: error: cannot tell how to read the ground")
    assert "pass --gt-scheme" in errors[0] and not out.parent.exists()
    proc = cli_main("eval3d", "--pred", pred, "--gt", gt, "--out", out, offline=True)  # no anatomy, no lift record
    assert proc.returncode == 2 and "error: give --anatomy" in proc.stderr and not out.parent.exists()
    proc = cli_main("eval3d", "--pred", pred, "--gt", gt, "--anatomy", "spine", "--out", out,
                   "--gt-scheme", CLASS_ID_SCHEME, "--pred-scheme", CLASS_ID_SCHEME, offline=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "ground truth as class_id+1 (option); prediction as class_id+1 (option)" in proc.stdout


def _crop_example_ct(folder: Path, levels: tuple[str, ...]) -> tuple[Path, Path]:
    """The example CT and its TotalSegmentator-v2 map cropped around ``levels`` (whole vertebrae, 2-voxel margin)."""
    import SimpleITK as sitk

    from yolo_spine.data import example_ct

    ex = example_ct()
    vol, lab = sitk.ReadImage(str(ex.volume)), sitk.ReadImage(str(ex.labels))
    ids = {name: sid for sid, name in REG.source_id_map("totalsegmentator_v2").items()}
    sel = np.isin(sitk.GetArrayViewFromImage(lab), [ids[n] for n in levels])
    lo, size = [], []
    for axis, axes in ((0, (0, 1)), (1, (0, 2)), (2, (1, 2))):  # voxel axis i, j, k
        idx = np.flatnonzero(sel.any(axes))
        first, last = max(0, int(idx.min()) - 2), min(vol.GetSize()[axis] - 1, int(idx.max()) + 2)
        lo.append(first)
        size.append(last - first + 1)
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "ct.nii.gz", folder / "labels.nii.gz"
    for img, path in zip((vol, lab), paths, strict=True):
        sitk.WriteImage(sitk.RegionOfInterest(img, size, lo), str(path))
    return paths


def test_real_example_mask_scores_a_lifted_prediction_without_schemes(tmp_path: Path, cli_main):
    """The example CT's full TotalSegmentator-v2 map, as ct2yolo took it, against a lift: no --gt-scheme needed."""
    from yolo_spine.ct.convert import ct2yolo
    from yolo_spine.data import example_ct
    from yolo_spine.lift.lift import lift

    levels = ("T7", "T8")
    vol, lab = _crop_example_ct(tmp_path / "crop", levels)
    ds = tmp_path / "ds"
    ct2yolo(ds, volume=vol, labels=lab, anatomy="spine", planes=["axial"], views=[], progress=False)
    lifted = lift(ds, tmp_path / "lift" / "seg.nii.gz")
    assert lifted.manifest == tmp_path / "lift" / "seg.json"

    out = tmp_path / "eval" / "m.csv"
    proc = cli_main("eval3d", "--pred", lifted.labels, "--gt", example_ct().labels, "--out", out, offline=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (
        "anatomy spine (lift record); label ids: ground truth as totalsegmentator_v2 (recognised from its ids); "
        "prediction as class_id+1 (lift record)"
    ) in proc.stdout
    doc = json.loads(out.with_suffix(".json").read_text())
    assert doc["anatomy"] == "spine"
    assert (doc["options"]["gt_scheme"], doc["options"]["pred_scheme"]) == ("totalsegmentator_v2", CLASS_ID_SCHEME)
    rows = {r["class"]: r for r in doc["classes"]}
    assert list(rows) == list(REG.names[REG.index("C5") : REG.index("L3") + 1])  # the map's 18 vertebrae
    for name in levels:  # lifted ground-truth slices give the crop's whole vertebrae back
        assert rows[name]["dice"] >= 0.97 and rows[name]["hd95_mm"] <= 2.0, rows[name]
    predicted = [n for n, r in rows.items() if r["pred_present"]]
    assert set(levels) < set(predicted)  # and the pieces of neighbours that reach into the crop ...
    for name in predicted:  # ... each lands on its own vertebra of the full map: nothing is read as another class
        assert rows[name]["precision"] >= 0.97, rows[name]
    assert doc["mean"]["n_gt_classes"] == 18 and len(doc["unmapped_labels"]["gt"]) > 50


def test_anatomy_is_taken_from_lifts_record(tmp_path: Path, cli_main):
    """A brain lift is scored as the brain without --anatomy; a contradicting --anatomy is refused."""
    from yolo_spine.ct.convert import ct2yolo
    from yolo_spine.lift.lift import lift
    from yolo_spine.synth import phantoms

    vol, lab = phantoms.write_phantom(phantoms.brain_phantom(), tmp_path / "ph", "brain")
    ds = tmp_path / "ds"
    ct2yolo(ds, volume=vol, labels=lab, anatomy="brain", planes=["axial"], progress=False)
    lifted = lift(ds, tmp_path / "lift" / "brain_seg.nii.gz")
    assert json.loads((tmp_path / "lift" / "brain_seg.json").read_text())["anatomy"] == "brain"

    out = tmp_path / "m.csv"
    proc = cli_main("eval3d", "--pred", lifted.labels, "--gt", lab, "--out", out, offline=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(out.with_suffix(".json").read_text())
    brain = load_registry("brain")
    assert doc["anatomy"] == "brain" and doc["options"]["decided_by"]["anatomy"] == "lift record"
    assert [r["class"] for r in doc["classes"]] == list(brain.names)  # all 20 regions, left before right
    assert doc["mean"]["dice"] >= 0.9 and doc["mean"]["n_gt_classes"] == 20

    proc = cli_main("eval3d", "--pred", lifted.labels, "--gt", lab, "--anatomy", "spine", "--out", tmp_path / "s.csv")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "error: brain_seg.nii.gz was lifted as anatomy 'brain', not 'spine'; fix --anatomy" in proc.stderr
