"""Download a Roboflow dataset version with the ``roboflow`` package (the only networked command).

``Roboflow(api_key).workspace(w).project(p).version(n).download(fmt, location)``; the key comes from
``--api-key`` or ``ROBOFLOW_API_KEY``. Without a key or a network, one sentence says so.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from yolo_spine.errors import MissingDependencyError, OfflineError, UserError
from yolo_spine.io.atomic import atomic_output, write_json_atomic
from yolo_spine.provenance import run_manifest

log = logging.getLogger("yolo_spine")

#: Export formats accepted by ``fetch`` (Roboflow's names).
FORMATS = ("yolov11", "coco-segmentation")


def _redact(exc: BaseException, key: str, limit: int = 300) -> str:
    """Exception text without the API key (requests puts it in URLs) and cut to one readable line."""
    text = re.sub(r"(api_key=)[^&\s'\"]+", r"\1***", str(exc).replace(key, "***"))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def fetch_dataset(
    workspace: str,
    project: str,
    version: int,
    fmt: str = "yolov11",
    api_key: str | None = None,
    out_root: str | Path = "datasets/raw",
    overwrite: bool = False,
) -> Path:
    """Download one Roboflow dataset version into ``<out_root>/<project>-<version>``.

    Args:
        workspace: Roboflow workspace id.
        project: Project id.
        version: Dataset version number.
        fmt: ``yolov11`` or ``coco-segmentation``.
        api_key: Roboflow API key; ``None`` reads ``ROBOFLOW_API_KEY``.
        out_root: Folder that receives ``<project>-<version>``.
        overwrite: Replace an existing download.

    Returns:
        The folder holding the export (with a ``fetch.json`` run manifest).

    Raises:
        UserError: Missing key, unknown format, existing output, or any Roboflow error (as one sentence).
        OfflineError: When Roboflow cannot be reached.
    """
    if fmt not in FORMATS:
        raise UserError(f"format must be one of {', '.join(FORMATS)}, not '{fmt}'")
    key = api_key or os.environ.get("ROBOFLOW_API_KEY")
    if not key:
        raise UserError("no Roboflow API key: pass --api-key or set ROBOFLOW_API_KEY")
    out = Path(out_root) / f"{project}-{version}"
    try:
        from roboflow import Roboflow
    except ImportError:
        raise MissingDependencyError("the 'roboflow' package is not installed (pip install roboflow)") from None
    with atomic_output(out, overwrite=overwrite) as tmp:
        try:
            rf = Roboflow(api_key=key)
            ver = rf.workspace(workspace).project(project).version(int(version))
            ver.download(fmt, location=str(tmp), overwrite=True)
        except (ConnectionError, TimeoutError, OSError) as exc:
            raise OfflineError(
                f"cannot reach Roboflow to download {workspace}/{project}/{version} "
                f"({type(exc).__name__}; check the network): {_redact(exc, key)}"
            ) from None
        except Exception as exc:  # roboflow raises bare Exceptions and RuntimeErrors with API messages
            raise UserError(
                f"Roboflow refused {workspace}/{project}/{version} ({type(exc).__name__}: {_redact(exc, key)})"
            ) from None
        if not any(tmp.iterdir()):
            raise UserError(f"Roboflow returned no files for {workspace}/{project}/{version}")
        write_json_atomic(
            tmp / "fetch.json",
            run_manifest("fetch", {"workspace": workspace, "project": project, "version": version, "format": fmt}),
        )
    log.info("downloaded %s/%s/%s (%s) into %s", workspace, project, version, fmt, out)
    return out
