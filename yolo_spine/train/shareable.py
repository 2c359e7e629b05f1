"""A finished run folder without folder names: Ultralytics' ``args.yaml`` and checkpoints sanitised.

Ultralytics records its options with full paths in ``args.yaml`` and in every checkpoint (``train_args``, the
model's ``args``, ``git.root``): the dataset (``/data/Doe_Janet_19710203/data.yaml``), the run folder and its
parent. :func:`sanitize_run_folder` rewrites them as :mod:`yolo_spine.identifiers` records inputs: a file as its
base name, a folder as ``<folder>``. ``--record-paths`` keeps them.

Only a *finished* run is sanitised (:func:`yolo_spine.train.train.train` does it before the run folder is moved
into place). An interrupted run keeps full paths in its work folder ``.<RUN_DIR>.partial``, because ``--resume``
needs them: Ultralytics continues in the checkpoint's ``save_dir``, and the resume check compares the
checkpoint's dataset with ``--data``. That folder is private to the user (mode 0700) while it exists.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from yolo_spine.identifiers import FOLDER, path_name, records_paths, sanitize
from yolo_spine.io.atomic import write_bytes_atomic, write_text_atomic

log = logging.getLogger("yolo_spine")

#: Ultralytics options naming the run folder or its parent (the folder's own name can be the identifier).
FOLDER_KEYS = frozenset({"project", "name", "save_dir"})
#: Ultralytics options that may hold a file path, relative or absolute (others are sanitised when absolute).
PATH_KEYS = frozenset({"data", "model", "cfg", "source", "tracker", "resume", "pretrained", "distill_model"})


def sanitize_train_args(args: Mapping[str, Any], data_name: str | None = None) -> dict[str, Any]:
    """Ultralytics' training options with folders as ``<folder>`` and file paths as base names.

    Values that are not paths (numbers, ``auto``, ``val``…) are kept, so a run's options stay readable.

    Args:
        args: The options (``vars(trainer.args)``, a checkpoint's ``train_args``).
        data_name: What ``data`` becomes (``None``: its base name).
    """
    out: dict[str, Any] = {}
    for key, value in args.items():
        if key == "data" and data_name is not None and value:
            out[key] = data_name
        elif key in FOLDER_KEYS and value:
            out[key] = FOLDER
        elif key in PATH_KEYS and isinstance(value, (str, Path)) and value:
            # relative too: weights/x.pt, ../Doe_J/data.yaml; a bare name stays itself
            out[key] = path_name(value) if ("/" in str(value) or "\\" in str(value)) else str(value)
        else:
            out[key] = sanitize(value, record_paths=False, relative_paths=False)
    return out


def _sanitize_model_attrs(model: Any, data_name: str | None) -> None:
    """A pickled model's ``args`` (dict or namespace, Ultralytics' options), ``yaml['yaml_file']`` and ``pt_path``."""
    args = getattr(model, "args", None)
    if isinstance(args, Mapping):
        model.args = sanitize_train_args(args, data_name)
    elif args is not None and hasattr(args, "__dict__"):  # IterableSimpleNamespace in unstripped checkpoints
        model.args = type(args)(**sanitize_train_args(vars(args), data_name))
    spec = getattr(model, "yaml", None)
    if isinstance(spec, dict) and spec.get("yaml_file"):
        spec["yaml_file"] = path_name(spec["yaml_file"])
    if isinstance(getattr(model, "pt_path", None), (str, Path)) and model.pt_path:
        # the checkpoint training started from (e.g. the packaged one, under the user's install folder);
        # Ultralytics sets it afresh whenever the file is loaded
        model.pt_path = path_name(model.pt_path)


def sanitize_checkpoint(path: str | Path, data_name: str | None = None) -> None:
    """Rewrite an Ultralytics checkpoint with its recorded paths sanitised (weights and other keys untouched).

    Import Ultralytics first: the file pickles its classes. ``data_name``: as in :func:`sanitize_train_args`.
    """
    import torch

    path = Path(path)
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(ckpt, dict):
        return
    if isinstance(ckpt.get("train_args"), Mapping):
        ckpt["train_args"] = sanitize_train_args(ckpt["train_args"], data_name)
    for key in ("model", "ema"):
        if ckpt.get(key) is not None:
            _sanitize_model_attrs(ckpt[key], data_name)
    git = ckpt.get("git")
    if isinstance(git, dict):
        if git.get("root"):
            git["root"] = FOLDER  # where Ultralytics is installed: a home folder can carry a name
        if isinstance(git.get("origin"), str):  # the remote: a local folder, or a URL that can hold a token
            git["origin"] = sanitize(git["origin"], record_paths=False, relative_paths=False)
    buffer = io.BytesIO()
    torch.save(ckpt, buffer)
    write_bytes_atomic(path, buffer.getvalue())


def _rewrite_yaml(path: Path, fix: Any) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if isinstance(data, dict):
        write_text_atomic(path, yaml.safe_dump(fix(data), sort_keys=False, allow_unicode=True))


def _sanitize_data_yaml(data: dict[str, Any]) -> dict[str, Any]:
    out = sanitize(data, record_paths=False, relative_paths=False)
    if out.get("path"):
        out["path"] = FOLDER
    return out


def sanitize_run_folder(
    run_dir: str | Path, *, record_paths: bool | None = None, data_name: str | None = None
) -> list[Path]:
    """Sanitise the paths Ultralytics and ``train`` recorded in a finished run folder.

    Rewrites ``args.yaml``, the copy ``data.yaml`` (with ``--channels``) and every checkpoint (``*.pt``: best,
    last, ``epoch<N>.pt``). ``results.csv`` and the plots hold no paths (the batch mosaics print each image's
    base name, the user's own file name).

    Args:
        run_dir: The run folder.
        record_paths: Keep full paths and change nothing (``None``: as ``--record-paths`` says).
        data_name: What the recorded dataset becomes (``None``: its base name; ``train`` gives ``data.yaml`` for
            a derived dataset, whose own name ``.<RUN_DIR>.data.yaml`` holds the run folder's name, and whose copy
            in the run folder is ``data.yaml``).

    Returns:
        The files rewritten.
    """
    if records_paths() if record_paths is None else record_paths:
        return []
    run_dir = Path(run_dir)
    done = []
    for name, fix in (
        ("args.yaml", lambda args: sanitize_train_args(args, data_name)),
        ("data.yaml", _sanitize_data_yaml),
    ):
        if (run_dir / name).is_file():
            _rewrite_yaml(run_dir / name, fix)
            done.append(run_dir / name)
    for ckpt in sorted(run_dir.rglob("*.pt")):
        sanitize_checkpoint(ckpt, data_name)
        done.append(ckpt)
    log.debug("paths sanitised in %d files of %s", len(done), run_dir)
    return done
