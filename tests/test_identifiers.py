"""No patient identifier, credential or secret in any output, log or run record unless the user asks for it.

Inputs sit in identifier-shaped folders (``Doe_Janet_19710203/``, the way scanners and PACS exports name them);
every output file (names and bytes, recursively) and the captured stdout/stderr are searched for the pieces.
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path

import cv2
import pytest

from yolo_spine.identifiers import (
    FOLDER,
    MASK,
    mask_credentials,
    path_name,
    pseudonym,
    recording_paths,
    sanitize,
    sanitize_argv,
)
from yolo_spine.provenance import run_manifest

PATIENT = "Doe_Janet_19710203"
NEEDLES = ("Doe", "Janet", "19710203")
CRED_URL = "rtsp://user:password@127.0.0.1:9/x"
FAST_DRR = {"size": 64, "n_samples": 32, "threads": 1, "min_area_px": 2}


def _searchable(path: Path) -> str:
    """A file's bytes as text; a PNG without its compressed pixel data (where 3 letters can occur by chance)."""
    data = path.read_bytes()
    if data[:8] == b"\x89PNG\r\n\x1a\n":  # keep every chunk's type and body but IDAT's: text chunks hold metadata
        kept, i = [data[:8]], 8
        while i + 8 <= len(data):
            n, kind = int.from_bytes(data[i : i + 4], "big"), data[i + 4 : i + 8]
            kept.append(kind if kind == b"IDAT" else data[i : i + 12 + n])
            i += 12 + n
        data = b"".join(kept)
    return data.decode("latin-1")


def leaks(*roots: Path, texts: tuple[str, ...] = (), needles: tuple[str, ...] = NEEDLES) -> list[str]:
    """Every place a needle occurs: file and folder names under ``roots``, their bytes, and ``texts``."""
    found = []
    for root in roots:
        for p in [root, *root.rglob("*")]:
            rel = p.relative_to(root.parent).as_posix()
            found += [f"name {rel}: {n}" for n in needles if n in p.name]
            if p.is_file():
                body = _searchable(p)
                found += [f"file {rel}: {n}" for n in needles if n in body]
    for i, text in enumerate(texts):
        found += [f"text {i}: {n}" for n in needles if n in text]
    return found


# ---- the sanitiser --------------------------------------------------------------------------------------------


def test_sanitize_reduces_paths_and_masks_credentials_and_secrets(tmp_path: Path) -> None:
    folder = tmp_path / PATIENT
    folder.mkdir()
    (folder / "img001.png").write_bytes(b"x")
    options = {
        "source": str(folder),
        "source_slash": f"{folder}/",
        "image": folder / "img001.png",
        "relative": f"{PATIENT}/img001.png",
        "out": tmp_path / "runs" / "exp1",  # not there yet, no suffix: a folder
        "list": [str(folder), f"{PATIENT}/labels.nii.gz"],
        "stream": CRED_URL,
        "query": "https://host/v?token=abc123&size=640",
        "api_key": "rf_abc123",
        "roboflowApiKey": "rf_abc123",
        "nested": {"db_password": "hunter2", "keep_splits": True, "epochs": 3},
        "conf": 0.25,
        "device": "cpu",
    }
    s = sanitize(options)
    assert s["source"] == s["source_slash"] == FOLDER and s["image"] == "img001.png" == s["relative"]
    assert s["out"] == FOLDER and s["list"] == [FOLDER, "labels.nii.gz"]
    assert s["stream"] == "rtsp://***@127.0.0.1:9/x"
    assert s["query"] == f"https://host/v?token={MASK}&size=640"
    assert s["api_key"] == s["roboflowApiKey"] == s["nested"]["db_password"] == MASK
    assert s["nested"]["keep_splits"] is True and s["nested"]["epochs"] == 3 and s["conf"] == 0.25
    assert s["device"] == "cpu"
    text = json.dumps(s)
    assert not [n for n in (*NEEDLES, ":password@", "hunter2", "rf_abc123", "abc123", "user:") if n in text]

    # --record-paths keeps full paths; credentials and secrets stay masked
    kept = sanitize(options, record_paths=True)
    assert kept["source"] == str(folder) and kept["image"] == str(folder / "img001.png")
    assert kept["stream"] == "rtsp://***@127.0.0.1:9/x" and kept["api_key"] == MASK
    with recording_paths():
        assert sanitize(options)["source"] == str(folder)
    assert sanitize(options)["source"] == FOLDER  # the setting ends with its block


def test_sanitize_argv_masks_secret_flags_and_url_credentials(tmp_path: Path) -> None:
    folder = tmp_path / PATIENT
    folder.mkdir()
    argv = [
        "yolo_spine", "-v", "predict", "--source", CRED_URL, "--weights", str(tmp_path / "runs" / "best.pt"),
        "--api-key", "rf_abc123", "--token=tok456", "--conf", "-1", "--out", f"{folder}/", str(folder),
    ]  # fmt: skip
    s = sanitize_argv(argv)
    assert s == [
        "yolo_spine", "-v", "predict", "--source", "rtsp://***@127.0.0.1:9/x", "--weights", "best.pt",
        "--api-key", MASK, f"--token={MASK}", "--conf", "-1", "--out", FOLDER, FOLDER,
    ]  # fmt: skip
    kept = sanitize_argv(argv, record_paths=True)
    assert kept[-1] == str(folder) and kept[kept.index("--api-key") + 1] == MASK
    assert "rf_abc123" not in kept and "tok456" not in " ".join(kept) and "password" not in " ".join(kept)
    assert mask_credentials("http://a:b@c@host:8080/p") == "http://***@host:8080/p"
    assert path_name("out/seg.nii.gz") == "seg.nii.gz" and path_name("/") == FOLDER


def test_run_manifest_records_names_and_hashes_not_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / PATIENT
    folder.mkdir()
    weights = folder / "best.pt"
    weights.write_bytes(b"hello")
    argv = ["yolo_spine", "predict", "--source", CRED_URL, "--weights", str(weights), "--api-key", "rf_abc123"]
    monkeypatch.setattr(sys, "argv", argv)
    m = run_manifest(
        "predict",
        {"source": CRED_URL, "weights": weights, "out": tmp_path / "out", "api_key": "rf_abc123"},
        inputs={"weights": weights, "folder": folder},
        extra={"dataset": {"root": str(folder), "file": "images/train/a.png"}, "model": {"start": weights}},
    )
    sha = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    assert m["inputs"] == {"weights": {"name": "best.pt", "sha256": sha}, "folder": {"name": FOLDER, "sha256": None}}
    assert m["argv"][3] == "rtsp://***@127.0.0.1:9/x" and m["argv"][5] == "best.pt" and m["argv"][-1] == MASK
    assert m["options"]["source"] == "rtsp://***@127.0.0.1:9/x" and m["options"]["api_key"] == MASK
    assert m["dataset"] == {"root": FOLDER, "file": "images/train/a.png"} and m["model"]["start"] == "best.pt"
    assert m["record_paths"] is False
    text = json.dumps(m)
    assert not [n for n in (*NEEDLES, "password", "rf_abc123", str(tmp_path)) if n in text]

    full = run_manifest("predict", {"weights": weights}, inputs={"weights": weights}, record_paths=True)
    assert full["inputs"]["weights"] == {"name": "best.pt", "sha256": sha, "path": str(weights)}
    assert full["options"]["weights"] == str(weights) and str(weights) in full["argv"]
    assert full["argv"][-1] == MASK and full["record_paths"] is True


# ---- predict --------------------------------------------------------------------------------------------------


@pytest.fixture
def patient_images(spine_dataset: Path, tmp_path: Path) -> Path:
    """Two X-rays in a folder named after a patient, as a PACS export writes them."""
    folder = tmp_path / "export" / PATIENT
    folder.mkdir(parents=True)
    for k, p in enumerate(sorted((spine_dataset.parent / "images" / "val").glob("*.png"))[:2]):
        shutil.copy(p, folder / f"img{k:03d}.png")
    return folder


def test_predict_on_a_patient_folder_leaks_nothing(weights: Path, patient_images: Path, tmp_path: Path, run_cli):
    out = tmp_path / "pred"
    proc = run_cli(
        "-v", "predict", "--weights", weights, "--source", patient_images, "--out", out, "--conf", "0", "--save-txt",
        offline=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not leaks(out, texts=(proc.stdout, proc.stderr))
    run = json.loads((out / "run.json").read_text())
    assert run["options"]["source"] == FOLDER and run["argv"][run["argv"].index("--source") + 1] == FOLDER
    assert run["inputs"]["weights"]["name"] == "best.pt" and len(run["inputs"]["weights"]["sha256"]) == 64
    assert run["counts"]["frames"] == 2  # the images themselves were predicted, under their own names
    assert sorted(p.name for p in (out / "labels").iterdir()) == ["img000.txt", "img001.txt"]

    # --record-paths: the user asked for full paths
    full = tmp_path / "pred_full"
    proc = run_cli(
        "predict", "--weights", weights, "--source", patient_images, "--out", full, "--conf", "0", "--record-paths",
        offline=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = json.loads((full / "run.json").read_text())
    assert run["record_paths"] is True and run["options"]["source"] == str(patient_images)
    assert str(patient_images) in run["argv"] and run["inputs"]["weights"]["path"] == str(weights)


def test_stream_url_credentials_never_reach_run_json(
    weights: Path, spine_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """A stream with user and password in its URL: run.json (argv, options, source) and the log mask them."""
    from yolo_spine import cli
    from yolo_spine.predict import sources

    frame = cv2.imread(str(next((spine_dataset.parent / "images" / "val").glob("*.png"))))
    opened = []

    class Stream:
        frames = [frame] * 3

        def isOpened(self) -> bool:
            return True

        def read(self):
            return (True, self.frames.pop()) if self.frames else (False, None)

        def get(self, prop: int) -> float:
            return 25.0

        def release(self) -> None:
            pass

    def fake_open(target: object) -> Stream:
        opened.append(target)
        return Stream()

    monkeypatch.setattr(sources, "open_capture", fake_open)
    out = tmp_path / "stream"
    argv = ["predict", "--weights", str(weights), "--source", CRED_URL, "--out", str(out), "--conf", "0"]
    monkeypatch.setattr(sys, "argv", ["yolo_spine", *argv])
    assert cli.main(argv) == 0
    assert opened == [CRED_URL]  # the stream itself is opened with its credentials
    captured = capsys.readouterr()
    text = (out / "run.json").read_text()
    run = json.loads(text)
    assert run["options"]["source"] == "rtsp://***@127.0.0.1:9/x" and "rtsp://***@127.0.0.1:9/x" in run["argv"]
    assert run["source"]["description"] == "rtsp://127.0.0.1:9/x" and run["counts"]["frames"] >= 1
    assert run["counts"]["frames"] + run["counts"]["skipped_live"] == 3
    assert not leaks(out, texts=(captured.out, captured.err), needles=("password", "user:"))


def test_stream_that_does_not_open_names_no_credentials(weights: Path, tmp_path: Path, run_cli) -> None:
    out = tmp_path / "none"
    proc = run_cli("predict", "--weights", weights, "--source", CRED_URL, "--out", out, "--conf", "0", offline=True)
    assert proc.returncode != 0 and "cannot open" in proc.stderr and "127.0.0.1:9/x" in proc.stderr
    assert "password" not in proc.stderr + proc.stdout and "user:" not in proc.stderr
    assert not out.exists()


# ---- ct2yolo --------------------------------------------------------------------------------------------------


def _ct_args(vol: Path, lab: Path, out: Path, *more: object) -> list[object]:
    return [
        "-v", "ct2yolo", "--volume", vol, "--labels", lab, "--out", out, "--planes", "axial", "--step", "4",
        "--views", "ap", "--poses", "1", "--size", "64", *more,
    ]  # fmt: skip


@pytest.fixture
def patient_ct(tmp_path: Path) -> tuple[Path, Path]:
    """The small CT phantom stored as ``Doe_Janet_19710203/Doe_Janet_19710203_ct.nii.gz`` (+ labels)."""
    from yolo_spine.synth.phantoms import spine_phantom, write_phantom

    return write_phantom(spine_phantom(size_xyz=(20, 20, 24)), tmp_path / "pacs" / PATIENT, PATIENT)


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.name != "manifest.json")


def test_ct2yolo_names_a_patient_named_study_by_pseudonym(patient_ct, tmp_path: Path, cli_main) -> None:
    vol, lab = patient_ct
    out = tmp_path / "ds"
    proc = cli_main(*_ct_args(vol, lab, out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not leaks(out, texts=(proc.stdout, proc.stderr))
    manifest = json.loads((out / "manifest.json").read_text())
    study = manifest["studies"][0]
    sid = study["study"]
    assert sid.startswith("s-") and len(sid) == 12 and study["study_id"] == "pseudonym"
    assert all(p.split("/")[-1].startswith(sid) for p in _files(out) if p.startswith(("images", "labels", "sidecars")))
    assert len(study["inputs"]["volume"]["sha256"]) == 64 and study["inputs"]["volume"]["name"] is None
    assert (out / "studies" / f"{sid}.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".csv"]  # no map unless asked for

    # the same content elsewhere, under another name (another node's mount): the same id, split and poses
    moved = tmp_path / "node2" / "x"
    moved.mkdir(parents=True)
    vol2, lab2 = shutil.copy(vol, moved / "scan.nii.gz"), shutil.copy(lab, moved / "seg.nii.gz")
    out2 = tmp_path / "ds2"
    assert cli_main(*_ct_args(vol2, lab2, out2)).returncode == 0
    assert _files(out2) == _files(out)
    pose = "sidecars/{}/" + f"{sid}_drr_ap_p001.json"
    split = next(s for s in ("train", "val", "test") if (out / pose.format(s)).is_file())
    assert (
        json.loads((out / pose.format(split)).read_text())["pose_offset"]
        == json.loads((out2 / pose.format(split)).read_text())["pose_offset"]
    )

    # another salt gives another id
    out3 = tmp_path / "ds3"
    assert cli_main(*_ct_args(vol, lab, out3, "--study-salt", "release-2")).returncode == 0
    sid3 = json.loads((out3 / "manifest.json").read_text())["studies"][0]["study"]
    assert sid3.startswith("s-") and sid3 != sid

    # an explicit --study is used as given
    out4 = tmp_path / "ds4"
    assert cli_main(*_ct_args(vol, lab, out4, "--study", "case07")).returncode == 0
    assert {p.split("/")[-1].split("_")[0] for p in _files(out4) if p.startswith("images")} == {"case07"}


def test_study_map_is_written_only_when_asked_and_never_overwritten(patient_ct, tmp_path: Path, cli_main) -> None:
    vol, lab = patient_ct
    out, key = tmp_path / "ds", tmp_path / "keys" / "study_map.csv"
    proc = cli_main(*_ct_args(vol, lab, out, "--study-map", key))
    assert proc.returncode == 0, proc.stderr[-2000:]
    sid = json.loads((out / "manifest.json").read_text())["studies"][0]["study"]
    rows = list(csv.DictReader(key.open(encoding="utf-8")))
    assert rows == [{"study": sid, "original_name": f"{PATIENT}_ct", "volume": str(vol), "labels": str(lab)}]
    assert key.stat().st_mode & 0o777 == 0o600, "the re-identification key is readable by its owner only"
    assert not leaks(out, texts=(proc.stdout, proc.stderr))  # the key holds the name; the dataset does not
    before = key.read_bytes()
    again = cli_main(*_ct_args(vol, lab, tmp_path / "ds_b", "--study-map", key))
    assert again.returncode != 0 and "--overwrite" in again.stderr and "Traceback" not in again.stderr
    assert key.read_bytes() == before and not (tmp_path / "ds_b").exists()
    inside = cli_main(*_ct_args(vol, lab, tmp_path / "ds_c", "--study-map", tmp_path / "ds_c" / "map.csv"))
    assert inside.returncode != 0 and "outside --out" in inside.stderr and not (tmp_path / "ds_c").exists()


def test_record_paths_keeps_the_study_inputs_paths(patient_ct, tmp_path: Path, cli_main) -> None:
    vol, lab = patient_ct
    out = tmp_path / "ds"
    assert cli_main(*_ct_args(vol, lab, out, "--record-paths")).returncode == 0
    m = json.loads((out / "manifest.json").read_text())
    assert m["studies"][0]["inputs"]["volume"]["path"] == str(vol) and str(vol) in m["argv"]
    report = json.loads((out / "studies" / f"{m['studies'][0]['study']}.json").read_text())
    assert report["inputs"]["labels"]["path"] == str(lab)


def test_study_list_uses_given_names_and_pseudonyms_for_the_rest(patient_ct, tmp_path: Path) -> None:
    from yolo_spine.ct.convert import ct2yolo
    from yolo_spine.errors import UserError

    vol, lab = patient_ct
    other = shutil.copy(vol, vol.parent / "second_ct.nii.gz")  # same bytes as the first row
    (tmp_path / "list.csv").write_text(f"volume,labels,study\n{vol},{lab},case01\n{other},{lab},\n")
    option_values = {"planes": ["axial"], "step": 6, "views": []}
    m = ct2yolo(tmp_path / "ds", study_list=tmp_path / "list.csv", **option_values, progress=False)
    ids = [s["study"] for s in m["studies"]]
    assert ids[0] == "case01" and ids[1].startswith("s-")
    assert [s["study_id"] for s in m["studies"]] == ["given", "pseudonym"]
    assert m["studies"][0]["inputs"]["volume"]["name"] == f"{PATIENT}_ct.nii.gz"  # a named study keeps names
    # the same volume twice without names: one id, refused in one sentence before any work
    (tmp_path / "dup.csv").write_text(f"volume,labels\n{vol},{lab}\n{other},{lab}\n")
    with pytest.raises(UserError, match="same volume"):
        ct2yolo(tmp_path / "ds_dup", study_list=tmp_path / "dup.csv", **option_values, progress=False)
    assert not (tmp_path / "ds_dup").exists()


def _write_dicom_series(folder: Path, uid_root: str = "1.2.826.0.1.3680043.2.1125") -> None:
    """The CT phantom as a DICOM series (one file per slice) whose headers carry a patient's name, id and birth."""
    import locale

    import SimpleITK as sitk

    from yolo_spine.synth.phantoms import spine_phantom

    saved = locale.setlocale(locale.LC_ALL)
    image = sitk.Cast(spine_phantom(size_xyz=(20, 20, 12), spacing_xyz=(1.5, 1.5, 2.0)).image, sitk.sitkInt16)
    folder.mkdir(parents=True)
    direction = image.GetDirection()
    for k in range(image.GetDepth()):
        sl = image[:, :, k]
        pos = image.TransformIndexToPhysicalPoint((0, 0, k))
        for tag, value in (
            ("0008|0060", "CT"),
            ("0010|0010", "Doe^Janet"),
            ("0010|0020", "PID19710203"),
            ("0010|0030", "19710203"),
            ("0020|000d", f"{uid_root}.1"),
            ("0020|000e", f"{uid_root}.2"),
            ("0020|0032", "\\".join(f"{x:.4f}" for x in pos)),
            ("0020|0037", "\\".join(f"{x:.6f}" for x in (*direction[0:7:3], *direction[1:8:3]))),
            ("0020|0013", str(k + 1)),
            ("0008|0018", f"{uid_root}.3.{k + 1}"),
            ("0028|1052", "0"),
            ("0028|1053", "1"),
        ):
            sl.SetMetaData(tag, value)
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        writer.SetFileName(str(folder / f"slice{k:03d}.dcm"))
        writer.Execute(sl)
    locale.setlocale(locale.LC_ALL, saved)  # GDCM's writer switches the process locale to "C"


def test_dicom_series_in_a_patient_folder_leaks_nothing(tmp_path: Path, cli_main) -> None:
    import pydicom
    import SimpleITK as sitk

    from yolo_spine.synth.phantoms import spine_phantom

    series = tmp_path / "pacs" / PATIENT
    _write_dicom_series(series)
    assert str(pydicom.dcmread(next(series.iterdir())).PatientName) == "Doe^Janet"  # the headers do carry it
    labels = tmp_path / "labels.nii.gz"
    lab = spine_phantom(size_xyz=(20, 20, 12), spacing_xyz=(1.5, 1.5, 2.0)).labels
    sitk.WriteImage(lab, str(labels))
    out = tmp_path / "ds"
    proc = cli_main(*_ct_args(series, labels, out, "--resample-labels"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    needles = (*NEEDLES, "PID", "Doe^Janet", "PatientName")
    assert not leaks(out, texts=(proc.stdout, proc.stderr), needles=needles)
    m = json.loads((out / "manifest.json").read_text())
    sid = m["studies"][0]["study"]
    assert sid.startswith("s-") and m["studies"][0]["inputs"]["volume"] == {"name": None, "sha256": None}
    # the id follows the series' instance UIDs, not the folder: a copy under another name gets the same id,
    # a series with other UIDs another one
    moved = tmp_path / "elsewhere" / "series"
    shutil.copytree(series, moved)
    out2 = tmp_path / "ds2"
    assert cli_main(*_ct_args(moved, labels, out2, "--resample-labels")).returncode == 0
    assert json.loads((out2 / "manifest.json").read_text())["studies"][0]["study"] == sid
    other = tmp_path / "other" / PATIENT
    _write_dicom_series(other, uid_root="1.2.826.0.1.3680043.2.1125.9")
    out3 = tmp_path / "ds3"
    assert cli_main(*_ct_args(other, labels, out3, "--resample-labels")).returncode == 0
    assert json.loads((out3 / "manifest.json").read_text())["studies"][0]["study"] not in (sid, "")


def test_pseudonym_is_deterministic_and_salted() -> None:
    a = pseudonym("file:" + "ab" * 32, "")
    assert a == pseudonym("file:" + "ab" * 32, "") and a.startswith("s-") and len(a) == 12
    assert pseudonym("file:" + "ab" * 32, "other") != a and pseudonym("file:" + "cd" * 32, "") != a


# ---- dataset commands -----------------------------------------------------------------------------------------


def test_merge_of_exports_in_a_patient_folder_leaks_nothing(tmp_path: Path, cli_main) -> None:
    from tests.datasets_utils import ALPHABETICAL_SPINE, FakeImage, make_yolo_export, rf_name, square, zip_folder

    base = tmp_path / "inbox" / PATIENT
    rows = [("c1", square(0.1, 0.1)), ("c2", square(0.4, 0.4))]
    make_yolo_export(
        base / "spine-export", ALPHABETICAL_SPINE, [FakeImage("train", rf_name(f"img{k}", 0), rows) for k in range(4)]
    )
    extra = [FakeImage("valid", rf_name("x", 0), [("c3", square(0.2, 0.2))])]
    more = make_yolo_export(tmp_path / "tmp" / "spine-extra", ALPHABETICAL_SPINE, extra)
    zipped = zip_folder(more, base / "extra.zip")
    out = tmp_path / "merged"
    proc = cli_main("-v", "merge", base / "spine-export", zipped, "--out", out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not leaks(out, texts=(proc.stdout, proc.stderr))
    m = json.loads((out / "manifest.json").read_text())
    assert [s["name"] for s in m["sources"]] == [FOLDER, "extra.zip"] and len(m["sources"][1]["sha256"]) == 64
    assert m["options"]["sources"] == [FOLDER, "extra.zip"]
    assert sum(m["summary"]["images"].values()) == 5


def test_augment_of_a_dataset_in_a_patient_folder_leaks_nothing(spine_dataset: Path, tmp_path: Path, cli_main):
    src = tmp_path / "studies" / PATIENT
    shutil.copytree(spine_dataset.parent, src)
    data = src / spine_dataset.name
    text = data.read_text().replace(str(spine_dataset.parent), str(src))
    data.write_text(text)
    out = tmp_path / "aug"
    proc = cli_main("-v", "augment", data, "--out", out, "--copies", "1", "--seed", "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not leaks(out, texts=(proc.stdout, proc.stderr))
    m = json.loads((out / "manifest.json").read_text())
    assert m["inputs"]["data_yaml"]["name"] == spine_dataset.name and m["options"]["data"] == spine_dataset.name
    assert m["summary"]["copies"] == 8
