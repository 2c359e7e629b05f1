"""``lift --csv`` and ``eval3d --csv``: phantom studies through the shared batch path (ledger, executor, summary)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.output_tree import comparable_tree
from yolo_spine.batch import read_study_rows
from yolo_spine.errors import UserError
from yolo_spine.synth.phantoms import spine_phantom, write_phantom

STUDIES = ("case0", "case1", "case2")
#: The phantoms' label ids fit TotalSegmentator v1 and v2 alike: eval3d refuses to guess.
GT = ("--gt-scheme", "totalsegmentator_v2")
LEVELS = (("T11", "T12", "L1", "L2", "L3"), ("T12", "L1", "L2", "L3", "L4"), ("L1", "L2", "L3"))


@pytest.fixture(scope="module")
def phantom_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three phantom studies through ``ct2yolo --csv``: the dataset (with each study's ground truth beside it)."""
    from yolo_spine.ct.convert import ct2yolo

    root = tmp_path_factory.mktemp("phantoms")
    rows = ["volume,labels,study"]
    for k, name in enumerate(STUDIES):  # three different spines: a study swapped for another would show
        phantom = spine_phantom(LEVELS[k], size_xyz=(20, 20 + 2 * k, 24 + 2 * k), seed=k)
        vol, lab = write_phantom(phantom, root, f"p{k}")
        rows.append(f"{vol.name},{lab.name},{name}")
    (root / "list.csv").write_text("\n".join(rows) + "\n")
    ct2yolo(
        root / "dataset",
        study_list=root / "list.csv",
        planes=["axial", "sagittal"],
        step=2,
        views=["ap", "lat"],
        drr={"size": 64},
        progress=False,
    )
    return root


def _lift_list(folder: Path, rows: list[str]) -> Path:
    path = folder / "lift.csv"
    path.write_text("study,labels_dir\n" + "".join(f"{r}\n" for r in rows))
    return path


def _eval_list(folder: Path, lifted: Path, data: Path, studies=STUDIES) -> Path:
    path = folder / "eval.csv"
    rows = [f"{lifted / 'studies' / f'{s}.nii.gz'},{data / f'p{STUDIES.index(s)}_labels.nii.gz'},{s}" for s in studies]
    path.write_text("pred,gt,study\n" + "".join(f"{r}\n" for r in rows))
    return path


def test_lift_and_eval3d_csv_score_every_phantom_study_and_equal_with_1_and_2_workers(phantom_dataset, cli_main):
    data = phantom_dataset
    lift_csv = _lift_list(data, [f"{s},dataset" for s in STUDIES])
    trees = {}
    for workers in ("1", "2"):
        res = cli_main("lift", "--csv", lift_csv, "--out", data / f"lift{workers}", "--workers", workers)
        assert res.returncode == 0, res.stderr
        assert "3 done, 0 skipped (already done), 0 failed" in res.stdout
        trees[workers] = comparable_tree(data / f"lift{workers}")
    lifted = data / "lift1"
    for s in STUDIES:
        for name in (f"{s}.nii.gz", f"{s}.json", f"{s}.centroids.json"):
            assert (lifted / "studies" / name).is_file()
        rec = json.loads((lifted / "ledger" / f"{s}.json").read_text())
        assert rec["status"] == "done" and rec["inputs"]["labels"] and rec["inputs"]["sidecars"]
    manifest = json.loads((lifted / "manifest.json").read_text())
    assert [e["study"] for e in manifest["studies"]] == list(STUDIES) and "failed_studies" not in manifest
    assert all(len(e["classes_found"]) >= 2 for e in manifest["studies"])
    assert "batch" not in manifest["options"]  # how studies ran is no part of what they are
    assert not (data / ".lift1.partial").exists()  # the work folder goes once the output is in place
    assert trees["1"] == trees["2"] and len(trees["1"]) == 3 * 3 + 1

    res = cli_main("eval3d", "--csv", _eval_list(data, lifted, data), "--out", data / "eval1", *GT)
    assert res.returncode == 0, res.stderr
    assert "3 done, 0 skipped" in res.stdout and "mean Dice over 3 studies" in res.stdout
    out = data / "eval1"
    with open(out / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    # the table is each study's own CSV with the study in front, rows in list order
    for s in STUDIES:
        with open(out / "studies" / s / "metrics.csv", newline="") as f:
            own = list(csv.DictReader(f))
        assert [{k: v for k, v in r.items() if k != "study"} for r in rows if r["study"] == s] == own
        mean = next(r for r in own if r["class"] == "mean")
        assert float(mean["dice"]) > 0.8  # ground truth lifted back from slices every 2nd voxel: close to the map
    assert [r["study"] for r in rows if r["class"] == "mean"] == list(STUDIES)
    assert [r["class"] for r in rows if r["study"] == "case2"] == ["L1", "L2", "L3", "mean"]  # each its own spine
    doc = json.loads((out / "metrics.json").read_text())
    assert [e["study"] for e in doc["studies"]] == list(STUDIES) and doc["failed_studies"] == {}
    assert all(e["mode"] == "segmentation" and e["mean"]["dice"] > 0.8 for e in doc["studies"])
    assert doc["manifest"]["command"] == "eval3d" and "batch" not in doc["manifest"]["options"]


@pytest.mark.slow  # workers that import MONAI: tens of seconds on a busy 2-core machine
def test_eval3d_csv_writes_the_same_tables_with_1_and_2_workers(phantom_dataset, cli_main):
    data = phantom_dataset
    lifted = data / "lift_for_eval"
    res = cli_main("lift", "--csv", _lift_list(data, [f"{s},dataset" for s in STUDIES]), "--out", lifted)
    assert res.returncode == 0, res.stderr
    tables = {}
    for workers in ("1", "2"):
        out = data / f"eval_w{workers}"
        res = cli_main("eval3d", "--csv", _eval_list(data, lifted, data), "--out", out, "--workers", workers, *GT)
        assert res.returncode == 0, res.stderr
        tables[workers] = comparable_tree(out)
    assert tables["1"] == tables["2"] and len(tables["1"]) == 3 * 3 + 2


def test_a_failing_study_is_reported_does_not_stop_the_others_and_a_rerun_skips_the_done_ones(
    phantom_dataset, cli_main, tmp_path
):
    data = phantom_dataset
    # case9 is in no dataset: it fails (a bad input: not retried), the other two are lifted
    lift_csv = _lift_list(data, ["case0,dataset", "case9,dataset", "case2,dataset"])
    out = tmp_path / "lifted"
    first = cli_main("lift", "--csv", lift_csv, "--out", out, "--workers", "2")
    assert first.returncode != 0 and not out.exists()
    assert "2 done, 0 skipped (already done), 1 failed: case9: UserError: no sidecars of study 'case9'" in first.stderr
    work = tmp_path / ".lifted.partial"
    assert sorted(p.name for p in (work / "studies").iterdir()) == ["case0", "case2"]  # no partial folder of case9
    assert json.loads((work / "ledger" / "case9.json").read_text())["status"] == "failed"
    again = cli_main("lift", "--csv", lift_csv, "--out", out)
    assert "0 done, 2 skipped (already done), 1 failed" in again.stderr
    kept = cli_main("lift", "--csv", lift_csv, "--out", out, "--skip-failed")
    assert kept.returncode == 0, kept.stderr
    assert "0 done, 2 skipped (already done), 1 failed: case9" in kept.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert [e["study"] for e in manifest["studies"]] == ["case0", "case2"]
    assert "no sidecars of study 'case9'" in manifest["failed_studies"]["case9"]
    assert not work.exists()
    assert cli_main("lift", "--csv", lift_csv, "--out", out).returncode != 0  # never overwritten without --overwrite

    # eval3d: a prediction that is not there is named in one sentence before any work
    bad = tmp_path / "eval.csv"
    bad.write_text(f"pred,gt\n{tmp_path / 'missing.nii.gz'},{data / 'p0_labels.nii.gz'}\n")
    res = cli_main("eval3d", "--csv", bad, "--out", tmp_path / "e")
    assert res.returncode != 0 and "the pred" in res.stderr and "does not exist" in res.stderr
    # an unreadable prediction fails its study only; the other is scored and the table lists only it
    (tmp_path / "broken.nii.gz").write_bytes(b"not an image")
    rows = [
        f"{out / 'studies' / 'case0.nii.gz'},{data / 'p0_labels.nii.gz'}",
        f"broken.nii.gz,{data / 'p1_labels.nii.gz'}",
    ]
    bad.write_text("pred,gt\n" + "\n".join(rows) + "\n")
    res = cli_main("eval3d", "--csv", bad, "--out", tmp_path / "e", "--skip-failed", "--anatomy", "spine", *GT)
    assert res.returncode == 0, res.stderr
    doc = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert len(doc["studies"]) == 1 and len(doc["failed_studies"]) == 1
    ((failed_id, reason),) = doc["failed_studies"].items()
    assert failed_id.startswith("s-") and "broken" not in reason  # pseudonymous: the file name is hidden
    assert doc["studies"][0]["study"].startswith("s-") and doc["studies"][0]["mean"]["dice"] > 0.8


def test_study_lists_and_flags_are_checked(tmp_path, cli_main):
    (tmp_path / "l.csv").write_text("labels_dir\nx\n")
    with pytest.raises(UserError, match="lacks the column"):
        read_study_rows(tmp_path / "l.csv", ("study",))
    (tmp_path / "l.csv").write_text("study,labels_dir\n,x\n")
    with pytest.raises(UserError, match="line 2: the column study is empty"):
        read_study_rows(tmp_path / "l.csv", ("study",), ("labels_dir",))
    res = cli_main("lift", str(tmp_path), "--out", tmp_path / "x.nii.gz", "--workers", "2")
    assert res.returncode != 0 and "--workers apply to a list of studies" in res.stderr
    (tmp_path / "l.csv").write_text("study\n../up\n")
    res = cli_main("lift", "--csv", tmp_path / "l.csv", str(tmp_path), "--out", tmp_path / "o")
    assert res.returncode != 0 and "may hold only letters" in res.stderr
    (tmp_path / "l.csv").write_text("study\na\na\n")
    res = cli_main("lift", "--csv", tmp_path / "l.csv", str(tmp_path), "--out", tmp_path / "o")
    assert res.returncode != 0 and "list each study once" in res.stderr
    res = cli_main("eval3d", "--csv", tmp_path / "l.csv", "--pred", "a.nii.gz", "--out", tmp_path / "o")
    assert res.returncode != 0 and "either --pred/--gt or --csv" in res.stderr
