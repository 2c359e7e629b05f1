"""The Ray executor: the :class:`~yolo_spine.parallel.Executor` interface on a Ray cluster (``--executor ray``).

Ray is an optional extra (``pip install -e ".[cluster]"``); this module imports it only when an executor is made,
so the package imports, and ``--executor local`` runs, without it.

* ``address=None`` starts a private Ray instance on this machine for the command (``workers`` × ``task_cpus``
  CPUs, a small object store, task workers at the command's own priority) and stops it at the end; ``"auto"``
  joins the cluster this machine belongs to (``ray start`` ran here) and ``ray://host:port`` connects to a remote
  head through Ray Client. A cluster's nodes run task workers at niceness 15 unless ``ray start`` was given
  ``RAY_worker_niceness=0`` in its environment: at 15 any other process on a node, the driver and Ray's own
  daemons included, takes the cores first. Every node
  must have yolo_spine installed and see the inputs and the output folder at the same paths (a shared
  filesystem): tasks read the studies and write their outputs themselves; only small reports travel back.
* ``workers`` means what it means locally: items running at once (here, Ray tasks in flight); 0: as many as
  the cluster's CPUs allow at ``task_cpus`` each.
* ``task_cpus`` and ``task_memory`` become each task's Ray resource request (``num_cpus``, ``memory``), and the
  task sets its threads to ``task_cpus`` (torch, OpenCV, OpenMP), as a local worker does.
* **Per-task costs.** A Ray task costs a scheduling round trip (about 2 ms on one node, more across a network) and
  its result's transfer; a *job* (one command) costs the connection and new worker processes (Ray starts
  workers per job: ``import ray`` and the imports of the task's code, about a second each, once). So the
  function goes inline with each task when small (no object-store round trip; else ``ray.put`` once), results
  are meant to be small (the study ledger returns none: the record is on the shared filesystem), and with
  ``chunksize=0`` several items share a task once there are many per worker (:meth:`RayExecutor.auto_chunk`,
  or ``--task-batch N``); every item of a task still succeeds or fails on its own.
* Ray's own retries are off (``max_retries=0``): a failed item comes back as an :class:`~yolo_spine.parallel.Outcome`
  with its error, and the caller decides (the study ledger retries failed studies itself). A task whose worker
  dies (a crash, Ray's out-of-memory killer) costs only the items of that task.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from yolo_spine.errors import MissingDependencyError, UserError
from yolo_spine.parallel import (
    EXECUTORS,
    Executor,
    ItemError,
    Outcome,
    R,
    T,
    WorkerCrashedError,
    _chunks,
    _progress,
    _run_chunk,
    available_cpus,
    configure_thread_policy,
    set_worker_threads,
)

log = logging.getLogger("yolo_spine")

#: Object store of a Ray instance this executor starts itself: items and reports are small, the machine shared.
LOCAL_OBJECT_STORE_BYTES = 100 * 2**20

#: A function that pickles to at most this many bytes travels inside each task (Ray inlines arguments under
#: 100 KiB in the task itself); a larger one is put in the object store once.
INLINE_FN_BYTES = 64 * 2**10

#: ``chunksize=0``: at least this many tasks per worker (load balance at the end of a run) …
AUTO_TASKS_PER_WORKER = 4
#: … and at most this many items per task (a task's items are reported when the whole task returns).
AUTO_MAX_CHUNK = 8

INSTALL_HINT = '--executor ray needs Ray, which is not installed: pip install "yolo_spine[cluster]"'


def import_ray() -> Any:
    """Import Ray, or say in one sentence how to install it."""
    try:
        import ray
    except ImportError:
        raise MissingDependencyError(INSTALL_HINT) from None
    return ray


def _ray_task(threads: int, fn: Callable[[T], R], chunk: list[tuple[int, T]]) -> list[tuple[int, Any, Any, float]]:
    """Ray task body: this worker's threads, then each item of the chunk on its own (as a local worker does)."""
    configure_thread_policy()
    set_worker_threads(threads)
    return _run_chunk(fn, chunk)


class RayExecutor(Executor):
    """Ray tasks on a cluster (or on a Ray instance started on this machine).

    Args:
        workers: Tasks in flight at once; 0: the cluster's CPUs divided by ``task_cpus``.
        task_cpus: CPUs requested by, and threads used in, each task (default 1).
        task_memory: Bytes of memory each task requests from Ray's scheduler (``None``: no request).
        address: ``None`` (start Ray here), ``"auto"`` or ``ray://host:port`` / ``host:port``.
        n_items: Items expected; never more tasks in flight than items.
        object_store_memory: Object store of a Ray instance started here (bytes).
        **ignored: Local-pool options (``initializer``, ``preload``) that do not apply to Ray.
    """

    name = "ray"

    def __init__(
        self,
        workers: int = 0,
        *,
        task_cpus: int | None = None,
        task_memory: int | None = None,
        address: str | None = None,
        n_items: int | None = None,
        object_store_memory: int = LOCAL_OBJECT_STORE_BYTES,
        **ignored: Any,
    ) -> None:
        if ignored:
            log.debug("ray executor ignores %s", ", ".join(sorted(ignored)))
        if task_cpus is not None and task_cpus < 1:
            raise UserError(f"--task-cpus must be at least 1, not {task_cpus}")
        self._ray = ray = import_ray()
        self.threads = task_cpus or 1
        self.task_memory = task_memory
        self._owns = False
        if not ray.is_initialized():
            init: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True, "configure_logging": False}
            if address is None:  # a private instance for this command, sized by the request
                cpus = max(1, workers) * self.threads if workers > 0 else available_cpus()
                # Ray runs task workers at niceness 15 by default, below every other process on the node; here
                # they are this command's workers, at its priority as the local executor's are. On a quiet node
                # it makes no measurable difference (BENCHMARKS.md, "scale"); beside a second job it decides
                # who gets the cores.
                init |= {
                    "num_cpus": cpus,
                    "object_store_memory": object_store_memory,
                    "_system_config": {"worker_niceness": 0},
                }
            else:
                init["address"] = address
            try:
                ray.init(**init)
            except ConnectionError as exc:
                raise UserError(f"cannot reach the Ray cluster at {address}: {exc}") from None
            self._owns = True
        if workers <= 0:
            cluster_cpus = int(ray.cluster_resources().get("CPU", 1))
            workers = max(1, cluster_cpus // self.threads)
        if n_items is not None:
            workers = max(1, min(workers, n_items))
        self.workers = workers
        self._remote = ray.remote(_ray_task).options(
            num_cpus=self.threads, max_retries=0, **({"memory": int(task_memory)} if task_memory else {})
        )

    def auto_chunk(self, n_items: int) -> int:
        """Items per task for ``chunksize=0``.

        1 until there are :data:`AUTO_TASKS_PER_WORKER` tasks per worker, then as many as keep that many tasks per
        worker, at most :data:`AUTO_MAX_CHUNK` (e.g. 1,228 studies on 13 workers: 8 per task, 154 tasks).
        """
        return max(1, min(AUTO_MAX_CHUNK, n_items // (AUTO_TASKS_PER_WORKER * self.workers)))

    def _function_arg(self, fn: Callable[[T], R]) -> Any:
        """``fn`` itself when it pickles small (inlined in each task), else a reference to one stored copy."""
        from ray import cloudpickle

        try:
            small = len(cloudpickle.dumps(fn)) <= INLINE_FN_BYTES
        except Exception:  # Ray's own serialiser says why, below
            small = False
        return fn if small else self._ray.put(fn)

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
        """See :meth:`yolo_spine.parallel.Executor.map` (at most ``workers`` tasks in flight)."""
        items = list(items)
        bar = _progress(len(items), desc, unit, progress)
        chunks = _chunks(items, self.chunk_size(len(items), chunksize))
        fn_ref = self._function_arg(fn)
        in_flight: dict[Any, list[tuple[int, T]]] = {}
        pending = iter(chunks)

        def submit() -> None:
            for chunk in pending:
                in_flight[self._remote.remote(self.threads, fn_ref, chunk)] = chunk
                if len(in_flight) >= self.workers:
                    return

        submit()  # work starts now, before the caller reads the outcomes
        return self._collect(items, in_flight, submit, bar)

    def _collect(
        self, items: list[T], in_flight: dict[Any, list[tuple[int, T]]], submit: Callable[[], None], bar: Any
    ) -> Iterator[Outcome[T, R]]:
        ray = self._ray
        done: dict[int, tuple[Any, ItemError | None, float]] = {}
        next_index = 0
        try:
            while in_flight:
                ready, _ = ray.wait(list(in_flight), num_returns=1)
                for ref in ready:
                    chunk = in_flight.pop(ref)
                    try:
                        part = ray.get(ref)
                    except Exception as exc:  # the task itself died: its items fail, the others go on
                        err = WorkerCrashedError(f"the Ray task died ({type(exc).__name__}: {exc})")
                        part = [(i, None, ItemError(type(err).__name__, str(err), "", err), 0.0) for i, _ in chunk]
                    for i, result, error, seconds in part:
                        done[i] = (result, error, seconds)
                submit()
                while next_index in done:
                    result, error, seconds = done.pop(next_index)
                    yield Outcome(next_index, items[next_index], result, error, seconds)
                    bar.update(1)
                    next_index += 1
        finally:
            bar.close()
            for ref in in_flight:
                ray.cancel(ref, force=True)

    def close(self) -> None:
        """Disconnect from (or stop) the Ray instance this executor started."""
        if self._owns and self._ray.is_initialized():
            self._ray.shutdown()
            self._owns = False


EXECUTORS["ray"] = RayExecutor

__all__ = ["AUTO_MAX_CHUNK", "AUTO_TASKS_PER_WORKER", "INSTALL_HINT", "RayExecutor", "import_ray"]
