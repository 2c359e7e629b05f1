"""``ct2yolo``'s batch path: studies converted through the shared batch path (:mod:`yolo_spine.batch`), one dataset.

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

from collections.abc import Callable
from pathlib import Path
from typing import Any

from yolo_spine.batch import BatchOptions, input_hashes, link_studies, run_studies
from yolo_spine.ct.manifest import StudyReport, read_study_report
from yolo_spine.ledger import LedgerSummary, StudyLedger, StudyTask

#: A study's input files by role, as :class:`yolo_spine.ct.convert.StudySpec` names them.
ROLES = ("volume", "labels", "transform")


def spec_inputs(spec: Any) -> dict[str, Path | None]:
    """A study's input paths by role."""
    return {role: getattr(spec, role) for role in ROLES}


def spec_hashes(spec: Any) -> dict[str, str | None]:
    """SHA-256 of a study's inputs by role (those its input records already hold are not hashed again)."""
    recorded = {role: (spec.inputs.get(role) or {}).get("sha256") for role in ROLES} if spec.inputs else None
    return input_hashes(spec_inputs(spec), recorded)


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
    tasks = [(StudyTask(s.name, spec_hashes(s), options_sha256), s) for s in specs]
    ledger, summary = run_studies(tasks, final, write, batch, overwrite=overwrite, progress=progress)
    return ledger, summary, [s for s in specs if s.name in summary.records]


def assemble(ledger: StudyLedger, specs: list[Any], root: Path, splits: tuple[str, ...]) -> list[StudyReport]:
    """Hard-link the finished studies (and their ledger records) into the dataset folder ``root``.

    Returns:
        The studies' reports (``studies/<study>.json``), in list order.
    """
    for sub in ("images", "labels", "sidecars"):
        for s in splits:
            (root / sub / s).mkdir(parents=True, exist_ok=True)
    link_studies(ledger, [s.name for s in specs], root)
    return [read_study_report(root / "studies" / f"{s.name}.json") for s in specs]


__all__ = ["ROLES", "assemble", "convert_batch", "spec_hashes", "spec_inputs"]
