"""``lift --csv``: many studies through the shared batch path (:mod:`yolo_spine.batch`), resumable, on any executor.

The study list has one row per study: ``study`` (the id the sidecars carry, e.g. ``s-3f2a…`` from ``ct2yolo``),
and optionally ``labels_dir`` (default: the command's ``LABELS_DIR``), ``sidecars`` and ``split``, with the
meaning of the single-study flags; relative paths are taken from the CSV's folder. Output folder::

    OUT/studies/<study>.nii.gz            the lifted label map (class id + 1), as a single lift writes it
    OUT/studies/<study>.json              its run record (lift's manifest)
    OUT/studies/<study>.centroids.json    its DRR centroids (when the study has DRRs)
    OUT/ledger/<study>.json               the study's ledger record (inputs' and outputs' SHA-256, seconds, memory)
    OUT/manifest.json                     the run: options, per-study classes and counts, failed studies

A study's inputs, for the ledger, are the label files and sidecars named ``<study>_*`` (how ``ct2yolo`` and
``predict`` name a study's images): a study is lifted again when they, the options or the anatomy change.
"""

from __future__ import annotations

import functools
import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NotRequired, TypedDict, cast

from yolo_spine import batch as batch_path
from yolo_spine.batch import LedgerCounts
from yolo_spine.errors import UserError
from yolo_spine.lift.io import _label_dir, _sidecar_roots
from yolo_spine.lift.lift import read_lift_record
from yolo_spine.lift.options import LiftOptions
from yolo_spine.provenance import RunManifest, run_manifest, sha256_files
from yolo_spine.registry import AnatomyRegistry

log = logging.getLogger("yolo_spine")

#: Suffix of the label maps a batch lift writes.
SUFFIX = ".nii.gz"


@dataclass(frozen=True)
class LiftStudy:
    """One row of the study list.

    Attributes:
        study: The study id the sidecars carry (names the outputs).
        labels_dir: ``ct2yolo`` dataset root or ``predict`` output folder.
        sidecars: The ``ct2yolo`` root when ``labels_dir`` holds no sidecars.
        split: Only this split.
    """

    study: str
    labels_dir: Path
    sidecars: Path | None = None
    split: str | None = None


def read_lift_list(csv_path: str | Path, labels_dir: str | Path | None = None) -> list[LiftStudy]:
    """Read ``study[,labels_dir][,sidecars][,split]`` rows; ``labels_dir`` defaults to the command's LABELS_DIR.

    Raises:
        UserError: A missing column, a row without a labels folder, a bad or repeated study id.
    """
    rows = batch_path.read_study_rows(
        csv_path, ("study",), ("labels_dir", "sidecars", "split"), paths=("labels_dir", "sidecars")
    )
    studies = []
    for k, row in enumerate(rows, 2):
        where = f"study list {csv_path}, line {k}"
        folder = row["labels_dir"] or (Path(labels_dir) if labels_dir is not None else None)
        if folder is None:
            raise UserError(f"{where}: no labels_dir; fill the column or give LABELS_DIR")
        studies.append(LiftStudy(batch_path.study_name(row["study"], where), folder, row["sidecars"], row["split"]))
    batch_path.check_unique([s.study for s in studies])
    return studies


def study_input_hashes(studies: list[LiftStudy]) -> dict[str, dict[str, str | None]]:
    """SHA-256 of each study's label files and sidecars (``<study>_*``), each folder listed once for all studies."""
    listed: dict[Path, dict[str, list[Path]]] = {}

    def files(root: Path, suffix: str) -> dict[str, list[Path]]:
        if root not in listed:  # one walk per folder, not per study: a list of thousands of studies stays linear
            ids = {s.study for s in studies}
            by_study: dict[str, list[Path]] = defaultdict(list)
            for p in root.rglob(f"*{suffix}") if root.is_dir() else ():
                parts = p.stem.split("_")
                for i in range(1, len(parts)):
                    if (prefix := "_".join(parts[:i])) in ids:
                        by_study[prefix].append(p)
            listed[root] = by_study
        return listed[root]

    out: dict[str, dict[str, str | None]] = {}
    for s in studies:
        try:
            label_root, side_roots = (
                _label_dir(s.labels_dir, s.split),
                _sidecar_roots(s.labels_dir, s.sidecars, s.split),
            )
        except (UserError, OSError):  # the lift itself says why, as that study's failure
            out[s.study] = {"labels": None, "sidecars": None}
            continue
        labels = files(label_root, ".txt").get(s.study, [])
        sides = [p for r in side_roots for p in files(r, ".json").get(s.study, [])]
        out[s.study] = {"labels": sha256_files(labels), "sidecars": sha256_files(sides)}
    return out


def _lift_study(study: LiftStudy, folder: Path, *, options: LiftOptions, anatomy: Any) -> None:
    """Ledger entry point: lift one study into ``folder/studies`` (module level: worker processes and Ray run it)."""
    from yolo_spine.lift.lift import lift

    lift(
        study.labels_dir,
        folder / "studies" / f"{study.study}{SUFFIX}",
        options,
        sidecars=study.sidecars,
        split=study.split,
        study=study.study,
        anatomy=anatomy,
    )


class LiftStudyEntry(TypedDict):
    """One study in the batch manifest, from its own lift record."""

    study: str
    inputs_sha256: dict[str, str | None]
    outputs: dict[str, str | None]  # output → base name
    classes_found: list[str]
    counts: dict[str, int]


class LiftBatchManifest(RunManifest):
    """``lift --csv``'s ``manifest.json``."""

    kind: str  # "lift-batch"
    anatomy: str | None  # the registry's name or YAML file name (None: the sidecars')
    studies: list[LiftStudyEntry]
    failed_studies: NotRequired[dict[str, str]]  # study → reason (batch.skip_failed)


class LiftBatchResult(LiftBatchManifest):
    """What :func:`lift_batch` returns: the manifest plus this run's accounting (not written)."""

    ledger: LedgerCounts


def lift_batch(
    study_list: str | Path,
    out: str | Path,
    options: LiftOptions,
    *,
    anatomy: str | Path | AnatomyRegistry | None = None,
    labels_dir: str | Path | None = None,
    **run: bool,
) -> LiftBatchResult:
    """Lift every study of a study list into the folder ``out`` (see the module docstring for the layout).

    Args:
        study_list: The CSV.
        out: Output folder (appears complete or not at all).
        options: The ``lift`` options; their ``batch`` section says how studies run.
        anatomy: Registry YAML, for sidecars made with a registry file of the user's own.
        labels_dir: Labels folder of the rows that name none.
        **run: ``overwrite`` (replace an existing ``out``), ``redo`` (every study again, whatever the ledger
            says), ``progress`` (a bar over studies): as :func:`yolo_spine.batch.run_study_list` takes them.

    Returns:
        The manifest written to ``out/manifest.json``, plus ``ledger``: this run's done/skipped/failed studies.

    Raises:
        UserError: A bad study list, an existing ``out``, a study that failed every attempt (without the
            option ``batch.skip_failed``).
    """
    studies = read_lift_list(study_list, labels_dir)
    hashes = study_input_hashes(studies)
    registry = anatomy.name if isinstance(anatomy, AnatomyRegistry) else anatomy
    write = functools.partial(_lift_study, options=options, anatomy=anatomy)
    digest = {"anatomy": registry, "suffix": SUFFIX}
    final, ledger, summary, done = batch_path.run_study_list(studies, hashes, out, write, options, digest=digest, **run)
    inputs = {s.study: {"labels_dir": s.labels_dir, "sidecars": s.sidecars} for s in studies}
    failed = batch_path.failure_reasons(summary, inputs, base_names=False)

    def write_index(root: Path) -> LiftBatchManifest:
        from yolo_spine.io.atomic import write_json_atomic

        manifest = run_manifest(
            "lift",
            {**batch_path.produced_by(options.record()), "study_list": str(study_list), "labels_dir": labels_dir},
            extra={
                "kind": "lift-batch",
                "anatomy": registry,
                "studies": [_study_entry(root, s, hashes[s]) for s in done],
                **({"failed_studies": failed} if failed else {}),
            },
        )
        write_json_atomic(root / "manifest.json", manifest)
        return cast(LiftBatchManifest, manifest)  # run_manifest adds `extra` to its own keys

    manifest = batch_path.publish(ledger, done, final, run.get("overwrite", False), write_index)
    return {**manifest, "ledger": batch_path.summary_record(summary)}


def _study_entry(root: Path, study: str, hashes: dict[str, str | None]) -> LiftStudyEntry:
    """One study's line in the batch manifest, from its own lift record."""
    record = read_lift_record(root / "studies" / f"{study}.json")
    outputs = {k: Path(v).name if v else None for k, v in (record.get("outputs") or {}).items()}
    return {
        "study": study,
        "inputs_sha256": hashes,
        "outputs": outputs,
        "classes_found": record.get("classes_found", []),
        "counts": record.get("counts", {}),
    }


__all__ = ["SUFFIX", "LiftStudy", "lift_batch", "read_lift_list", "study_input_hashes"]
