"""The records ``merge`` and ``augment`` write into a dataset's ``manifest.json`` and return, as types.

Types only: the keys and values are those the commands write. Both manifests extend
:class:`yolo_spine.provenance.RunManifest` with a ``summary`` (also the command's return value, with ``out``
added) and one :class:`ImageEntry` per listed image (``check`` and ``augment`` read the groups back).
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

from yolo_spine.identifiers import InputRecord
from yolo_spine.provenance import RunManifest


class ImageEntry(TypedDict):
    """One listed file's fate in a dataset's manifest (``images``).

    ``merge``: ``source`` (``<tag>/<path in the export>``), ``group``, ``file`` (``None`` unless kept), ``split``,
    ``status`` (``kept``, ``duplicate``, ``unreadable``, ``unlisted``, ``orphan_label``) and the keys of that
    status. ``augment``: ``file``, ``split``, ``group``, ``source``, ``status`` (``kept`` or ``augmented``).
    """

    file: str | None
    split: str | None
    group: str | None  # None for an unlisted image or an orphan label file
    source: str
    status: str
    sha256: NotRequired[str | None]
    instances_in: NotRequired[int]
    instances_kept: NotRequired[int]
    reason: NotRequired[str]  # unreadable: why
    duplicate_of: NotRequired[str | None]  # duplicate: the kept file with the same bytes
    converted: NotRequired[str]  # a high-bit-depth image windowed to an 8-bit PNG


# "in" is a keyword, so these two use the functional form.
MergeInstances = TypedDict(
    "MergeInstances",
    {
        "in": int,  # = kept + sum(dropped) (checked before anything is written)
        "kept": int,
        "clipped": int,
        "remapped": dict[str, int],  # "<source name>-><class>" → instances
        "dropped": dict[str, int],  # reason (merge.DROP_REASONS, in that order) → instances
    },
)

AugmentInstances = TypedDict(
    "AugmentInstances",
    {
        "in": int,  # source instances, once per copy
        "out": int,  # written instances = kept sources + split pieces (checked)
        "split_pieces": int,
        "dropped": dict[str, int],  # reason (augment.DROP_REASONS, in that order) → instances
    },
)


class LeakageFixed(TypedDict):
    """Groups (and their images) moved so that no group straddles splits."""

    groups: int
    images_moved: int


class MergeSummary(TypedDict):
    """``merge``'s summary (the manifest's ``summary``; the function's return value adds ``out``)."""

    images: dict[str, int]  # split → images
    images_in: int
    orphan_label_files: int
    image_status: dict[str, int]  # status → files
    instances: MergeInstances
    class_counts: dict[str, dict[str, int]]  # split → class (registry order) → instances
    leakage_fixed: LeakageFixed
    groups: dict[str, int]  # split → groups
    out: NotRequired[str]


class SourceRecord(InputRecord):
    """One export in ``merge``'s manifest: its input record plus what was read from it."""

    tag: str
    format: str
    names: list[str]
    images: int


class MergeManifest(RunManifest):
    """``merge``'s ``manifest.json``."""

    anatomy: str
    class_map: dict[str, str | None]  # source name → class (None: dropped)
    sources: list[SourceRecord]
    summary: MergeSummary
    instances: MergeInstances
    images: list[ImageEntry]


class AugmentCopy(TypedDict):
    """One augmented copy in ``augment``'s manifest (``copies``)."""

    file: str  # images/train/<stem>_aug<k>.<ext>
    source: str  # images/train/<source file>
    params: dict[str, Any]  # what was applied (augment.AugmentedSample.params)
    instances: int


class AugmentSummary(TypedDict):
    """``augment``'s summary (the manifest's ``summary``; the function's return value adds ``out``)."""

    images: dict[str, int]  # split → images (train counts the copies)
    copies: int
    copies_per_image: int
    instances: AugmentInstances
    seconds: float
    copies_per_s: float | None
    out: NotRequired[str]


class AugmentManifest(RunManifest):
    """``augment``'s ``manifest.json``."""

    anatomy: str
    summary: AugmentSummary
    dropped: dict[str, int]
    copies: list[AugmentCopy]
    images: list[ImageEntry]


__all__ = [
    "AugmentCopy",
    "AugmentInstances",
    "AugmentManifest",
    "AugmentSummary",
    "ImageEntry",
    "LeakageFixed",
    "MergeInstances",
    "MergeManifest",
    "MergeSummary",
    "SourceRecord",
]
