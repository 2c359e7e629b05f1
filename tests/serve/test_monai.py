"""MONAI Label's wire format (``GET /info/``, ``POST /infer/{model}``) through TestClient, as its client sends it."""

from __future__ import annotations

import email
import email.policy
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.serve.conftest import CLINIC_MODULES, require_modules

require_modules(*CLINIC_MODULES)

from fastapi.testclient import TestClient  # noqa: E402

from yolo_spine.serve.app import create_app  # noqa: E402
from yolo_spine.serve.models import ServedModel, load_served_model  # noqa: E402
from yolo_spine.serve.options import ServeOptions  # noqa: E402


@pytest.fixture(scope="module")
def served(detecting_weights: Path) -> ServedModel:
    return load_served_model(detecting_weights, ServeOptions.load(threads=1), name="tiny")


@pytest.fixture(scope="module")
def client(served: ServedModel) -> TestClient:
    return TestClient(create_app([served], ServeOptions.load(threads=1)))


def parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, bytes]]:
    """Fields and files of a ``multipart/form-data`` answer (files by file name, as MONAI Label's client keys them)."""
    msg = email.message_from_bytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body, policy=email.policy.HTTP)
    assert msg.is_multipart()
    form, files = {}, {}
    for part in msg.iter_parts():
        payload = part.get_payload(decode=True)
        if part.get_filename():
            files[part.get_filename()] = payload
        else:
            form[part.get_param("name", header="content-disposition")] = payload.decode()
    return form, files


def infer(client: TestClient, data: bytes | None, params: dict | str | None = None, name: str = "RG1.dcm", **query):
    fields = {"params": params if isinstance(params, str) else json.dumps(params or {})}
    files = {"file": (name, data, "application/octet-stream")} if data is not None else None
    return client.post("/infer/tiny", params={"image": "Doe^John_4711", **query}, data=fields, files=files)


def nifti_array(data: bytes, tmp_path: Path) -> np.ndarray:
    import SimpleITK as sitk

    path = tmp_path / "label.nii.gz"
    path.write_bytes(data)
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def test_info_lists_models_as_monai_label_does(client, served) -> None:
    info = client.get("/info/").json()
    assert info["name"] == "yolo_spine" and "not for clinical use" in info["description"]
    model = info["models"]["tiny"]
    assert model["type"] == "segmentation" and model["dimension"] == 2
    assert model["labels"] == {c: i + 1 for i, c in enumerate(served.classes)}
    assert info["labels"] == served.classes
    assert {"trainers", "strategies", "scoring"} <= set(info)


def test_infer_answers_a_label_image_and_params_in_one_multipart(client, example_radiograph_path, tmp_path) -> None:
    from yolo_spine.serve.render import instance_masks, label_image

    data = example_radiograph_path.read_bytes()
    r = infer(client, data, {"conf": 0.001})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("multipart/form-data; boundary=")
    form, files = parse_multipart(r.headers["content-type"], r.content)
    params = json.loads(form["params"])
    assert list(files) == ["label.nii.gz"]
    labels = nifti_array(files["label.nii.gz"], tmp_path)
    assert labels.shape == (params["height"], params["width"])
    instances = params["instances"]
    assert instances and params["not_for_clinical_use"] is True
    assert params["label_names"]["C1"] == 1 and set(params["latencies"]) == {"pre", "infer", "post", "total"}
    # the label image is the JSON's polygons, rasterised; the most confident instance keeps all of its pixels
    assert np.array_equal(labels, label_image(instances, params["height"], params["width"]))
    top = instance_masks(instances[:1], params["height"], params["width"])[0]
    assert top.any() and (labels[top] == instances[0]["class_id"] + 1).all()
    assert set(np.unique(labels)) <= {0} | {i["class_id"] + 1 for i in instances}
    # the same instances as the JSON endpoint
    same = client.post("/v1/radiographs", params={"conf": 0.001}, files={"file": ("a.dcm", data)}).json()
    assert same["instances"] == instances


def test_infer_outputs_json_and_png(client, example_radiograph_path) -> None:
    data = example_radiograph_path.read_bytes()
    as_json = infer(client, data, {"conf": 0.001}, output="json")
    assert as_json.headers["content-type"] == "application/json" and as_json.json()["instances"]
    png = infer(client, data, {"conf": 0.001, "result_extension": ".png"}, output="image")
    assert png.headers["content-type"] == "image/png"
    labels = cv2.imdecode(np.frombuffer(png.content, np.uint8), cv2.IMREAD_UNCHANGED)
    assert labels.dtype == np.uint16 and labels.shape == (as_json.json()["height"], as_json.json()["width"])
    assert labels.max() >= 1


def test_infer_refuses_what_it_does_not_serve_in_one_sentence(client, example_radiograph_path, example_ct) -> None:
    data = example_radiograph_path.read_bytes()
    cases = {
        "session": (infer(client, data, session_id="abc"), 400, "sessions are not supported"),
        "session endpoint": (client.put("/session/", files={"files": ("a", b"x")}), 400, "sessions are not supported"),
        "label input": (
            client.post("/infer/tiny", files={"file": ("a.dcm", data), "label": ("l.nii.gz", b"x")}),
            400,
            "interactive",
        ),
        "clicks": (infer(client, data, {"foreground": [[1, 2, 3]]}), 400, "interactive"),
        "no upload": (infer(client, None), 400, "no datastore"),
        "truncated CT volume": (
            infer(client, example_ct.volume.read_bytes()[:5000], name="ct.nii.gz"),
            422,
            "cannot be read",
        ),
        "CT volume as PNG": (
            infer(client, example_ct.volume.read_bytes(), {"result_extension": ".png"}, name="ct.nii.gz"),
            422,
            "result_extension .nii.gz",
        ),
        "unknown model": (client.post("/infer/liver", files={"file": ("a.dcm", data)}), 404, "no model named"),
        "dicom_seg": (infer(client, data, output="dicom_seg"), 400, "DICOM-SEG"),
        "bad params": (infer(client, data, "{not json"), 422, "'params' is not JSON"),
        "bad conf": (infer(client, data, {"conf": 7}), 422, "'conf'"),
        "bad extension": (infer(client, data, {"result_extension": ".mha"}), 422, "result_extension"),
        "not an image": (infer(client, b"hello"), 415, "not a PNG"),
    }
    for what, (response, status, words) in cases.items():
        assert response.status_code == status, (what, response.status_code, response.text)
        detail = response.json()["detail"]
        assert words in detail and "\n" not in detail and "Doe" not in detail, (what, detail)


def test_infer_segments_a_ct_volume_as_pacs_does(client, served, cropped_ct, tmp_path: Path) -> None:
    """A CT volume: slices → predict → lift; the label volume has the upload's geometry and equals the pipeline's."""
    import SimpleITK as sitk

    from yolo_spine.pacs.options import PacsOptions
    from yolo_spine.pacs.pipeline import segment_ct
    from yolo_spine.registry import load_registry

    volume = cropped_ct[0]
    response = infer(client, volume.read_bytes(), {"conf": 0.001}, name="ct.nii.gz")
    assert response.status_code == 200, response.text
    fields, files = parse_multipart(response.headers["content-type"], response.content)
    answer = json.loads(fields["params"])
    assert (
        answer["not_for_clinical_use"] is True and set(answer["volume"]["slices"]) and answer["volume"]["instances"] > 0
    )
    path = tmp_path / "label.nii.gz"
    path.write_bytes(files["label.nii.gz"])
    got, src = sitk.ReadImage(str(path)), sitk.ReadImage(str(volume))
    assert got.GetSize() == src.GetSize() and np.allclose(got.GetSpacing(), src.GetSpacing())
    assert np.allclose(got.GetOrigin(), src.GetOrigin()) and np.allclose(got.GetDirection(), src.GetDirection())
    labels = sitk.GetArrayFromImage(got)
    assert labels.max() >= 1  # the model found vertebrae, and they were lifted into the volume
    direct = segment_ct(served.weights, src, tmp_path / "direct", PacsOptions.load(conf=0.001), load_registry("spine"))
    assert np.array_equal(labels, direct.labels_zyx)
