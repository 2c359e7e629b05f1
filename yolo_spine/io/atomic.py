"""Atomic outputs: every output is written under a temporary name beside its destination and moved into place.

The one way yolo_spine writes outputs, so that an interrupted command never leaves half an output and an
existing one is replaced only with ``overwrite=True``:

* :func:`atomic_output` — a folder (dataset, review, predictions) or a file (``seg.nii.gz``, an ONNX export)
  written under ``.<name>.<random>.partial`` and renamed to the destination when the body succeeds; on failure
  the temporary path and any parent folders it created are removed and an existing destination is untouched.
* :class:`ResumableOutput` — training's variant: a fixed-name work folder ``.<name>.partial`` that is *kept*
  when the work fails, so ``--resume`` finds it, and renamed to the destination by ``commit()``.
* :func:`in_place_output` — for outputs whose files record their own absolute paths (the demo's dataset,
  run records): written at the destination itself; an existing output is set aside, restored if the body
  fails and deleted when it succeeds.
* :func:`write_bytes_atomic` / :func:`write_text_atomic` / :func:`write_json_atomic` — one file through a
  temporary file and a rename.

Permissions follow the user's umask like any other file: temporary folders are made with ``os.mkdir`` and
temporary files with ``os.open(…, 0o666)`` (never ``mkdtemp``/``mkstemp``, whose private 0700/0600 modes
would survive the rename and hide half a run from colleagues on a shared server). A file that replaces an
existing one keeps the existing file's mode, as ``open(path, "w")`` would.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yolo_spine.errors import OutputExistsError, UserError
from yolo_spine.provenance import to_jsonable

log = logging.getLogger("yolo_spine")


def ensure_can_write(out: str | Path, overwrite: bool) -> Path:
    """Refuse an existing output unless ``overwrite``; return the output as a resolved path.

    Raises:
        OutputExistsError: If ``out`` exists and ``overwrite`` is false.
    """
    out = Path(out).resolve()
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out} already exists; pass --overwrite to replace it")
    return out


def partial_path(out: str | Path) -> Path:
    """The fixed-name work folder of :class:`ResumableOutput`: ``.<name>.partial`` beside ``out``."""
    out = Path(out)
    return out.parent / f".{out.name}.partial"


def _make_parents(path: Path) -> list[Path]:
    """Create the missing parent folders of ``path``; return those created, innermost first."""
    created = []
    for parent in [path.parent, *path.parent.parents]:
        if parent.exists():
            break
        created.append(parent)
    path.parent.mkdir(parents=True, exist_ok=True)
    return created


def _remove_empty(folders: list[Path]) -> None:
    """Remove folders this run created if they are still empty (innermost first)."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            break


def _remove(path: Path) -> None:
    """Delete a file or folder tree; a path that is already gone is fine."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _sibling_name(out: Path, tag: str) -> Path:
    return out.parent / f".{out.name}.{secrets.token_hex(4)}.{tag}"


def make_temp_dir(out: Path, tag: str = "partial") -> Path:
    """Create an empty folder ``.<name>.<random>.<tag>`` beside ``out`` with the mode a plain ``mkdir`` gives."""
    for _ in range(100):
        tmp = _sibling_name(out, tag)
        try:
            os.mkdir(tmp)  # 0o777 & ~umask, like any folder the user creates
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"no free temporary name beside {out}")  # pragma: no cover - 100 collisions of 32 bits


def _keep_file_mode(new: Path, existing: Path) -> None:
    """Give ``new`` the permission bits of the regular file it replaces, as ``open(existing, "w")`` would keep."""
    with contextlib.suppress(OSError):
        st = existing.stat()
        if stat.S_ISREG(st.st_mode) and new.is_file():
            os.chmod(new, stat.S_IMODE(st.st_mode))


def _move_into_place(src: Path, out: Path, overwrite: bool) -> None:
    """Rename ``src`` to ``out``; an existing ``out`` is replaced only with ``overwrite`` (set aside, then deleted)."""
    if not out.exists() and not out.is_symlink():
        os.replace(src, out)
        return
    if not overwrite:  # appeared while we worked: never clobber it
        raise OutputExistsError(f"{out} appeared while writing; pass --overwrite to replace it")
    _keep_file_mode(src, out)
    old = _sibling_name(out, "old")
    os.replace(out, old)
    os.replace(src, out)
    _remove(old)


@contextlib.contextmanager
def atomic_output(out: str | Path, overwrite: bool = False, is_dir: bool = True) -> Iterator[Path]:
    """Write an output folder (or file) under a temporary name and move it into place on success.

    The temporary path sits next to ``out`` (same filesystem, so the final move is a rename). If the
    body raises, the temporary path and any parent folders created for ``out`` are deleted and an existing
    ``out`` is left untouched.

    Args:
        out: Destination folder (or file, or any path the body creates, when ``is_dir`` is false).
        overwrite: Replace an existing ``out``.
        is_dir: Yield an empty folder that becomes ``out``; when false, yield a path inside a temporary folder
            for the body to create (a file, or a folder such as an OpenVINO export); the temporary folder
            also holds whatever scratch files the body puts beside that path.

    Yields:
        The temporary path to write into.

    Raises:
        OutputExistsError: If ``out`` exists and ``overwrite`` is false (checked before any work).
    """
    out = ensure_can_write(out, overwrite)
    created = _make_parents(out)
    tmp = make_temp_dir(out)
    target = tmp if is_dir else tmp / out.name
    done = False
    try:
        yield target
        if not target.exists():
            raise FileNotFoundError(f"the work on {out} wrote nothing to {target}")
        _move_into_place(target, out, overwrite)
        done = True
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if not done:
            _remove_empty(created)


@dataclass(frozen=True)
class ResumableOutput:
    """A fixed-name work folder ``.<name>.partial`` that survives a failure and is moved into place by :meth:`commit`.

    For long jobs that continue where they stopped (training): nothing is deleted when the work fails or is
    interrupted, so a later ``resume=True`` start finds the same folder again.

    Attributes:
        out: The destination folder (resolved).
        work: The folder to work in (``out`` itself only when extending a finished output in place).
        replace: Whether :meth:`commit` may replace an existing ``out`` (``overwrite`` or ``resume`` was given).
    """

    out: Path
    work: Path
    replace: bool = False

    @classmethod
    def start(
        cls, out: str | Path, *, overwrite: bool = False, resume: bool = False, resume_marker: str | None = None
    ) -> ResumableOutput:
        """Pick the work folder (checks only: a failure before the job writes anything leaves nothing behind).

        Args:
            out: Destination folder.
            overwrite: Replace an existing ``out`` at :meth:`commit` (a stale work folder of an earlier attempt is
                always discarded when not resuming).
            resume: Continue an earlier attempt in its work folder; when there is none but ``out`` itself holds
                ``resume_marker`` (a finished run being extended), work in ``out`` in place.
            resume_marker: A path relative to the folder that makes it resumable (``weights/last.pt``);
                ``None``: the folder existing is enough.

        Raises:
            OutputExistsError: ``out`` exists and neither ``overwrite`` nor ``resume`` was given.
            UserError: ``resume`` with nothing to resume.
        """
        out = Path(out).resolve()
        work = partial_path(out)

        def resumable(folder: Path) -> bool:
            return folder.is_dir() and (resume_marker is None or (folder / resume_marker).exists())

        if resume:
            found = next((f for f in (work, out) if resumable(f)), None)
            if found is None:
                marker = f" (no {resume_marker} there or in {work})" if resume_marker else ""
                raise UserError(f"nothing to resume: no interrupted run in {out}{marker}")
            return cls(out, found, replace=True)
        if out.exists() and not overwrite:
            raise OutputExistsError(f"{out} already exists; pass --overwrite to replace it or --resume to continue it")
        if work.exists():
            _remove(work)  # an abandoned attempt: starting afresh without --resume discards it
        return cls(out, work, replace=overwrite)  # the job creates ``work`` when it starts writing

    def commit(self, produced: str | Path | None = None) -> Path:
        """Move the finished work to ``out``; an ``out`` that appeared meanwhile is replaced only if allowed.

        Args:
            produced: The folder that holds the finished work when it is not :attr:`work` (Ultralytics resumes
                into the folder its checkpoint records); default :attr:`work`.

        Raises:
            OutputExistsError: ``out`` appeared while working and neither ``overwrite`` nor ``resume`` was given.
        """
        src = Path(produced).resolve() if produced is not None else self.work
        if src != self.out:
            _move_into_place(src, self.out, overwrite=self.replace)
        return self.out


@contextlib.contextmanager
def in_place_output(out: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Write an output folder at its final path, keeping any existing output until the body succeeds.

    For outputs whose files record their own absolute paths (a dataset's ``data.yaml``, run records), which a
    rename would make stale. An existing ``out`` is set aside as ``.<name>.<random>.old``; if the body fails, the
    new, partial ``out`` is deleted and the old one restored; if it succeeds, the old one is deleted.

    Yields:
        ``out`` (resolved), created empty.

    Raises:
        OutputExistsError: If ``out`` exists and ``overwrite`` is false.
    """
    out = ensure_can_write(out, overwrite)
    created = _make_parents(out)
    old = None
    if out.exists() or out.is_symlink():
        old = _sibling_name(out, "old")
        os.replace(out, old)
    try:
        os.mkdir(out)
        yield out
    except BaseException:
        _remove(out)
        if old is not None:
            os.replace(old, out)
        else:
            _remove_empty(created)
        raise
    if old is not None:
        _remove(old)


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write a file through a temporary file in the same folder and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:  # 0o666 & ~umask, like open(path, "wb")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:  # pragma: no cover - a 32-bit name collision
            continue
        break
    else:  # pragma: no cover
        raise FileExistsError(f"no free temporary name beside {path}")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        _keep_file_mode(tmp, path)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write a UTF-8 text file through a temporary file in the same folder and rename it into place."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def give_folder_default_mode(folder: str | Path) -> None:
    """Give ``folder`` the mode a folder made beside it gets now (``0o777 & ~umask``), e.g. after it was private.

    The mode is read from a probe folder rather than by setting the umask, which is process-wide.
    """
    folder = Path(folder)
    probe = make_temp_dir(folder, "mode")
    try:
        os.chmod(folder, stat.S_IMODE(probe.stat().st_mode))
    finally:
        probe.rmdir()


def write_json_atomic(path: str | Path, data: Any, indent: int | None = 2) -> Path:
    """Write JSON (paths, tuples, sets and numpy values converted) through a temporary file and a rename."""
    return write_text_atomic(path, json.dumps(to_jsonable(data), indent=indent) + "\n")


__all__ = [
    "ResumableOutput",
    "atomic_output",
    "ensure_can_write",
    "give_folder_default_mode",
    "in_place_output",
    "make_temp_dir",
    "partial_path",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_text_atomic",
]
