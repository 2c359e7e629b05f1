"""``eval3d --csv``: score many studies through the shared batch path (:mod:`yolo_spine.batch`), then one table.

The study list has one row per study: ``pred`` and ``gt`` (label maps or centroid files, as the single-study
``--pred``/``--gt``; relative paths are taken from the CSV's folder) and optionally ``study``. A row without a
``study`` is named ``s-<10 hex>`` from its two inputs' SHA-256s (never from file names, which often carry
patients' names), so every run and every shard of the list names it alike. Output folder::

    OUT/studies/<study>/metrics.csv|json|md   the study's scores, exactly as a single eval3d writes them
    OUT/ledger/<study>.json                   the study's ledger record (inputs' and outputs' SHA-256, seconds…)
    OUT/metrics.csv                           one table over all studies: ``study`` + the study's CSV columns
                                              (its class rows, then its ``mean`` row)
    OUT/metrics.json                          the same rows, typed (``null`` for missing), each study's mean
                                              and identification summary, failed studies, and the run manifest

A study's inputs, for the ledger, are its two files and lift's record beside the prediction (which decides the
anatomy and the scheme): a study is scored again when one of them or the options change.
"""

from __future__ import annotations

import csv
import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from yolo_spine import batch as batch_path
from yolo_spine.errors import UserError
from yolo_spine.evaluate.options import Eval3dOptions
from yolo_spine.identifiers import pseudonym
from yolo_spine.registry import AnatomyRegistry

if TYPE_CHECKING:
    from yolo_spine.batch import LedgerCounts
    from yolo_spine.provenance import RunManifest

log = logging.getLogger("yolo_spine")


@dataclass(frozen=True)
class EvalStudy:
    """One row of the study list: the study id, its prediction and its ground truth."""

    study: str
    pred: Path
    gt: Path


def read_eval_list(csv_path: str | Path) -> tuple[list[EvalStudy], dict[str, dict[str, str | None]]]:
    """Read ``pred,gt[,study]`` rows; name the unnamed studies by their inputs' content.

    Returns:
        The studies and each study's input hashes (``pred``, ``gt``, ``pred_record``) for the ledger.

    Raises:
        UserError: A missing column or input, a bad or repeated study id.
    """
    rows = batch_path.read_study_rows(csv_path, ("pred", "gt"), ("study",), paths=("pred", "gt"))
    studies, hashes = [], {}
    for k, row in enumerate(rows, 2):
        where = f"study list {csv_path}, line {k}"
        for role in ("pred", "gt"):
            if not row[role].exists():
                raise UserError(f"{where}: the {role} {row[role]} does not exist")
        inputs = batch_path.input_hashes(
            {"pred": row["pred"], "gt": row["gt"], "pred_record": _lift_record_path(row["pred"])}
        )
        name = (
            batch_path.study_name(row["study"], where)
            if row["study"]
            else pseudonym(f"{inputs['pred']}:{inputs['gt']}")
        )
        studies.append(EvalStudy(name, row["pred"], row["gt"]))
        hashes[name] = inputs
    batch_path.check_unique([s.study for s in studies])
    return studies, hashes


def _lift_record_path(pred: Path) -> Path | None:
    """Lift's record beside a label map it wrote (it decides the anatomy and scheme), if there is one."""
    from yolo_spine.lift.lift import output_paths

    try:
        path = output_paths(pred)["manifest"]
    except UserError:  # not a label-map suffix lift writes (a centroid file is its own record)
        return None
    return path if path.is_file() else None


def _score_study(study: EvalStudy, folder: Path, *, options: Eval3dOptions, anatomy: Any) -> None:
    """Ledger entry point: score one study into ``folder/studies/<study>`` (module level: workers and Ray run it)."""
    from yolo_spine.evaluate.eval3d import run_eval3d

    run_eval3d(study.pred, study.gt, anatomy, folder / "studies" / study.study / "metrics.csv", options)


class Eval3dBatchDoc(TypedDict):
    """``eval3d --csv``'s ``metrics.json``: one entry per study, the failed ones, the run manifest."""

    schema: int
    kind: str  # "eval3d-batch"
    columns: list[str]  # metrics.csv's columns
    studies: list[dict[str, Any]]  # study, mode, anatomy, classes, mean, landmarks (identification summary)
    failed_studies: dict[str, str]  # study → reason (batch.skip_failed)
    manifest: RunManifest | None  # with kind "eval3d-batch" and inputs_sha256 per study


class Eval3dBatchResult(Eval3dBatchDoc):
    """What :func:`eval3d_batch` returns: the document plus this run's accounting (not written)."""

    ledger: LedgerCounts


def eval3d_batch(
    study_list: str | Path,
    out: str | Path,
    options: Eval3dOptions,
    *,
    anatomy: str | Path | AnatomyRegistry | None = None,
    **run: bool,
) -> Eval3dBatchResult:
    """Score every study of a study list into the folder ``out`` (see the module docstring for the layout).

    Args:
        study_list: The CSV.
        out: Output folder (appears complete or not at all).
        options: The ``eval3d`` options; their ``batch`` section says how studies run.
        anatomy: Registry for every study; ``None``: each study's from lift's record.
        **run: ``overwrite`` (replace an existing ``out``), ``redo`` (every study again, whatever the ledger
            says), ``progress`` (a bar over studies): as :func:`yolo_spine.batch.run_study_list` takes them.

    Returns:
        ``out/metrics.json``'s document, plus ``ledger``: this run's done/skipped/failed studies.

    Raises:
        UserError: A bad study list, an existing ``out``, a study that failed every attempt (without the
            option ``batch.skip_failed``).
    """
    studies, hashes = read_eval_list(study_list)
    registry = anatomy.name if isinstance(anatomy, AnatomyRegistry) else anatomy
    write = functools.partial(_score_study, options=options, anatomy=anatomy)
    final, ledger, summary, done = batch_path.run_study_list(
        studies, hashes, out, write, options, digest={"anatomy": registry}, **run
    )
    failed = batch_path.failure_reasons(summary, {s.study: {"pred": s.pred, "gt": s.gt} for s in studies})

    def write_index(root: Path) -> Eval3dBatchDoc:
        from yolo_spine.provenance import run_manifest

        manifest = run_manifest(
            "eval3d",
            {**batch_path.produced_by(options.record()), "study_list": str(study_list), "anatomy": registry},
            extra={"kind": "eval3d-batch", "inputs_sha256": {s: hashes[s] for s in done}},
        )
        return write_tables(root, done, failed, manifest)

    doc = batch_path.publish(ledger, done, final, run.get("overwrite", False), write_index)
    return {**doc, "ledger": batch_path.summary_record(summary)}


def write_tables(
    root: Path, studies: list[str], failed: dict[str, str], manifest: RunManifest | None = None
) -> Eval3dBatchDoc:
    """Write ``root/metrics.csv`` and ``root/metrics.json`` over the studies' own reports in ``root/studies``.

    The CSV's cells are the studies' own cells (same formatting); its columns are ``study`` and the union of
    the studies' columns in their order (segmentation and landmark studies can share a table).

    Returns:
        The JSON document.
    """
    from yolo_spine.evaluate.report import read_eval3d_doc
    from yolo_spine.io.atomic import write_json_atomic

    columns: list[str] = ["study"]
    rows: list[dict[str, str]] = []
    entries = []
    for study in studies:
        folder = root / "studies" / study
        with open(folder / "metrics.csv", newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            columns += [c for c in reader.fieldnames or () if c not in columns]
            rows += [{"study": study, **row} for row in reader]
        doc = read_eval3d_doc(folder / "metrics.json")
        entries.append(
            {
                "study": study,
                "mode": doc.get("mode"),
                "anatomy": doc.get("anatomy"),
                "classes": doc.get("classes"),
                "mean": doc.get("mean"),
            }
        )
        entries[-1]["landmarks"] = _identification(doc.get("landmarks"))
    with open(root / "metrics.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, columns, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    table: Eval3dBatchDoc = {
        "schema": 1,
        "kind": "eval3d-batch",
        "columns": columns,
        "studies": entries,
        "failed_studies": failed,
        "manifest": manifest,
    }
    write_json_atomic(root / "metrics.json", table)
    return table


def _identification(landmarks: dict[str, Any] | None) -> dict[str, Any] | None:
    if landmarks is None:
        return None
    keys = ("identification_rate", "n_identified", "n_gt", "mean_error_mm", "max_dist_mm")
    return {k: landmarks.get(k) for k in keys}


__all__ = ["EvalStudy", "eval3d_batch", "read_eval_list", "write_tables"]
