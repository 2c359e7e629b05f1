"""Read CT/CBCT volumes, label maps and ITK transform files with SimpleITK, checked before any work starts.

Arrays from SimpleITK are ``(z, y, x)`` = ``(k, j, i)``; geometry (size, spacing, origin) is ``xyz``; world
coordinates are SimpleITK physical points (LPS millimetres). Every failure a user can fix raises
:class:`~yolo_spine.errors.DataError` with one sentence naming the file and the problem.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from yolo_spine.errors import DataError

if TYPE_CHECKING:
    import SimpleITK as sitk

log = logging.getLogger("yolo_spine")

#: Geometry tolerances: spacing and direction relative/absolute, origin in fractions of a voxel.
SPACING_RTOL = 1e-3
DIRECTION_ATOL = 1e-3
ORIGIN_VOXEL_TOL = 0.05


def read_image(path: str | Path, what: str = "volume") -> sitk.Image:
    """Read a 3D image: NIfTI, MHA/MHD, NRRD (any SimpleITK format) or a folder holding one DICOM series.

    Args:
        path: File, or folder of DICOM files (the series with the most files is read).
        what: Word used in error messages (``volume``, ``label map``).

    Returns:
        The image (3D, one component).

    Raises:
        DataError: Missing file, unreadable file, not 3D, or more than one component per voxel.
    """
    import SimpleITK as sitk

    p = Path(path)
    if not p.exists():
        raise DataError(f"{what} {p} does not exist")
    try:
        if p.is_dir():
            files, n_series = dicom_series_files(p, what)
            if n_series > 1:  # no folder name in the log: it is often the patient's name
                log.warning(
                    "the %s's DICOM folder holds %d series; reading the largest (%d files)", what, n_series, len(files)
                )
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(files)
            image = reader.Execute()
        else:
            image = sitk.ReadImage(str(p))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        reason = next((ln for ln in first if "ERROR" in ln or "Exception" in ln), first[0] if first else "")
        raise DataError(f"cannot read {what} {p}: {reason.strip()[:160]}") from None
    if image.GetDimension() != 3 or min(image.GetSize()) < 2:
        raise DataError(
            f"{what} {p} is a {image.GetDimension()}D image of size {tuple(image.GetSize())}, not a 3D volume"
        )
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise DataError(f"{what} {p} has {image.GetNumberOfComponentsPerPixel()} components per voxel; expected 1")
    return image


def dicom_series_files(folder: str | Path, what: str = "volume") -> tuple[list[str], int]:
    """Return the files of the largest DICOM series in ``folder`` (in GDCM's slice order) and the series count.

    Raises:
        DataError: The folder holds no DICOM series.
    """
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    series = reader.GetGDCMSeriesIDs(str(folder)) or ()
    if not series:
        raise DataError(f"{what} folder {folder} holds no DICOM series")
    files = max((list(reader.GetGDCMSeriesFileNames(str(folder), s)) for s in series), key=len)
    return files, len(series)


def volume_identity(path: str | Path, file_sha256: str | None = None) -> str:
    """A content identity of a volume, the same wherever it is mounted: what pseudonymous study ids hash.

    A file: the SHA-256 of its bytes (a detached ``.mhd``/``.nhdr`` header together with its data file); a DICOM
    series folder: the SHA-256 of the sorted SOP Instance UIDs of the series :func:`read_image` reads (a file
    without one counts by its bytes). Only the UIDs are read from the headers, never a patient field.

    Args:
        path: Volume file or DICOM series folder.
        file_sha256: The file's SHA-256 when the caller has it already (saves reading a large file twice).

    Raises:
        DataError: A missing path or a folder without a DICOM series.
    """
    from yolo_spine.provenance import sha256_file

    p = Path(path)
    if not p.exists():
        raise DataError(f"volume {p} does not exist")
    if p.is_dir():
        import pydicom

        uids = []
        for f in dicom_series_files(p)[0]:
            ds = pydicom.dcmread(f, stop_before_pixels=True, specific_tags=["SOPInstanceUID"], force=True)
            uid = str(getattr(ds, "SOPInstanceUID", "") or "").strip()
            uids.append(f"uid:{uid}" if uid else f"sha256:{sha256_file(f)}")
        return "dicom-series:" + hashlib.sha256("\n".join(sorted(uids)).encode()).hexdigest()
    digest = file_sha256 or sha256_file(p)
    data = _detached_data_file(p)
    if data is not None:
        digest = hashlib.sha256(f"{digest}:{sha256_file(data)}".encode()).hexdigest()
    return f"file:{digest}"


def _detached_data_file(header: Path) -> Path | None:
    """The data file a ``.mhd``/``.nhdr`` header names (``ElementDataFile`` / ``data file``), if it exists."""
    if header.suffix.lower() not in (".mhd", ".nhdr"):
        return None
    try:
        text = header.read_text(encoding="latin-1", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, sep, value = line.partition("=" if header.suffix.lower() == ".mhd" else ":")
        if sep and key.strip().lower() in ("elementdatafile", "data file", "datafile"):
            value = value.strip()
            data = header.parent / value
            return data if value.upper() != "LOCAL" and data.is_file() else None
    return None


def geometry_difference(a: sitk.Image, b: sitk.Image) -> str | None:
    """Describe how two images' grids differ, or return ``None`` when they agree within tolerance.

    Size must match exactly; spacing within 0.1 %; direction cosines within 1e-3; origin within 5 % of a voxel.
    """
    if tuple(a.GetSize()) != tuple(b.GetSize()):
        return f"size {tuple(a.GetSize())} vs {tuple(b.GetSize())}"
    sa, sb = np.array(a.GetSpacing()), np.array(b.GetSpacing())
    if not np.allclose(sa, sb, rtol=SPACING_RTOL, atol=0):
        return f"spacing {_fmt(sa)} mm vs {_fmt(sb)} mm"
    da, db = np.array(a.GetDirection()), np.array(b.GetDirection())
    if not np.allclose(da, db, atol=DIRECTION_ATOL):
        return f"direction {_fmt(da)} vs {_fmt(db)}"
    oa, ob = np.array(a.GetOrigin()), np.array(b.GetOrigin())
    if np.any(np.abs(oa - ob) > ORIGIN_VOXEL_TOL * sa):
        return f"origin {_fmt(oa)} mm vs {_fmt(ob)} mm"
    return None


def _fmt(v: np.ndarray) -> str:
    return "(" + ", ".join(f"{x:.4g}" for x in np.asarray(v).ravel()) + ")"


def read_transform(path: str | Path) -> sitk.Transform:
    """Read an ITK transform file (``#Insight Transform File V1.0``: matrix-offset, Euler, affine …).

    The transform follows ITK's resampling convention: it maps points of the *output* (label) frame to points
    of the *input* (image) frame, which is what ITK-SNAP and 3D Slicer save for a re-oriented study.

    Raises:
        DataError: Missing or unreadable file, or a transform that is not 3D.
    """
    import SimpleITK as sitk

    p = Path(path)
    if not p.is_file():
        raise DataError(f"transform file {p} does not exist")
    try:
        tx = sitk.ReadTransform(str(p))
    except RuntimeError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        raise DataError(f"cannot read transform file {p}: {(lines[-1] if lines else 'unknown format')[:160]}") from None
    if tx.GetDimension() != 3:
        raise DataError(f"transform file {p} holds a {tx.GetDimension()}D transform; a 3D one is needed")
    return tx


def available_memory_bytes() -> int:
    """Return the memory available to this process (Linux ``MemAvailable``; a large number elsewhere)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 40


@dataclass
class Study:
    """A CT volume and its label map on one grid, ready for slicing and projection.

    Attributes:
        image: CT intensities (Hounsfield units), ``float32``.
        labels: Label map on exactly the image's grid, an unsigned integer type.
        name: Study name (used in file stems and sidecars).
        notes: What was done to make the two agree (resampling, transform), for the study's report.
    """

    image: sitk.Image
    labels: sitk.Image
    name: str
    notes: list[str]


def load_study(
    volume: str | Path,
    labels: str | Path,
    name: str,
    transform: str | Path | None = None,
    resample_labels: bool = False,
    max_memory_fraction: float = 0.6,
    bytes_per_voxel: float = 24.0,
) -> Study:
    """Read a volume and its label map, check them, and put them on one grid.

    Args:
        volume: CT file or DICOM folder (Hounsfield units).
        labels: Label map file or DICOM-SEG-free folder (integer ids).
        name: Study name.
        transform: Optional ITK transform file mapping label-frame points to image-frame points; the image is
            resampled (linear, −1024 HU outside) onto the label map's grid.
        resample_labels: When the grids differ, resample the labels nearest-neighbour onto the image grid instead
            of stopping.
        max_memory_fraction: Refuse a study whose working set would exceed this fraction of available memory.
        bytes_per_voxel: Working-set estimate per voxel (image, labels, renderer copies).

    Raises:
        DataError: Unreadable inputs, NaN/inf intensities, non-integer or empty labels, disagreeing geometry
            (naming the difference), or a study too large for memory.
    """
    import SimpleITK as sitk

    image = read_image(volume, "volume")
    lab = read_image(labels, "label map")
    notes: list[str] = []
    n_vox = int(np.prod(lab.GetSize() if transform is not None else image.GetSize()))
    need = n_vox * bytes_per_voxel
    avail = available_memory_bytes()
    if need > max_memory_fraction * avail:
        raise DataError(
            f"study {name} needs about {need / 2**30:.1f} GiB at this resolution but only "
            f"{avail / 2**30:.1f} GiB is available; crop or downsample the volume first"
        )
    if transform is not None:
        tx = read_transform(transform)
        image = sitk.Resample(image, lab, tx, sitk.sitkLinear, -1024.0, sitk.sitkFloat32)
        notes.append("image resampled into the label frame through the study's transform file")
    else:
        diff = geometry_difference(image, lab)
        if diff is not None:
            if not resample_labels:
                raise DataError(
                    f"volume {Path(volume).name} and label map {Path(labels).name} disagree in {diff}; "
                    "pass --resample-labels to resample the labels onto the volume, or --transform if they were "
                    "re-oriented"
                )
            lab = sitk.Resample(lab, image, sitk.Transform(), sitk.sitkNearestNeighbor, 0, lab.GetPixelID())
            notes.append(f"labels resampled nearest-neighbour onto the volume grid ({diff})")
        else:
            lab.CopyInformation(image)  # identical within tolerance: share the exact geometry
    image = sitk.Cast(image, sitk.sitkFloat32)
    arr = sitk.GetArrayViewFromImage(image)
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise DataError(f"volume {Path(volume).name} has {bad} NaN or infinite voxels; fix or mask them first")
    lab = _integer_labels(lab, Path(labels).name)
    return Study(image=image, labels=lab, name=name, notes=notes)


def _integer_labels(lab: sitk.Image, label_name: str) -> sitk.Image:
    import SimpleITK as sitk

    arr = sitk.GetArrayViewFromImage(lab)
    if arr.dtype.kind == "f" and (not np.isfinite(arr).all() or not np.array_equal(arr, np.round(arr))):
        raise DataError(f"label map {label_name} has non-integer values; it must hold integer label ids")
    if arr.min() < 0:
        raise DataError(f"label map {label_name} has negative label ids")
    if not arr.any():
        raise DataError(f"label map {label_name} is empty (every voxel is 0)")
    top = int(arr.max())
    pixel = sitk.sitkUInt8 if top < 256 else sitk.sitkUInt16 if top < 65536 else sitk.sitkUInt32
    return lab if lab.GetPixelID() == pixel else sitk.Cast(lab, pixel)
