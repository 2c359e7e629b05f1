"""Run manifests: every command's output says how it was made.

* :func:`run_manifest` describes a run: command, options, package versions, machine, inputs' names and hashes
  (no folders, credentials or secrets: :mod:`yolo_spine.identifiers`).
* :func:`sha256_file` / :func:`sha256_files` fingerprint inputs; :func:`to_jsonable` makes values JSON-ready.

Outputs are written through :mod:`yolo_spine.io.atomic`, so they never half exist.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import sys
import time
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any, TypedDict

from yolo_spine import __version__
from yolo_spine.identifiers import HIDDEN, InputRecord, input_record, records_paths, sanitize, sanitize_argv

_VERSIONED = ("numpy", "opencv-python", "albumentations", "SimpleITK", "pydicom", "torch", "ultralytics", "nanodrr")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Return the hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_files(paths: Iterable[str | Path], root: str | Path | None = None) -> str:
    """Return one SHA-256 over many files: each file's relative name and bytes, in sorted name order.

    Used to fingerprint a dataset's label files so a run records exactly which labels it saw.
    """
    root = Path(root) if root else None
    h = hashlib.sha256()
    for p in sorted(Path(p) for p in paths):
        name = str(p.relative_to(root)) if root else p.name
        h.update(name.encode())
        h.update(b"\0")
        h.update(p.read_bytes())
    return h.hexdigest()


def package_versions(names: Iterable[str] = _VERSIONED) -> dict[str, str | None]:
    """Return installed versions of the packages that decide a result (``None`` where not installed)."""
    out: dict[str, str | None] = {"python": platform.python_version(), "yolo_spine": __version__}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


class MachineRecord(TypedDict):
    """Where a run ran (``machine`` of :class:`RunManifest`)."""

    platform: str
    processor: str
    cpus: int | None


class RunManifest(TypedDict):
    """The fields every run record has (:func:`run_manifest`); each command's record adds its own.

    A command's manifest type extends this one with the keys it passes as ``extra`` (``MergeManifest``,
    ``Ct2YoloManifest`` …).
    """

    schema: int
    created_by: str
    created_utc: str
    command: str
    argv: list[str]
    options: dict[str, Any]
    record_paths: bool
    versions: dict[str, str | None]
    machine: MachineRecord
    inputs: dict[str, InputRecord]


def run_manifest(
    command: str,
    options: Mapping[str, Any],
    inputs: Mapping[str, str | Path] | None = None,
    extra: Mapping[str, Any] | None = None,
    *,
    record_paths: bool | None = None,
    hidden_names: Collection[str] = (),
) -> RunManifest:
    """Describe one run so that its output can be traced and repeated, without identifiers or secrets.

    ``argv``, ``options`` and ``inputs`` go through :func:`yolo_spine.identifiers.sanitize`: paths are reduced
    to base file names (folders to ``<folder>``), URL credentials and secret-named options are masked. In
    ``extra``, ``Path`` objects and absolute path strings are reduced the same way (relative strings there are
    paths inside the output and stay).

    Args:
        command: The subcommand (``merge``, ``train`` …).
        options: Resolved options.
        inputs: Named input files to fingerprint with SHA-256 (folders are recorded as ``<folder>``).
        extra: Further command-specific fields.
        record_paths: Keep full paths (``None``: as the CLI's ``--record-paths`` set it for this command).
        hidden_names: Base names recorded as ``<hidden>`` wherever a path would show them (``ct2yolo``: the
            files of a study whose id is a pseudonym).

    Returns:
        A JSON-serialisable mapping with ``schema``, ``created_by``, ``created_utc``, ``command``,
        ``argv``, ``options``, ``record_paths``, ``versions``, ``machine`` and ``inputs`` (``{name, sha256}``
        per input, and ``path`` when full paths are recorded), plus the keys of ``extra`` (typed by the
        command's own manifest type, which extends :class:`RunManifest`).
    """
    keep = records_paths() if record_paths is None else bool(record_paths)
    manifest: RunManifest = {
        "schema": 1,
        "created_by": f"yolo_spine {command} {__version__}",
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": command,
        "argv": sanitize_argv([Path(sys.argv[0]).name, *sys.argv[1:]], record_paths=keep, hidden_names=hidden_names),
        "options": to_jsonable(sanitize(dict(options), record_paths=keep, hidden_names=hidden_names)),
        "record_paths": keep,
        "versions": package_versions(),
        "machine": {"platform": platform.platform(), "processor": platform.machine(), "cpus": os.cpu_count()},
        "inputs": {key: input_record(value, record_paths=keep) for key, value in (inputs or {}).items()},
    }
    for rec in manifest["inputs"].values():
        if rec["name"] in hidden_names:
            rec["name"] = HIDDEN
    if extra:
        manifest.update(
            to_jsonable(sanitize(dict(extra), relative_paths=False, record_paths=keep, hidden_names=hidden_names))
        )
    return manifest


#: Run-record fields that differ between runs by design: when, how long, on which machine, the command line.
VOLATILE_KEYS = frozenset({"created_utc", "seconds", "argv", "machine"})


def without_volatile(obj: Any) -> Any:
    """A run record (any JSON value) without :data:`VOLATILE_KEYS` at any depth: what two equal runs share."""
    if isinstance(obj, Mapping):
        return {k: without_volatile(v) for k, v in obj.items() if k not in VOLATILE_KEYS}
    if isinstance(obj, list):
        return [without_volatile(v) for v in obj]
    return obj


def to_jsonable(obj: Any) -> Any:
    """Convert paths, tuples, sets and numpy scalars/arrays to plain JSON types."""
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return sorted(to_jsonable(v) for v in obj)
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):  # numpy arrays and scalars
        return obj.tolist()
    return obj
