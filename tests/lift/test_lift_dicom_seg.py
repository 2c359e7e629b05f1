"""``lift --dicom-seg``: the real CT as a DICOM series → ct2yolo → lift → a SEG equal to the NIfTI, no UID stored."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.io.test_dicom_seg import seg_masks, segment_labels


@pytest.fixture(scope="module")
def dicom_study(cropped_ct: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The cropped real CT written as a DICOM series, its labels on the series' grid, and ct2yolo's dataset of it."""
    import SimpleITK as sitk

    from yolo_spine.ct.convert import ct2yolo
    from yolo_spine.io.dicom_seg import write_ct_series
    from yolo_spine.io.volume import read_image

    root = tmp_path_factory.mktemp("dicomlift")
    series = root / "series"
    write_ct_series(sitk.ReadImage(str(cropped_ct[0])), series, patient_name="Roe^Rhoda^Quill", patient_id="ZQ-77102")
    lab = sitk.ReadImage(str(cropped_ct[1]))
    on_grid = sitk.Resample(lab, read_image(series), sitk.Transform(), sitk.sitkNearestNeighbor, 0, lab.GetPixelID())
    labels = root / "labels.nii.gz"
    sitk.WriteImage(on_grid, str(labels))
    ds = root / "ds"
    ct2yolo(ds, volume=series, labels=labels, anatomy="spine", views=[], progress=False)
    return {"series": series, "labels": labels, "ds": ds, "root": root}


def test_lift_writes_a_seg_equal_to_its_nifti_and_stores_no_uid(
    dicom_study: dict[str, Path], tmp_path: Path, cli_main, highdicom
) -> None:
    import pydicom
    import SimpleITK as sitk

    from yolo_spine.io.dicom_seg import read_series
    from yolo_spine.registry import load_registry

    out, seg = tmp_path / "seg.nii.gz", tmp_path / "seg.dcm"
    r = cli_main(
        "-v", "lift", dicom_study["ds"], "--out", out, "--dicom-seg", seg, "--source-dicom", dicom_study["series"]
    )
    assert r.returncode == 0, r.stderr
    assert f"wrote {seg}" in r.stdout

    series = read_series(dicom_study["series"], pixels=False)
    nifti = sitk.GetArrayFromImage(sitk.ReadImage(str(out)))
    ds, masks = seg_masks(seg, [str(s.SOPInstanceUID) for s in series])
    reg = load_registry("spine")
    present = [int(v) for v in np.unique(nifti) if v]
    labels = segment_labels(ds)
    assert len(present) >= 3 and [labels[n] for n in sorted(labels)] == [reg.names[v - 1] for v in present]
    for number, name in labels.items():
        assert masks[number].any() and np.array_equal(masks[number], nifti == reg.index(name) + 1), name
    assert ds.FrameOfReferenceUID == series[0].FrameOfReferenceUID
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == series[0].SeriesInstanceUID
    assert str(ds.PatientName) == "Roe^Rhoda^Quill" and ds.PatientID == "ZQ-77102"  # the source's, as DICOM requires
    alg = ds.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0]
    assert alg.AlgorithmName == "yolo_spine labels, not for clinical use"  # ground truth lifted, no model

    # nothing of ours holds a UID or the patient's name: sidecars, study reports, manifests, logs
    seg_ds = pydicom.dcmread(seg)
    uids = {str(seg_ds.SOPInstanceUID), str(seg_ds.SeriesInstanceUID), str(series[0].StudyInstanceUID)}
    uids |= {str(series[0].SeriesInstanceUID), str(series[0].FrameOfReferenceUID)}
    uids |= {str(s.SOPInstanceUID) for s in series}
    needles = uids | {"Roe^Rhoda", "Rhoda", "ZQ-77102"}
    ours = [p for p in [*dicom_study["ds"].rglob("*"), *tmp_path.rglob("*")] if p.is_file() and p.suffix != ".dcm"]
    ours = [p for p in ours if p.suffix in {".json", ".txt", ".yaml", ".csv", ".jsonl", ".log"}]
    assert any(p.name == "seg.json" for p in ours) and any("sidecars" in p.parts for p in ours)
    texts = [r.stdout, r.stderr, *(p.read_text(encoding="utf-8", errors="replace") for p in ours)]
    for text in texts:
        for needle in needles:
            assert needle not in text
    assert not any(needle in p.name for p in ours for needle in needles)


def test_lift_refuses_a_series_of_another_study(
    dicom_study: dict[str, Path], tmp_path: Path, cli_main, highdicom
) -> None:
    import SimpleITK as sitk

    from yolo_spine.io.dicom_seg import write_ct_series

    # the same pixels written again: new SOP Instance UIDs, so another study for ct2yolo's pseudonym
    other = tmp_path / "other"
    write_ct_series(sitk.ReadImage(str(dicom_study["labels"])), other)
    base = ["lift", dicom_study["ds"], "--out", tmp_path / "a.nii.gz", "--dicom-seg", tmp_path / "a.dcm"]
    for extra, message in (
        (["--source-dicom", other], "is not the series study s-"),
        (["--source-dicom", dicom_study["series"], "--study-salt", "another salt"], "is not the series study s-"),
        ([], "--dicom-seg needs --source-dicom"),
        (["--source-dicom", tmp_path / "missing"], "is not a folder"),
    ):
        r = cli_main(*base, *extra)
        assert r.returncode == 2, (extra, r.stderr)
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and message in lines[0] and "Traceback" not in r.stderr, (extra, r.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other"]  # nothing written before the check

    r = cli_main("lift", dicom_study["ds"], "--out", tmp_path / "b.nii.gz", "--source-dicom", other)
    assert r.returncode == 2 and "--source-dicom is used only with --dicom-seg" in r.stderr


def test_lift_checks_a_named_study_by_its_grid(
    dicom_study: dict[str, Path], tmp_path: Path, cli_main, highdicom
) -> None:
    import SimpleITK as sitk

    from yolo_spine.ct.convert import ct2yolo
    from yolo_spine.io.dicom_seg import write_ct_series

    ds = tmp_path / "named"
    ct2yolo(ds, volume=dicom_study["series"], labels=dicom_study["labels"], anatomy="spine", views=[],
            planes=["axial"], study="case7", progress=False)  # fmt: skip
    shifted = sitk.ReadImage(str(dicom_study["labels"]))
    shifted.SetOrigin(tuple(o + 5.0 for o in shifted.GetOrigin()))
    write_ct_series(shifted, tmp_path / "shifted")
    r = cli_main("lift", ds, "--out", tmp_path / "s.nii.gz", "--dicom-seg", tmp_path / "s.dcm",
                 "--source-dicom", tmp_path / "shifted")  # fmt: skip
    assert r.returncode == 2 and "grid differs from the volume the sidecars describe (origin" in r.stderr, r.stderr
    r = cli_main("lift", ds, "--out", tmp_path / "s.nii.gz", "--dicom-seg", tmp_path / "s.dcm",
                 "--source-dicom", dicom_study["series"])  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "s.dcm").is_file()


def test_lift_takes_the_salt_ct2yolo_recorded(
    dicom_study: dict[str, Path], tmp_path: Path, cli_main, highdicom
) -> None:
    from yolo_spine.ct.convert import ct2yolo

    ds = tmp_path / "salted"
    ct2yolo(ds, volume=dicom_study["series"], labels=dicom_study["labels"], anatomy="spine", views=[],
            planes=["axial"], study_id_salt="release-2", progress=False)  # fmt: skip
    base = ["lift", ds, "--dicom-seg", tmp_path / "a.dcm", "--source-dicom", dicom_study["series"]]
    r = cli_main(*base, "--out", tmp_path / "a.nii.gz", "--study-salt", "")  # the empty salt gives another id
    assert r.returncode == 2 and "is not the series study s-" in r.stderr, r.stderr
    r = cli_main(*base, "--out", tmp_path / "a.nii.gz")  # the salt ct2yolo's manifest records
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "a.dcm").is_file()
