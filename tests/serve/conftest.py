"""Fixtures of the service tests: a model that detects something, the app over it, a real server on loopback."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import OFFLINE_SITE

CLINIC_MODULES = ("fastapi", "uvicorn", "multipart", "httpx")


def require_modules(*modules: str, hint: str = "pip install 'yolo_spine[clinic]'") -> None:
    """Skip when an optional module is missing, or fail when ``YOLO_SPINE_REQUIRE_OPTIONAL=1`` (CI)."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if not missing:
        return
    reason = f"{', '.join(missing)} not installed ({hint})"
    if os.environ.get("YOLO_SPINE_REQUIRE_OPTIONAL") == "1":  # set by .ci/run: in CI a skip would hide a failure
        pytest.fail(f"the service tests cannot run: {reason}")
    pytest.skip(reason, allow_module_level=True)


@pytest.fixture(scope="session")
def detecting_weights(weights: Path, spine_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with batch-norm statistics measured on its training images: it finds instances at low conf."""
    from tests.predict.test_predict import _with_batchnorm_statistics

    train_images = sorted((spine_dataset.parent / "images" / "train").glob("*.png"))
    return _with_batchnorm_statistics(weights, train_images, tmp_path_factory.mktemp("serve_model") / "tiny_bn.pt")


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    """A ``yolo_spine serve`` process on a loopback port."""

    url: str
    port: int
    proc: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@contextlib.contextmanager
def live_server(
    weights: Path, tmp_path: Path, *extra: str, timeout: float = 180.0, name: str = "tiny"
) -> Iterator[LiveServer]:
    """Start ``yolo_spine serve`` (offline, one thread) with ``weights`` as model ``name``; stop it whatever happens."""
    port = free_port()
    log_path = tmp_path / "serve.log"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(OFFLINE_SITE), os.environ["PYTHONPATH"]]),
        "OMP_NUM_THREADS": "1",
    }
    cmd = [sys.executable, "-m", "yolo_spine", "serve", "--weights", f"{name}={weights}", "--port", str(port)]
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen([*cmd, "--threads", "1", *extra], stdout=log_file, stderr=subprocess.STDOUT, env=env)
    server = LiveServer(f"http://127.0.0.1:{port}", port, proc, log_path)
    try:
        import httpx

        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"serve exited with {proc.returncode}:\n{server.log()[-3000:]}")
            try:
                # 401: up, and started with --token
                if httpx.get(f"{server.url}/v1/models", timeout=2).status_code in (200, 401):
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"serve did not answer within {timeout:.0f} s:\n{server.log()[-3000:]}")
            time.sleep(0.3)
        yield server
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
