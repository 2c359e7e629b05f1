"""A real Orthanc with its DICOMweb plugin, started per test module from a temporary configuration.

Loopback only (``RemoteAccessAllowed`` false, the DICOM server off), a free HTTP port, storage and index in a
temporary folder; stopped in the fixture's teardown. Never the system service the Debian package may start.
Without Orthanc or its DICOMweb plugin the tests skip, except under ``YOLO_SPINE_REQUIRE_OPTIONAL=1`` (CI),
where they fail.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

#: Where Debian's orthanc-dicomweb puts the plugin (the first that exists is used).
DICOMWEB_PLUGINS = (
    "/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
    "/usr/lib/orthanc/plugins/libOrthancDicomWeb.so",
    "/usr/local/share/orthanc/plugins/libOrthancDicomWeb.so",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def orthanc_binary() -> str | None:
    """The Orthanc executable (Debian puts it in /usr/sbin, which a user's PATH may lack)."""
    return shutil.which("Orthanc") or next((p for p in ("/usr/sbin/Orthanc",) if os.access(p, os.X_OK)), None)


def orthanc_missing() -> str | None:
    """Why Orthanc cannot run here (``None`` when it can)."""
    if orthanc_binary() is None:
        return "Orthanc is not installed (apt-get install orthanc orthanc-dicomweb)"
    if not any(Path(p).is_file() for p in DICOMWEB_PLUGINS):
        return "Orthanc's DICOMweb plugin is not installed (apt-get install orthanc-dicomweb)"
    try:
        import dicomweb_client  # noqa: F401
    except ImportError:
        return 'dicomweb-client is not installed (pip install -e ".[clinic]")'
    return None


def skip_or_fail(reason: str) -> None:
    if os.environ.get("YOLO_SPINE_REQUIRE_OPTIONAL") == "1":  # set by .ci/run: in CI a skip would hide a failure
        pytest.fail(f"the PACS tests cannot run: {reason}")
    pytest.skip(reason)


@dataclass
class Orthanc:
    """A running Orthanc: its REST root and DICOMweb root on loopback."""

    url: str
    log: Path
    users: dict[str, str] | None = None

    @property
    def dicomweb(self) -> str:
        return f"{self.url}/dicom-web"

    def _open(self, path: str, data: bytes | None = None, content_type: str | None = None) -> Any:
        headers = {"Content-Type": content_type} if content_type else {}
        if self.users:
            user, password = next(iter(self.users.items()))
            headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        req = urllib.request.Request(f"{self.url}{path}", data=data, headers=headers)
        return urllib.request.urlopen(req, timeout=60)

    def get(self, path: str) -> Any:
        with self._open(path) as r:
            return json.loads(r.read())

    def file(self, path: str) -> bytes:
        with self._open(path) as r:
            return bytes(r.read())

    def upload(self, path: Path) -> dict[str, Any]:
        with self._open("/instances", path.read_bytes(), "application/dicom") as r:
            return json.loads(r.read())

    def study_id(self, study_uid: str) -> str:
        """Orthanc's id of a study, found by its Study Instance UID."""
        with self._open("/tools/lookup", study_uid.encode(), "text/plain") as r:
            (hit,) = [h for h in json.loads(r.read()) if h["Type"] == "Study"]
        return str(hit["ID"])

    def series_of(self, study_uid: str) -> list[dict[str, Any]]:
        """Every series of the study with its main tags (``MainDicomTags``) and instances."""
        return list(self.get(f"/studies/{self.study_id(study_uid)}/series"))

    def seg_series(self, study_uid: str) -> list[dict[str, Any]]:
        return [s for s in self.series_of(study_uid) if s["MainDicomTags"].get("Modality") == "SEG"]


@contextlib.contextmanager
def running_orthanc(root: Path, users: dict[str, str] | None = None) -> Iterator[Orthanc]:
    """Start Orthanc with the DICOMweb plugin on a free loopback port (HTTP basic auth when ``users``); stop it."""
    reason = orthanc_missing()
    if reason:
        skip_or_fail(reason)
    root.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    plugin = next(p for p in DICOMWEB_PLUGINS if Path(p).is_file())
    config = {
        "Name": "yolo_spine-test",
        "StorageDirectory": str(root / "storage"),
        "IndexDirectory": str(root / "index"),
        "HttpPort": port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": bool(users),
        "RegisteredUsers": users or {},
        "DicomServerEnabled": False,
        "Plugins": [plugin],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False},
    }
    (root / "orthanc.json").write_text(json.dumps(config))
    log = root / "orthanc.log"
    with open(log, "wb") as out:
        cmd = [str(orthanc_binary()), str(root / "orthanc.json")]
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    server = Orthanc(f"http://127.0.0.1:{port}", log, users)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"Orthanc exited with {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")
            try:
                server.get("/system")
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.monotonic() > deadline:
                    pytest.fail(f"Orthanc did not answer in 60 s: {log.read_text(errors='replace')[-2000:]}")
                time.sleep(0.2)
        plugins = server.get("/plugins")
        assert "dicom-web" in plugins, f"the DICOMweb plugin did not load: {plugins}"
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    """An Orthanc without authentication for the tests of one module."""
    with running_orthanc(tmp_path_factory.mktemp("orthanc")) as server:
        yield server
