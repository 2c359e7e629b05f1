"""Parallel work for the whole package: one start method, threads per worker, ordered results, errors per item.

Every batch of independent items (images to hash, copies to augment, studies to convert) goes through an
:class:`Executor`::

    with make_executor("local", workers=4) as ex:
        for outcome in ex.map(convert_one, studies, desc="studies"):
            report = outcome.get()  # the result, or the item's own exception raised here

* **One start method.** ``forkserver`` on Linux, ``spawn`` elsewhere. Plain ``fork`` copies a parent that has
  run threaded OpenCV or torch code, with its thread-pool locks held, and its children can hang.
* **Threads per worker from a CPU budget.** Each worker process gets ``task_cpus`` threads, by default the
  budget (the cores this process may use) divided among the workers. The worker initializer sets
  ``OMP_NUM_THREADS``/``MKL_NUM_THREADS``/… before torch is imported there, ``torch.set_num_threads`` when it
  already is, and ``cv2.setNumThreads``, so N workers never run N × every-core threads.
* **Ordered results, errors per item.** :meth:`Executor.map` yields one :class:`Outcome` per item, in item
  order, holding the item, its result or its error; a failing item never stops the others, and a worker
  process that dies (a crash, the out-of-memory killer) costs only the item it was running. Callers that
  want the first error as an exception call :meth:`Outcome.get`.
* **One progress bar** (tqdm, off when not on a terminal or when ``progress=False``).
* ``workers=1`` runs in this process, with no pool, no pickling, and no change to this process's threads.

:class:`LocalExecutor` is the process pool on this machine. A cluster executor (Ray) implements the same
:class:`Executor` interface, registers itself in :data:`EXECUTORS` and takes the same ``workers``,
``task_cpus`` and ``task_memory`` requests, so every batch command gets ``--executor`` for free.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import pickle
import sys
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Generic, TypeVar

from yolo_spine.errors import UserError

log = logging.getLogger("yolo_spine")

T = TypeVar("T")
R = TypeVar("R")

#: Thread-count variables read by OpenMP, MKL, OpenBLAS, Apple Accelerate and NumExpr when they load.
THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


# --------------------------------------------------------------------------------------------------- CPU budget
def available_cpus() -> int:
    """Cores this process may run on: its CPU affinity, capped by a cgroup CPU quota (containers), at least 1."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        n = os.cpu_count() or 1
    try:  # cgroup v2: "max 100000" or "<quota> <period>"
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            n = min(n, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, n)


def available_memory() -> int | None:
    """Bytes of memory available to new work (``MemAvailable``), or ``None`` where it cannot be read."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


_BYTE_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def parse_bytes(text: str | int) -> int:
    """A memory size: bytes, or a number with K, M, G or T (binary units: ``4G`` = 4 GiB).

    Raises:
        UserError: Not a positive size.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        t, unit = str(text), ""
    else:
        t = str(text).strip().upper().removesuffix("IB").removesuffix("B")
        unit = t[-1:] if t[-1:] in _BYTE_UNITS else ""
        t = t[: len(t) - len(unit)]
    try:
        value = float(t)
    except ValueError:
        raise UserError(f"expected a memory size such as 4G or 512M, not {text!r}") from None
    if not value > 0:
        raise UserError(f"a memory size must be above 0, not {text!r}")
    return int(value * _BYTE_UNITS[unit])


def plan_workers(
    workers: int = 0,
    *,
    n_items: int | None = None,
    task_cpus: int | None = None,
    task_memory: int | None = None,
    cpu_budget: int | None = None,
    memory_budget: int | None = None,
) -> tuple[int, int]:
    """Decide how many workers run at once and how many threads each gets.

    Args:
        workers: Requested workers; 0 (or less): as many as the CPU and memory budgets allow.
        n_items: Items to process; never more workers than items.
        task_cpus: Threads per worker; ``None``: the CPU budget shared evenly by the workers.
        task_memory: Bytes one worker needs; with ``workers=0`` it caps the workers at the memory budget.
        cpu_budget: Cores to share (default :func:`available_cpus`).
        memory_budget: Bytes to share (default :func:`available_memory`).

    Returns:
        ``(workers, threads_per_worker)``, both at least 1.
    """
    cpus = cpu_budget or available_cpus()
    if task_cpus is not None and task_cpus < 1:
        raise UserError(f"--task-cpus must be at least 1, not {task_cpus}")
    if workers <= 0:
        workers = max(1, cpus // (task_cpus or 1))
        if task_memory:
            memory = memory_budget if memory_budget is not None else available_memory()
            if memory is not None:
                workers = max(1, min(workers, memory // task_memory))
    if n_items is not None:
        workers = max(1, min(workers, n_items))
    threads = task_cpus or max(1, cpus // workers)
    return workers, threads


# ------------------------------------------------------------------------------------------------ thread policy
#: How idle OpenMP threads wait when the user asks for sleeping threads (``--threads`` with two jobs of their own
#: making): GNU OpenMP (torch's, on Linux) and Intel OpenMP (``KMP_BLOCKTIME`` in ms).
PASSIVE_WAIT_ENV = {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0"}


def configure_thread_policy() -> dict[str, str]:
    """Leave OpenMP's wait policy to the user; report what it is.

    Measured on 2 cores (BENCHMARKS.md, two jobs): spinning idle threads (libgomp's default) make a lone job fast,
    while ``OMP_WAIT_POLICY=PASSIVE`` costs a lone training 20-28 % and a lone prediction about half its frame
    rate. Two jobs no longer collapse because each sizes its threads to the cores the other leaves free
    (:class:`ThreadGovernor`), not because threads sleep. A user who prefers sleeping threads sets
    ``OMP_WAIT_POLICY=PASSIVE`` (read once, when torch loads).

    Returns:
        The wait-policy variables as they are in the environment (empty where unset).
    """
    if "torch" in sys.modules:
        log.debug("thread policy read after torch was imported: OpenMP keeps the policy it started with")
    return {var: os.environ[var] for var in PASSIVE_WAIT_ENV if var in os.environ}


class ThreadGovernor:
    """Sizes torch's CPU threads to the cores that other processes leave free, re-checked every few seconds.

    Why: two jobs that each run a spinning OpenMP thread per core slow each other 10-15x (issue 13 §4). A job
    that counts the CPU time the rest of the machine used since its last check (system-wide busy time minus its
    own and its children's) and keeps ``round(cores - others)`` threads (at least 1, at most ``max_threads``)
    gives cores back while another job runs and takes them again when it ends. Two governed jobs settle at one
    thread each on 2 cores; a lone job keeps every core.

    Call :meth:`tick` often (every batch, every frame): it does nothing until ``interval_s`` has passed.

    Args:
        max_threads: The most threads to use (every core this process may use).
        interval_s: Seconds between two measurements.
        set_threads: Applies a thread count (default: :func:`set_torch_threads_now`).
        sampler: Returns ``(seconds, busy_cpu_seconds_of_machine, cpu_seconds_of_this_job)`` (default:
            :func:`cpu_sample`); tests give their own.
    """

    def __init__(
        self,
        max_threads: int,
        interval_s: float = 2.0,
        set_threads: Callable[[int], None] | None = None,
        sampler: Callable[[], tuple[float, float, float]] | None = None,
    ) -> None:
        self.max_threads = max(1, max_threads)
        self.interval_s = interval_s
        self.threads = self.max_threads
        self.changes = 0
        self._set = set_threads or set_torch_threads_now
        self._sample = sampler or cpu_sample
        self._last = self._sample()

    def others_busy(self) -> float | None:
        """Cores the rest of the machine kept busy since the last measurement (``None``: too early to say)."""
        now = self._sample()
        wall = now[0] - self._last[0]
        if wall < self.interval_s:
            return None
        others = ((now[1] - self._last[1]) - (now[2] - self._last[2])) / wall
        self._last = now
        return max(0.0, others)

    def tick(self) -> int | None:
        """Measure if due and apply the new thread count; return it when it changed, else ``None``."""
        others = self.others_busy()
        if others is None:
            return None
        # A free core counts from half a core: dataloader children are ours and noise stays below that.
        wanted = min(self.max_threads, max(1, math.floor(self.max_threads - others + 0.5)))
        if wanted == self.threads:
            return None
        log.debug("threads %d -> %d (other processes busy on %.1f cores)", self.threads, wanted, others)
        self.threads = wanted
        self.changes += 1
        self._set(wanted)
        return wanted


def cpu_sample() -> tuple[float, float, float]:
    """``(monotonic seconds, busy CPU-seconds of the machine, CPU-seconds of this process and its children)``."""
    import psutil

    t = psutil.cpu_times()
    # Niced processes count too: a spinning thread waits at every barrier for a sibling the kernel preempted,
    # whatever the preempting process's priority (measured: 40x slower beside niced test runs).
    busy = t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0) + getattr(t, "steal", 0.0)
    me = psutil.Process()
    own = sum(me.cpu_times()[:2])
    for child in me.children(recursive=True):
        try:
            own += sum(child.cpu_times()[:2])
        except psutil.Error:  # ended between the listing and the read
            continue
    return time.monotonic(), busy, own


def set_torch_threads_now(threads: int) -> None:
    """Apply a thread count to torch (and OpenCV) in this process, without importing either."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
    cv2 = sys.modules.get("cv2")
    if cv2 is not None:
        cv2.setNumThreads(threads)


# ------------------------------------------------------------------------------------------- threads in a worker
def set_thread_env(threads: int) -> None:
    """Set the thread-count variables that OpenMP/MKL/OpenBLAS read when they load (before torch is imported)."""
    for var in THREAD_ENV_VARS:
        os.environ[var] = str(threads)


def set_worker_threads(threads: int) -> None:
    """Give this process ``threads`` threads for torch (if imported), OpenCV and the math libraries it loads."""
    set_thread_env(threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
    try:
        import cv2
    except ImportError:  # pragma: no cover - OpenCV is a dependency
        return
    cv2.setNumThreads(threads)


def _init_worker(threads: int, initializer: Callable[..., None] | None, initargs: tuple[Any, ...]) -> None:
    configure_thread_policy()  # also when the parent is a library caller that never ran the command line
    set_worker_threads(threads)
    if initializer is not None:
        initializer(*initargs)


# --------------------------------------------------------------------------------------------------- outcomes
class WorkerCrashedError(RuntimeError):
    """The worker process died while running an item (a crash, or killed for memory)."""


@dataclass(frozen=True)
class ItemError:
    """Why one item failed.

    Attributes:
        type: The exception's class name.
        message: ``str(exception)``.
        traceback: The formatted traceback from the worker.
        exception: The exception itself (``None`` where it could not be sent back from the worker).
    """

    type: str
    message: str
    traceback: str
    exception: BaseException | None = None

    def raise_(self) -> None:
        """Raise the item's own exception (or a ``RuntimeError`` carrying its type, message and traceback)."""
        if self.exception is not None:
            raise self.exception
        raise RuntimeError(f"{self.type}: {self.message}\n{self.traceback}")

    def __str__(self) -> str:
        return f"{self.type}: {self.message}"


@dataclass(frozen=True)
class Outcome(Generic[T, R]):
    """What became of one item.

    Attributes:
        index: The item's position in the input.
        item: The item.
        result: The function's return value (``None`` when it failed).
        error: Why it failed (``None`` when it succeeded).
        seconds: Wall time of the item in its worker.
    """

    index: int
    item: T
    result: R | None
    error: ItemError | None
    seconds: float

    @property
    def ok(self) -> bool:
        """Whether the item succeeded."""
        return self.error is None

    def get(self) -> R:
        """Return the result, or raise the item's exception."""
        if self.error is not None:
            self.error.raise_()
        return self.result  # type: ignore[return-value]


def _portable_error(exc: BaseException) -> ItemError:
    """Describe an exception so that it survives the trip back from a worker process."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        sendable: BaseException | None = pickle.loads(pickle.dumps(exc))
    except Exception:  # an exception class that does not pickle: its type, message and traceback still do
        sendable = None
    if sendable is not None:
        sendable.__traceback__ = None
    return ItemError(type(exc).__name__, str(exc), tb, sendable)


def _run_one(fn: Callable[[T], R], item: T, portable: bool = True) -> tuple[R | None, ItemError | None, float]:
    t0 = time.perf_counter()
    try:
        result = fn(item)
    except Exception as exc:  # every item's failure is reported, never lost
        if portable:
            return None, _portable_error(exc), time.perf_counter() - t0
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        return None, ItemError(type(exc).__name__, str(exc), tb, exc), time.perf_counter() - t0
    return result, None, time.perf_counter() - t0


def _run_chunk(fn: Callable[[T], R], chunk: list[tuple[int, T]]) -> list[tuple[int, Any, ItemError | None, float]]:
    """Worker entry: run each item of a chunk on its own, so one failure costs one item."""
    return [(i, *_run_one(fn, item)) for i, item in chunk]


def _noop() -> None:
    """A task that only proves a worker process starts."""


# --------------------------------------------------------------------------------------------------- executors
class Executor(ABC):
    """Runs one function over many items and yields their :class:`Outcome` in item order.

    Attributes:
        name: The executor's name on the command line (``--executor``).
        workers: Items run at once.
        threads: CPU threads each worker may use.
    """

    name: ClassVar[str]
    workers: int
    threads: int

    @abstractmethod
    def map(
        self,
        fn: Callable[[T], R],
        items: Iterable[T],
        *,
        chunksize: int = 1,
        desc: str | None = None,
        unit: str = "item",
        progress: bool = True,
    ) -> Iterator[Outcome[T, R]]:
        """Start ``fn`` on every item now and return an iterator over their outcomes, in item order.

        Work starts before the iterator is read, so the caller can do other work meanwhile.

        Args:
            fn: A picklable function of one item (module level, or a ``functools.partial`` of one).
            items: Picklable items.
            chunksize: Items sent to a worker at a time (fewer round trips for many small items); 0: the
                executor's choice (:meth:`chunk_size`). Each item of a chunk still succeeds or fails on its own.
            desc: Label of the progress bar.
            unit: Unit of the progress bar.
            progress: Show the progress bar (tqdm; off anyway when stderr is not a terminal).
        """

    def chunk_size(self, n_items: int, requested: int = 0) -> int:
        """Items per task: ``requested`` when above 0, else what this executor finds worth it (:meth:`auto_chunk`)."""
        return requested if requested > 0 else self.auto_chunk(n_items)

    def auto_chunk(self, n_items: int) -> int:
        """Items per task when the caller leaves it to the executor (``chunksize=0``): 1 here.

        A local worker is a process that stays up for the whole map: one more item costs one pickled message
        (about a millisecond), and one item per task balances the load best.
        """
        return 1

    def close(self) -> None:  # noqa: B027 - executors without resources need nothing
        """Release workers; the executor cannot be used afterwards."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _chunks(items: list[T], chunksize: int) -> list[list[tuple[int, T]]]:
    """Split ``items`` into runs of ``chunksize`` (at least 1), each item with its index in ``items``."""
    indexed, size = list(enumerate(items)), max(1, chunksize)
    return [indexed[k : k + size] for k in range(0, len(indexed), size)]


def _progress(total: int, desc: str | None, unit: str, progress: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=None if progress else True)


def start_context() -> multiprocessing.context.BaseContext:
    """The package's one start method: ``forkserver`` on Linux, ``spawn`` elsewhere."""
    if sys.platform.startswith("linux") and "forkserver" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("forkserver")
    return multiprocessing.get_context("spawn")


class LocalExecutor(Executor):
    """Worker processes on this machine (``workers=1``: this process, no pool).

    Args:
        workers: Processes; 0: as many as the cores (and ``task_memory``) allow.
        task_cpus: Threads per worker; ``None``: the cores shared evenly by the workers.
        task_memory: Bytes one item needs; with ``workers=0`` it caps the workers at the available memory.
        initializer: Called with ``initargs`` once in every worker process, after its threads are set (never in
            this process).
        initargs: Arguments of ``initializer``.
        preload: Modules the fork server imports once, so that workers start without importing them (Linux).
        n_items: Items expected; never more workers than items.
    """

    name = "local"

    def __init__(
        self,
        workers: int = 0,
        *,
        task_cpus: int | None = None,
        task_memory: int | None = None,
        initializer: Callable[..., None] | None = None,
        initargs: tuple[Any, ...] = (),
        preload: Sequence[str] = (),
        n_items: int | None = None,
    ) -> None:
        self.workers, self.threads = plan_workers(
            workers, n_items=n_items, task_cpus=task_cpus, task_memory=task_memory
        )
        self._initializer = initializer
        self._initargs = initargs
        self._preload = list(preload)
        self._pool: ProcessPoolExecutor | None = None

    def _new_pool(self) -> ProcessPoolExecutor:
        ctx = start_context()
        if self._preload and ctx.get_start_method() == "forkserver":
            # Takes effect when this process's fork server starts; __main__ stays preloaded, as by default.
            ctx.set_forkserver_preload(["__main__", *self._preload])
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=ctx,
            initializer=_init_worker,
            initargs=(self.threads, self._initializer, self._initargs),
        )

    def map(
        self,
        fn: Callable[[T], R],
        items: Iterable[T],
        *,
        chunksize: int = 1,
        desc: str | None = None,
        unit: str = "item",
        progress: bool = True,
    ) -> Iterator[Outcome[T, R]]:
        """See :meth:`Executor.map`."""
        items = list(items)
        bar = _progress(len(items), desc, unit, progress)
        if self.workers <= 1:
            return _in_process(fn, items, bar)
        if self._pool is None:
            self._pool = self._new_pool()
        chunks = _chunks(items, self.chunk_size(len(items), chunksize))
        futures = [self._pool.submit(_run_chunk, fn, chunk) for chunk in chunks]
        return self._collect(fn, items, chunks, futures, bar)

    def _collect(
        self,
        fn: Callable[[T], R],
        items: list[T],
        chunks: list[list[tuple[int, T]]],
        futures: list[Future],
        bar: Any,
    ) -> Iterator[Outcome[T, R]]:
        done: dict[int, tuple[Any, ItemError | None, float]] = {}
        next_index = 0
        try:
            for k, fut in enumerate(futures):
                try:
                    part = fut.result()
                except BrokenProcessPool:
                    part = self._recover(fn, chunks, futures, k)
                for i, result, error, seconds in part:
                    done[i] = (result, error, seconds)
                while next_index in done:
                    result, error, seconds = done.pop(next_index)
                    if error is not None:
                        log.debug("item %d failed: %s", next_index, error)
                    yield Outcome(next_index, items[next_index], result, error, seconds)
                    bar.update(1)
                    next_index += 1
        finally:
            bar.close()
            for fut in futures:
                fut.cancel()

    def _recover(
        self, fn: Callable[[T], R], chunks: list[list[tuple[int, T]]], futures: list[Future], k: int
    ) -> list[tuple[int, Any, ItemError | None, float]]:
        """A worker died: re-run, in fresh pools, every item whose result was lost; blame only the one that dies alone.

        Results already returned stay; the lost items run again one per task, and while the pool keeps breaking
        they run one at a time, so the item that kills its worker on its own is the only one marked failed.
        """
        lost: list[tuple[int, T]] = []
        kept: list[tuple[int, Any, ItemError | None, float]] = []
        for chunk, fut in zip(chunks[k:], futures[k:], strict=True):
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                kept += fut.result()
            else:
                lost += chunk
        self._shutdown()
        results = kept + self._rerun(fn, lost, together=True)
        # Later chunks are answered here; hand the collector finished futures so it does not wait on dead ones.
        for j in range(k + 1, len(futures)):
            futures[j] = _finished([])
        return results

    def _working_pool(self) -> ProcessPoolExecutor:
        """A fresh pool whose workers are known to start (so a crash afterwards is the item's doing)."""
        pool = self._new_pool()
        try:
            pool.submit(_noop).result()
        except BrokenProcessPool:
            pool.shutdown(wait=True, cancel_futures=True)
            raise RuntimeError("worker processes die as they start (see the log above)") from None
        self._pool = pool
        return pool

    def _rerun(
        self, fn: Callable[[T], R], lost: list[tuple[int, T]], together: bool
    ) -> list[tuple[int, Any, ItemError | None, float]]:
        out: list[tuple[int, Any, ItemError | None, float]] = []
        if together and len(lost) > 1:
            pool = self._working_pool()
            futs = [(entry, pool.submit(_run_chunk, fn, [entry])) for entry in lost]
            again = []
            for entry, fut in futs:
                try:
                    out += fut.result()
                except BrokenProcessPool:
                    again.append(entry)
            self._shutdown()
            return out + self._rerun(fn, again, together=False)
        for entry in lost:  # alone: a pool that breaks now was broken by this item
            pool = self._working_pool()
            try:
                out += pool.submit(_run_chunk, fn, [entry]).result()
            except BrokenProcessPool as exc:
                err = WorkerCrashedError(f"the worker process died while running item {entry[0]} ({exc})")
                out.append((entry[0], None, ItemError(type(err).__name__, str(err), "", err), 0.0))
            self._shutdown()
        return out

    def _shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        """Stop the worker processes (pending items are cancelled)."""
        self._shutdown()


def _finished(value: Any) -> Future:
    fut: Future = Future()
    fut.set_result(value)
    return fut


def _in_process(fn: Callable[[T], R], items: list[T], bar: Any) -> Iterator[Outcome[T, R]]:
    """``workers=1``: run each item when the caller asks for it, in this process."""
    try:
        for i, item in enumerate(items):
            result, error, seconds = _run_one(fn, item, portable=False)
            yield Outcome(i, item, result, error, seconds)
            bar.update(1)
    finally:
        bar.close()


#: Executors by ``--executor`` name; a cluster backend adds itself here.
EXECUTORS: dict[str, type[Executor]] = {"local": LocalExecutor}

#: Executors whose module (and its optional dependency) is imported only when one is asked for.
LAZY_EXECUTORS: dict[str, str] = {"ray": "yolo_spine.cluster"}


def executor_names() -> list[str]:
    """Every ``--executor`` name, also of the executors not imported yet."""
    return [*EXECUTORS, *(n for n in LAZY_EXECUTORS if n not in EXECUTORS)]


def make_executor(name: str = "local", *, address: str | None = None, **options: Any) -> Executor:
    """Build the executor called ``name`` (``--executor``) with its options (``workers``, ``task_cpus`` …).

    Args:
        name: ``local`` or ``ray``.
        address: Cluster address (``--ray-address``); only for a cluster executor.
        **options: The executor's keyword options.

    Raises:
        UserError: For an unknown executor name, an address for the local executor, or Ray not installed.
    """
    if name not in EXECUTORS and name in LAZY_EXECUTORS:
        import importlib

        importlib.import_module(LAZY_EXECUTORS[name])  # registers itself in EXECUTORS
    try:
        # A cluster executor's constructor takes keywords (``address``) that the base class does not declare.
        cls: Callable[..., Executor] = EXECUTORS[name]
    except KeyError:
        raise UserError(f"--executor must be one of {', '.join(executor_names())}, not {name!r}") from None
    if cls is LocalExecutor:
        if address is not None:
            raise UserError("--ray-address needs --executor ray")
        return cls(**options)
    return cls(address=address, **options)


__all__ = [
    "EXECUTORS",
    "LAZY_EXECUTORS",
    "PASSIVE_WAIT_ENV",
    "THREAD_ENV_VARS",
    "Executor",
    "ItemError",
    "LocalExecutor",
    "Outcome",
    "WorkerCrashedError",
    "available_cpus",
    "available_memory",
    "configure_thread_policy",
    "executor_names",
    "make_executor",
    "parse_bytes",
    "plan_workers",
    "set_thread_env",
    "set_worker_threads",
    "start_context",
]
