"""The review page's routes: the page, its assets from the package, nothing from outside, nothing else on disk."""

from __future__ import annotations

import importlib.util
import os
import re

import pytest

from yolo_spine.serve.page import STATIC_DIR, page_files


@pytest.fixture
def client():
    if importlib.util.find_spec("fastapi") is None or importlib.util.find_spec("httpx") is None:
        reason = 'FastAPI is not installed (pip install -e ".[clinic]")'
        if os.environ.get("YOLO_SPINE_REQUIRE_OPTIONAL") == "1":  # set by .ci/run: in CI a skip would hide a failure
            pytest.fail(reason)
        pytest.skip(reason)
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from yolo_spine.serve.page import add_page

    app = FastAPI()
    add_page(app)
    return TestClient(app)


def test_page_is_served_at_the_root_with_its_warning_and_a_strict_policy(client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "Not for clinical use" in response.text
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy and "connect-src 'self'" in policy
    assert response.headers["x-content-type-options"] == "nosniff"


def test_every_asset_the_page_names_is_local_and_served(client) -> None:
    html = client.get("/").text
    refs = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert {"static/review.js", "static/review.css"} <= set(refs)
    for ref in refs:
        if ref.startswith("data:"):
            continue
        assert not re.match(r"^[a-z]+:|^//", ref), f"{ref} is not on this server"
        response = client.get("/" + ref)
        assert response.status_code == 200, ref
        assert response.content == (STATIC_DIR / ref.removeprefix("static/")).read_bytes()
    assert client.get("/static/review.js").headers["content-type"].startswith("text/javascript")
    # the script and style sheet name no other server either
    for name in ("review.js", "review.css"):
        text = (STATIC_DIR / name).read_text()
        assert not re.search(r"https?://|//cdn|@import", text), name


def test_only_the_page_files_are_served(client) -> None:
    assert set(page_files()) == {"review.js", "review.css"}
    for path in ("/static/index.html", "/static/../page.py", "/static/..%2Fpage.py", "/static/nope.js"):
        assert client.get(path).status_code == 404, path
