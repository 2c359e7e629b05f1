"""CT volumes on MONAI Label's ``/infer``: slices → predict → lift, the pipeline ``pacs`` runs for a CT series.

A volume (NIfTI, NRRD or MetaImage, in Hounsfield units) is written to a private temporary folder, cut into the
anatomy's planes, predicted slice by slice and lifted back into the volume's own grid; the answer is a label
volume (class id + 1, 0 = background) with the upload's geometry (size, spacing, origin, direction).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from yolo_spine.serve.uploads import NIFTI_MAGIC, UploadError

if TYPE_CHECKING:
    from yolo_spine.serve.models import ServedModel

#: Leading bytes of the volume formats served, with the file suffix SimpleITK reads them by.
VOLUME_SUFFIXES = ((b"\x1f\x8b", ".nii.gz"), (b"NRRD", ".nrrd"), (b"ObjectType", ".mha"))


def volume_suffix(data: bytes) -> str | None:
    """The suffix of an uploaded CT volume (``.nii.gz``, ``.nii``, ``.nrrd``, ``.mha``), ``None`` for anything else."""
    for signature, suffix in VOLUME_SUFFIXES:
        if data.startswith(signature):
            return suffix
    return ".nii" if data[344:348] in NIFTI_MAGIC else None


def complete_nifti(data: bytes, suffix: str) -> bool:
    """Whether a NIfTI-1 upload holds every voxel its header announces (SimpleITK reads a cut-off file silently).

    Other formats return ``True``: their readers fail on a short file.
    """
    import gzip
    import struct
    import zlib

    if suffix not in (".nii", ".nii.gz"):
        return True
    if suffix == ".nii.gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error):
            return False
    if len(data) < 348:
        return False
    for order in ("<", ">"):  # the header's byte order: sizeof_hdr is 348
        if struct.unpack(order + "i", data[:4])[0] == 348:
            break
    else:
        return False
    dims = struct.unpack(order + "8h", data[40:56])
    bitpix = struct.unpack(order + "h", data[72:74])[0]
    vox_offset = struct.unpack(order + "f", data[108:112])[0]
    if not 1 <= dims[0] <= 7 or bitpix <= 0:
        return False
    voxels = int(np.prod([max(1, d) for d in dims[1 : dims[0] + 1]]))
    return len(data) >= int(vox_offset) + voxels * bitpix // 8


def segment_volume(served: ServedModel, data: bytes, suffix: str, conf: float) -> tuple[bytes, dict[str, Any]]:
    """Segment an uploaded CT volume with a served model.

    Args:
        served: The model (its weights file and anatomy registry are used).
        data: The upload's bytes.
        suffix: Its format, from :func:`volume_suffix`.
        conf: Confidence threshold of the 2D instances lifted.

    Returns:
        ``(label volume as .nii.gz bytes, {"slices": per plane, "instances": 2D instances lifted})``.

    Raises:
        UploadError: 415 for a model without an anatomy; 422 for a volume that cannot be read or is not 3D.
    """
    import SimpleITK as sitk

    from yolo_spine.pacs.options import PacsOptions
    from yolo_spine.pacs.pipeline import segment_ct
    from yolo_spine.registry import load_registry

    if served.anatomy is None or served.weights is None:
        raise UploadError(
            415, "CT volumes need a model of a shipped anatomy (spine, teeth or brain); this one has none."
        )
    if not complete_nifti(data, suffix):
        raise UploadError(422, "the upload looks like a CT volume but cannot be read (truncated or damaged).")
    with tempfile.TemporaryDirectory(prefix="yolo_spine_serve_") as tmp:
        work = Path(tmp)
        src = work / f"volume{suffix}"
        src.write_bytes(data)
        try:
            image = sitk.ReadImage(str(src))
        except RuntimeError:
            raise UploadError(
                422, "the upload looks like a CT volume but cannot be read (truncated or damaged)."
            ) from None
        if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
            raise UploadError(422, "a CT volume must be a 3D single-channel image in Hounsfield units.")
        result = segment_ct(served.weights, image, work, PacsOptions.load(conf=conf), load_registry(served.anatomy))
        labels = sitk.GetImageFromArray(result.labels_zyx.astype(np.uint16))
        labels.CopyInformation(image)
        out = work / "label.nii.gz"
        sitk.WriteImage(labels, str(out), True)
        return out.read_bytes(), {"slices": result.slices, "instances": result.instances}
