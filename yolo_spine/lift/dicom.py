"""``lift --dicom-seg``: the lifted label map as a DICOM Segmentation of the series ``ct2yolo`` read.

No DICOM UID is stored anywhere of ours (sidecars, study reports, manifests, logs): UIDs link records to a
patient, and DICOM PS3.15 replaces them when data is de-identified. So the SEG writer reads the source series
given with ``--source-dicom`` when it writes, and checks that it is the right one:

* the study's pseudonymous id (``s-<hex>``, which ``ct2yolo`` derived from the series' SOP Instance UIDs and the
  ``study_id_salt``) is recomputed from the series and must equal the sidecars' study id;
* the series' grid (size, spacing, origin, direction) must equal the sidecars' volume grid, so the label map's
  voxel ``[k, j, i]`` is pixel ``(j, i)`` of the series' ``k``-th instance.

A study named with ``--study`` cannot be recomputed; its series is checked by its grid only (and logged).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yolo_spine.errors import UserError

if TYPE_CHECKING:
    import numpy as np

    from yolo_spine.ct.sidecar import VolumeGeometry
    from yolo_spine.io.dicom_seg import AlgorithmInfo
    from yolo_spine.registry import AnatomyRegistry

log = logging.getLogger("yolo_spine")

_PSEUDONYM = re.compile(r"s-[0-9a-f]{10}")


@dataclass
class DicomSource:
    """The checked source series of a lift (headers only) and what made the labels."""

    instances: list[Any]
    algorithm: AlgorithmInfo


def recorded_salt(sidecar_root: Path) -> str | None:
    """The ``study_id_salt`` the ``ct2yolo`` run manifest beside the sidecars records, if any."""
    for folder in (sidecar_root, *sidecar_root.parents[:2]):
        path = folder / "manifest.json"
        if not path.is_file():
            continue
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if doc.get("command") == "ct2yolo":
            salt = (doc.get("options") or {}).get("study_id_salt")
            return str(salt) if salt is not None else None
    return None


def lift_algorithm(labels_dir: Path) -> AlgorithmInfo:
    """What made the lifted labels: the model of a ``predict`` run (its ``run.json``), else ground truth."""
    from yolo_spine.io.dicom_seg import NOT_FOR_CLINICAL_USE, AlgorithmInfo, algorithm_for

    run = labels_dir / "run.json"
    if run.is_file():
        try:
            doc = json.loads(run.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            doc = {}
        if doc.get("command") == "predict":
            digest = ((doc.get("inputs") or {}).get("weights") or {}).get("sha256")
            base = algorithm_for(None)
            return AlgorithmInfo(f"yolo_spine YOLO-seg, {NOT_FOR_CLINICAL_USE}", base.version, digest)
    return algorithm_for(None)


def check_source_series(source_dicom: Path, study: str, geometry: VolumeGeometry, salt: str) -> list[Any]:
    """Read ``--source-dicom`` (headers) and check it is the series the sidecars of ``study`` were cut from.

    Raises:
        UserError: Not a DICOM series, another study (pseudonyms differ), or another grid; one sentence each.
    """
    from yolo_spine.identifiers import pseudonym
    from yolo_spine.io.dicom_seg import geometry_mismatch, read_series, series_geometry
    from yolo_spine.io.volume import volume_identity

    if not Path(source_dicom).is_dir():
        raise UserError(f"--source-dicom {source_dicom} is not a folder holding the DICOM series")
    if _PSEUDONYM.fullmatch(study):
        got = pseudonym(volume_identity(source_dicom), salt)
        if got != study:
            raise UserError(
                f"--source-dicom is not the series study {study} was made from (it gives study id {got} with "
                "this salt); pass the series ct2yolo read, and --study-salt if ct2yolo was given one"
            )
    else:
        log.info("study '%s' was named by the user: --source-dicom is checked by its grid only", study)
    instances = read_series(source_dicom, pixels=False)
    diff = geometry_mismatch(series_geometry(instances), geometry)
    if diff is not None:
        raise UserError(f"--source-dicom's grid differs from the volume the sidecars describe ({diff})")
    return instances


def prepare(
    labels_dir: Path,
    source_dicom: str | Path | None,
    study: str,
    geometry: VolumeGeometry,
    sidecar_root: Path,
    study_salt: str | None,
) -> DicomSource:
    """Check ``--source-dicom`` before any lifting work; return the series and the algorithm identification."""
    if source_dicom is None:
        raise UserError("--dicom-seg needs --source-dicom: the DICOM series ct2yolo read for this study")
    salt = study_salt if study_salt is not None else (recorded_salt(sidecar_root) or "")
    instances = check_source_series(Path(source_dicom), study, geometry, salt)
    return DicomSource(instances, lift_algorithm(labels_dir))


def write(labels_zyx: np.ndarray, source: DicomSource, registry: AnatomyRegistry, out: Path, overwrite: bool) -> Path:
    """Write the lifted labels as the SEG (see :func:`yolo_spine.io.dicom_seg.write_volume_seg`)."""
    from yolo_spine.io.dicom_seg import write_volume_seg

    return write_volume_seg(labels_zyx, source.instances, registry, out, source.algorithm, overwrite=overwrite)
