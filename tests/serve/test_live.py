"""A real ``yolo_spine serve`` on a free loopback port: a client vanishing mid-upload, MONAI Label's own client."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.serve.conftest import CLINIC_MODULES, LiveServer, live_server, require_modules

require_modules(*CLINIC_MODULES)

import httpx  # noqa: E402


@pytest.fixture(scope="module")
def server(detecting_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(detecting_weights, tmp_path_factory.mktemp("live")) as s:
        yield s


def test_server_survives_a_client_that_disconnects_mid_upload(server: LiveServer, example_radiograph_path) -> None:
    data = example_radiograph_path.read_bytes()
    boundary = "b0undary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="Doe^John_4711.dcm"\r\n'
        "Content-Type: application/dicom\r\n\r\n"
    ).encode()
    total = len(head) + len(data) + len(f"\r\n--{boundary}--\r\n")
    for cut in (0, len(head) + len(data) // 2):  # gone before the body, and halfway through the DICOM
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(
                (
                    f"POST /v1/radiographs?model=tiny&conf=0.001 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {total}\r\n\r\n"
                ).encode()
            )
            sock.sendall((head + data)[:cut])
            time.sleep(0.3)
        # the connection is gone; the server still answers, correctly
        r = httpx.post(
            f"{server.url}/v1/radiographs",
            params={"model": "tiny", "conf": 0.001},
            files={"file": ("a.dcm", data)},
            timeout=120,
        )
        assert r.status_code == 200, r.text
        assert r.json()["instances"] and r.json()["width"] == 1841
    assert httpx.get(f"{server.url}/", timeout=30).status_code == 200  # a file answer: its log line says 200
    assert server.proc.poll() is None
    deadline = time.monotonic() + 10
    while "GET / 200" not in server.log() and time.monotonic() < deadline:  # written once the answer has left
        time.sleep(0.1)
    log = server.log()
    assert "GET / 200" in log
    assert "Traceback" not in log, log[-3000:]
    assert "POST /v1/radiographs 200" in log  # the sanitised access line
    assert log.count("POST /v1/radiographs 499") == 2, log[-2000:]  # each vanished client, named as such
    for needle in ("Doe", "4711", "conf=", "?model"):
        assert needle not in log, (needle, log[-3000:])


def _monailabel_client():
    from tests.serve.conftest import require_modules

    require_modules("monailabel", hint="pip install --no-deps 'monailabel==0.8.5' (its client module only)")
    from monailabel.client import MONAILabelClient

    return MONAILabelClient


def test_monai_label_client_info_and_infer(server: LiveServer, example_radiograph_path, tmp_path) -> None:
    import SimpleITK as sitk

    from yolo_spine.serve.render import label_image

    client_cls = _monailabel_client()
    client = client_cls(server.url, tmpdir=str(tmp_path))
    info = client.info()
    assert info["models"]["tiny"]["type"] == "segmentation"
    assert info["models"]["tiny"]["labels"]["C1"] == 1
    image_out, params = client.infer("tiny", "RG1", {"conf": 0.001}, file=str(example_radiograph_path))
    assert os.path.basename(image_out) == "label.nii.gz"
    labels = sitk.GetArrayFromImage(sitk.ReadImage(image_out))
    params = json.loads(params) if isinstance(params, str) else params
    assert labels.shape == (params["height"], params["width"]) == (1955, 1841)
    assert params["instances"] and np.array_equal(labels, label_image(params["instances"], *labels.shape))
    from monailabel.client.client import MONAILabelClientException

    with pytest.raises(MONAILabelClientException) as err:  # sessions: a clear 4xx, not a crash
        client.infer("tiny", "RG1", {}, file=str(example_radiograph_path), session_id="s1")
    assert err.value.msg.startswith("Status: 400") and "sessions are not supported" in err.value.msg
