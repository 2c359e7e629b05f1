"""Shared fixtures. Tests run offline; the real example data comes from PyPI wheels through yolo_spine.data."""

from __future__ import annotations

import importlib.util
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from yolo_spine.data import ExampleCT

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


@dataclass
class CliResult:
    """What ``cli_main`` returns: the same three fields a ``subprocess.CompletedProcess`` has."""

    returncode: int
    stdout: str
    stderr: str


def _offline_socket_functions() -> tuple[object, object]:
    """The blocking ``connect`` and ``getaddrinfo`` of ``_offline/sitecustomize.py``, without leaving them installed.

    That file patches ``socket`` when imported (as it must in a subprocess); it is executed once here, its two
    functions kept and the real ones put back, so in-process runs block the network with exactly the same rules.
    """
    real = socket.socket.connect, socket.getaddrinfo
    spec = importlib.util.spec_from_file_location("_yolo_spine_offline_guard", OFFLINE_SITE / "sitecustomize.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        return module._connect, module._getaddrinfo
    finally:
        socket.socket.connect, socket.getaddrinfo = real  # type: ignore[method-assign]


@pytest.fixture
def cli_main(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., CliResult]:
    """Run ``yolo_spine.cli.main(ARGS)`` in this process, for commands that never import Ultralytics.

    Called like ``run_cli`` (``offline=True`` blocks every non-loopback connection; ``env`` sets variables for
    the call), without starting a Python that imports torch. Importing Ultralytics changes thread settings for the
    whole process, so a command that does belongs in ``run_cli``; this fails if the call imported it.
    Returns a :class:`CliResult`; never raises on a non-zero exit (argparse's ``SystemExit`` becomes its code).
    """
    from yolo_spine.cli import main

    def run(*args: object, offline: bool = False, env: dict[str, str] | None = None) -> CliResult:
        had_ultralytics = "ultralytics" in sys.modules
        logger = logging.getLogger("yolo_spine")
        saved_logger = (list(logger.handlers), logger.level, logger.propagate)
        saved_env = dict(os.environ)  # main() sets process-wide variables (the OpenMP wait policy)
        argv = [str(a) for a in args]
        with monkeypatch.context() as mp:
            mp.setattr(sys, "argv", ["yolo_spine", *argv])  # what run records read, as the console script has it
            for key, value in (env or {}).items():
                mp.setenv(key, value)
            if offline:
                connect, getaddrinfo = _offline_socket_functions()
                mp.setattr(socket.socket, "connect", connect)
                mp.setattr(socket, "getaddrinfo", getaddrinfo)
            capsys.readouterr()  # only this call's output below
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse: --version, --help, usage errors
                code = exc.code if isinstance(exc.code, int) else 1
            finally:
                # main() points the package logger at this call's captured stderr; later tests get theirs back
                logger.handlers[:] = saved_logger[0]
                logger.setLevel(saved_logger[1])
                logger.propagate = saved_logger[2]
                os.environ.clear()
                os.environ.update(saved_env)
        captured = capsys.readouterr()
        assert had_ultralytics or "ultralytics" not in sys.modules, (
            f"'yolo_spine {args[0]}' imported Ultralytics: use run_cli (a subprocess) for it"
        )
        return CliResult(int(code or 0), captured.out, captured.err)

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
def example_ct() -> ExampleCT:
    """The real chest CT LIDC-IDRI-0001 with its TotalSegmentator-v2 label map (``yolo_spine.data.ExampleCT``)."""
    from yolo_spine.data import example_ct as get

    return get()


@pytest.fixture(scope="session")
def highdicom() -> object:
    """The optional ``highdicom`` (the ``clinic`` extra): a test without it skips, or fails in CI.

    ``YOLO_SPINE_REQUIRE_OPTIONAL=1`` (set by ``.ci/run``) turns the skip into a failure: there a skip would hide
    a missing install.
    """
    try:
        import highdicom
    except ImportError:
        reason = "highdicom is not installed (pip install 'yolo_spine[clinic]')"
        if os.environ.get("YOLO_SPINE_REQUIRE_OPTIONAL") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return highdicom


@pytest.fixture(scope="session")
def cropped_ct(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The example CT cropped around three mid-thoracic vertebrae (volume, TotalSegmentator-v2 labels; NIfTI)."""
    import numpy as np
    import SimpleITK as sitk

    from yolo_spine.data import example_ct
    from yolo_spine.evaluate.eval3d import class_lookup, to_class_labels
    from yolo_spine.registry import load_registry

    ex = example_ct()
    vol, lab = sitk.ReadImage(str(ex.volume)), sitk.ReadImage(str(ex.labels))
    arr, _ = to_class_labels(lab, class_lookup(load_registry("spine"), ex.label_scheme))
    values = np.unique(arr[arr > 0])
    sel = np.isin(arr, values[len(values) // 2 - 1 : len(values) // 2 + 2])
    lo, hi = [], []
    for a, axes in ((0, (0, 1)), (1, (0, 2)), (2, (1, 2))):  # voxel axis i, j, k
        idx = np.flatnonzero(sel.any(axes))
        pad = 10 if a < 2 else 2
        lo.append(max(0, int(idx.min()) - pad))
        hi.append(min(vol.GetSize()[a], int(idx.max()) + pad + 1))
    size = [h - lo_ for lo_, h in zip(lo, hi, strict=True)]
    out = tmp_path_factory.mktemp("ct")
    sitk.WriteImage(sitk.RegionOfInterest(vol, size, lo), str(out / "v.nii.gz"))
    sitk.WriteImage(sitk.RegionOfInterest(lab, size, lo), str(out / "l.nii.gz"))
    return out / "v.nii.gz", out / "l.nii.gz"


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
            "--weights",
            "none",  # from scratch: tests rely on a model that finds little (usability, fallbacks)
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.fixture(scope="session")
def weights(tiny_model: Path) -> Path:
    """The tiny model's ``best.pt`` (see ``tiny_model``)."""
    return tiny_model / "weights" / "best.pt"


@pytest.fixture(scope="session")
def phantom_weights() -> Path:
    """The packaged phantom-pretrained YOLO11n-seg (``yolo_spine/weights/yolo11n-seg-spine-phantoms.pt``, spine
    classes).

    Unlike the one-epoch ``tiny_model``, which finds nothing on ``RG1_UNCR.dcm`` even at confidence 0.001, it finds
    low-confidence instances on real radiographs: tests that need drawn instances use it (its detections mean
    nothing anatomically; see its model card).
    """
    path = ROOT / "yolo_spine" / "weights" / "yolo11n-seg-spine-phantoms.pt"
    assert path.is_file(), f"{path} is committed to git; the checkout is incomplete"
    return path


#: The demo shrunk to a size the test suite can afford, with a fixed number of epochs (no time budget, so the
#: model does not depend on how busy the machine is; Ultralytics' seed 0 and deterministic mode from the train
#: preset). The demo's ct2yolo recipe with every 4th slice and 6 poses (59 training, 25 test images), 256 px.
DEMO_TEST_CT = {"poses": 6, "step": 4, "drr": {"size": 256, "n_samples": 64}}
DEMO_TEST_EPOCHS = 40
DEMO_TEST_IMGSZ = 256


@dataclass
class TrainedDemo:
    """A finished test-sized ``yolo_spine demo`` run (see ``trained_demo``)."""

    out: Path  # the demo folder (dataset/, train/, review/, predict/, lift/, eval/, summary.*)
    summary: dict  # what run_demo returned
    wall_s: float  # wall time of run_demo, seconds

    @property
    def best(self) -> Path:
        """The fine-tuned checkpoint."""
        return self.out / "train" / "weights" / "best.pt"

    @property
    def dataset(self) -> Path:
        """The demo's ct2yolo dataset folder (``data.yaml``, ``images/<split>``, ``labels/<split>``)."""
        return self.out / "dataset"


@pytest.fixture(scope="session")
def trained_demo(tmp_path_factory: pytest.TempPathFactory) -> TrainedDemo:
    """``yolo_spine demo`` at test size: the packaged phantom checkpoint fine-tuned with the demo's recipe
    (configs/train/demo.yaml) on slices and DRRs of the example CT, then reviewed, predicted (conf auto), lifted and
    scored on its held-out test split.

    Unlike ``tiny_model`` it finds vertebrae: the demo, predict and review tests hold its figures to thresholds a
    broken model cannot reach. Costs 40 epochs of 59 images at 256 px: 771 s of training on 2 cores shared with
    a pretraining and other test runs (load average 12, nice 15; 903 s for the fixture and its four tests), 397 s
    under lighter load (460 s in all), 239 s near idle (281 s in all).
    """
    import time

    import yaml

    from yolo_spine.demo.options import DemoOptions
    from yolo_spine.demo.run import run_demo
    from yolo_spine.options import deep_update, read_yaml
    from yolo_spine.resources import configs_dir

    tmp = tmp_path_factory.mktemp("trained_demo")
    ct = tmp / "ct.yaml"
    ct.write_text(yaml.safe_dump(deep_update(read_yaml(configs_dir() / "ct" / "demo.yaml"), DEMO_TEST_CT)))
    config = tmp / "demo.yaml"
    config.write_text(f"ct_config: {ct}\nepochs: {DEMO_TEST_EPOCHS}\ntrain_budget: null\nimgsz: {DEMO_TEST_IMGSZ}\n")
    out = tmp / "demo"
    t0 = time.perf_counter()
    summary = run_demo(out, DemoOptions.load(config), device="cpu")
    return TrainedDemo(out, summary, time.perf_counter() - t0)
