"""Shared fixtures. Tests run offline; the real example data comes from PyPI wheels through yolo_spine.data."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OFFLINE_SITE = Path(__file__).resolve().parent / "_offline"

# Every test process is offline for Ultralytics; example data is cached per user (CI keeps the same home).
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# Subprocesses import the checkout under test, whatever is installed in the environment.
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)


@pytest.fixture
def run_cli() -> Callable[..., subprocess.CompletedProcess]:
    """Run ``python -m yolo_spine ARGS`` in a subprocess; ``offline=True`` blocks every non-loopback connection.

    Returns the completed process (text stdout/stderr); never raises on a non-zero exit.
    """

    def run(
        *args: object,
        offline: bool = False,
        cwd: Path | None = None,
        timeout: float = 900,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess:
        full_env = {**os.environ, **(env or {})}
        if offline:
            full_env["PYTHONPATH"] = os.pathsep.join([str(OFFLINE_SITE), full_env["PYTHONPATH"]])
        return subprocess.run(
            [sys.executable, "-m", "yolo_spine", *[str(a) for a in args]],
            capture_output=True,
            text=True,
            cwd=cwd,
            env=full_env,
            timeout=timeout,
        )

    return run


@pytest.fixture(scope="session")
def spine_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated 128-px spine dataset (8/2/2 images) in the merged layout; returns its data.yaml."""
    from yolo_spine.synth import make_xray_dataset

    return make_xray_dataset(tmp_path_factory.mktemp("spine_ds"), "spine", n_train=8, n_val=2, n_test=2, imgsz=128)


@pytest.fixture(scope="session")
def brain_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated 128-px two-hemisphere brain dataset; returns its data.yaml."""
    from yolo_spine.synth import make_xray_dataset

    return make_xray_dataset(tmp_path_factory.mktemp("brain_ds"), "brain", n_train=6, n_val=2, n_test=2, imgsz=128)


@pytest.fixture(scope="session")
def example_radiograph_path() -> Path:
    """The real DICOM chest CR RG1_UNCR.dcm (15-bit, MONOCHROME1) from pydicom-data, cached per user."""
    from yolo_spine.data import example_radiograph

    return example_radiograph()


@pytest.fixture(scope="session")
def tiny_model(spine_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-epoch YOLO11n-seg trained by ``yolo_spine train`` at 64 px, offline (the run folder is returned).

    It learns nothing useful in one epoch; tests use it for files, formats, speed paths and errors.
    """
    out = tmp_path_factory.mktemp("runs") / "tiny"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(OFFLINE_SITE), os.environ["PYTHONPATH"]])}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "yolo_spine",
            "train",
            "--data",
            str(spine_dataset),
            "--out",
            str(out),
            "--config",
            "cpu-smoke",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out
