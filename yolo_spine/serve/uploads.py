"""Uploaded radiographs: recognise their kind by content, decode them as ``predict`` does, and say what is wrong.

The kind comes from the first bytes (PNG and JPEG signatures, a TIFF byte-order mark, DICOM's ``DICM`` at byte
128), never from the file name or the client's ``Content-Type``. The bytes go to a private temporary file with a
neutral name and through :func:`yolo_spine.io.xray.read_xray`, the reader every stage uses (16-bit PNG/TIFF and
DICOM windowed to 8 bits, ``MONOCHROME1`` inverted, compressed DICOM decoded), so the service sees exactly the
picture ``yolo_spine predict`` would. Every failure is an :class:`UploadError` carrying an HTTP status and one
sentence that names neither the file nor anything inside it.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Suffix of the temporary file per kind (``read_xray`` dispatches on it).
KIND_SUFFIX = {"png": ".png", "jpeg": ".jpg", "tiff": ".tif", "dicom": ".dcm"}
#: Signatures at the start of volume formats a client may send to ``/infer`` (answered with "not served yet").
VOLUME_SIGNATURES = (
    (b"\x1f\x8b", "a gzip file (a NIfTI volume?)"),
    (b"NRRD", "an NRRD volume"),
    (b"ObjectType", "a MetaImage (MHA) volume"),
)
#: NIfTI-1 magic at byte 344 of an uncompressed ``.nii``.
NIFTI_MAGIC = (b"n+1\x00", b"ni1\x00")


class UploadError(Exception):
    """An upload the service cannot use: ``status`` (an HTTP 4xx code) and one sentence (``str(err)``)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Radiograph:
    """A decoded upload.

    Attributes:
        kind: ``png``, ``jpeg``, ``tiff`` or ``dicom``.
        image_bgr: ``(H, W, 3)`` ``uint8`` BGR pixels the model sees (windowed, ``MONOCHROME1`` inverted).
        data: The uploaded bytes (the DICOM-SEG endpoint reads the source's header from them).
    """

    kind: str
    image_bgr: np.ndarray
    data: bytes

    @property
    def width(self) -> int:
        """Columns of the image."""
        return int(self.image_bgr.shape[1])

    @property
    def height(self) -> int:
        """Rows of the image."""
        return int(self.image_bgr.shape[0])


def sniff_kind(data: bytes) -> str | None:
    """Return ``png``, ``jpeg``, ``tiff`` or ``dicom`` from a file's first bytes, or ``None``."""
    if len(data) >= 132 and data[128:132] == b"DICM":  # first: a DICOM preamble may itself be a TIFF header
        return "dicom"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):  # classic and BigTIFF
        return "tiff"
    return None


def describe_unknown(data: bytes) -> str:
    """Say what an upload of no accepted kind seems to be (for the error sentence)."""
    if not data:
        return "the upload is empty"
    for sig, what in VOLUME_SIGNATURES:
        if data.startswith(sig):
            return f"the upload is {what}, not a radiograph"
    if data[344:348] in NIFTI_MAGIC:
        return "the upload is a NIfTI volume, not a radiograph"
    return "the upload is not a PNG, JPEG, TIFF or DICOM (Part 10, with its 128-byte preamble) image"


def decode_radiograph(data: bytes, allowed: tuple[str, ...]) -> Radiograph:
    """Recognise and decode an uploaded radiograph (the first frame of a multi-frame DICOM).

    Args:
        data: The uploaded bytes.
        allowed: Accepted kinds (the ``allowed_types`` option).

    Returns:
        The decoded :class:`Radiograph`.

    Raises:
        UploadError: 415 for a kind that is not accepted, 422 for a file of an accepted kind that does not decode.
    """
    from yolo_spine.errors import DataError
    from yolo_spine.io.xray import read_xray

    kind = sniff_kind(data)
    if kind is None:
        raise UploadError(415, describe_unknown(data) + f"; this service accepts {', '.join(allowed)}.")
    if kind not in allowed:
        raise UploadError(415, f"{kind.upper()} uploads are not accepted here (allowed: {', '.join(allowed)}).")
    fd, tmp = tempfile.mkstemp(prefix="yolo_spine_upload_", suffix=KIND_SUFFIX[kind])
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        try:
            x = read_xray(Path(tmp))
            image = x.bgr()
        except DataError as exc:
            reason = str(exc).replace(tmp, "the upload").replace(Path(tmp).name, "the upload").rstrip(".")
            raise UploadError(422, f"the {kind.upper()} upload cannot be read: {reason}.") from None
        except Exception as exc:  # decoders raise many types for a damaged file; none is a server fault
            raise UploadError(
                422, f"the {kind.upper()} upload cannot be decoded ({type(exc).__name__}): truncated or damaged."
            ) from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    if image.ndim != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise UploadError(422, f"the {kind.upper()} upload holds no 2D image.")
    return Radiograph(kind, image, data)
