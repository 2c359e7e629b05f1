"""Study ledger: resumable, idempotent batch runs, one study at a time, nothing half-written.

A batch command (``ct2yolo --csv``) hands each study to :meth:`StudyLedger.run` as a :class:`StudyTask` (the
study id, its inputs' SHA-256s and the hash of every option that shapes its outputs) and a function that writes
the study's outputs into a folder it is given. The ledger lives in a *work folder* that persists across runs::

    WORK/studies/<study>/     the study's finished outputs (its part of the dataset tree)
    WORK/ledger/<study>.json  its record: inputs, options hash, outputs' SHA-256s, seconds, CPU seconds, peak memory,
                              attempts

* **Atomic per study.** A study is written into ``WORK/studies/.<study>.<random>.partial``; when the function
  returns, its files are hashed, the folder is renamed to ``WORK/studies/<study>`` and the record is written
  (the commit point, :func:`yolo_spine.io.atomic.write_json_atomic`). A study that fails, or a run that is
  killed, leaves no ``<study>`` folder without its record; the temporary folder is deleted (or, after a kill,
  ignored and swept on the next run).
* **Idempotent.** A study whose record says done, with the same inputs and options hash, and whose files still
  hash as recorded is skipped; ``redo=True`` converts every study again.
* **Retries.** A study that fails is tried again up to ``retries`` times; an input the user must fix
  (:class:`~yolo_spine.errors.UserError`, e.g. a label map with no known class) fails at once. Failures are
  recorded with their reason and never stop the other studies.
* **Any executor.** Studies run through :class:`yolo_spine.parallel.Executor` (local processes or Ray tasks);
  tasks write their outputs themselves, so with Ray the work folder must be on a filesystem every node sees.
  A task returns nothing but success or failure: the record (the SHA-256 of every output file, 100s of kB for
  a CT) is read back from the work folder, so it never travels through Ray's object store.
* **Several studies per task** (``task_batch``; 0: the executor decides, see
  :meth:`yolo_spine.parallel.Executor.chunk_size`): each study of a task is staged, committed and recorded on
  its own, so a failing study costs only itself; retries run one study per task, so a study that kills its
  worker fails alone.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import resource
import shutil
import socket
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from yolo_spine.errors import UserError
from yolo_spine.io.atomic import make_temp_dir, write_json_atomic
from yolo_spine.parallel import Executor, ItemError
from yolo_spine.provenance import sha256_file, to_jsonable

log = logging.getLogger("yolo_spine")

#: Version of the record layout; a record of another version never matches.
RECORD_VERSION = 1


def options_hash(options: Mapping[str, Any]) -> str:
    """SHA-256 of options as canonical JSON (sorted keys): equal options, equal hash, on any machine."""
    text = json.dumps(to_jsonable(options), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class StudyTask:
    """What identifies one study's outputs.

    Attributes:
        study: The study id (a file-name-safe name or pseudonym; never a patient identifier).
        inputs: SHA-256 of each input by role (``volume``, ``labels`` …); ``None`` for a folder hashed elsewhere.
        options_sha256: :func:`options_hash` of everything else that shapes the outputs.
    """

    study: str
    inputs: Mapping[str, str | None]
    options_sha256: str


@dataclass
class StudyRecord:
    """One study's entry in the ledger (``WORK/ledger/<study>.json``).

    Attributes:
        study: The study id.
        status: ``done`` or ``failed``.
        inputs: As in :class:`StudyTask`.
        options_sha256: As in :class:`StudyTask`.
        outputs: SHA-256 of every output file, by path relative to the study's folder (``done`` only).
        seconds: Wall time of the successful (or last) attempt.
        cpu_seconds: CPU time of the worker process during that attempt, all its threads (on Ray, the worker's
            own Ray threads too): below ``seconds`` × threads when the study waited for a core or for I/O.
        peak_memory_bytes: Peak resident memory of the process during that attempt (``None`` where unknown).
        attempts: Attempts made in the run that wrote the record.
        worker: ``host:pid`` of the process that wrote the study (which node and worker, on a cluster).
        error: ``Type: message`` of the last failure (``failed`` only).
    """

    study: str
    status: str
    inputs: dict[str, str | None]
    options_sha256: str
    outputs: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    cpu_seconds: float | None = None
    peak_memory_bytes: int | None = None
    attempts: int = 1
    worker: str | None = None
    error: str | None = None
    version: int = RECORD_VERSION

    def matches(self, task: StudyTask) -> bool:
        """Whether this record is a finished conversion of ``task`` (same inputs and options)."""
        return (
            self.version == RECORD_VERSION
            and self.status == "done"
            and self.inputs == dict(task.inputs)
            and self.options_sha256 == task.options_sha256
        )


@dataclass
class LedgerSummary:
    """What a run did: studies converted, skipped (already done) and failed (with the reason).

    Attributes:
        done: Studies converted in this run, in task order.
        skipped: Studies whose record matched, in task order.
        failed: Study → ``Type: message`` of its last failure.
        errors: Study → its last exception (where it could be sent back from the worker).
        records: Record of every study that is done (converted or skipped), by study.
    """

    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    errors: dict[str, BaseException | None] = field(default_factory=dict)
    records: dict[str, StudyRecord] = field(default_factory=dict)

    def line(self) -> str:
        """One line for the command's output."""
        text = f"{len(self.done)} done, {len(self.skipped)} skipped (already done), {len(self.failed)} failed"
        if self.failed:
            text += ": " + "; ".join(f"{s}: {why}" for s, why in self.failed.items())
        return text


# ------------------------------------------------------------------------------------------------ peak memory
def _reset_peak_memory() -> bool:
    """Reset this process's peak RSS (Linux ``clear_refs``), so a reused worker measures one study at a time."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_memory_bytes(since_reset: bool) -> int | None:
    """Peak resident memory of this process: since the last reset (``VmHWM``) or over its life (``ru_maxrss``)."""
    if since_reset:
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024) if rss else None


# ---------------------------------------------------------------------------------------------------- ledger
def hash_tree(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder`` by POSIX path relative to it, sorted."""
    return {p.relative_to(folder).as_posix(): sha256_file(p) for p in sorted(folder.rglob("*")) if p.is_file()}


class StudyLedger:
    """The work folder of a resumable batch run: finished studies and their records.

    Args:
        work: The work folder (created when needed; kept until the caller deletes it).
    """

    def __init__(self, work: str | Path) -> None:
        self.work = Path(work)
        self.studies = self.work / "studies"
        self.records = self.work / "ledger"

    def folder(self, study: str) -> Path:
        """Where a finished study's outputs live."""
        return self.studies / study

    def record(self, study: str) -> StudyRecord | None:
        """The study's record, or ``None`` (none, or unreadable: the study is then converted again)."""
        path = self.records / f"{study}.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return StudyRecord(**data)
        except (OSError, ValueError, TypeError):
            return None

    def is_done(self, task: StudyTask) -> StudyRecord | None:
        """The study's record if it is done for this task and its files are still exactly what it recorded."""
        rec = self.record(task.study)
        if rec is None or not rec.matches(task):
            return None
        folder = self.folder(task.study)
        if not folder.is_dir() or hash_tree(folder) != rec.outputs:
            log.info("study %s: its outputs changed since they were recorded; converting it again", task.study)
            return None
        return rec

    def commit(
        self,
        task: StudyTask,
        staged: Path,
        seconds: float,
        peak: int | None,
        attempt: int,
        cpu_seconds: float | None = None,
    ) -> StudyRecord:
        """Move a study's finished outputs from ``staged`` into place and write its record (the commit point)."""
        rec = StudyRecord(
            study=task.study,
            status="done",
            inputs=dict(task.inputs),
            options_sha256=task.options_sha256,
            outputs=hash_tree(staged),
            seconds=round(seconds, 3),
            cpu_seconds=None if cpu_seconds is None else round(cpu_seconds, 3),
            peak_memory_bytes=peak,
            attempts=attempt,
            worker=f"{socket.gethostname()}:{os.getpid()}",
        )
        final = self.folder(task.study)
        (self.records / f"{task.study}.json").unlink(missing_ok=True)  # no record may describe a folder in flux
        if final.exists():
            old = make_temp_dir(final, "old")
            os.replace(final, old / "x")
            shutil.rmtree(old, ignore_errors=True)
        os.replace(staged, final)
        write_json_atomic(self.records / f"{task.study}.json", asdict(rec))
        return rec

    def fail(self, task: StudyTask, error: str, attempts: int, seconds: float) -> StudyRecord:
        """Record a study that failed every attempt; its finished outputs of an earlier run, if any, go."""
        rec = StudyRecord(
            study=task.study,
            status="failed",
            inputs=dict(task.inputs),
            options_sha256=task.options_sha256,
            seconds=round(seconds, 3),
            attempts=attempts,
            error=error,
        )
        shutil.rmtree(self.folder(task.study), ignore_errors=True)
        write_json_atomic(self.records / f"{task.study}.json", asdict(rec))
        return rec

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the work folder for one run: a second command on the same output is refused, not interleaved.

        Raises:
            UserError: Another process holds the work folder.
        """
        import fcntl

        self.work.mkdir(parents=True, exist_ok=True)
        with open(self.work / "lock", "w") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UserError(f"another command is converting into {self.work} right now; wait for it") from None
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def sweep(self) -> None:
        """Delete temporary study folders left by a run that was killed."""
        if self.studies.is_dir():
            for p in self.studies.glob(".*.partial"):
                shutil.rmtree(p, ignore_errors=True)

    def run(
        self,
        tasks: Iterable[tuple[StudyTask, Any]],
        write: Callable[[Any, Path], Any],
        executor: Executor,
        *,
        retries: int = 1,
        redo: bool = False,
        progress: bool = True,
        task_batch: int = 0,
    ) -> LedgerSummary:
        """Convert every study not done yet; retry failures; return what happened.

        Args:
            tasks: ``(task, payload)`` per study; ``write(payload, folder)`` writes the study's outputs into
                ``folder`` (must be picklable for worker processes and Ray: a module-level function or a
                ``functools.partial`` of one).
            write: The function that writes one study.
            executor: Where the studies run.
            retries: Further attempts for a study that fails (not for a :class:`~yolo_spine.errors.UserError`).
            redo: Convert every study again, whatever its record says.
            progress: Progress bar.
            task_batch: Studies per task on the first attempt (0: the executor's choice); retries run one each.

        Returns:
            The summary; ``records`` holds every study that is done.
        """
        if retries < 0:
            raise UserError(f"--retries must be 0 or more, not {retries}")
        if task_batch < 0:
            raise UserError(f"--task-batch must be 0 (automatic) or more, not {task_batch}")
        with self.locked():
            return self._run(list(tasks), write, executor, retries, redo, progress, task_batch)

    def _run(
        self,
        tasks: list[tuple[StudyTask, Any]],
        write: Callable[[Any, Path], Any],
        executor: Executor,
        retries: int,
        redo: bool,
        progress: bool,
        task_batch: int,
    ) -> LedgerSummary:
        self.studies.mkdir(parents=True, exist_ok=True)
        self.records.mkdir(parents=True, exist_ok=True)
        self.sweep()
        summary = LedgerSummary()
        todo: list[tuple[StudyTask, Any]] = []
        for task, payload in tasks:
            rec = None if redo else self.is_done(task)
            if rec is not None:
                summary.skipped.append(task.study)
                summary.records[task.study] = rec
            else:
                todo.append((task, payload))
        if summary.skipped:
            log.info("%d stud%s already done (ledger in %s)", len(summary.skipped), _ies(summary.skipped), self.work)
        attempt = 1
        while todo:
            attempt_fn = functools.partial(_attempt, self.work, write, attempt)
            again = []
            chunk = task_batch if attempt == 1 else 1  # retried alone: a study that kills its worker fails alone
            outcomes = executor.map(
                attempt_fn, todo, chunksize=chunk, desc=f"studies (try {attempt})", unit="study", progress=progress
            )
            for out in outcomes:
                task, _ = out.item
                err = out.error
                if err is None:
                    rec = self.record(task.study)  # the worker wrote it; only "done" came back
                    if rec is not None and rec.matches(task):
                        summary.records[task.study] = rec
                        continue
                    why = f"its worker committed it, but its record in {self.records} cannot be read back"
                    err = ItemError("LedgerError", why, "")
                final = attempt > retries or isinstance(err.exception, UserError)
                if final:  # the summary reports it
                    log.debug("study %s failed (try %d): %s", task.study, attempt, err)
                    self.fail(task, str(err), attempt, out.seconds)
                    summary.failed[task.study] = str(err)
                    summary.errors[task.study] = err.exception
                else:
                    log.warning("study %s failed (try %d, tried again): %s", task.study, attempt, err)
                    again.append(out.item)
            todo, attempt = again, attempt + 1
        order = [t.study for t, _ in tasks]
        summary.done = [s for s in order if s in summary.records and s not in summary.skipped]
        summary.failed = {s: summary.failed[s] for s in order if s in summary.failed}
        return summary


def _ies(items: list[Any]) -> str:
    return "y" if len(items) == 1 else "ies"


def _attempt(work: Path, write: Callable[[Any, Path], Any], attempt: int, item: tuple[StudyTask, Any]) -> None:
    """Worker side: write one study into a temporary folder, then commit it (module level: it is pickled).

    Returns nothing: the record is in the work folder (see the module's notes), and a result that is not sent
    costs nothing to send.
    """
    task, payload = item
    ledger = StudyLedger(work)
    staged = make_temp_dir(ledger.folder(task.study))
    reset = _reset_peak_memory()
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        write(payload, staged)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        ledger.commit(task, staged, seconds, peak_memory_bytes(reset), attempt, cpu)
    finally:
        if staged.exists():
            shutil.rmtree(staged, ignore_errors=True)


def link_tree(src: Path, dst: Path) -> int:
    """Hard-link every file under ``src`` into the same place under ``dst`` (copy where links cannot be made).

    Returns:
        Files placed.
    """
    n = 0
    for p in sorted(src.rglob("*")):
        target = dst / p.relative_to(src)
        if p.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(p, target)
        except OSError:  # another filesystem, or links not supported
            shutil.copy2(p, target)
        n += 1
    return n


__all__ = [
    "LedgerSummary",
    "StudyLedger",
    "StudyRecord",
    "StudyTask",
    "hash_tree",
    "link_tree",
    "options_hash",
    "peak_memory_bytes",
]
