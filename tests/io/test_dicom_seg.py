"""DICOM series in and out (yolo_spine.io.dicom_seg): written series read back voxel for voxel, in GDCM's order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from yolo_spine.errors import DataError, OutputExistsError, UserError


def _phantom(direction: tuple[float, ...], size: tuple[int, int, int] = (7, 5, 4)):
    import SimpleITK as sitk

    rng = np.random.default_rng(0)
    arr = rng.integers(-1024, 2000, size=size[::-1]).astype(np.int16)
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((0.7, 0.8, 2.5))
    img.SetOrigin((-12.0, 30.5, 101.0))
    img.SetDirection(direction)
    return img, arr


OBLIQUE = tuple(
    float(v)
    for v in np.array([[np.cos(0.3), -np.sin(0.3), 0.0], [np.sin(0.3), np.cos(0.3), 0.0], [0.0, 0.0, 1.0]]).ravel()
)


@pytest.mark.parametrize("direction", [(1, 0, 0, 0, 1, 0, 0, 0, 1), OBLIQUE])
def test_ct_series_round_trip(tmp_path: Path, direction: tuple[float, ...]) -> None:
    import SimpleITK as sitk

    from yolo_spine.io.dicom_seg import read_series, write_ct_series
    from yolo_spine.io.volume import read_image

    img, arr = _phantom(direction)
    files = write_ct_series(img, tmp_path / "series")
    assert len(files) == 4 and all(f.is_file() for f in files)
    back = read_image(tmp_path / "series")
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), arr)
    np.testing.assert_allclose(back.GetSpacing(), img.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(back.GetOrigin(), img.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(back.GetDirection(), img.GetDirection(), atol=1e-6)

    series = read_series(tmp_path / "series")
    assert [int(ds.InstanceNumber) for ds in series] == [1, 2, 3, 4]
    for k, ds in enumerate(series):  # list index k is slice k of the volume SimpleITK reads
        np.testing.assert_array_equal(ds.pixel_array, arr[k])
    assert len({ds.SeriesInstanceUID for ds in series}) == 1
    assert len({ds.FrameOfReferenceUID for ds in series}) == 1
    first = series[0]
    assert (str(first.PatientName), first.PatientID, first.PatientBirthDate) == ("Phantom^Test", "TEST-0001", "")
    assert "not for clinical use" in first.SeriesDescription
    assert first.Modality == "CT" and first.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2"

    with pytest.raises(OutputExistsError, match="--overwrite"):
        write_ct_series(img, tmp_path / "series")
    assert write_ct_series(img, tmp_path / "series", overwrite=True)[0].is_file()
    assert read_series(tmp_path / "series")[0].SeriesInstanceUID != first.SeriesInstanceUID


def test_ct_series_left_handed_comes_back_flipped(tmp_path: Path) -> None:
    import SimpleITK as sitk

    from yolo_spine.io.dicom_seg import write_ct_series
    from yolo_spine.io.volume import read_image

    img, arr = _phantom((1, 0, 0, 0, 1, 0, 0, 0, -1))
    write_ct_series(img, tmp_path / "s")
    back = read_image(tmp_path / "s")
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), arr[::-1])
    # the same voxel at the same world point
    idx = (3, 2, 1)
    far = (idx[0], idx[1], 4 - 1 - idx[2])
    np.testing.assert_allclose(
        back.TransformIndexToPhysicalPoint(far), img.TransformIndexToPhysicalPoint(idx), atol=1e-4
    )
    assert back.GetPixel(far) == img.GetPixel(idx)


def test_ct_series_refuses_sheared_and_2d(tmp_path: Path) -> None:
    import SimpleITK as sitk

    from yolo_spine.io.dicom_seg import write_ct_series

    s = 1 / np.sqrt(2)
    img, _ = _phantom((1, 0, 0, 0, 1, s, 0, 0, s))
    with pytest.raises(UserError, match="perpendicular"):
        write_ct_series(img, tmp_path / "a")
    with pytest.raises(UserError, match="3D"):
        write_ct_series(sitk.Image(4, 4, sitk.sitkInt16), tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_read_series_picks_and_checks(tmp_path: Path) -> None:
    from yolo_spine.io.dicom_seg import read_series, write_ct_series

    img, _ = _phantom((1, 0, 0, 0, 1, 0, 0, 0, 1))
    small, _ = _phantom((1, 0, 0, 0, 1, 0, 0, 0, 1), size=(7, 5, 3))
    write_ct_series(img, tmp_path / "both" / "a")
    study = read_series(tmp_path / "both" / "a")[0].StudyInstanceUID
    write_ct_series(small, tmp_path / "both" / "b", study_instance_uid=study)
    (tmp_path / "both" / "notes.txt").write_text("not DICOM")
    largest = read_series(tmp_path / "both", pixels=False)
    assert len(largest) == 4 and "PixelData" not in largest[0]
    other = read_series(tmp_path / "both" / "b")[0].SeriesInstanceUID
    chosen = read_series(tmp_path / "both", series_instance_uid=other)
    assert len(chosen) == 3 and chosen[0].StudyInstanceUID == study
    with pytest.raises(DataError, match="does not hold the series") as exc:
        read_series(tmp_path / "both", series_instance_uid="1.2.3.4")
    assert "1.2.3.4" not in str(exc.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no DICOM series"):
        read_series(tmp_path / "empty")

    # a copy of one slice: two instances at one position
    import shutil

    import pydicom
    from pydicom.uid import generate_uid

    shutil.copytree(tmp_path / "both" / "a", tmp_path / "dup")
    ds = pydicom.dcmread(tmp_path / "dup" / "slice_0000.dcm")
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.save_as(tmp_path / "dup" / "copy.dcm")
    with pytest.raises(DataError, match="two instances at one slice position"):
        read_series(tmp_path / "dup")


# ------------------------------------------------------------------------------ DICOM Segmentations, read back


def seg_masks(seg_path: Path, source_uids: list[str]) -> tuple[object, dict[int, np.ndarray]]:
    """Read a SEG with pydicom alone: segment number → ``(len(source_uids), rows, cols)`` mask, source order."""
    import pydicom

    ds = pydicom.dcmread(seg_path)
    frames = ds.pixel_array
    frames = frames[np.newaxis] if frames.ndim == 2 else frames
    index = {uid: k for k, uid in enumerate(source_uids)}
    out: dict[int, np.ndarray] = {}
    for f, fg in enumerate(ds.PerFrameFunctionalGroupsSequence):
        number = int(fg.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        uid = str(fg.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID)
        vol = out.setdefault(number, np.zeros((len(source_uids), int(ds.Rows), int(ds.Columns)), bool))
        vol[index[uid]] |= frames[f].astype(bool)
    return ds, out


def segment_labels(ds: object) -> dict[int, str]:
    return {int(s.SegmentNumber): str(s.SegmentLabel) for s in ds.SegmentSequence}  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def ct_dicom(cropped_ct: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """The cropped real CT as a DICOM series, and its ground truth (class id + 1) on the series' grid, as lift
    writes a label map for a study ct2yolo read from that series."""
    import SimpleITK as sitk

    from yolo_spine.evaluate.eval3d import class_lookup, to_class_labels
    from yolo_spine.io.dicom_seg import write_ct_series
    from yolo_spine.io.volume import read_image
    from yolo_spine.registry import load_registry

    folder = tmp_path_factory.mktemp("ctdicom") / "series"
    write_ct_series(sitk.ReadImage(str(cropped_ct[0])), folder)
    grid = read_image(folder)
    lab = sitk.ReadImage(str(cropped_ct[1]))
    on_grid = sitk.Resample(lab, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0, lab.GetPixelID())
    lookup = class_lookup(load_registry("spine"), "totalsegmentator_v2")
    classes, _ = to_class_labels(on_grid, lookup)
    original, _ = to_class_labels(lab, lookup)
    # the same voxels, only reordered: every class keeps its voxel count
    assert np.array_equal(np.bincount(classes.ravel(), minlength=64), np.bincount(original.ravel(), minlength=64))
    return folder, classes


def test_volume_seg_matches_the_label_map(ct_dicom: tuple[Path, np.ndarray], tmp_path: Path, highdicom) -> None:
    hd = highdicom

    from yolo_spine.io.dicom_seg import algorithm_for, read_series, write_volume_seg
    from yolo_spine.registry import load_registry

    folder, classes = ct_dicom
    reg = load_registry("spine")
    series = read_series(folder, pixels=False)
    out = write_volume_seg(classes, series, reg, tmp_path / "seg.dcm", algorithm_for(None))
    ds, masks = seg_masks(out, [str(s.SOPInstanceUID) for s in series])

    present = [int(v) for v in np.unique(classes) if v]
    assert len(present) >= 3  # three vertebrae at least: the crop was made around them
    labels = segment_labels(ds)
    assert [labels[n] for n in sorted(labels)] == [reg.names[v - 1] for v in present]  # registry order
    for number, name in labels.items():
        expected = classes == reg.index(name) + 1
        assert masks[number].any(), name  # never empty
        assert np.array_equal(masks[number], expected), name  # voxel for voxel

    # the source's geometry, series, frame of reference, patient and study
    assert ds.Modality == "SEG" and ds.SegmentationType == "BINARY"
    assert ds.FrameOfReferenceUID == series[0].FrameOfReferenceUID
    ref = ds.ReferencedSeriesSequence[0]
    assert ref.SeriesInstanceUID == series[0].SeriesInstanceUID
    assert {str(r.ReferencedSOPInstanceUID) for r in ref.ReferencedInstanceSequence} <= {
        str(s.SOPInstanceUID) for s in series
    }
    for key in ("PatientName", "PatientID", "StudyInstanceUID", "StudyDate", "AccessionNumber"):
        assert ds.get(key) == series[0].get(key), key
    assert ds.SeriesInstanceUID != series[0].SeriesInstanceUID
    positions = {str(s.SOPInstanceUID): [float(v) for v in s.ImagePositionPatient] for s in series}
    for fg in ds.PerFrameFunctionalGroupsSequence:
        uid = str(fg.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID)
        np.testing.assert_allclose(
            [float(v) for v in fg.PlanePositionSequence[0].ImagePositionPatient], positions[uid], atol=1e-3
        )

    # coded anatomy and the algorithm; "not for clinical use" wherever DICOM has room
    for item in ds.SegmentSequence:
        coded = reg.coded(str(item.SegmentLabel))
        assert item.SegmentedPropertyTypeCodeSequence[0].CodeValue == coded.code
        assert item.SegmentedPropertyTypeCodeSequence[0].CodingSchemeDesignator == "SCT"
        assert item.SegmentedPropertyCategoryCodeSequence[0].CodeValue == "91723000"
        assert item.SegmentAlgorithmType == "AUTOMATIC"
        assert "not for clinical use" in item.SegmentationAlgorithmIdentificationSequence[0].AlgorithmName
    assert not any(reg.coded(str(i.SegmentLabel)).fallback for i in ds.SegmentSequence)  # T-vertebrae: real codes
    assert "not for clinical use" in ds.SeriesDescription

    # highdicom reads it back, and agrees
    seg = hd.seg.segread(out)
    assert seg.number_of_segments == len(present)
    assert seg.get_source_image_uids()[0][1] == series[0].SeriesInstanceUID

    # nothing overwritten; bad volumes are one sentence
    from yolo_spine.errors import OutputExistsError

    with pytest.raises(OutputExistsError, match="--overwrite"):
        write_volume_seg(classes, series, reg, out, algorithm_for(None))
    with pytest.raises(UserError, match="but the DICOM series is"):
        write_volume_seg(classes[1:], series, reg, tmp_path / "b.dcm", algorithm_for(None))
    with pytest.raises(UserError, match="empty"):
        write_volume_seg(np.zeros_like(classes), series, reg, tmp_path / "c.dcm", algorithm_for(None))
    with pytest.raises(UserError, match=f"past the {reg.nc} classes"):
        write_volume_seg(classes * 0 + reg.nc + 1, series, reg, tmp_path / "d.dcm", algorithm_for(None))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seg.dcm"]


def test_radiograph_seg_matches_the_polygons(example_radiograph_path: Path, tmp_path: Path, highdicom) -> None:
    import pydicom

    hd = highdicom

    from yolo_spine.geometry import polygons_to_mask
    from yolo_spine.io.dicom_seg import algorithm_for, masks_from_polygons, write_radiograph_seg
    from yolo_spine.io.xray import read_xray
    from yolo_spine.registry import load_registry

    reg = load_registry("spine")
    source = pydicom.dcmread(example_radiograph_path, stop_before_pixels=True)
    assert "FrameOfReferenceUID" not in source and source.Modality == "CR"
    h, w = read_xray(example_radiograph_path).bgr().shape[:2]
    assert (h, w) == (int(source.Rows), int(source.Columns))
    # ground-truth-like polygons (pixels): T6 twice, one overlapping T5; one degenerate polygon (two points)
    polygons = [
        np.array([[w * 0.45, h * 0.30], [w * 0.55, h * 0.31], [w * 0.56, h * 0.37], [w * 0.44, h * 0.36]]),
        np.array([[w * 0.45, h * 0.35], [w * 0.55, h * 0.355], [w * 0.555, h * 0.42], [w * 0.445, h * 0.415]]),
        np.array([[10.3, 20.7], [60.2, 22.1], [35.5, 80.9]]),
        np.array([[5.0, 5.0], [9.0, 9.0]]),
    ]
    class_ids = [reg.index("T6"), reg.index("T5"), reg.index("T6"), reg.index("T7")]
    masks = masks_from_polygons(polygons, h, w)
    for k in range(3):  # lift's rasteriser, polygon by polygon
        assert np.array_equal(masks[k], polygons_to_mask([polygons[k]], h, w).astype(bool))
    assert (masks[0] & masks[1]).any() and not masks[3].any()

    weights = tmp_path / "model.pt"
    weights.write_bytes(b"not really a model, but bytes to hash")
    algorithm = algorithm_for(weights)
    out = write_radiograph_seg(masks, class_ids, source, reg, tmp_path / "rg1.seg.dcm", algorithm)
    ds, got = seg_masks(out, [str(source.SOPInstanceUID)])
    labels = segment_labels(ds)
    assert [labels[n] for n in sorted(labels)] == ["T5", "T6", "T6 #2"]  # registry order; the empty one left out
    expected = {"T5": masks[1], "T6": masks[0], "T6 #2": masks[2]}
    for number, label in labels.items():
        assert got[number][0].any() and np.array_equal(got[number][0], expected[label]), label
    # referenced by its instance; the source's patient and study; the model's hash
    ref = ds.ReferencedSeriesSequence[0]
    assert ref.SeriesInstanceUID == source.SeriesInstanceUID
    assert [str(r.ReferencedSOPInstanceUID) for r in ref.ReferencedInstanceSequence] == [str(source.SOPInstanceUID)]
    for key in ("PatientName", "PatientID", "PatientBirthDate", "StudyInstanceUID"):
        assert ds.get(key) == source.get(key), key
    alg = ds.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0]
    assert algorithm.model_sha256 and algorithm.model_sha256 in str(alg.get("AlgorithmParameters", ""))
    assert "not for clinical use" in alg.AlgorithmName and "not for clinical use" in ds.SeriesDescription
    assert hd.seg.segread(out).number_of_segments == 3

    with pytest.raises(UserError, match="no instance has pixels"):
        write_radiograph_seg(masks[3:], class_ids[3:], source, reg, tmp_path / "e.dcm", algorithm)
    with pytest.raises(UserError, match=f"not one of the {reg.nc} classes"):
        write_radiograph_seg(masks[:1], [reg.nc], source, reg, tmp_path / "f.dcm", algorithm)
    with pytest.raises(UserError, match=r"but the image is"):
        write_radiograph_seg(masks[:, 1:], class_ids, source, reg, tmp_path / "g.dcm", algorithm)
