"""Thread policy: every --threads is what torch runs on, and idle OpenMP threads sleep (two jobs share the cores).

Importing Ultralytics changes torch's thread settings for the whole process, so the training and prediction
run in a subprocess of their own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from yolo_spine.parallel import PASSIVE_WAIT_ENV, ThreadGovernor, available_cpus, configure_thread_policy

SCRIPT = r"""
import json, sys
from pathlib import Path
from yolo_spine.predict.run import predict
from yolo_spine.train.options import TrainOptions
from yolo_spine.train.train import train

data, out, image, asked = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
run = train(data, out / "run", TrainOptions.load("cpu-smoke"), threads=asked)
import torch
report = {"train_run_json": run.manifest["torch_threads"], "after_train": torch.get_num_threads()}
asked_run = predict(run.best, image, out / "asked", threads=asked)
report["predict_asked"] = asked_run["torch_threads"]
report["after_predict"] = torch.get_num_threads()
default_run = predict(run.best, image, out / "default")
report["predict_default"] = default_run["torch_threads"]
print(json.dumps(report))
"""


@pytest.mark.slow  # a training and two predictions of its own
def test_threads_asked_are_the_threads_torch_runs_on(spine_dataset: Path, tmp_path: Path):
    cpus = available_cpus()
    asked = 1 if cpus > 1 else 2  # never the default, so a flag that is ignored cannot pass
    image = sorted((spine_dataset.parent / "images" / "val").glob("*.png"))[0]
    env = {**os.environ, "OMP_NUM_THREADS": str(cpus)}  # not the value asked: the flag must win over the env
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(spine_dataset), str(tmp_path), str(image), str(asked)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["train_run_json"] == asked and report["after_train"] == asked  # measured in on_train_start
    assert report["predict_asked"] == asked and report["after_predict"] == asked
    assert report["predict_default"] == cpus  # no --threads: every core, whatever the previous job chose


def test_the_wait_policy_is_the_users(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    from yolo_spine.cli import main

    for var in PASSIVE_WAIT_ENV:
        monkeypatch.delenv(var, raising=False)
    assert main(["check", str(tmp_path / "missing.yaml")]) != 0
    assert not any(var in os.environ for var in PASSIVE_WAIT_ENV)  # spinning stays: a lone job keeps its speed
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    assert configure_thread_policy() == {"OMP_WAIT_POLICY": "PASSIVE"}


class FakeMachine:
    """A machine of ``cores`` cores whose other processes keep ``others`` cores busy while ours uses its threads."""

    def __init__(self, cores: int) -> None:
        self.cores, self.others, self.t, self.busy, self.own = cores, 0.0, 0.0, 0.0, 0.0
        self.threads = cores

    def run(self, seconds: float) -> None:
        mine = min(self.threads, max(0.0, self.cores - self.others)) if self.others else self.threads
        self.t += seconds
        self.busy += (mine + self.others) * seconds
        self.own += mine * seconds

    def sample(self) -> tuple[float, float, float]:
        return self.t, self.busy, self.own

    def set_threads(self, n: int) -> None:
        self.threads = n


def test_governor_gives_cores_back_while_another_job_runs_and_takes_them_again():
    m = FakeMachine(cores=2)
    g = ThreadGovernor(2, interval_s=2.0, set_threads=m.set_threads, sampler=m.sample)
    m.run(1.0)
    assert g.tick() is None and m.threads == 2  # too early to measure
    m.run(1.5)
    assert g.tick() is None and m.threads == 2  # alone: every core
    m.others = 1.0  # a one-thread job starts (or a spinning job that our own threads leave one core)
    m.run(2.5)
    assert g.tick() == 1 and m.threads == 1
    for _ in range(5):  # settles: no flapping while the other job runs
        m.run(2.5)
        assert g.tick() is None and m.threads == 1
    m.others = 0.3  # the other job ended; background noise below half a core does not cost a thread
    m.run(2.5)
    assert g.tick() == 2 and m.threads == 2
    assert g.changes == 2


def test_two_governed_jobs_on_two_cores_settle_at_one_thread_each():
    # Both start with every core; each sees the other's two (spinning) threads busy and steps down to one.
    clock = {"t": 0.0, "busy": 0.0}
    threads = {"a": 2, "b": 2}
    own = {"a": 0.0, "b": 0.0}

    def advance(seconds: float) -> None:
        total = threads["a"] + threads["b"]
        for k in own:  # 2 cores shared in proportion to the threads each job runs
            own[k] += 2.0 * threads[k] / total * seconds
        clock["t"] += seconds
        clock["busy"] += 2.0 * seconds

    def sampler(k: str):
        return lambda: (clock["t"], clock["busy"], own[k])

    def setter(k: str):
        return lambda n: threads.__setitem__(k, n)

    ga = ThreadGovernor(2, 2.0, setter("a"), sampler("a"))
    gb = ThreadGovernor(2, 2.0, setter("b"), sampler("b"))
    for _ in range(6):
        advance(2.5)
        ga.tick()
        gb.tick()
    assert threads == {"a": 1, "b": 1}


def test_governor_measures_this_machine():
    from yolo_spine.parallel import cpu_sample

    t0, busy0, own0 = cpu_sample()
    x = 0
    for i in range(2_000_000):  # burn some CPU in this process
        x += i
    t1, busy1, own1 = cpu_sample()
    assert t1 > t0 and busy1 >= busy0 and own1 > own0
