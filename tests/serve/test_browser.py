"""The review page in a real headless Chromium, against a real ``yolo_spine serve`` on loopback.

The browser uploads the real chest CR ``RG1_UNCR.dcm``; the test then reads the canvas back and compares it with
the preview the server returns (the 8-bit image the model saw): pixels change inside the drawn polygons and
nowhere far from them, and moving the confidence slider (with the keyboard, as a user would) or hiding a class
restores the preview where the dropped instances were. Chromium and selenium are optional for users: the test
skips without them, except under ``YOLO_SPINE_REQUIRE_OPTIONAL=1`` (CI), where it fails.
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import ROOT
from tests.serve.conftest import CLINIC_MODULES, LiveServer, live_server, require_modules

CHROMEDRIVER = Path("/usr/bin/chromedriver")
#: Where the screenshot is copied when YOLO_SPINE_DOCS_SCREENSHOT=1 (`docs/` shows the page to readers).
DOCS_SCREENSHOT = ROOT / "docs" / "review-page.png"
#: The confidence the page asks the server for (review.js REQUEST_CONF): the slider's lowest value.
REQUEST_CONF = 0.01


def _require_browser() -> None:
    """Skip without the service's modules, selenium or Chromium; fail instead under YOLO_SPINE_REQUIRE_OPTIONAL=1."""
    require_modules(*CLINIC_MODULES)
    require_modules("selenium", hint="pip install -e '.[dev]'")
    if not CHROMEDRIVER.is_file() or not (shutil.which("chromium") or shutil.which("chromium-browser")):
        reason = "Chromium is not installed (apt-get install chromium chromium-driver)"
        if os.environ.get("YOLO_SPINE_REQUIRE_OPTIONAL") == "1":  # set by .ci/run: in CI a skip would hide a failure
            pytest.fail(f"the browser test cannot run: {reason}")
        pytest.skip(reason)


@pytest.fixture
def server(phantom_weights: Path, tmp_path: Path) -> Iterator[LiveServer]:
    """``yolo_spine serve`` with the phantom-pretrained model on a free loopback port (offline), stopped after."""
    _require_browser()
    with live_server(phantom_weights, tmp_path, name="phantoms") as running:
        yield running


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """Headless Chromium through /usr/bin/chromedriver; Selenium Manager never runs (it would go online).

    Selenium skips its manager when the Service names the driver; ``SE_OFFLINE`` keeps the manager offline should
    anything still call it.
    """
    _require_browser()
    monkeypatch.setenv("SE_OFFLINE", "true")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    )
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser") or ""
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root in a container has no user namespace sandbox
        "--disable-dev-shm-usage",
        "--window-size=1400,1300",
        "--force-device-scale-factor=1",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",  # nothing but loopback resolves
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


def _canvas_bgr(driver: object) -> np.ndarray:
    url = driver.execute_script("return document.getElementById('canvas').toDataURL('image/png');")  # type: ignore[attr-defined]
    png = base64.b64decode(url.split(",", 1)[1])
    rgba = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    return cv2.cvtColor(rgba, cv2.COLOR_BGRA2BGR)


def _changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pixels where two BGR images differ by more than rounding (2 grey levels) in any channel."""
    return (np.abs(a.astype(np.int16) - b.astype(np.int16)) > 2).any(axis=2)


def _polygon_mask(instances: list[dict], shape: tuple[int, int], erode: int = 0) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    for inst in instances:
        poly = np.round(np.asarray(inst["polygon_xy"], dtype=np.float64)).astype(np.int32)
        if len(poly) >= 3:
            one = np.zeros(shape, np.uint8)
            cv2.fillPoly(one, [poly], 1)
            if erode:  # away from the outline, whose anti-aliasing and stroke width are the browser's
                one = cv2.erode(one, np.ones((2 * erode + 1, 2 * erode + 1), np.uint8))
            mask |= one
    return mask.astype(bool)


def _allowed(instances: list[dict], shape: tuple[int, int]) -> np.ndarray:
    """Where the page may draw for these instances: polygons and outlines (dilated) and label boxes (upper bound)."""
    h, w = shape
    lw = max(1, round((w + h) / 2 * 0.002))
    font = max(12, round((w + h) / 2 * 0.012))
    mask = _polygon_mask(instances, shape).astype(np.uint8)
    mask = cv2.dilate(mask, np.ones((2 * lw + 5, 2 * lw + 5), np.uint8))
    for inst in instances:
        x1, y1 = (int(v) for v in inst["box_xyxy"][:2])
        y = max(y1, font + 4)
        text_w = font * (len(inst["name"]) + 6)  # generous: no glyph is wider than the font size
        mask[max(0, y - font - 6) : y + 2, max(0, x1 - 2) : x1 + text_w] = 1
    return mask.astype(bool)


def _downloaded(driver: object, path: Path, timeout: float = 120) -> Path:
    """Wait for the browser to finish writing a download (Chromium writes ``<name>.crdownload`` first)."""
    deadline = time.monotonic() + timeout
    while not path.is_file() or path.with_name(path.name + ".crdownload").exists():
        status = driver.find_element("id", "status")  # type: ignore[attr-defined]
        assert "error" not in (status.get_attribute("class") or ""), status.text
        assert time.monotonic() < deadline, f"{path.name} was not downloaded in {timeout:.0f} s"
        time.sleep(0.2)
    return path


def _shown_count(driver: object) -> int:
    text = driver.find_element("id", "shown").text  # type: ignore[attr-defined]
    return int(text.split(" of ", 1)[0])


def _slider_value(driver: object) -> float:
    return float(driver.find_element("id", "conf").get_attribute("value"))  # type: ignore[attr-defined]


@pytest.mark.slow
def test_review_page_draws_instances_over_the_radiograph_and_filters_them(
    server: LiveServer, browser: object, example_radiograph_path: Path, tmp_path: Path
) -> None:
    import httpx
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser
    model = httpx.get(f"{server.url}/v1/models", timeout=30).json()[0]
    data = example_radiograph_path.read_bytes()
    files = {"file": ("upload.dcm", data, "application/dicom")}
    query = {"model": model["name"], "conf": str(REQUEST_CONF)}
    result = httpx.post(f"{server.url}/v1/radiographs", params=query, files=files, timeout=300).json()
    preview_png = httpx.post(
        f"{server.url}/v1/radiographs/preview.png", params={"model": model["name"]}, files=files, timeout=300
    ).content
    preview = cv2.imdecode(np.frombuffer(preview_png, np.uint8), cv2.IMREAD_COLOR)
    shape = (result["height"], result["width"])
    assert preview.shape[:2] == shape
    instances = [i for i in result["instances"] if len(i["polygon_xy"]) >= 3]
    confs = sorted({i["confidence"] for i in instances})
    assert len(confs) >= 2, f"the test model must find instances of two confidences at {REQUEST_CONF}: {confs}"

    driver.get(server.url + "/")  # type: ignore[attr-defined]
    assert "Not for clinical use" in driver.find_element(By.ID, "not-clinical").text  # type: ignore[attr-defined]
    WebDriverWait(driver, 60).until(lambda d: d.find_element(By.ID, "model").is_enabled())
    driver.find_element(By.ID, "file").send_keys(str(example_radiograph_path))  # type: ignore[attr-defined]
    WebDriverWait(driver, 300).until(lambda d: d.find_element(By.ID, "shown").text.strip())
    assert driver.find_element(By.ID, "dl-seg").is_enabled()  # type: ignore[attr-defined]  # a DICOM upload
    assert math.isclose(_slider_value(driver), model["default_conf"], abs_tol=0.005 + 1e-9)

    # Every instance the server found at the lowest threshold: the slider's Home key.
    slider = driver.find_element(By.ID, "conf")  # type: ignore[attr-defined]
    slider.send_keys(Keys.HOME)
    assert _slider_value(driver) == pytest.approx(REQUEST_CONF)
    assert _shown_count(driver) == len(result["instances"])
    all_shown = _canvas_bgr(driver)
    assert all_shown.shape[:2] == shape
    changed = _changed(all_shown, preview)
    inside = _polygon_mask(instances, shape, erode=3)
    assert inside.sum() > 100, "the instances are too small to check"
    assert changed[inside].mean() > 0.9, "the polygons are not filled over the radiograph"
    assert not changed[~_allowed(instances, shape)].any(), "the page drew outside the instances and their labels"

    # Up the slider with the arrow keys until some instances drop out, but not all.
    target = confs[len(confs) // 2]
    steps = math.ceil(round((target - REQUEST_CONF) / 0.01, 6))
    slider.send_keys(*([Keys.ARROW_RIGHT] * steps))
    threshold = _slider_value(driver)
    kept = [i for i in instances if i["confidence"] >= threshold]
    dropped = [i for i in instances if i["confidence"] < threshold]
    assert kept and dropped
    assert _shown_count(driver) == sum(i["confidence"] >= threshold for i in result["instances"])
    filtered = _canvas_bgr(driver)
    gone = _polygon_mask(dropped, shape, erode=3) & ~_allowed(kept, shape)
    assert gone.sum() > 50, "the dropped instances lie under the kept ones; nothing to check"
    assert changed[gone].mean() > 0.9 and not _changed(filtered, preview)[gone].any(), "dropped instances still drawn"
    assert not _changed(filtered, preview)[~_allowed(kept, shape)].any()

    # Hide one class with its check box: its pixels go back to the radiograph.
    hide = kept[0]["class_id"]
    driver.find_element(By.ID, f"class-{hide}").click()  # type: ignore[attr-defined]
    still = [i for i in kept if i["class_id"] != hide]
    hidden = _polygon_mask([i for i in kept if i["class_id"] == hide], shape, erode=3) & ~_allowed(still, shape)
    after_hide = _canvas_bgr(driver)
    assert hidden.sum() > 0 and not _changed(after_hide, preview)[hidden].any()
    driver.find_element(By.ID, f"class-{hide}").click()  # type: ignore[attr-defined]

    # Downloads: what is shown (JSON, YOLO-seg labels), and the DICOM-SEG of this DICOM upload.
    downloads = tmp_path / "downloads"
    stem = f"yolo_spine_{model['name']}"
    driver.find_element(By.ID, "dl-json").click()  # type: ignore[attr-defined]
    saved = json.loads(_downloaded(driver, downloads / f"{stem}.json").read_text())
    assert saved["not_for_clinical_use"] is True and saved["conf"] == pytest.approx(threshold)
    assert saved["instances"] == [i for i in result["instances"] if i["confidence"] >= threshold]
    driver.find_element(By.ID, "dl-yolo").click()  # type: ignore[attr-defined]
    lines = _downloaded(driver, downloads / f"{stem}.txt").read_text().splitlines()
    assert len(lines) == len(kept)
    for line, inst in zip(lines, kept, strict=True):
        values = line.split()
        assert int(values[0]) == inst["class_id"] and len(values) == 1 + 2 * len(inst["polygon_xy"])
        xy = np.array(values[1:], dtype=np.float64).reshape(-1, 2) * (result["width"], result["height"])
        assert np.abs(xy - np.clip(inst["polygon_xy"], 0, [result["width"], result["height"]])).max() < 0.01
    driver.find_element(By.ID, "dl-seg").click()  # type: ignore[attr-defined]
    import pydicom

    seg = pydicom.dcmread(_downloaded(driver, downloads / f"{stem}_seg.dcm"))
    assert seg.Modality == "SEG"

    shot = tmp_path / "review-page.png"
    assert driver.save_screenshot(str(shot))  # type: ignore[attr-defined]
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[1] >= 1000
    if os.environ.get("YOLO_SPINE_DOCS_SCREENSHOT") == "1":  # regenerate docs/review-page.png on purpose only
        shutil.copyfile(shot, DOCS_SCREENSHOT)


@pytest.mark.slow
def test_review_page_asks_for_the_token_and_shows_the_servers_sentence_for_a_bad_upload(
    phantom_weights: Path, browser: object, example_radiograph_path: Path, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    _require_browser()
    driver = browser
    token = "t0ken-for-the-browser-test-0123456789"
    with live_server(phantom_weights, tmp_path, "--token", token, name="phantoms") as server:
        driver.get(server.url + "/")  # type: ignore[attr-defined]
        status = driver.find_element(By.ID, "status")  # type: ignore[attr-defined]
        WebDriverWait(driver, 60).until(lambda d: "401" in status.text)
        assert "error" in status.get_attribute("class") and "Bearer" in status.text
        assert not driver.find_element(By.ID, "model").is_enabled()  # type: ignore[attr-defined]
        box = driver.find_element(By.ID, "token")  # type: ignore[attr-defined]
        assert box.is_displayed()  # the token field was opened for the user
        box.send_keys(token, Keys.TAB)
        WebDriverWait(driver, 60).until(lambda d: d.find_element(By.ID, "model").is_enabled())
        assert "error" not in status.get_attribute("class")

        driver.find_element(By.ID, "file").send_keys(str(example_radiograph_path))  # type: ignore[attr-defined]
        WebDriverWait(driver, 300).until(lambda d: d.find_element(By.ID, "review").is_displayed())
        notes = tmp_path / "notes.txt"
        notes.write_text("not a radiograph\n")
        driver.find_element(By.ID, "file").send_keys(str(notes))  # type: ignore[attr-defined]
        WebDriverWait(driver, 60).until(lambda d: "error" in status.get_attribute("class"))
        text = status.text
        assert re.search(r"\(4\d\d\): \S", text), text  # the server's status and its one sentence
        assert "Traceback" not in text and "notes.txt" not in text
        assert not driver.find_element(By.ID, "review").is_displayed()  # type: ignore[attr-defined]
