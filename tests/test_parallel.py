"""The package's one process pool: ordered outcomes, errors and crashes cost one item, threads per worker."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from yolo_spine.errors import DataError, UserError
from yolo_spine.parallel import (
    LocalExecutor,
    WorkerCrashedError,
    make_executor,
    plan_workers,
    start_context,
)


class Unpicklable(Exception):
    """An exception that cannot travel back from a worker (its constructor needs two arguments)."""

    def __init__(self, a: int, b: int) -> None:
        super().__init__(f"bad pair {a},{b}")


def square_or_fail(x: int) -> int:
    if x == 3:
        raise DataError(f"item {x} is unreadable")
    if x == 5:
        raise Unpicklable(x, x)
    return x * x


def die_on_four(x: int) -> int:
    if x == 4:
        os._exit(13)  # a worker killed mid-item (segfault, out-of-memory killer)
    return x + 100


def thread_report(_: int) -> dict[str, int | str]:
    import cv2
    import torch  # imported after the worker's initializer: torch must honour the thread budget

    return {"omp": os.environ["OMP_NUM_THREADS"], "torch": torch.get_num_threads(), "cv2": cv2.getNumThreads()}


def touch(path: Path) -> str:
    path.write_text("done")
    return path.name


@pytest.mark.parametrize("workers", [1, 2])
def test_outcomes_are_ordered_and_errors_stay_with_their_item(workers: int):
    with LocalExecutor(workers) as ex:
        outcomes = list(ex.map(square_or_fail, range(8), chunksize=3, progress=False))
    assert [o.index for o in outcomes] == list(range(8)) and [o.item for o in outcomes] == list(range(8))
    assert [o.result for o in outcomes if o.ok] == [0, 1, 4, 16, 36, 49]
    failed = {o.item: o.error for o in outcomes if not o.ok}
    assert set(failed) == {3, 5}
    assert failed[3].type == "DataError" and "item 3 is unreadable" in failed[3].message
    assert "square_or_fail" in failed[3].traceback
    with pytest.raises(DataError, match="item 3 is unreadable"):  # the item's own exception, for the CLI
        outcomes[3].get()
    assert failed[5].type == "Unpicklable" and "bad pair 5,5" in str(failed[5])
    with pytest.raises((Unpicklable, RuntimeError), match="bad pair 5,5"):
        outcomes[5].get()


def test_a_dying_worker_costs_only_its_item():
    with LocalExecutor(2) as ex:
        outcomes = list(ex.map(die_on_four, range(10), chunksize=2, progress=False))
    assert [o.index for o in outcomes] == list(range(10))
    assert {o.item: o.result for o in outcomes if o.ok} == {i: i + 100 for i in range(10) if i != 4}
    assert outcomes[4].error is not None and outcomes[4].error.type == "WorkerCrashedError"
    with pytest.raises(WorkerCrashedError):
        outcomes[4].get()


def test_workers_get_their_share_of_threads():
    ex = LocalExecutor(2, task_cpus=1)
    assert (ex.workers, ex.threads) == (2, 1)
    with ex:
        reports = [o.get() for o in ex.map(thread_report, range(2), progress=False)]
    assert reports == [{"omp": "1", "torch": 1, "cv2": 1}] * 2


def test_work_starts_before_results_are_read(tmp_path: Path):
    paths = [tmp_path / f"{k}.txt" for k in range(4)]
    with LocalExecutor(2) as ex:
        stream = ex.map(touch, paths, progress=False)
        deadline = time.monotonic() + 60
        while not all(p.exists() for p in paths) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(p.exists() for p in paths)  # nothing was read from the stream yet
        assert [o.get() for o in stream] == [p.name for p in paths]


def test_plan_workers_shares_cores_and_memory():
    assert plan_workers(0, cpu_budget=8) == (8, 1)
    assert plan_workers(0, task_cpus=2, cpu_budget=8) == (4, 2)
    assert plan_workers(0, task_cpus=2, task_memory=3 << 30, cpu_budget=8, memory_budget=8 << 30) == (2, 2)
    assert plan_workers(4, cpu_budget=8) == (4, 2)
    assert plan_workers(4, cpu_budget=8, n_items=3) == (3, 2)
    assert plan_workers(3, cpu_budget=2) == (3, 1)  # more workers than cores: never 0 threads
    with pytest.raises(UserError, match="task-cpus"):
        plan_workers(0, task_cpus=0)


def test_items_per_task_the_caller_asks_for_or_the_executor_chooses():
    from yolo_spine.cluster import RayExecutor  # imports Ray only when an executor is made

    ray_ex = object.__new__(RayExecutor)  # no cluster: only the choice is under test
    ray_ex.workers = 13
    # 1 per task until there are 4 tasks per worker, then up to 8 (1,228 studies on 13 workers: 154 tasks)
    assert [ray_ex.chunk_size(n) for n in (1, 51, 52, 104, 415, 416, 1228)] == [1, 1, 1, 2, 7, 8, 8]
    assert ray_ex.chunk_size(1228, 3) == 3
    local = LocalExecutor(2)
    assert local.chunk_size(1000) == 1 and local.chunk_size(1000, 5) == 5
    outcomes = list(local.map(square_or_fail, range(7), chunksize=0, progress=False))
    assert [o.index for o in outcomes] == list(range(7)) and [o.index for o in outcomes if not o.ok] == [3, 5]
    assert [o.result for o in outcomes if o.ok] == [0, 1, 4, 16, 36]
    local.close()


def test_one_start_method_and_named_executors():
    assert start_context().get_start_method() == ("forkserver" if sys.platform.startswith("linux") else "spawn")
    assert isinstance(make_executor("local", workers=1), LocalExecutor)
    with pytest.raises(UserError, match="--executor must be one of local"):
        make_executor("dask")
