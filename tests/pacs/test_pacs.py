"""``yolo_spine pacs`` against a real Orthanc: a CT series and a real radiograph there and back as DICOM-SEG.

The SEG read back from Orthanc must hold, segment for segment and voxel for voxel, what the same pipeline finds
when run in this process (for the CT: the label map ``lift`` fuses, as a NIfTI would hold it).

The round trip runs the one-epoch ``tiny_model`` at ``--conf 0`` (it is unsure of everything, so every image
then carries instances and every SEG has segments; what they say is not the point here). Orthanc is checked
through its own REST API, never through the code under test.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from tests.pacs.conftest import Orthanc, orthanc_missing, running_orthanc, skip_or_fail

# Small enough to keep the slow tier quick: a few detections per image, axial slices only.
FAST = ("--conf", "0", "--set", "max_det=3", "--set", "planes=[axial]")


def _no_uid_anywhere(uid: str, *texts: str) -> None:
    for text in texts:
        assert uid not in text


def _mr_instance(radiograph: Path, out: Path) -> tuple[Path, str]:
    """A copy of the radiograph relabelled as an MR of a new study (a modality ``pacs`` does not segment)."""
    ds = pydicom.dcmread(radiograph)
    ds.Modality = "MR"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.save_as(out)
    return out, str(ds.StudyInstanceUID)


# ------------------------------------------------------------------------------------------------ fast tier


def test_a_url_that_is_not_dicomweb_is_one_sentence(cli_main, tmp_path: Path) -> None:
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"not used")
    for url in ("ftp://pacs.example.org/dicom-web", "pacs.example.org", "http://user:pw@pacs.example.org/dicom-web"):
        res = cli_main("pacs", "--url", url, "--study", "1.2.3.4", "--weights", weights, "--runs", tmp_path / "runs")
        assert res.returncode == 2, res.stderr
        assert res.stderr.count("\n") == 1 and res.stderr.startswith("yolo_spine pacs: error: --url"), res.stderr
        assert "pw" not in res.stderr
    assert not (tmp_path / "runs").exists()


def test_an_unreachable_server_is_one_sentence_without_the_uid(cli_main, tmp_path: Path) -> None:
    reason = orthanc_missing()
    if reason and "dicomweb-client" in reason:
        skip_or_fail(reason)
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"not used")
    uid = "1.2.826.0.1.3680043.8.498.123456789"
    url = f"http://127.0.0.1:{port}/dicom-web"
    res = cli_main("pacs", "--url", url, "--study", uid, "--weights", weights, "--set", "timeout_s=5")
    assert res.returncode == 5, res.stderr
    assert res.stderr.count("\n") == 1 and "cannot reach a DICOMweb server at 127.0.0.1" in res.stderr, res.stderr
    _no_uid_anywhere(uid, res.stdout, res.stderr)


def test_an_unknown_study_or_one_without_a_supported_series_is_one_sentence(
    orthanc: Orthanc, cli_main, tmp_path: Path, example_radiograph_path: Path
) -> None:
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"not used")
    unknown = generate_uid()
    res = cli_main("pacs", "--url", orthanc.dicomweb, "--study", unknown, "--weights", weights)
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert "has no study with this Study Instance UID" in res.stderr
    _no_uid_anywhere(unknown, res.stdout, res.stderr)

    mr, study = _mr_instance(example_radiograph_path, tmp_path / "mr.dcm")
    orthanc.upload(mr)
    res = cli_main("pacs", "--url", orthanc.dicomweb, "--study", study, "--weights", weights)
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert re.search(r"study s-[0-9a-f]{10} has no series this command segments \(CT, CR or DX\).*: MR", res.stderr)
    _no_uid_anywhere(study, res.stdout, res.stderr)
    assert not orthanc.seg_series(study)


def test_credentials_reach_the_server_and_wrong_ones_are_one_sentence(
    cli_main, tmp_path: Path, example_radiograph_path: Path
) -> None:
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"not used")
    with running_orthanc(tmp_path / "orthanc", users={"radiology": "s3cret-pw"}) as server:
        mr, study = _mr_instance(example_radiograph_path, tmp_path / "mr.dcm")
        server.upload(mr)
        base = ("pacs", "--url", server.dicomweb, "--study", study, "--weights", weights, "--runs", tmp_path / "r")
        anonymous = cli_main(*base)
        wrong = cli_main(*base, "--user", "radiology", env={"YOLO_SPINE_PACS_PASSWORD": "wrong"})
        for res in (anonymous, wrong):
            assert res.returncode == 5 and res.stderr.count("\n") == 1, res.stderr
            assert "refused to list the study's series (HTTP 401): check --user/--token" in res.stderr
        right = cli_main(*base, "--user", "radiology", env={"YOLO_SPINE_PACS_PASSWORD": "s3cret-pw"})
        assert right.returncode == 2 and "has no series this command segments" in right.stderr, right.stderr
        for res in (anonymous, wrong, right):
            _no_uid_anywhere(study, res.stdout, res.stderr)
            assert "s3cret-pw" not in res.stdout + res.stderr


# ------------------------------------------------------------------------------------------------ slow tier


def _run(run_cli, orthanc: Orthanc, study: str, weights: Path, runs: Path, tmp: Path, *extra: str):
    """Run ``pacs`` in a subprocess whose temporary folder is ``tmp`` (to check that it is left empty)."""
    tmp.mkdir(exist_ok=True)
    proc = run_cli(
        "pacs", "--url", orthanc.dicomweb, "--study", study, "--weights", weights, "--runs", runs, *FAST, *extra,
        offline=True, env={"TMPDIR": str(tmp), "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    ours = [p.name for p in tmp.iterdir() if p.name.startswith("yolo_spine_pacs_")]  # (torch leaves its cache)
    assert ours == [], "the private download folder was not removed"
    return proc


def _seg_instance(orthanc: Orthanc, series: dict) -> pydicom.Dataset:
    import io

    (instance,) = series["Instances"]
    return pydicom.dcmread(io.BytesIO(orthanc.file(f"/instances/{instance}/file")))


def _pipeline_masks(kind: str, weights: Path, source: Path, work: Path) -> tuple[list[str], list[np.ndarray]]:
    """What the pipeline finds in-process with the options of ``FAST``: each segment's label and mask, in the
    SEG's order (a CT: one per class present, registry order; a radiograph: one per instance, registry order)."""
    from yolo_spine.io.volume import read_image
    from yolo_spine.pacs.options import PacsOptions
    from yolo_spine.pacs.pipeline import segment_ct, segment_radiograph
    from yolo_spine.registry import load_registry

    reg, opts = load_registry("spine"), PacsOptions.load(conf=0.0, max_det=3, planes=["axial"])
    if kind == "ct":
        labels = segment_ct(weights, read_image(source), work, opts, reg).labels_zyx
        present = [int(v) for v in np.unique(labels) if v]
        return [reg.names[v - 1] for v in present], [labels == v for v in present]
    res = segment_radiograph(weights, source, work, opts, reg)
    order = sorted(range(len(res.class_ids)), key=lambda k: int(res.class_ids[k]))
    names, seen = [], {}
    for k in order:
        name = reg.names[int(res.class_ids[k])]
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name} #{seen[name]}")
    return names, [res.masks[k][np.newaxis] for k in order]


def _seg_masks(ds: pydicom.Dataset, source_uids: list[str]) -> dict[int, np.ndarray]:
    """A SEG read with pydicom alone: segment number → ``(len(source_uids), rows, cols)`` mask, in source order.

    The segment of a frame is in its per-frame functional group, or in the shared one when the SEG has one segment.
    """
    frames = ds.pixel_array
    frames = frames[np.newaxis] if frames.ndim == 2 else frames
    shared = ds.SharedFunctionalGroupsSequence[0]
    index = {uid: k for k, uid in enumerate(source_uids)}
    out: dict[int, np.ndarray] = {}
    for f, fg in enumerate(ds.PerFrameFunctionalGroupsSequence):
        ident = fg.get("SegmentIdentificationSequence") or shared.SegmentIdentificationSequence
        uid = str(fg.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID)
        vol = out.setdefault(
            int(ident[0].ReferencedSegmentNumber), np.zeros((len(source_uids), *frames.shape[1:]), bool)
        )
        vol[index[uid]] |= frames[f].astype(bool)
    return out


def _check_seg_matches_the_pipeline(
    seg: pydicom.Dataset, kind: str, weights: Path, source: Path, source_uids: list[str], tmp_path: Path
) -> None:
    """The stored SEG holds, segment for segment and voxel for voxel, what the pipeline finds run in-process."""
    masks = _seg_masks(seg, source_uids)
    labels = {int(item.SegmentNumber): str(item.SegmentLabel) for item in seg.SegmentSequence}
    names, expected = _pipeline_masks(kind, weights, source, tmp_path / f"inprocess_{kind}")
    assert [labels[n] for n in sorted(labels)] == names
    for number, mask in zip(sorted(labels), expected, strict=True):
        assert mask.any() and np.array_equal(masks[number], mask), labels[number]


def _check_round_trip(
    orthanc: Orthanc,
    run_cli,
    study: str,
    source_series: str,
    weights: Path,
    tmp_path: Path,
    kind: str,
    source: Path,
    source_uids: list[str],
) -> None:
    runs = tmp_path / f"runs_{kind}"
    # at confidence 1 the model finds nothing: said in one line, nothing stored
    none = _run(run_cli, orthanc, study, weights, tmp_path / "runs_none", tmp_path / f"tmp_{kind}_0", "--conf", "1")
    assert "the model found no instance at confidence 1; nothing stored" in none.stdout, none.stdout
    assert "0 DICOM-SEG stored" in none.stdout and not orthanc.seg_series(study)
    first = _run(run_cli, orthanc, study, weights, runs, tmp_path / f"tmp_{kind}_1")
    assert "stored in 1 DICOM-SEG(s)" in first.stdout, first.stdout
    (seg_series,) = orthanc.seg_series(study)  # in the same study
    seg = _seg_instance(orthanc, seg_series)
    assert seg.Modality == "SEG" and seg.StudyInstanceUID == study
    assert [s.SeriesInstanceUID for s in seg.ReferencedSeriesSequence] == [source_series]
    assert len(seg.SegmentSequence) >= 1 and int(seg.NumberOfFrames) >= 1
    assert seg.pixel_array.any(), "the SEG's segments are empty"
    _check_seg_matches_the_pipeline(seg, kind, weights, source, source_uids, tmp_path)

    again = _run(run_cli, orthanc, study, weights, runs, tmp_path / f"tmp_{kind}_2")
    assert "already stored" in again.stdout and "0 DICOM-SEG stored" in again.stdout, again.stdout
    assert len(orthanc.seg_series(study)) == 1, "a second run stored a duplicate SEG"

    forced = _run(run_cli, orthanc, study, weights, runs, tmp_path / f"tmp_{kind}_3", "--force")
    assert "1 DICOM-SEG stored" in forced.stdout, forced.stdout
    assert len(orthanc.seg_series(study)) == 2

    records = sorted(runs.glob("*.json"))
    assert len(records) == 3
    for proc in (first, again, forced):
        _no_uid_anywhere(study, proc.stdout, proc.stderr)
        _no_uid_anywhere(source_series, proc.stdout, proc.stderr)
    for path in records:
        text = path.read_text()
        _no_uid_anywhere(study, text, path.name)
        _no_uid_anywhere(source_series, text)
        rec = json.loads(text)
        assert rec["command"] == "pacs" and re.fullmatch(r"s-[0-9a-f]{10}", rec["study"])
        assert rec["study"] in path.name and rec["study"] in rec["argv"]
        assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    statuses = [[s["status"] for s in json.loads(p.read_text())["series"]] for p in records]
    assert statuses == [["stored"], ["exists"], ["stored"]]


@pytest.mark.slow
def test_a_radiograph_goes_to_orthanc_and_back_as_a_seg(
    orthanc: Orthanc, run_cli, weights: Path, example_radiograph_path: Path, tmp_path: Path
) -> None:
    orthanc.upload(example_radiograph_path)
    ds = pydicom.dcmread(example_radiograph_path, stop_before_pixels=True)
    _check_round_trip(
        orthanc,
        run_cli,
        str(ds.StudyInstanceUID),
        str(ds.SeriesInstanceUID),
        weights,
        tmp_path,
        "radiograph",
        example_radiograph_path,
        [str(ds.SOPInstanceUID)],
    )


@pytest.mark.slow
def test_a_ct_series_goes_to_orthanc_and_back_as_a_seg(
    orthanc: Orthanc, run_cli, weights: Path, cropped_ct: tuple[Path, Path], tmp_path: Path
) -> None:
    import SimpleITK as sitk

    from yolo_spine.io.dicom_seg import write_ct_series

    files = write_ct_series(sitk.ReadImage(str(cropped_ct[0])), tmp_path / "ct_series")  # the real CT, cropped
    assert len(files) > 10
    for f in files:
        orthanc.upload(f)
    from yolo_spine.io.dicom_seg import read_series

    series = read_series(tmp_path / "ct_series", pixels=False)
    _check_round_trip(
        orthanc,
        run_cli,
        str(series[0].StudyInstanceUID),
        str(series[0].SeriesInstanceUID),
        weights,
        tmp_path,
        "ct",
        tmp_path / "ct_series",
        [str(s.SOPInstanceUID) for s in series],
    )


@pytest.mark.slow
def test_a_radiograph_series_is_segmented_image_by_image(
    orthanc: Orthanc, run_cli, weights: Path, example_radiograph_path: Path, tmp_path: Path
) -> None:
    """Two DX images in one series: the second, added later, gets its SEG; the first is not segmented again."""
    first, second = tmp_path / "a.dcm", tmp_path / "b.dcm"
    ds = pydicom.dcmread(example_radiograph_path)
    ds.Modality = "DX"
    study, series = generate_uid(), generate_uid()
    sops = []
    for path in (first, second):
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.save_as(path)
        sops.append(str(ds.SOPInstanceUID))
    runs = tmp_path / "runs"
    orthanc.upload(first)
    one = _run(run_cli, orthanc, study, weights, runs, tmp_path / "t1")
    assert "series 1 (DX, number 1):" in one.stdout and "stored in 1 DICOM-SEG(s)" in one.stdout, one.stdout
    orthanc.upload(second)
    two = _run(run_cli, orthanc, study, weights, runs, tmp_path / "t2")
    assert "stored in 1 DICOM-SEG(s); 1 image(s) already had one" in two.stdout, two.stdout
    segs = orthanc.seg_series(study)
    assert len(segs) == 2
    referenced = sorted(
        str(ref.ReferencedSOPInstanceUID)
        for seg in segs
        for item in _seg_instance(orthanc, seg).ReferencedSeriesSequence
        for ref in item.ReferencedInstanceSequence
    )
    assert referenced == sorted(sops)  # one SEG per image
    three = _run(run_cli, orthanc, study, weights, runs, tmp_path / "t3")
    assert "already stored" in three.stdout and len(orthanc.seg_series(study)) == 2, three.stdout
    for proc in (one, two, three):
        _no_uid_anywhere(study, proc.stdout, proc.stderr)
