"""The batch path shared by every command that takes a study list (``ct2yolo``/``lift``/``eval3d`` ``--csv``).

A batch command reads its study list (:func:`read_study_rows`), names each study, hashes its inputs
(:func:`input_hashes`) and runs one function per study through the study ledger on any executor
(:func:`run_studies`): finished studies live in the work folder ``.<out>.partial`` beside ``--out`` (one folder
and one record each) across runs, so the same command run again skips what is done, retries what failed and
converts the rest. When every study is done, the command assembles its output in an
:func:`~yolo_spine.io.atomic.atomic_output` folder (:func:`link_studies` hard-links each study's files, no data
copied, with its ledger record as ``ledger/<study>.json``), writes its index files, moves it into place and
deletes the work folder (:func:`finish`): ``--out`` appears complete or not at all.

A study that fails every attempt never stops the others. Without ``--skip-failed`` the command then writes no
output, says which studies failed and why, and keeps the work folder for the next run; with it, the output is
written without them and its manifest lists them with their reasons (:func:`failure_reasons`).

How the studies run (:class:`BatchOptions`: executor, Ray address, workers, CPUs and memory per study, studies per
task, retries)
never changes a byte of the outputs, so it is kept out of the ledger's options hash and out of manifests
(:func:`produced_by`).
"""

from __future__ import annotations

import csv
import logging
import re
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypedDict, TypeVar

from yolo_spine import __version__
from yolo_spine.errors import UserError
from yolo_spine.io.atomic import atomic_output, ensure_can_write, partial_path
from yolo_spine.ledger import LedgerSummary, StudyLedger, StudyTask, link_tree, options_hash
from yolo_spine.options import spec
from yolo_spine.parallel import make_executor, parse_bytes
from yolo_spine.provenance import sha256_file, sha256_files

log = logging.getLogger("yolo_spine")

T = TypeVar("T")

#: Option keys that say how studies run, not what they produce: kept out of ledger hashes and manifests.
RUN_ONLY_KEYS = ("batch",)


# --------------------------------------------------------------------------------------------------- options
def _memory_size(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        parse_bytes(value)
    except UserError:
        return "a memory size such as 4G or 512M"
    return None


@dataclass(frozen=True)
class BatchSettings:
    """The options' ``batch`` section (:class:`BatchOptions` once parsed); never changes a byte of the outputs."""

    executor: Literal["local", "ray"]
    ray_address: str | None
    skip_failed: bool
    # spec() fields last: mypy takes them for fields with a default (see pyproject's mypy overrides)
    workers: int = spec(range=(0, None))
    task_cpus: int | None = spec(range=(1, None))
    task_memory: str | None = spec(check=_memory_size)
    task_batch: int = spec(range=(0, None))
    retries: int = spec(range=(0, None))

    def __post_init__(self) -> None:
        if self.ray_address is not None and self.executor != "ray":
            raise UserError("batch.ray_address (--ray-address) needs executor ray (--executor ray)")


@dataclass(frozen=True)
class BatchOptions:
    """How the studies run (none of these change a byte of the outputs).

    Attributes:
        executor: ``local`` or ``ray`` (``--executor``).
        address: Ray cluster address (``--ray-address``); ``None``: a Ray instance started for the run.
        workers: Studies at once (processes or Ray tasks); 0: as many as the cores (and ``task_memory``) allow.
        task_cpus: Threads (and Ray CPUs) per study; ``None``: the cores shared by the workers (local), 1 (Ray).
        task_memory: Bytes one study needs (local: caps the workers at the available memory; Ray: a request).
        task_batch: Studies per task (``--task-batch``); 0: the executor decides (local: 1; Ray: 1, up to 8 once
            there are more than 4 tasks' worth per worker). Each study is still committed, recorded, retried
            and failed on its own.
        retries: Further attempts for a failing study.
        redo: Run every study again, whatever the ledger says.
        skip_failed: Write the outputs without the studies that failed every attempt.
    """

    executor: str = "local"
    address: str | None = None
    workers: int = 1
    task_cpus: int | None = None
    task_memory: int | None = None
    task_batch: int = 0
    retries: int = 1
    redo: bool = False
    skip_failed: bool = False

    @classmethod
    def from_settings(cls, settings: BatchSettings, *, redo: bool = False) -> BatchOptions:
        """From the options' ``batch`` section and ``redo``."""
        return cls(
            executor=settings.executor,
            address=settings.ray_address,
            workers=settings.workers,
            task_cpus=settings.task_cpus,
            task_memory=None if settings.task_memory is None else parse_bytes(settings.task_memory),
            task_batch=settings.task_batch,
            retries=settings.retries,
            redo=redo,
            skip_failed=settings.skip_failed,
        )


def batch_flags(args: Any) -> dict[str, Any]:
    """The ``batch.*`` option values of the command-line flags :func:`yolo_spine._cli_common.add_batch` adds."""
    return {
        "batch.executor": args.executor,
        "batch.ray_address": args.ray_address,
        "batch.workers": args.workers,
        "batch.task_cpus": args.task_cpus,
        "batch.task_memory": args.task_memory,
        "batch.task_batch": args.task_batch,
        "batch.retries": args.retries,
        "batch.skip_failed": True if args.skip_failed else None,
    }


#: The flags :func:`yolo_spine._cli_common.add_batch` adds (and ``--workers``), by ``args`` attribute.
BATCH_FLAGS = {
    "executor": "--executor",
    "ray_address": "--ray-address",
    "task_cpus": "--task-cpus",
    "task_memory": "--task-memory",
    "task_batch": "--task-batch",
    "retries": "--retries",
    "redo": "--redo",
    "skip_failed": "--skip-failed",
    "workers": "--workers",
}


def refuse_batch_flags(args: Any) -> None:
    """Refuse batch flags on a single-study call of a command whose batch path is ``--csv`` (``lift``, ``eval3d``).

    Raises:
        UserError: A batch flag was given.
    """
    given = [flag for attr, flag in BATCH_FLAGS.items() if getattr(args, attr, None) not in (None, False)]
    if given:
        raise UserError(f"{', '.join(given)} apply to a list of studies: add --csv STUDIES.csv")


def run_flags(args: Any) -> dict[str, Any]:
    """``overwrite``, ``redo`` and ``progress`` of a batch command's library call, from its flags."""
    return {"overwrite": args.overwrite, "redo": args.redo, "progress": not args.quiet}


def produced_by(values: Mapping[str, Any]) -> dict[str, Any]:
    """Options without the run-only keys (``batch``: how studies run), also in ``options_from``."""
    out = {k: v for k, v in values.items() if k not in RUN_ONLY_KEYS}
    if "options_from" in out:
        out["options_from"] = {k: v for k, v in out["options_from"].items() if k.split(".")[0] not in RUN_ONLY_KEYS}
    return out


# ----------------------------------------------------------------------------------------------- study list
def read_study_rows(
    csv_path: str | Path, required: Sequence[str], optional: Sequence[str] = (), paths: Iterable[str] = ()
) -> list[dict[str, Any]]:
    """Read a study list: one row per study, the columns a command needs.

    Args:
        csv_path: The CSV (UTF-8, a header row).
        required: Columns every row must fill.
        optional: Further columns the command reads (absent or empty: ``None``).
        paths: Which columns are paths: relative ones are taken from the CSV's folder.

    Returns:
        One dict per row with exactly ``required`` + ``optional`` keys (strings, :class:`~pathlib.Path` or ``None``).

    Raises:
        UserError: No such file, no rows, a missing column or an empty required cell.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise UserError(f"study list {csv_path} does not exist")
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise UserError(f"study list {csv_path} has no rows")
    missing = set(required) - set(rows[0])
    if missing:
        raise UserError(f"study list {csv_path} lacks the column(s) {', '.join(sorted(missing))}")
    path_cols, base = set(paths), csv_path.parent
    out = []
    for k, row in enumerate(rows, 2):  # line numbers as an editor shows them (the header is line 1)
        rec: dict[str, Any] = {}
        for col in (*required, *optional):
            value = (row.get(col) or "").strip()
            if not value and col in required:
                raise UserError(f"study list {csv_path}, line {k}: the column {col} is empty")
            rec[col] = (base / value if col in path_cols else value) if value else None
        out.append(rec)
    return out


def study_name(text: str, where: str) -> str:
    """A study id from a study list, used as given in file names: letters, digits, ``.``, ``_`` and ``-`` only.

    Raises:
        UserError: Another character, or a leading dot (a hidden file).
    """
    if not re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9._-]*", text):
        raise UserError(f"{where}: the study id {text!r} may hold only letters, digits, '.', '_' and '-'")
    return text


def check_unique(names: Sequence[str], what: str = "study id") -> None:
    """Refuse a study list that names one study twice (their outputs would overwrite each other).

    Raises:
        UserError: Two rows with one name.
    """
    seen: dict[str, int] = {}
    for k, name in enumerate(names, 1):
        if name in seen:
            raise UserError(f"studies {seen[name]} and {k} of the list have one {what} ({name}); list each study once")
        seen[name] = k


def input_hashes(
    inputs: Mapping[str, Path | Sequence[Path] | None], recorded: Mapping[str, str | None] | None = None
) -> dict[str, str | None]:
    """SHA-256 of a study's inputs by role: a file, a folder (its files in path order) or a list of files.

    Args:
        inputs: Role → path, list of paths or ``None`` (no such input).
        recorded: Hashes already computed, by role (not computed again).
    """
    out: dict[str, str | None] = {}
    for role, path in inputs.items():
        known = (recorded or {}).get(role)
        if path is None:
            out[role] = None
        elif known:
            out[role] = known
        elif not isinstance(path, Path):
            out[role] = sha256_files(sorted(path))
        elif path.is_dir():
            out[role] = sha256_files(sorted(p for p in path.rglob("*") if p.is_file()), root=path)
        else:
            out[role] = sha256_file(path)
    return out


# ---------------------------------------------------------------------------------------------------- the run
def run_studies(
    tasks: list[tuple[StudyTask, Any]],
    final: Path,
    write: Callable[[Any, Path], Any],
    batch: BatchOptions,
    *,
    overwrite: bool,
    progress: bool,
    single_error: bool = True,
) -> tuple[StudyLedger, LedgerSummary]:
    """Run every study not done yet into the work folder beside ``final``.

    Args:
        tasks: ``(task, payload)`` per study; ``write(payload, folder)`` writes the study into ``folder``.
        final: The command's output (resolved); its work folder is ``.<name>.partial`` beside it.
        write: Writes one study (picklable: a module-level function or a ``functools.partial`` of one).
        batch: How the studies run.
        overwrite: Whether ``final`` may be replaced (checked before any work).
        progress: Progress bars.
        single_error: A list of one study that fails with a :class:`~yolo_spine.errors.UserError` raises that
            error itself (and leaves no work folder), as the single-study command would.

    Returns:
        The ledger and the run's summary (``summary.records``: every study that is done).

    Raises:
        UserError: An existing output without ``overwrite``; a study failed every attempt (without
            ``skip_failed``).
    """
    ensure_can_write(final, overwrite)  # before hours of work, not after
    ledger = StudyLedger(partial_path(final))
    with make_executor(
        batch.executor,
        address=batch.address,
        workers=batch.workers,
        task_cpus=batch.task_cpus,
        task_memory=batch.task_memory,
        n_items=len(tasks),
    ) as ex:
        summary = ledger.run(
            tasks, write, ex, retries=batch.retries, redo=batch.redo, progress=progress, task_batch=batch.task_batch
        )
    if summary.failed and not batch.skip_failed:
        only = summary.errors.get(tasks[0][0].study) if single_error and len(tasks) == 1 else None
        if isinstance(only, UserError):  # one study: its own sentence, and no work folder to resume
            finish(ledger)
            raise only
        raise UserError(
            f"{len(summary.failed)} of {len(tasks)} studies failed ({summary.line()}); the finished ones are kept "
            f"in {ledger.work}: run the same command again to retry the failed ones, or add --skip-failed to "
            "write the output without them"
        )
    log.debug("studies: %s", summary.line())  # the command says it; library callers read the summary
    return ledger, summary


def run_study_list(
    studies: Sequence[Any],
    hashes: Mapping[str, Mapping[str, str | None]],
    out: str | Path,
    write: Callable[[Any, Path], Any],
    options: Any,
    *,
    digest: Mapping[str, Any],
    overwrite: bool = False,
    redo: bool = False,
    progress: bool = True,
) -> tuple[Path, StudyLedger, LedgerSummary, list[str]]:
    """:func:`run_studies` for a stage whose options carry a ``batch`` section (``lift``, ``eval3d``).

    Args:
        studies: The rows of the study list, each with its id as ``.study``; ``write(row, folder)``.
        hashes: Each study's input hashes, by study id.
        out: The command's output.
        write: Writes one study (picklable).
        options: The stage's options (:class:`~yolo_spine.options.StageOptions` with ``batch``).
        digest: What else shapes the outputs (anatomy …), hashed with the options (less ``batch``) and version.
        overwrite: Whether ``out`` may be replaced.
        redo: Run every study again.
        progress: Progress bar.

    Returns:
        The output (resolved), the ledger, the summary and the ids of the studies that are done, in list order.
    """
    final = Path(out).resolve()
    options_sha256 = options_hash({"options": produced_by(options.values()), **digest, "yolo_spine": __version__})
    tasks = [(StudyTask(s.study, hashes[s.study], options_sha256), s) for s in studies]
    batch = BatchOptions.from_settings(options.batch, redo=redo)
    ledger, summary = run_studies(tasks, final, write, batch, overwrite=overwrite, progress=progress)
    return final, ledger, summary, [s.study for s in studies if s.study in summary.records]


def link_studies(ledger: StudyLedger, studies: Iterable[str], root: Path) -> None:
    """Hard-link each finished study's files into ``root`` and copy its record to ``root/ledger/<study>.json``.

    The record (inputs' and outputs' SHA-256s, seconds, peak memory, worker) lets a later check of the files,
    and the per-study cost, do without any other log.
    """
    (root / "ledger").mkdir(parents=True, exist_ok=True)
    for study in studies:
        link_tree(ledger.folder(study), root)
        shutil.copy2(ledger.records / f"{study}.json", root / "ledger" / f"{study}.json")


def publish(
    ledger: StudyLedger, studies: Sequence[str], final: Path, overwrite: bool, write_index: Callable[[Path], T]
) -> T:
    """Assemble the output: the finished studies linked in, ``write_index(folder)`` adds the rest; then move it.

    The output is built in an :func:`~yolo_spine.io.atomic.atomic_output` folder and renamed to ``final``; the
    work folder is deleted only after that, so a failure here leaves every finished study for the next run.

    Returns:
        What ``write_index`` returns.
    """
    with atomic_output(final, overwrite) as tmp:
        link_studies(ledger, studies, tmp)
        index = write_index(tmp)
    finish(ledger)
    return index


def finish(ledger: StudyLedger) -> None:
    """Delete the work folder once the output is in place."""
    shutil.rmtree(ledger.work, ignore_errors=True)


def failure_reasons(
    summary: LedgerSummary, inputs: Mapping[str, Mapping[str, Path | None]], base_names: bool = True
) -> dict[str, str]:
    """Why each failed study failed, for the manifest: its input paths in the messages become ``<role>``.

    Args:
        summary: The run's summary.
        inputs: Study → role → path of its inputs (``volume``, ``labels`` …).
        base_names: Also replace the inputs' base names (file names: ``p0_ct.nii.gz``); off where they are
            folders whose short names could stand inside other words of a message.

    The error messages name input files, which for a pseudonymous study are what the pseudonym hides.
    """
    out = {}
    for study, reason in summary.failed.items():
        for role, path in (inputs.get(study) or {}).items():
            if path is not None:
                reason = reason.replace(str(path), f"<{role}>")
                if base_names:
                    reason = reason.replace(Path(path).name, f"<{role}>")
        out[study] = reason
    return out


class LedgerCounts(TypedDict):
    """A batch run's accounting as the command returns it under ``ledger`` (:func:`summary_record`)."""

    done: list[str]
    skipped: list[str]
    failed: dict[str, str]  # study → reason
    line: str  # LedgerSummary.line(), as the command prints it


def summary_record(summary: LedgerSummary) -> LedgerCounts:
    """The run's accounting for the command's output (not written into the output: it differs between runs)."""
    return {"done": summary.done, "skipped": summary.skipped, "failed": summary.failed, "line": summary.line()}


__all__ = [
    "BATCH_FLAGS",
    "RUN_ONLY_KEYS",
    "BatchOptions",
    "BatchSettings",
    "LedgerCounts",
    "batch_flags",
    "check_unique",
    "failure_reasons",
    "finish",
    "input_hashes",
    "link_studies",
    "produced_by",
    "publish",
    "read_study_rows",
    "refuse_batch_flags",
    "run_flags",
    "run_studies",
    "run_study_list",
    "study_name",
    "summary_record",
]
