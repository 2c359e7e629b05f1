"""The records ``ct2yolo`` writes (``studies/<study>.json``, ``manifest.json``) and returns, as types.

Types only: the keys and values are those the command writes. Label-id keys are ``int`` in the report
:func:`yolo_spine.ct.convert.convert_study` returns and ``str`` once read back from JSON (the manifest is built
from the reports read back), hence ``dict[Any, int]``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NotRequired, TypedDict, cast

from yolo_spine.batch import LedgerCounts
from yolo_spine.identifiers import InputRecord
from yolo_spine.provenance import RunManifest

#: A study's input files by role (``volume``, ``labels``, ``transform``: ``None`` when not given); a
#: pseudonymous study's records carry no ``name`` (``None``) unless full paths are recorded.
StudyInputs = dict[str, InputRecord | None]


class PlaneStats(TypedDict):
    """One plane's slices in a study report (``planes``)."""

    slices: int  # slices visited (every ``step``-th)
    written: int
    empty_skipped: int
    instances: int
    dropped_small: int


class ViewStats(TypedDict):
    """One DRR view's images in a study report (``views``); the hidden counts only with realism."""

    images: int
    instances: int
    dropped_small: int
    classes_missing: list[str]  # classes the canonical pose does not show
    clipped_hidden: NotRequired[int]
    dropped_hidden: NotRequired[int]


class StudyHead(TypedDict):
    """The first keys of a study report: the study, its inputs and how its labels were read."""

    study: str
    study_id: str  # "pseudonym" or "given"
    inputs: StudyInputs
    notes: list[str]
    geometry: dict[str, Any]  # yolo_spine.ct.sidecar.VolumeGeometry.to_json()
    unmapped_label_ids: dict[Any, int]  # source label id → voxels
    label_scheme_detected: NotRequired[str]


class StudyReport(StudyHead):
    """``studies/<study>.json``: what one study gave."""

    planes: dict[str, PlaneStats]
    views: dict[str, ViewStats]
    structures: dict[str, dict[str, int]]  # class → voxels, slice_instances, drr_instances, dropped_small
    images_per_split: dict[str, int]
    split: str  # the study's split, or "slab"


class StudyEntry(TypedDict):
    """One study in ``ct2yolo``'s manifest (``studies``)."""

    study: str
    study_id: str
    inputs: StudyInputs
    split: str
    images_per_split: dict[str, int]
    label_scheme: str | None
    unmapped_label_ids: dict[Any, int]
    structures: dict[str, dict[str, int]]


class Ct2YoloManifest(RunManifest):
    """``ct2yolo``'s ``manifest.json``."""

    anatomy: str
    kind: str  # "ct2yolo"
    studies: list[StudyEntry]
    images_per_split: dict[str, int]  # totals
    failed_studies: NotRequired[dict[str, str]]  # study → reason (--skip-failed)


class Ct2YoloResult(Ct2YoloManifest):
    """What :func:`yolo_spine.ct.convert.ct2yolo` returns: the manifest plus this run's accounting (not written)."""

    ledger: LedgerCounts


def read_study_report(path: Path) -> StudyReport:
    """A study report as ``ct2yolo`` wrote it (read back from the ledger's finished study; not validated)."""
    return cast(StudyReport, json.loads(path.read_text(encoding="utf-8")))


__all__ = [
    "Ct2YoloManifest",
    "Ct2YoloResult",
    "PlaneStats",
    "StudyEntry",
    "StudyHead",
    "StudyInputs",
    "StudyReport",
    "ViewStats",
    "read_study_report",
]
