"""DICOM in and out for the clinic's tools: CT series (read, and written for tests) and DICOM Segmentations.

* :func:`write_volume_seg` — a CT label volume (class id + 1, on the series' grid) as a BINARY DICOM SEG of its
  source series: one segment per class present, same Frame of Reference, referencing the series' instances.
* :func:`write_radiograph_seg` — instance masks on a single-frame radiograph (CR/DX, no Frame of Reference) as a
  BINARY SEG referencing that instance: one segment per instance.
* Both carry the source's patient and study modules (the standard requires it; nothing else of ours holds them),
  code each segment with the registry's SNOMED CT anatomy (:meth:`~yolo_spine.registry.AnatomyRegistry.coded`),
  name the algorithm and the model's SHA-256 (:class:`AlgorithmInfo`), say "not for clinical use" in the series
  description and algorithm name, and are written atomically, never over an existing file without ``overwrite``.
* :func:`read_series` — the instances of one DICOM series, sorted by position along the slice normal (GDCM's and
  SimpleITK's order, so index ``k`` of the list is slice ``k`` of ``read_image(folder)``).
* :func:`write_ct_series` — a CT volume as a DICOM series with a *synthetic, non-identifying* patient/study module
  (test data, phantoms, a PACS round trip in tests); never a real patient's module.

Frames: a SimpleITK image's array is ``(z, y, x)``; geometry is ``xyz`` in LPS millimetres, as DICOM's
Image Position/Orientation (Patient) are. Heavy imports (pydicom, SimpleITK, highdicom) happen inside functions.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from yolo_spine import __version__
from yolo_spine.errors import DataError, MissingDependencyError, UserError

if TYPE_CHECKING:
    import pydicom
    import SimpleITK as sitk

    from yolo_spine.ct.sidecar import VolumeGeometry
    from yolo_spine.registry import AnatomyRegistry

log = logging.getLogger("yolo_spine")

#: Said wherever DICOM has room for it (series description, algorithm name): these are research outputs.
NOT_FOR_CLINICAL_USE = "not for clinical use"

# The series number of every SEG written (a derived series; viewers sort it after the source's).
_SEG_SERIES_NUMBER = 901
# Two slice positions closer than this (mm, along the normal) are one position: a series holding both is broken.
_POSITION_TOL_MM = 1e-3


def _normal(iop: Sequence[float]) -> np.ndarray:
    """Slice normal of an Image Orientation (Patient): row direction × column direction."""
    row, col = np.asarray(iop[:3], dtype=float), np.asarray(iop[3:6], dtype=float)
    return np.cross(row, col)


def read_series(
    folder: str | Path, *, series_instance_uid: str | None = None, pixels: bool = True
) -> list[pydicom.Dataset]:
    """Read one DICOM series from a folder (searched recursively), sorted by position along the slice normal.

    The order is GDCM's (and so SimpleITK's ``read_image(folder)``): ascending ``ImagePositionPatient`` projected
    on ``row × column`` of ``ImageOrientationPatient``; instances without a position (a radiograph) sort by
    ``InstanceNumber``. Files that are not DICOM are skipped (and counted in the log).

    Args:
        folder: Folder holding the series' files (other files and series may sit beside them).
        series_instance_uid: The series to read when the folder holds several; default: the series with the most
            instances, as :func:`yolo_spine.io.volume.read_image` chooses.
        pixels: Read pixel data too; ``False`` reads headers only (enough to reference the series).

    Returns:
        The instances, sorted.

    Raises:
        DataError: No DICOM series in the folder, the chosen series absent, instances that disagree on
            orientation, or two instances at one position.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"DICOM folder {root} does not exist or is not a folder")
    by_series: dict[str, list[pydicom.Dataset]] = {}
    skipped = 0
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=not pixels)
        except (InvalidDicomError, OSError, ValueError, EOFError):
            skipped += 1
            continue
        uid = str(getattr(ds, "SeriesInstanceUID", "") or "")
        if uid and "SOPInstanceUID" in ds:
            by_series.setdefault(uid, []).append(ds)
        else:
            skipped += 1
    if skipped:
        log.info("skipped %d files that are not DICOM instances of a series", skipped)
    if not by_series:
        raise DataError(f"folder {root} holds no DICOM series")
    if series_instance_uid is not None:
        if series_instance_uid not in by_series:  # the UID itself stays out of the message: it is an identifier
            raise DataError(f"folder {root} does not hold the series asked for ({len(by_series)} series there)")
        instances = by_series[series_instance_uid]
    else:
        instances = max(by_series.values(), key=len)
        if len(by_series) > 1:
            log.warning(
                "the DICOM folder holds %d series; using the largest (%d instances)", len(by_series), len(instances)
            )
    return _sorted_instances(instances, root)


def _sorted_instances(instances: list[pydicom.Dataset], root: Path) -> list[pydicom.Dataset]:
    if not all("ImagePositionPatient" in ds and "ImageOrientationPatient" in ds for ds in instances):
        return sorted(instances, key=lambda ds: int(getattr(ds, "InstanceNumber", 0) or 0))
    iops = np.array([[float(v) for v in ds.ImageOrientationPatient] for ds in instances])
    if not np.allclose(iops, iops[0], atol=1e-4):
        raise DataError(f"the DICOM series in {root} mixes image orientations; it is not one volume")
    normal = _normal(iops[0])
    dist = np.array([float(np.dot(normal, [float(v) for v in ds.ImagePositionPatient])) for ds in instances])
    order = np.argsort(dist, kind="stable")
    if len(order) > 1 and np.min(np.diff(dist[order])) < _POSITION_TOL_MM:
        raise DataError(f"the DICOM series in {root} holds two instances at one slice position")
    return [instances[i] for i in order]


def write_ct_series(
    image: sitk.Image,
    folder: str | Path,
    *,
    patient_name: str = "Phantom^Test",
    patient_id: str = "TEST-0001",
    study_description: str = "yolo_spine synthetic study",
    series_description: str = f"yolo_spine CT, {NOT_FOR_CLINICAL_USE}",
    study_instance_uid: str | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Write a CT volume as a DICOM series (CT Image Storage, one file per slice) with a synthetic patient/study.

    The patient and study module is made up (``Phantom^Test``, no birth date, sex ``O``, today's date): this is
    for tests, phantoms and demonstrations, never for re-identifying or carrying a real patient's data. Voxels
    are stored as signed 16-bit integers (values rounded and clipped to -32768…32767) with rescale slope 1 and
    intercept 0, so Hounsfield units read back unchanged. Slices are written in ascending position along
    ``row × column``; the series read back (``read_image(folder)``, :func:`read_series`) holds the same voxels at
    the same world positions, its ``k`` axis along that normal (a left-handed input comes back flipped along
    ``k``). The folder is written atomically (a temporary folder renamed into place).

    Args:
        image: A 3D, single-component SimpleITK image (LPS geometry).
        folder: Output folder (``slice_0000.dcm`` …); refused if it exists unless ``overwrite``.
        patient_name: Patient's Name (a synthetic one).
        patient_id: Patient ID (a synthetic one).
        study_description: Study Description.
        series_description: Series Description.
        study_instance_uid: Put the series into this study (a second series of a test study); default: a new UID.
        overwrite: Replace an existing folder.

    Returns:
        The files written, in slice order.

    Raises:
        UserError: An image that is not 3D and single-component, or whose slice axis is not perpendicular to its
            rows and columns (DICOM CT slices cannot be sheared).
    """
    import pydicom
    import SimpleITK as sitk
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    from yolo_spine.io.atomic import atomic_output

    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise UserError("write_ct_series needs a 3D, single-component image")
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    spacing = np.asarray(image.GetSpacing(), dtype=float)
    origin = np.asarray(image.GetOrigin(), dtype=float)
    normal = np.cross(direction[:, 0], direction[:, 1])
    along = float(np.dot(normal, direction[:, 2]))
    if abs(abs(along) - 1.0) > 1e-4:
        raise UserError("the image's slice axis is not perpendicular to its rows and columns; DICOM CT cannot hold it")
    voxels = np.rint(sitk.GetArrayViewFromImage(image).astype(np.float64))
    voxels = np.clip(voxels, -32768, 32767).astype(np.int16)
    n_slices = voxels.shape[0]
    ks = list(range(n_slices)) if along > 0 else list(range(n_slices - 1, -1, -1))

    now = _dt.datetime.now(tz=_dt.timezone.utc)
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    study_uid = study_instance_uid or generate_uid()
    series_uid, frame_uid = generate_uid(), generate_uid()
    iop = [*(float(v) for v in direction[:, 0]), *(float(v) for v in direction[:, 1])]

    out = Path(folder)
    written: list[Path] = []
    with atomic_output(out, overwrite=overwrite, is_dir=True) as tmp:
        for n, k in enumerate(ks):
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = CTImageStorage
            meta.MediaStorageSOPInstanceUID = generate_uid()
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds = pydicom.Dataset()
            ds.file_meta = meta
            # Patient and study: synthetic by design
            ds.PatientName = patient_name
            ds.PatientID = patient_id
            ds.PatientBirthDate = ""
            ds.PatientSex = "O"
            ds.StudyInstanceUID = study_uid
            ds.StudyDate, ds.StudyTime = date, time
            ds.StudyID = "1"
            ds.AccessionNumber = ""
            ds.ReferringPhysicianName = ""
            ds.StudyDescription = study_description
            # Series, equipment, frame of reference
            ds.Modality = "CT"
            ds.SeriesInstanceUID = series_uid
            ds.SeriesNumber = 1
            ds.SeriesDescription = series_description
            ds.SeriesDate, ds.SeriesTime = date, time
            ds.Manufacturer = "yolo_spine"
            ds.SoftwareVersions = __version__
            ds.FrameOfReferenceUID = frame_uid
            ds.PositionReferenceIndicator = ""
            # Image
            ds.SOPClassUID = CTImageStorage
            ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
            ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
            ds.InstanceNumber = n + 1
            ds.ContentDate, ds.ContentTime = date, time
            ds.AcquisitionNumber = 1
            ds.KVP = ""
            ds.ImagePositionPatient = [float(v) for v in origin + direction @ (spacing * np.array([0.0, 0.0, k]))]
            ds.ImageOrientationPatient = iop
            ds.PixelSpacing = [float(spacing[1]), float(spacing[0])]  # row spacing (y), column spacing (x)
            ds.SliceThickness = float(spacing[2])
            ds.SamplesPerPixel = 1
            ds.PhotometricInterpretation = "MONOCHROME2"
            ds.Rows, ds.Columns = int(voxels.shape[1]), int(voxels.shape[2])
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
            ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = 0, 1, "HU"
            ds.PixelData = np.ascontiguousarray(voxels[k]).tobytes()
            name = f"slice_{n:04d}.dcm"
            ds.save_as(tmp / name, enforce_file_format=True)
            written.append(out.resolve() / name)
    return written


# ------------------------------------------------------------------------------------------------- geometry


def series_geometry(instances: Sequence[pydicom.Dataset]) -> VolumeGeometry:
    """The volume grid of a sorted CT series (:func:`read_series`), as SimpleITK reads the same series.

    ``origin`` is the first instance's position, ``direction`` the rows, columns and slice normal, the slice
    spacing the mean distance between neighbouring positions along the normal.

    Raises:
        DataError: Instances without position or orientation, or of different sizes.
    """
    from yolo_spine.ct.sidecar import VolumeGeometry

    first = instances[0]
    if not all("ImagePositionPatient" in ds and "ImageOrientationPatient" in ds for ds in instances):
        raise DataError("the DICOM series has instances without a position or orientation; it is not a volume")
    if len({(int(ds.Rows), int(ds.Columns)) for ds in instances}) != 1:
        raise DataError("the DICOM series mixes image sizes; it is not one volume")
    iop = [float(v) for v in first.ImageOrientationPatient]
    normal = _normal(iop)
    pos = np.array([[float(v) for v in ds.ImagePositionPatient] for ds in instances])
    dist = pos @ normal
    dz = float(np.mean(np.diff(dist))) if len(instances) > 1 else float(getattr(first, "SliceThickness", 1.0) or 1.0)
    row_mm, col_mm = (float(v) for v in first.PixelSpacing)
    direction = np.column_stack([iop[:3], iop[3:], normal])
    return VolumeGeometry(
        size_xyz=(int(first.Columns), int(first.Rows), len(instances)),
        spacing_xyz=(col_mm, row_mm, dz),
        origin_xyz=(float(pos[0, 0]), float(pos[0, 1]), float(pos[0, 2])),
        direction=tuple(float(v) for v in direction.ravel()),
    )


def geometry_mismatch(a: VolumeGeometry, b: VolumeGeometry) -> str | None:
    """How two grids differ (size, spacing, direction, origin), or ``None`` when they agree within tolerance.

    The tolerances are :func:`yolo_spine.io.volume.geometry_difference`'s (no image is allocated here).
    """
    from yolo_spine.io.volume import DIRECTION_ATOL, ORIGIN_VOXEL_TOL, SPACING_RTOL

    def fmt(v: np.ndarray) -> str:
        return "(" + ", ".join(f"{x:.4g}" for x in np.asarray(v).ravel()) + ")"

    if tuple(a.size_xyz) != tuple(b.size_xyz):
        return f"size {tuple(a.size_xyz)} vs {tuple(b.size_xyz)}"
    sa, sb = np.array(a.spacing_xyz), np.array(b.spacing_xyz)
    if not np.allclose(sa, sb, rtol=SPACING_RTOL, atol=0):
        return f"spacing {fmt(sa)} mm vs {fmt(sb)} mm"
    da, db = np.array(a.direction), np.array(b.direction)
    if not np.allclose(da, db, atol=DIRECTION_ATOL):
        return f"direction {fmt(da)} vs {fmt(db)}"
    oa, ob = np.array(a.origin_xyz), np.array(b.origin_xyz)
    if np.any(np.abs(oa - ob) > ORIGIN_VOXEL_TOL * sa):
        return f"origin {fmt(oa)} mm vs {fmt(ob)} mm"
    return None


# ------------------------------------------------------------------------------------------------ algorithm


def require_highdicom() -> None:
    """Check that the optional highdicom is installed (before any work that ends in a SEG).

    Raises:
        MissingDependencyError: It is not (the message says how to install it).
    """
    import importlib.util

    if importlib.util.find_spec("highdicom") is None:
        raise MissingDependencyError("DICOM Segmentations need highdicom: pip install 'yolo_spine[clinic]'")


@dataclass(frozen=True)
class AlgorithmInfo:
    """What made a segmentation, as the SEG's Algorithm Identification Sequence records it.

    Attributes:
        name: Algorithm name (at most 64 characters; says "not for clinical use").
        version: Algorithm version (yolo_spine's version).
        model_sha256: SHA-256 of the model file (``None`` for ground truth lifted without a model).
    """

    name: str
    version: str
    model_sha256: str | None = None


def algorithm_for(weights_path: str | Path | None) -> AlgorithmInfo:
    """The algorithm identification of a yolo_spine model (``None``: labels lifted without a model).

    A model file is hashed with SHA-256; a model folder (OpenVINO) over its files' names and bytes.
    """
    from yolo_spine.provenance import sha256_file, sha256_files

    if weights_path is None:
        return AlgorithmInfo(f"yolo_spine labels, {NOT_FOR_CLINICAL_USE}", __version__, None)
    p = Path(weights_path)
    if p.is_dir():
        digest = sha256_files([f for f in p.rglob("*") if f.is_file()], root=p)
    elif p.is_file():
        digest = sha256_file(p)
    else:
        raise UserError(f"model {p} does not exist")
    return AlgorithmInfo(f"yolo_spine YOLO-seg, {NOT_FOR_CLINICAL_USE}", __version__, digest)


def _algorithm_identification(algorithm: AlgorithmInfo) -> Any:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    params = {"model_sha256": algorithm.model_sha256} if algorithm.model_sha256 else None
    return hd.AlgorithmIdentificationSequence(
        name=algorithm.name[:64],
        family=codes.cid7162.ArtificialIntelligence,
        version=algorithm.version[:64],
        source="yolo_spine",
        parameters=params,
    )


# ------------------------------------------------------------------------------------------------- segments


@dataclass(frozen=True)
class _Segment:
    label: str
    class_name: str


def _segment_descriptions(segments: Sequence[_Segment], registry: AnatomyRegistry, algorithm: AlgorithmInfo) -> list:
    import highdicom as hd
    from pydicom.sr.coding import Code

    ident = _algorithm_identification(algorithm)
    out = []
    for number, seg in enumerate(segments, start=1):
        coded = registry.coded(seg.class_name)
        desc = hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=seg.label[:64],
            segmented_property_category=Code(coded.category[0], "SCT", coded.category[1]),
            segmented_property_type=Code(coded.code, "SCT", coded.meaning),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=ident,
            tracking_uid=hd.UID(),
            tracking_id=f"yolo_spine {registry.name} {seg.label}"[:64],
        )
        if coded.laterality_code is not None:
            lat = hd.sr.CodedConcept(coded.laterality_code[0], "SCT", coded.laterality_code[1])
            desc.SegmentedPropertyTypeModifierCodeSequence = [lat]
        out.append(desc)
    return out


def _seg_dataset(
    source: Sequence[pydicom.Dataset],
    pixel_array: np.ndarray,
    segments: Sequence[_Segment],
    registry: AnatomyRegistry,
    algorithm: AlgorithmInfo,
) -> pydicom.Dataset:
    require_highdicom()
    import highdicom as hd

    return hd.seg.Segmentation(
        source_images=list(source),
        pixel_array=pixel_array,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=_segment_descriptions(segments, registry, algorithm),
        series_instance_uid=hd.UID(),
        series_number=_SEG_SERIES_NUMBER,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="yolo_spine",
        manufacturer_model_name=f"yolo_spine {registry.name}"[:64],
        software_versions=__version__,
        device_serial_number="none",
        series_description=f"yolo_spine {registry.name} SEG, {NOT_FOR_CLINICAL_USE}"[:64],
        content_label="YOLO_SPINE",
        content_description=f"{registry.name} segmentation by yolo_spine, {NOT_FOR_CLINICAL_USE}"[:64],
        omit_empty_frames=True,
    )


def _write_dataset(ds: pydicom.Dataset, out: str | Path, overwrite: bool) -> Path:
    from yolo_spine.io.atomic import atomic_output

    with atomic_output(out, overwrite=overwrite, is_dir=False) as tmp:
        ds.save_as(tmp, enforce_file_format=True)
    return Path(out).resolve()


def write_volume_seg(
    labels_zyx: np.ndarray,
    source: Sequence[pydicom.Dataset],
    registry: AnatomyRegistry,
    out: str | Path,
    algorithm: AlgorithmInfo,
    *,
    overwrite: bool = False,
) -> Path:
    """Write a CT label volume as a BINARY DICOM Segmentation of its source series.

    One segment per class present, in registry order (a lifted label map holds one structure per class; parts
    of one class are not separate instances in 3D). The SEG shares the series' Frame of Reference, references
    its series and SOP instances, and carries its patient and study modules, as DICOM requires; frames without a
    segment are omitted.

    Args:
        labels_zyx: ``(z, y, x)`` label volume, class id + 1 (0 = background), on the series' grid: index ``k``
            is ``source[k]``, ``(y, x)`` its rows and columns (what ``lift`` writes for a study ``ct2yolo`` read
            from this series).
        source: The series' instances sorted by :func:`read_series` (headers suffice).
        registry: The anatomy the label values refer to.
        out: The ``.dcm`` file to write (refused if it exists, unless ``overwrite``).
        algorithm: What made the labels (:func:`algorithm_for`).
        overwrite: Replace an existing file.

    Returns:
        The file written.

    Raises:
        UserError: A volume whose shape is not the series', label values past the registry, or no class present.
    """
    from yolo_spine.io.atomic import ensure_can_write

    ensure_can_write(out, overwrite)
    if not source:
        raise UserError("the source DICOM series is empty")
    want = (len(source), int(source[0].Rows), int(source[0].Columns))
    if tuple(labels_zyx.shape) != want:
        raise UserError(f"the label volume is {tuple(labels_zyx.shape)} (z, y, x), but the DICOM series is {want}")
    present = [int(v) for v in np.unique(labels_zyx) if v != 0]
    if present and (present[0] < 0 or present[-1] > registry.nc):
        raise UserError(f"label values past the {registry.nc} classes of '{registry.name}' (largest {present[-1]})")
    if not present:
        raise UserError("the label volume is empty: a DICOM Segmentation needs at least one segment")
    lut = np.zeros(registry.nc + 1, np.uint16)
    for number, value in enumerate(present, start=1):
        lut[value] = number
    dtype = np.uint8 if len(present) < 256 else np.uint16
    segment_map = lut[labels_zyx].astype(dtype)
    segments = [_Segment(registry.names[v - 1], registry.names[v - 1]) for v in present]
    ds = _seg_dataset(source, segment_map, segments, registry, algorithm)
    return _write_dataset(ds, out, overwrite)


def write_radiograph_seg(
    instance_masks: np.ndarray | Sequence[np.ndarray],
    class_ids: Sequence[int],
    source: pydicom.Dataset,
    registry: AnatomyRegistry,
    out: str | Path,
    algorithm: AlgorithmInfo,
    *,
    overwrite: bool = False,
) -> Path:
    """Write instance masks on a single-frame radiograph (CR, DX …) as a BINARY DICOM Segmentation.

    One segment per instance, in registry order of their classes (then in the order given); a class with
    several instances labels them ``T5``, ``T5 #2`` … A radiograph usually has no Frame of Reference: the SEG
    references the image by its SOP instance and carries the source's patient and study modules. Instances whose
    mask is empty are left out (and logged), so no segment is empty.

    Args:
        instance_masks: ``(N, rows, cols)`` boolean masks in the image's pixel grid (see
            :func:`masks_from_polygons`).
        class_ids: Class id of each mask (the registry's order).
        source: The radiograph's dataset (headers suffice).
        registry: The anatomy the class ids refer to.
        out: The ``.dcm`` file to write (refused if it exists, unless ``overwrite``).
        algorithm: The model (:func:`algorithm_for`).
        overwrite: Replace an existing file.

    Returns:
        The file written.

    Raises:
        UserError: A multi-frame source, masks of another size, unknown class ids, or no non-empty mask.
    """
    from yolo_spine.io.atomic import ensure_can_write

    ensure_can_write(out, overwrite)
    if int(getattr(source, "NumberOfFrames", 1) or 1) != 1:
        raise UserError("write_radiograph_seg needs a single-frame image; this DICOM has several frames")
    masks = np.asarray(instance_masks, dtype=bool)
    shape = (int(source.Rows), int(source.Columns))
    if masks.ndim != 3 or masks.shape[1:] != shape or len(masks) != len(class_ids):
        raise UserError(
            f"instance masks are {masks.shape} for {len(class_ids)} class ids, but the image is {shape} (rows, cols)"
        )
    bad = [int(c) for c in class_ids if not 0 <= int(c) < registry.nc]
    if bad:
        raise UserError(f"class id {bad[0]} is not one of the {registry.nc} classes of '{registry.name}'")
    keep = [k for k in range(len(masks)) if masks[k].any()]
    if len(keep) < len(masks):
        log.warning("left %d empty instance masks out of the DICOM Segmentation", len(masks) - len(keep))
    if not keep:
        raise UserError("no instance has pixels: a DICOM Segmentation needs at least one segment")
    keep.sort(key=lambda k: int(class_ids[k]))  # registry order; stable, so instances of a class keep their order
    seen: dict[int, int] = {}
    segments = []
    for k in keep:
        c = int(class_ids[k])
        seen[c] = seen.get(c, 0) + 1
        name = registry.names[c]
        segments.append(_Segment(name if seen[c] == 1 else f"{name} #{seen[c]}", name))
    stack = np.moveaxis(masks[keep], 0, -1)[np.newaxis]  # (1 frame, rows, cols, segments)
    ds = _seg_dataset([source], stack, segments, registry, algorithm)
    if "FrameOfReferenceUID" not in source and "SliceThickness" not in source:
        # highdicom copies a projection image's Pixel Spacing into a Pixel Measures item without a slice thickness,
        # which its own reader (segread) then refuses; it writes no item at all for a source without Pixel Spacing.
        # Do that here too: the SEG overlays its source, whose pixel spacing stays where it was.
        shared = ds.SharedFunctionalGroupsSequence[0]
        if "PixelMeasuresSequence" in shared:
            del shared.PixelMeasuresSequence
    return _write_dataset(ds, out, overwrite)


def masks_from_polygons(polygons_xy: Sequence[np.ndarray], height: int, width: int) -> np.ndarray:
    """Rasterise instance polygons (pixel coordinates) as ``lift`` does: ``(N, height, width)`` boolean masks.

    Each polygon is filled on its own with :func:`yolo_spine.geometry.polygons_to_mask` (pixel centres on or
    inside), the rule ``lift`` uses for every slice.
    """
    from yolo_spine.geometry import polygons_to_mask

    out = np.zeros((len(polygons_xy), height, width), bool)
    for k, poly in enumerate(polygons_xy):
        pts = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
        if len(pts) >= 3:
            out[k] = polygons_to_mask([pts], height, width).astype(bool)
    return out
