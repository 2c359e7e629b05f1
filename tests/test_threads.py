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

from yolo_spine.parallel import PASSIVE_WAIT_ENV, available_cpus, configure_thread_policy

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


def test_thread_policy_is_passive_unless_the_user_chose(monkeypatch: pytest.MonkeyPatch):
    for var in PASSIVE_WAIT_ENV:
        monkeypatch.delenv(var, raising=False)
    assert configure_thread_policy() == {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0"}
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # a user alone on a machine may want spinning back
    assert configure_thread_policy()["OMP_WAIT_POLICY"] == "ACTIVE"


def test_the_command_line_sets_the_policy_before_any_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    from yolo_spine.cli import main

    for var in PASSIVE_WAIT_ENV:
        monkeypatch.delenv(var, raising=False)
    assert main(["check", str(tmp_path / "missing.yaml")]) != 0
    assert {var: os.environ.get(var) for var in PASSIVE_WAIT_ENV} == PASSIVE_WAIT_ENV
