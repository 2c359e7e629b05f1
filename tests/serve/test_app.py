"""The service's contract through FastAPI's TestClient: models, radiograph JSON, PNGs, errors, token, access log."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.serve.conftest import CLINIC_MODULES, require_modules

require_modules(*CLINIC_MODULES)

from fastapi.testclient import TestClient  # noqa: E402

from yolo_spine.serve.app import FifoLock, create_app  # noqa: E402
from yolo_spine.serve.models import ServedModel, load_served_model  # noqa: E402
from yolo_spine.serve.options import ServeOptions  # noqa: E402

MODEL_KEYS = {"name", "anatomy", "classes", "default_conf", "sha256_12"}
INSTANCE_KEYS = {"class_id", "name", "confidence", "box_xyxy", "polygon_xy"}
LOW_CONF = 0.001


@pytest.fixture(scope="module")
def options() -> ServeOptions:
    return ServeOptions.load(threads=1)


@pytest.fixture(scope="module")
def served(detecting_weights: Path, options: ServeOptions) -> ServedModel:
    return load_served_model(detecting_weights, options, name="tiny")


@pytest.fixture(scope="module")
def client(served: ServedModel, options: ServeOptions) -> TestClient:
    return TestClient(create_app([served], options))


@pytest.fixture(scope="module")
def dicom_bytes(example_radiograph_path: Path) -> bytes:
    return example_radiograph_path.read_bytes()


@pytest.fixture(scope="module")
def png16(spine_dataset: Path) -> bytes:
    """A spine image of the test dataset as a non-square 16-bit PNG (600 x 400): a second kind, other dimensions.

    The tiny model gives every instance on the real CR a confidence of 1.0; here its confidences spread, so a
    threshold can be tested.
    """
    image = cv2.imread(str(sorted((spine_dataset.parent / "images" / "val").glob("*.png"))[0]), cv2.IMREAD_GRAYSCALE)
    ok, buf = cv2.imencode(".png", cv2.resize(image, (600, 400)).astype(np.uint16) * 257)
    assert ok
    return buf.tobytes()


def post(client: TestClient, path: str, data: bytes, name: str = "case.dcm", **params: object):
    return client.post(path, params=params, files={"file": (name, data, "application/octet-stream")})


def one_sentence(response) -> str:
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail.endswith(".") and "\n" not in detail, detail
    assert "Traceback" not in detail and 'File "' not in detail, detail
    return detail


def test_models_lists_each_model_with_registry_classes_and_hash(client, served, detecting_weights) -> None:
    from yolo_spine.registry import load_registry

    r = client.get("/v1/models")
    assert r.status_code == 200
    (entry,) = r.json()
    assert set(entry) == MODEL_KEYS
    assert entry["name"] == "tiny" and entry["anatomy"] == "spine"
    assert entry["classes"] == list(load_registry("spine").names)  # registry order, never alphabetical
    assert entry["sha256_12"] == hashlib.sha256(detecting_weights.read_bytes()).hexdigest()[:12]
    assert entry["default_conf"] == pytest.approx(0.25)
    assert r.headers["cache-control"] == "no-store"


def test_radiograph_json_is_what_the_model_finds_in_pixels_of_the_upload(
    client, served, dicom_bytes, example_radiograph_path
) -> None:
    import pydicom

    from yolo_spine.io.xray import read_xray

    ds = pydicom.dcmread(example_radiograph_path, stop_before_pixels=True)
    r = post(client, "/v1/radiographs", dicom_bytes, model="tiny", conf=LOW_CONF)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"width", "height", "model", "not_for_clinical_use", "instances"}
    assert (body["width"], body["height"]) == (int(ds.Columns), int(ds.Rows))
    assert body["not_for_clinical_use"] is True and body["model"]["name"] == "tiny"
    instances = body["instances"]
    assert len(instances) >= 3  # a model that detects something, or this test proves nothing
    confs = [i["confidence"] for i in instances]
    assert confs == sorted(confs, reverse=True) and min(confs) >= LOW_CONF
    for inst in instances:
        assert set(inst) == INSTANCE_KEYS
        assert inst["name"] == served.classes[inst["class_id"]]
        x1, y1, x2, y2 = inst["box_xyxy"]
        assert -1 <= x1 <= x2 <= body["width"] + 1 and -1 <= y1 <= y2 <= body["height"] + 1
        poly = np.asarray(inst["polygon_xy"], dtype=float)
        if len(poly):
            assert poly.shape[1] == 2
            assert (poly[:, 0] >= x1 - 2).all() and (poly[:, 0] <= x2 + 2).all()
            assert (poly[:, 1] >= y1 - 2).all() and (poly[:, 1] <= y2 + 2).all()
    # exactly what the model gives on the image `predict` reads from the same file
    direct = served.predict(read_xray(example_radiograph_path).bgr(), LOW_CONF)
    assert instances == direct
    # the largest box reaches beyond the model's 64-px input: coordinates are the upload's, not the model's
    assert max(i["box_xyxy"][2] for i in instances) > 200


def test_png16_upload_and_confidence_threshold(client, png16) -> None:
    low = post(client, "/v1/radiographs", png16, name="x.png", conf=LOW_CONF).json()  # one model: name optional
    assert (low["width"], low["height"]) == (600, 400)
    assert low["instances"], "no instance at conf 0.001"
    distinct = sorted({i["confidence"] for i in low["instances"]})
    assert len(distinct) >= 2, distinct
    k = len(distinct) // 2
    cut = (distinct[k - 1] + distinct[k]) / 2  # between two confidences: no instance sits on the threshold
    high = post(client, "/v1/radiographs", png16, name="x.png", conf=cut).json()
    assert 0 < len(high["instances"]) < len(low["instances"])
    assert high["instances"] == [i for i in low["instances"] if i["confidence"] > cut]  # the same instances, fewer


def test_preview_is_the_8bit_image_the_model_saw_and_overlay_draws_on_it(
    client, dicom_bytes, example_radiograph_path
) -> None:
    from yolo_spine.io.xray import read_xray

    preview = post(client, "/v1/radiographs/preview.png", dicom_bytes)
    assert preview.status_code == 200 and preview.headers["content-type"] == "image/png"
    seen = cv2.imdecode(np.frombuffer(preview.content, np.uint8), cv2.IMREAD_UNCHANGED)
    expected = read_xray(example_radiograph_path).pixels  # windowed, MONOCHROME1 inverted
    assert seen.dtype == np.uint8 and np.array_equal(seen, expected)
    overlay = post(client, "/v1/radiographs/overlay.png", dicom_bytes, conf=LOW_CONF)
    assert overlay.status_code == 200 and overlay.headers["content-type"] == "image/png"
    drawn = cv2.imdecode(np.frombuffer(overlay.content, np.uint8), cv2.IMREAD_COLOR)
    assert drawn.shape[:2] == expected.shape
    changed = np.any(drawn != cv2.cvtColor(expected, cv2.COLOR_GRAY2BGR), axis=2)
    assert changed.mean() > 0.01  # masks and outlines over the image
    colourful = np.ptp(drawn.astype(int), axis=2) > 30  # the class colours, on a grayscale radiograph
    assert colourful.sum() > 1000
    nothing = post(client, "/v1/radiographs/overlay.png", dicom_bytes, conf=1.0)
    plain = cv2.imdecode(np.frombuffer(nothing.content, np.uint8), cv2.IMREAD_COLOR)
    assert np.array_equal(plain, cv2.cvtColor(expected, cv2.COLOR_GRAY2BGR))  # no instance: the image as seen


def test_bad_uploads_get_one_sentence_and_a_4xx(client, dicom_bytes, png16) -> None:
    cases = {
        "text": (post(client, "/v1/radiographs", b"name,id\nDoe,123\n", name="notes.csv"), 415, "not a PNG"),
        "empty": (post(client, "/v1/radiographs", b""), 415, "empty"),
        "truncated DICOM": (post(client, "/v1/radiographs", dicom_bytes[: len(dicom_bytes) // 3]), 422, "DICOM"),
        "header-only DICOM": (post(client, "/v1/radiographs", dicom_bytes[:1500]), 422, "DICOM"),
        "truncated PNG": (post(client, "/v1/radiographs", png16[:400], name="x.png"), 422, "PNG"),
        "wrong model": (post(client, "/v1/radiographs", png16, model="knee"), 404, "no model named 'knee'"),
        "conf out of range": (post(client, "/v1/radiographs", png16, conf=1.5), 422, "conf"),
        "conf not a number": (post(client, "/v1/radiographs", png16, conf="high"), 422, "conf"),
        "no file": (client.post("/v1/radiographs", data={"x": "1"}), 422, "'file'"),
        "no body": (client.post("/v1/radiographs"), 422, "'file'"),
        "seg of a PNG": (post(client, "/v1/radiographs/seg.dcm", png16, name="x.png"), 415, "DICOM upload"),
    }
    for what, (response, status, words) in cases.items():
        assert response.status_code == status, (what, response.status_code, response.text)
        assert words in one_sentence(response), (what, response.text)
    # the upload's file name and the DICOM's identifiers never come back in an error
    r = post(client, "/v1/radiographs", dicom_bytes[:2000], name="Doe^John_4711.dcm")
    assert "Doe" not in r.text and "4711" not in r.text and "yolo_spine_upload_" not in r.text


def test_upload_limit_refuses_a_large_body_before_reading_it(served, png16) -> None:
    small = ServeOptions.load(threads=1, max_upload_mb=0.01)  # 10 KiB
    client = TestClient(create_app([served], small))
    r = post(client, "/v1/radiographs", png16 + b"\0" * 20_000, name="x.png")
    assert r.status_code == 413 and "larger than this service accepts" in one_sentence(r)

    def chunks():  # no Content-Length: the limit counts the bytes as they arrive
        for _ in range(10):
            yield b"\0" * 4096

    r = client.post("/v1/radiographs", content=chunks(), headers={"content-type": "multipart/form-data; boundary=x"})
    assert r.status_code == 413, r.text
    assert client.get("/v1/models").status_code == 200  # still serving


def test_allowed_types_are_enforced(served, png16, dicom_bytes) -> None:
    from yolo_spine.serve.uploads import sniff_kind

    # RG1's 128-byte preamble is a TIFF header (a dual-format file): the DICM marker must win, or the "TIFF" it
    # describes (the raw pixels, unwindowed and not inverted) is what the model would see
    assert dicom_bytes[:4] == b"II*\x00" and sniff_kind(dicom_bytes) == "dicom"
    assert sniff_kind(png16) == "png" and sniff_kind(b"\xff\xd8\xff\xe0") == "jpeg" and sniff_kind(b"GIF89a") is None
    client = TestClient(create_app([served], ServeOptions.load(threads=1, allowed_types=["dicom"])))
    r = post(client, "/v1/radiographs", png16, name="x.png")
    assert r.status_code == 415 and "PNG uploads are not accepted" in one_sentence(r)
    assert post(client, "/v1/radiographs", dicom_bytes, conf=0.9).status_code == 200


def test_token_is_required_when_set(served, options, png16) -> None:
    token = "s3cret-token-0123456789"
    client = TestClient(create_app([served], options, token=token))
    for path in ("/v1/models", "/info/"):
        assert client.get(path).status_code == 401
        assert client.get(path, headers={"Authorization": "Bearer wrong-token-000000000"}).status_code == 401
        assert client.get(path, headers={"Authorization": f"Basic {token}"}).status_code == 401
        assert client.get(path, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    r = post(client, "/v1/radiographs", png16, name="x.png")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in one_sentence(r)
    ok = client.post("/v1/radiographs", files={"file": ("x.png", png16)}, headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200


def test_access_log_names_the_route_never_the_query_file_or_uid(
    client, dicom_bytes, example_radiograph_path, caplog
) -> None:
    import pydicom

    uid = str(pydicom.dcmread(example_radiograph_path, stop_before_pixels=True).SOPInstanceUID)
    access = logging.getLogger("yolo_spine.serve.access")
    access.addHandler(caplog.handler)  # directly: the package logger may not propagate to the root
    caplog.set_level(logging.INFO, logger="yolo_spine.serve.access")
    try:
        post(client, "/v1/radiographs", dicom_bytes, name="Doe^John_4711.dcm", model="tiny", conf=0.5)
        post(client, "/v1/radiographs", b"junk", name="Doe^John_4711.dcm", model="tiny", conf=0.5)
        client.get(f"/studies/{uid}/series?PatientName=Doe")
    finally:
        access.removeHandler(caplog.handler)
    lines = list(dict.fromkeys(r.getMessage() for r in caplog.records if r.name == "yolo_spine.serve.access"))
    assert len(lines) == 3, lines
    assert lines[0].startswith("POST /v1/radiographs 200 ") and lines[1].startswith("POST /v1/radiographs 415 ")
    assert lines[2].startswith("GET <") and " 404 " in lines[2]  # no route (or the page's catch-all mount)
    text = "\n".join(lines)
    for needle in ("Doe", "4711", "conf", "model=", "?", uid, ".dcm"):
        assert needle not in text, (needle, text)


def test_fifo_lock_serialises_in_arrival_order() -> None:
    lock = FifoLock()
    order: list[int] = []
    inside = [0]
    most = [0]

    def work(k: int) -> None:
        with lock.hold():
            inside[0] += 1
            most[0] = max(most[0], inside[0])
            order.append(k)
            time.sleep(0.01)
            inside[0] -= 1

    threads = []
    with lock.hold():  # everyone queues behind this holder, in the order they arrive
        for k in range(6):
            t = threading.Thread(target=work, args=(k,))
            t.start()
            threads.append(t)
            while lock.waiting < k + 2:
                time.sleep(0.001)
    for t in threads:
        t.join(10)
    assert order == list(range(6)) and most[0] == 1 and lock.waiting == 0


def test_concurrent_requests_wait_for_the_model_and_all_succeed(client, png16) -> None:
    results: list[tuple[int, object]] = []

    def call() -> None:
        r = post(client, "/v1/radiographs", png16, name="x.png", conf=LOW_CONF)
        results.append((r.status_code, r.json()["instances"] if r.status_code == 200 else r.text))

    threads = [threading.Thread(target=call) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert [s for s, _ in results] == [200] * 6
    assert all(inst == results[0][1] for _, inst in results)  # the same answer, whoever waited


def test_unexpected_errors_are_one_sentence_500s(served, options, png16, monkeypatch) -> None:
    client = TestClient(create_app([served], options), raise_server_exceptions=False)

    def broken(*_a, **_k):
        raise RuntimeError("secret internals /home/doe/case.dcm")

    monkeypatch.setattr(served, "predict", broken)
    r = post(client, "/v1/radiographs", png16, name="x.png")
    assert r.status_code == 500 and "internal error" in one_sentence(r)
    assert "secret" not in r.text and "doe" not in r.text


def test_check_host_needs_a_token_off_loopback(cli_main) -> None:
    from yolo_spine.errors import UserError
    from yolo_spine.serve.server import check_host, is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.8.0.1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4") and not is_loopback("example.org")
    check_host("127.0.0.1", None)
    check_host("0.0.0.0", "a-long-enough-token-123")
    with pytest.raises(UserError, match="--token"):
        check_host("0.0.0.0", None)
    with pytest.raises(UserError, match="at least 16"):
        check_host("127.0.0.1", "short")
    res = cli_main("serve", "--weights", "nowhere.pt", "--host", "0.0.0.0", env={"YOLO_SPINE_SERVE_TOKEN": ""})
    assert res.returncode == 2 and "give --token" in res.stderr and "Traceback" not in res.stderr
    assert res.stderr.strip().count("\n") == 0


def test_weights_names() -> None:
    from yolo_spine.serve.models import parse_weights_arg, weights_name

    assert weights_name(Path("runs/spine_v3/weights/best.pt")) == "spine_v3"
    assert weights_name(Path("models/teeth-11n.onnx")) == "teeth-11n"
    assert weights_name(Path("x/best_openvino_model")) == "x"
    assert parse_weights_arg("spine=runs/a/weights/best.pt") == ("spine", Path("runs/a/weights/best.pt"))
    assert parse_weights_arg("runs/a=b/best.pt") == (None, Path("runs/a=b/best.pt"))


def test_two_models_need_a_name(served, options, png16) -> None:
    from dataclasses import replace

    other = replace(served, name="other")
    client = TestClient(create_app([served, other], options))
    assert [m["name"] for m in client.get("/v1/models").json()] == ["tiny", "other"]
    r = post(client, "/v1/radiographs", png16, name="x.png")
    assert r.status_code == 400 and "name one with ?model=" in one_sentence(r)
    assert post(client, "/v1/radiographs", png16, name="x.png", model="other").json()["model"]["name"] == "other"


def test_seg_dcm_holds_each_instance_of_a_dicom_upload_as_a_segment(
    client, dicom_bytes, example_radiograph_path, tmp_path, highdicom
) -> None:
    import pydicom

    from tests.io.test_dicom_seg import seg_masks, segment_labels
    from yolo_spine.serve.render import instance_masks

    source = pydicom.dcmread(example_radiograph_path, stop_before_pixels=True)
    body = post(client, "/v1/radiographs", dicom_bytes, conf=LOW_CONF).json()
    r = post(client, "/v1/radiographs/seg.dcm", dicom_bytes, conf=LOW_CONF)
    assert r.status_code == 200 and r.headers["content-type"] == "application/dicom", r.text[:300]
    out = tmp_path / "seg.dcm"
    out.write_bytes(r.content)
    ds, got = seg_masks(out, [str(source.SOPInstanceUID)])
    masks = instance_masks(body["instances"], body["height"], body["width"])
    kept = sorted((k for k in range(len(masks)) if masks[k].any()), key=lambda k: body["instances"][k]["class_id"])
    assert len(kept) >= 3 and sorted(got) == list(range(1, len(kept) + 1))
    labels = segment_labels(ds)
    for number, k in zip(sorted(got), kept, strict=True):  # registry order, then the JSON's order within a class
        assert labels[number].split(" #")[0] == body["instances"][k]["name"]
        assert np.array_equal(got[number][0], masks[k]), number  # the JSON's polygons, voxel for voxel
    ref = ds.ReferencedSeriesSequence[0]
    assert [str(x.ReferencedSOPInstanceUID) for x in ref.ReferencedInstanceSequence] == [str(source.SOPInstanceUID)]
    assert ds.PatientName == source.PatientName and ds.StudyInstanceUID == source.StudyInstanceUID
    assert highdicom.seg.segread(out).number_of_segments == len(kept)
    nothing = post(client, "/v1/radiographs/seg.dcm", dicom_bytes, conf=1.0)
    assert nothing.status_code == 422 and "found nothing" in one_sentence(nothing)


def test_the_app_serves_the_review_page_without_a_token(served, options) -> None:
    client = TestClient(create_app([served], options, token="s3cret-token-0123456789"))
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers.get_list("cache-control") == ["no-cache"]  # the page's own policy, not doubled
    assert client.get("/v1/models").status_code == 401  # the API keeps its token
