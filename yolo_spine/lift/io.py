"""Inputs of ``lift``: YOLO-seg label files matched to the CT sidecars ``ct2yolo`` wrote beside their images.

``LABELS_DIR`` is either a ``ct2yolo`` dataset root (``labels/<split>/<stem>.txt`` ground truth beside
``sidecars/<split>/<stem>.json``) or a ``predict --save-txt`` folder (``labels/<stem>.txt`` with a trailing
confidence), in which case ``sidecars`` names the ``ct2yolo`` root. Label files are matched to sidecars by
stem. A sidecar without a label file is an image without instances (Ultralytics writes no file for those); a
label file without a sidecar cannot be placed and is counted. One lift covers one study.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from yolo_spine.ct.sidecar import find_sidecars, read_sidecar
from yolo_spine.errors import DataError, UserError
from yolo_spine.io.labels import SegInstance, read_yolo_labels
from yolo_spine.layout import PLANES

log = logging.getLogger("yolo_spine")


@dataclass
class LiftItem:
    """One 2D image to lift: its sidecar and its instances.

    Attributes:
        stem: Image stem (shared by the image, label and sidecar files).
        sidecar: The parsed sidecar (see :mod:`yolo_spine.ct.sidecar`).
        instances: Instances read from the label file (none when there is no label file).
        label_path: The label file, ``None`` when the image has none.
    """

    stem: str
    sidecar: dict[str, Any]
    instances: list[SegInstance]
    label_path: Path | None

    @property
    def kind(self) -> str:
        """``"slice"`` or ``"drr"``."""
        return str(self.sidecar["kind"])


@dataclass
class LiftInputs:
    """Everything ``lift`` read, with the accounting of what it could not use.

    Attributes:
        study: The study all items belong to.
        anatomy: Registry name (or YAML path) the sidecars name.
        slices: Slice items of the selected planes.
        drrs: DRR items.
        counts: ``label_files``, ``labels_without_sidecar``, ``sidecars``, ``sidecars_without_labels``,
            ``other_studies`` (sidecars left out by ``study``), ``other_planes`` (slices left out by ``planes``),
            ``box_rows`` and ``malformed_rows`` (rows of the label files that are not polygons).
        unmatched_labels: Up to 20 label files without a sidecar, for the manifest.
    """

    study: str
    anatomy: str
    slices: list[LiftItem] = field(default_factory=list)
    drrs: list[LiftItem] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    unmatched_labels: list[str] = field(default_factory=list)


def _label_dir(labels_dir: Path, split: str | None) -> Path:
    """The folder holding the label files (``labels/<split>``, ``labels`` or the folder itself)."""
    base = labels_dir / "labels" if (labels_dir / "labels").is_dir() else labels_dir
    if split is not None:
        if (base / split).is_dir():
            return base / split
        if any(p.is_dir() for p in base.iterdir()):
            raise UserError(f"{labels_dir} has no labels/{split} folder")
    return base


def _sidecar_roots(labels_dir: Path, sidecars: str | Path | None, split: str | None) -> list[Path]:
    root = Path(sidecars) if sidecars is not None else labels_dir
    if not root.is_dir():
        raise UserError(f"sidecar folder not found: {root}")
    base = root / "sidecars" if (root / "sidecars").is_dir() else root
    if split is not None and (base / split).is_dir():
        return [base / split]
    return [base]


def read_lift_inputs(
    labels_dir: str | Path,
    sidecars: str | Path | None = None,
    split: str | None = None,
    study: str | None = None,
    planes: tuple[str, ...] | None = None,
) -> LiftInputs:
    """Find the label files and sidecars of one study and pair them.

    Args:
        labels_dir: A ``ct2yolo`` dataset root or a ``predict`` output folder (with ``labels/``).
        sidecars: The ``ct2yolo`` root (or its ``sidecars`` folder) when ``labels_dir`` holds no sidecars.
        split: Only this split (``labels/<split>``, ``sidecars/<split>``); ``None``: every split.
        study: The study to lift when the sidecars hold several.
        planes: Slice planes to use; ``None``: all there are.

    Returns:
        The paired inputs with their counts.

    Raises:
        UserError: No sidecars found, no label file matches a sidecar, several studies without ``study``,
            an unknown plane, or sidecars of one study that disagree on anatomy or volume geometry.
    """
    labels_dir = Path(labels_dir)
    if not labels_dir.is_dir():
        raise UserError(f"labels folder not found: {labels_dir}")
    if planes is not None:
        bad = [p for p in planes if p not in PLANES]
        if bad:
            raise UserError(f"unknown plane '{bad[0]}'; choose from {', '.join(PLANES)}")
    index = find_sidecars(_sidecar_roots(labels_dir, sidecars, split))
    if not index:
        where = sidecars or labels_dir
        raise UserError(f"no CT sidecars found under {where}; point --sidecars at the ct2yolo output folder")
    # ct2yolo names a study's files <study>_*: with --study, only those sidecars are read (a batch over thousands
    # of studies would otherwise parse every study's sidecars once per study); the others count as other studies.
    # Files renamed away from that pattern: every sidecar is read, as without --study.
    named = [stem for stem in index if study is not None and stem.startswith(f"{study}_")]
    chosen = named or list(index)
    side = {stem: read_sidecar(index[stem]) for stem in chosen}
    study = _one_study(side, study)
    label_files, unmatched = _label_files(labels_dir, split, index.keys())
    counts = Counter(
        label_files=len(label_files),
        labels_without_sidecar=len(unmatched),
        sidecars=0,
        sidecars_without_labels=0,
        other_studies=len(index) - len(chosen),
        other_planes=0,
        box_rows=0,
        malformed_rows=0,
    )
    out = LiftInputs(study=study, anatomy="", unmatched_labels=unmatched[:20])
    out.anatomy = _pair(side, label_files, study, planes, counts, out)
    if counts["box_rows"] or counts["malformed_rows"]:
        log.warning(
            "%d box row(s) and %d malformed row(s) in the label files are not polygons and are not lifted",
            counts["box_rows"],
            counts["malformed_rows"],
        )
    out.counts = dict(counts)
    return out


def _one_study(side: dict[str, dict[str, Any]], study: str | None) -> str:
    """The study to lift: the one given (it must be there), else the only one the sidecars hold.

    Raises:
        UserError: Several studies and none chosen, or the chosen one is not there.
    """
    studies = Counter(str(s["study"]) for s in side.values())
    if study is None:
        if len(studies) > 1:
            listed = ", ".join(f"{k} ({n})" for k, n in sorted(studies.items()))
            raise UserError(f"the sidecars hold {len(studies)} studies ({listed}); choose one with --study")
        return next(iter(studies))
    if study not in studies:
        raise UserError(f"no sidecars of study '{study}'; found: {', '.join(sorted(studies))}")
    return study


def _label_files(
    labels_dir: Path, split: str | None, sidecar_stems: Iterable[str]
) -> tuple[dict[str, Path], list[str]]:
    """The label files by stem, and the stems that have no sidecar (warned about; all of them is an error).

    Raises:
        UserError: Label files exist but none has a sidecar (the wrong ``--sidecars``).
    """
    label_root = _label_dir(labels_dir, split)
    label_files = {p.stem: p for p in sorted(label_root.rglob("*.txt"))}
    stems = set(sidecar_stems)  # every sidecar found, of any study
    unmatched = sorted(stem for stem in label_files if stem not in stems)
    if label_files and len(unmatched) == len(label_files):
        raise UserError(
            f"none of the {len(label_files)} label files in {label_root} has a sidecar (first: {unmatched[0]}.txt); "
            "point --sidecars at the ct2yolo output the images came from"
        )
    if unmatched:
        log.warning("%d label file(s) have no sidecar and are not lifted (first: %s.txt)", len(unmatched), unmatched[0])
    return label_files, unmatched


def _pair(
    side: dict[str, dict[str, Any]],
    label_files: dict[str, Path],
    study: str,
    planes: tuple[str, ...] | None,
    counts: Counter[str],
    out: LiftInputs,
) -> str:
    """Pair the study's sidecars (of the selected planes) with their label files into ``out``; count the rest.

    Returns:
        The anatomy the sidecars name.

    Raises:
        DataError: The study's sidecars name several anatomies or volume geometries.
        UserError: No sidecar of the study in the selected planes.
    """
    anatomies: set[str] = set()
    volumes: set[tuple] = set()
    for stem, sc in sorted(side.items()):
        if str(sc["study"]) != study:
            counts["other_studies"] += 1
            continue
        if sc["kind"] == "slice" and planes is not None and sc["plane"] not in planes:
            counts["other_planes"] += 1
            continue
        counts["sidecars"] += 1
        path = label_files.get(stem)
        if path is None:
            counts["sidecars_without_labels"] += 1
            instances: list[SegInstance] = []
        else:
            parsed = read_yolo_labels(path, with_conf=None)
            counts["box_rows"] += parsed.box_rows
            counts["malformed_rows"] += len(parsed.malformed)
            instances = parsed.instances
        anatomies.add(str(sc["anatomy"]))
        volumes.add(tuple(tuple(v) if isinstance(v, list) else v for v in sc["volume"].values()))
        item = LiftItem(stem, sc, instances, path)
        (out.slices if sc["kind"] == "slice" else out.drrs).append(item)
    if len(anatomies) > 1:
        raise DataError(f"sidecars of study '{study}' name several anatomies: {', '.join(sorted(anatomies))}")
    if len(volumes) > 1:
        raise DataError(f"sidecars of study '{study}' disagree on the volume geometry; were they written by one run?")
    if not out.slices and not out.drrs:
        raise UserError(f"no sidecars of study '{study}' in the selected planes {', '.join(planes or PLANES)}")
    return anatomies.pop()
