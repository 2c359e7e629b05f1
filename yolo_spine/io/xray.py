"""Read X-ray images the way clinics store them and hand YOLO the 8-bit picture a radiologist would see.

One function, :func:`read_xray`, serves every command that reads X-rays (``merge``, ``augment``,
``predict``, ``review``): 8-bit PNG/JPEG pass through unchanged; 16-bit PNG/TIFF and DICOM are windowed
to 8 bits (Ultralytics would otherwise keep only the high byte, which turns a 12-bit X-ray almost black);
DICOM ``MONOCHROME1`` (bone dark) is inverted so bone is bright; compressed DICOM transfer syntaxes
(JPEG, JPEG-LS, JPEG 2000, RLE) decode through pylibjpeg.

No patient identifier ever leaves this module: :class:`XrayImage` carries pixels and acquisition facts
(bits, window, spacing), never names, IDs or dates from the DICOM header.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from yolo_spine.errors import DataError

#: File suffixes read as DICOM (files without a suffix are probed for the ``DICM`` preamble too).
DICOM_SUFFIXES = {".dcm", ".dicom", ".dic"}
#: Raster suffixes OpenCV reads.
RASTER_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".jp2"}
#: Every suffix :func:`read_xray` accepts.
XRAY_SUFFIXES = DICOM_SUFFIXES | RASTER_SUFFIXES

#: Percentiles of the auto window for images without a stored window (robust to collimator edges and labels).
AUTO_WINDOW_PERCENTILES = (0.5, 99.5)


@dataclass
class XrayImage:
    """An X-ray as 8-bit pixels plus the acquisition facts needed to interpret them.

    Attributes:
        pixels: ``uint8`` array, ``(H, W)`` for grayscale or ``(H, W, 3)`` BGR for colour sources.
        source_bits: Bits per sample in the file (8, 10, 12, 15, 16 …).
        window: ``(center, width)`` applied in source units (after the DICOM modality LUT), or ``None``
            when the source was already 8-bit.
        window_source: ``"none"``, ``"dicom"`` (the file's VOI window/LUT), ``"percentile"`` or ``"user"``.
        inverted: Whether ``MONOCHROME1`` was inverted.
        pixel_spacing_mm: ``(row, column)`` spacing in mm when the file records it, else ``None``.
        n_frames: Number of frames in the file (multi-frame DICOM); ``pixels`` holds the requested one.
    """

    pixels: np.ndarray
    source_bits: int
    window: tuple[float, float] | None = None
    window_source: str = "none"
    inverted: bool = False
    pixel_spacing_mm: tuple[float, float] | None = None
    n_frames: int = 1

    @property
    def needs_conversion(self) -> bool:
        """Whether the stored file cannot be given to Ultralytics as it is (windowed or inverted)."""
        return self.window is not None or self.inverted

    def bgr(self) -> np.ndarray:
        """Return the pixels as a 3-channel ``uint8`` BGR image (what Ultralytics predicts on)."""
        if self.pixels.ndim == 2:
            return cv2.cvtColor(self.pixels, cv2.COLOR_GRAY2BGR)
        return self.pixels


def list_images(folder: str | Path, suffixes: set[str] | frozenset[str] = XRAY_SUFFIXES) -> list[Path]:
    """The images directly in ``folder`` (suffix in ``suffixes``, any case), sorted; ``[]`` for a missing folder.

    Sorted by path, as Ultralytics sorts a split's images: the order training lists and reviews rely on.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in suffixes)


def is_dicom(path: str | Path) -> bool:
    """Return whether a file is DICOM, by suffix or by the ``DICM`` marker at byte 128."""
    path = Path(path)
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    if path.suffix:
        return False
    try:
        with open(path, "rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def window_to_uint8(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """Apply a linear window (DICOM PS3.3 C.11.2.1.2 'LINEAR') and return ``uint8``.

    Args:
        values: Any numeric array (source units).
        center: Window centre.
        width: Window width (>= 1).

    Returns:
        ``uint8`` array of the same shape: values below the window → 0, above → 255.
    """
    width = max(float(width), 1.0)
    lo = float(center) - 0.5 - (width - 1.0) / 2.0
    scaled = (values.astype(np.float32) - lo) / max(width - 1.0, 1.0)
    return (np.clip(scaled, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def percentile_window(
    values: np.ndarray, percentiles: tuple[float, float] = AUTO_WINDOW_PERCENTILES
) -> tuple[float, float]:
    """Return ``(center, width)`` spanning the given percentiles of ``values`` (robust auto window)."""
    sample = values if values.size <= 4_000_000 else values.reshape(-1)[:: values.size // 2_000_000 + 1]
    lo, hi = np.percentile(sample, percentiles)
    if hi <= lo:  # constant image: any window shows it
        hi = lo + 1.0
    return float((lo + hi) / 2.0), float(hi - lo)


def read_xray(
    path: str | Path,
    window: tuple[float, float] | str = "auto",
    frame: int = 0,
) -> XrayImage:
    """Read an X-ray file (PNG, JPEG, TIFF, DICOM) as an 8-bit image a radiologist would recognise.

    Args:
        path: Image file.
        window: ``"auto"`` (the DICOM file's own window if it has one, else the 0.5–99.5 percentile
            range), ``"percentile"`` (always the percentile range), or an explicit ``(center, width)``
            in source units (after the modality LUT for DICOM). 8-bit rasters are never windowed.
        frame: Frame to read from a multi-frame DICOM.

    Returns:
        The :class:`XrayImage`.

    Raises:
        DataError: If the file is missing, unreadable, empty, or has an unsupported layout.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"image not found: {path}")
    if is_dicom(path):
        return _read_dicom(path, window, frame)
    return _read_raster(path, window)


def _read_raster(path: Path, window: tuple[float, float] | str) -> XrayImage:
    # imdecode on the bytes handles non-ASCII paths, and IMREAD_UNCHANGED keeps 16 bits and alpha.
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}") from None
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None or img.size == 0:
        raise DataError(f"{path} is not a readable image")
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3]  # drop alpha; X-ray exports sometimes carry an opaque one
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3 and img.dtype != np.uint8 and _is_gray(img):
        img = img[:, :, 0]
    if img.dtype == np.uint8:
        return XrayImage(pixels=img, source_bits=8)
    bits = 8 * img.dtype.itemsize if np.issubdtype(img.dtype, np.integer) else 32  # an integer type's bits
    values = img.astype(np.float32)
    center, width, source = _choose_window(values, window, dicom_window=None)
    return XrayImage(
        pixels=window_to_uint8(values, center, width), source_bits=bits, window=(center, width), window_source=source
    )


def _is_gray(img: np.ndarray) -> bool:
    return bool(np.array_equal(img[:, :, 0], img[:, :, 1]) and np.array_equal(img[:, :, 0], img[:, :, 2]))


def _choose_window(
    values: np.ndarray, window: tuple[float, float] | str, dicom_window: tuple[float, float] | None
) -> tuple[float, float, str]:
    if isinstance(window, str):
        if window == "auto" and dicom_window is not None:
            return dicom_window[0], dicom_window[1], "dicom"
        if window in {"auto", "percentile"}:
            c, w = percentile_window(values)
            return c, w, "percentile"
        raise DataError(f"window must be 'auto', 'percentile' or (center, width), not {window!r}")
    center, width = (float(v) for v in window)
    return center, width, "user"


def _first(value: Any) -> float | None:
    """DICOM WindowCenter/Width may be multi-valued; the first is the default presentation."""
    if value is None:
        return None
    try:
        return float(value[0]) if hasattr(value, "__len__") and not isinstance(value, str) else float(value)
    except (TypeError, ValueError, IndexError):
        return None


def _read_dicom(path: Path, window: tuple[float, float] | str, frame: int) -> XrayImage:
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import apply_modality_lut

    try:
        ds = pydicom.dcmread(path, force=path.suffix.lower() in DICOM_SUFFIXES)
    except (InvalidDicomError, OSError, EOFError, ValueError) as exc:
        raise DataError(f"{path} is not a readable DICOM file ({type(exc).__name__})") from None
    if "PixelData" not in ds:
        raise DataError(f"{path} is a DICOM file without pixel data")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = ds.pixel_array
    except Exception as exc:  # decoder plug-ins raise many types; all mean "cannot decode"
        ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        name = getattr(ts, "name", str(ts))
        raise DataError(f"cannot decode the pixels of {path} (transfer syntax {name}): {exc}") from None

    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if n_frames > 1:
        if not 0 <= frame < n_frames:
            raise DataError(f"{path} has {n_frames} frames; frame {frame} does not exist")
        arr = arr[frame]
    elif frame != 0:
        raise DataError(f"{path} has one frame; frame {frame} does not exist")

    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    pixel_spacing = (float(spacing[0]), float(spacing[1])) if spacing else None
    if pixel_spacing is not None and min(pixel_spacing) <= 0:  # some CR writers store 0\0 for "unknown"
        pixel_spacing = None
    bits = int(ds.get("BitsStored", arr.dtype.itemsize * 8) or 8)

    if samples == 3:  # colour DICOM (secondary capture): pydicom gives RGB (YBR converted)
        rgb = arr if arr.dtype == np.uint8 else window_to_uint8(arr, *percentile_window(arr))
        return XrayImage(
            pixels=cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
            source_bits=bits,
            n_frames=n_frames,
            pixel_spacing_mm=pixel_spacing,
        )
    if samples != 1:
        raise DataError(f"{path} has {samples} samples per pixel; only grayscale or RGB DICOM is supported")

    values = np.asarray(apply_modality_lut(arr, ds), dtype=np.float32)
    dicom_window = None
    center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    if center is not None and width is not None and width > 0:
        dicom_window = (center, width)
    elif "VOILUTSequence" in ds and window == "auto":
        from pydicom.pixels import apply_voi_lut

        lut_values = np.asarray(apply_voi_lut(values, ds), dtype=np.float32)
        lo, hi = float(lut_values.min()), float(lut_values.max())
        pixels = window_to_uint8(lut_values, (lo + hi) / 2.0, max(hi - lo, 1.0))
        inverted = photometric == "MONOCHROME1"
        return XrayImage(
            pixels=255 - pixels if inverted else pixels,
            source_bits=bits,
            window=(lo, hi),
            window_source="dicom",
            inverted=inverted,
            pixel_spacing_mm=pixel_spacing,
            n_frames=n_frames,
        )

    inverted = photometric == "MONOCHROME1"
    if arr.dtype == np.uint8 and dicom_window is None and window == "auto":  # already 8-bit: keep it as stored
        return XrayImage(
            pixels=255 - arr if inverted else arr.copy(),
            source_bits=bits,
            inverted=inverted,
            pixel_spacing_mm=pixel_spacing,
            n_frames=n_frames,
        )
    c, w, source = _choose_window(values, window, dicom_window)
    pixels = window_to_uint8(values, c, w)
    if inverted:  # MONOCHROME1: the minimum is white; invert so bone is bright as in MONOCHROME2
        pixels = 255 - pixels
    return XrayImage(
        pixels=pixels,
        source_bits=bits,
        window=(c, w),
        window_source=source,
        inverted=inverted,
        pixel_spacing_mm=pixel_spacing,
        n_frames=n_frames,
    )


def write_png(path: str | Path, pixels: np.ndarray) -> Path:
    """Write an 8-bit image as PNG, raising :class:`DataError` when OpenCV cannot encode it."""
    path = Path(path)
    ok, buf = cv2.imencode(".png", pixels)
    if not ok:
        raise DataError(f"cannot encode an image for {path}")
    path.write_bytes(buf.tobytes())
    return path
