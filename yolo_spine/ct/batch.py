"""``ct2yolo``'s batch path: studies converted through the study ledger on any executor, then one dataset.

How a resumable run coexists with a dataset that appears all at once (see docs/architecture.md):

1. Studies are converted into the *work folder* ``.<out>.partial`` beside ``--out`` (a
   :class:`yolo_spine.ledger.StudyLedger`: one finished folder and one record per study). It persists across
   runs: the same command run again (after a kill, a failure or a reboot) skips every study whose record matches
   and converts the rest.
2. When every study is done, the dataset is assembled by hard-linking each study's files into a temporary
   folder (:func:`yolo_spine.io.atomic.atomic_output`; no data copied), ``data.yaml`` and ``manifest.json`` are
   written, the folder is renamed to ``--out`` and the work folder is deleted. ``--out`` thus still appears
   complete or not at all, and a failure in assembly leaves the work folder whole.
3. If a study failed every attempt, no dataset is written (the command says which and why, and keeps the work
   folder for the next run), unless ``--skip-failed`` asks for the dataset without them (they are then listed
   with their reason in the manifest's ``failed_studies``).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yolo_spine.errors import UserError
from yolo_spine.io.atomic import ensure_can_write, partial_path
from yolo_spine.ledger import LedgerSummary, StudyLedger, StudyTask, link_tree
from yolo_spine.parallel import make_executor
from yolo_spine.provenance import sha256_file, sha256_files

log = logging.getLogger("yolo_spine")


@dataclass(frozen=True)
class BatchOptions:
    """How the studies run (none of these change a byte of the dataset).

    Attributes:
        executor: ``local`` or ``ray`` (``--executor``).
        address: Ray cluster address (``--ray-address``); ``None``: a Ray instance started for the run.
        workers: Studies at once (processes or Ray tasks); 0: as many as the cores (and ``task_memory``) allow.
        task_cpus: Threads (and Ray CPUs) per study; ``None``: the cores shared by the workers (local), 1 (Ray).
        task_memory: Bytes one study needs (local: caps the workers at the available memory; Ray: a request).
        retries: Further attempts for a failing study.
        redo: Convert every study again, whatever the ledger says.
        skip_failed: Write the dataset without the studies that failed every attempt.
    """

    executor: str = "local"
    address: str | None = None
    workers: int = 1
    task_cpus: int | None = None
    task_memory: int | None = None
    retries: int = 1
    redo: bool = False
    skip_failed: bool = False

    @classmethod
    def from_settings(cls, settings: Any, *, redo: bool = False) -> BatchOptions:
        """From the options' ``batch`` section (:class:`yolo_spine.ct.options.BatchSettings`) and ``redo``."""
        from yolo_spine.parallel import parse_bytes

        return cls(
            executor=settings.executor,
            address=settings.ray_address,
            workers=settings.workers,
            task_cpus=settings.task_cpus,
            task_memory=None if settings.task_memory is None else parse_bytes(settings.task_memory),
            retries=settings.retries,
            redo=redo,
            skip_failed=settings.skip_failed,
        )


#: Option keys that say how studies run, not what they produce: kept out of ledger records and the manifest.
RUN_ONLY_KEYS = ("batch",)


def input_hashes(spec: Any) -> dict[str, str | None]:
    """SHA-256 of a study's inputs by role (a DICOM folder: of its files, in path order)."""
    out: dict[str, str | None] = {}
    for role in ("volume", "labels", "transform"):
        path: Path | None = getattr(spec, role)
        recorded = (spec.inputs.get(role) or {}).get("sha256") if spec.inputs else None
        if path is None:
            out[role] = None
        elif recorded:
            out[role] = recorded
        elif path.is_dir():
            out[role] = sha256_files(sorted(p for p in path.rglob("*") if p.is_file()), root=path)
        else:
            out[role] = sha256_file(path)
    return out


def convert_batch(
    specs: list[Any],
    final: Path,
    write: Callable[[Any, Path], Any],
    options_sha256: str,
    batch: BatchOptions,
    *,
    overwrite: bool,
    progress: bool,
) -> tuple[StudyLedger, LedgerSummary, list[Any]]:
    """Convert every study not done yet into the work folder beside ``final``; return the studies to assemble.

    Args:
        specs: The studies (:class:`yolo_spine.ct.convert.StudySpec`, named).
        final: The dataset folder (resolved).
        write: ``write(spec, folder)`` converts one study into ``folder`` (picklable).
        options_sha256: Hash of every option that shapes a study's outputs.
        batch: How the studies run.
        overwrite: Whether ``final`` may be replaced (checked before any work).
        progress: Progress bars.

    Returns:
        The ledger, the run's summary and the specs of the studies that are done, in list order.

    Raises:
        UserError: An existing output without ``overwrite``; a study failed every attempt (without
            ``skip_failed``).
    """
    ensure_can_write(final, overwrite)  # before hours of work, not after
    ledger = StudyLedger(partial_path(final))
    tasks = [(StudyTask(s.name, input_hashes(s), options_sha256), s) for s in specs]
    with make_executor(
        batch.executor,
        address=batch.address,
        workers=batch.workers,
        task_cpus=batch.task_cpus,
        task_memory=batch.task_memory,
        n_items=len(specs),
    ) as ex:
        summary = ledger.run(tasks, write, ex, retries=batch.retries, redo=batch.redo, progress=progress)
    if summary.failed and not batch.skip_failed:
        only = summary.errors.get(specs[0].name) if len(specs) == 1 else None
        if isinstance(only, UserError):  # one study: its own sentence, and no work folder to resume
            finish(ledger)
            raise only
        raise UserError(
            f"{len(summary.failed)} of {len(specs)} studies failed ({summary.line()}); the finished ones are kept "
            f"in {ledger.work}: run the same command again to retry the failed ones, or add --skip-failed to "
            "write the dataset without them"
        )
    log.debug("studies: %s", summary.line())  # the command says it; library callers read the summary
    return ledger, summary, [s for s in specs if s.name in summary.records]


def assemble(ledger: StudyLedger, specs: list[Any], root: Path, splits: tuple[str, ...]) -> list[dict[str, Any]]:
    """Hard-link the finished studies into the dataset folder ``root``; return their reports in list order.

    Each study's ledger record goes along as ``root/ledger/<study>.json`` (its inputs' and outputs' SHA-256s,
    seconds, peak memory and worker): a later check of the files, and the per-study cost, need no other log.
    """
    for sub in ("images", "labels", "sidecars"):
        for s in splits:
            (root / sub / s).mkdir(parents=True, exist_ok=True)
    reports = []
    for spec in specs:
        link_tree(ledger.folder(spec.name), root)
        (root / "ledger").mkdir(exist_ok=True)
        shutil.copy2(ledger.records / f"{spec.name}.json", root / "ledger" / f"{spec.name}.json")
        reports.append(json.loads((root / "studies" / f"{spec.name}.json").read_text(encoding="utf-8")))
    return reports


def finish(ledger: StudyLedger) -> None:
    """Delete the work folder once the dataset is in place."""
    shutil.rmtree(ledger.work, ignore_errors=True)


def failure_reasons(summary: LedgerSummary, specs: list[Any]) -> dict[str, str]:
    """Why each failed study failed, for the manifest: input paths in the messages become ``<volume>`` etc.

    The error messages name input files, which for a pseudonymous study are what the pseudonym hides.
    """
    by_name = {s.name: s for s in specs}
    out = {}
    for study, reason in summary.failed.items():
        spec = by_name.get(study)
        for role in ("volume", "labels", "transform"):
            path = getattr(spec, role, None) if spec is not None else None
            if path is not None:
                reason = reason.replace(str(path), f"<{role}>").replace(Path(path).name, f"<{role}>")
        out[study] = reason
    return out


def summary_record(summary: LedgerSummary) -> Mapping[str, Any]:
    """The run's accounting for the command's output (not written into the dataset: it differs between runs)."""
    return {"done": summary.done, "skipped": summary.skipped, "failed": summary.failed, "line": summary.line()}


__all__ = ["BatchOptions", "assemble", "convert_batch", "failure_reasons", "finish", "input_hashes", "summary_record"]
