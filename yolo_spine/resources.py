"""Where the package's data files are: ``configs/`` (anatomy registries, each stage's YAML) and starting checkpoints.

A leaf module (pathlib only), so that the registry and the options loader both use it without importing each
other.
"""

from __future__ import annotations

from pathlib import Path


def configs_dir() -> Path:
    """Return the folder holding ``anatomy/`` and each stage's ``<stage>/default.yaml`` and presets.

    A wheel carries a copy inside the package (``yolo_spine/configs``); a source checkout reads the
    repository's top-level ``configs/`` folder.
    """
    packaged = Path(__file__).resolve().parent / "configs"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "configs"


#: The packaged starting checkpoint of each architecture (``yolo_spine/weights/``, with a model card beside it).
PACKAGED_CHECKPOINTS = {"yolo11n-seg": "yolo11n-seg-spine-phantoms.pt"}


def packaged_checkpoint(architecture: str) -> Path | None:
    """The checkpoint shipped inside the package for an architecture (``yolo11n-seg``), or ``None``.

    It was trained only on synthetic phantoms by ``scripts/pretrain_phantoms.py`` (see its model card,
    ``yolo_spine/weights/<name>.md``); training starts from it unless told otherwise.
    """
    name = PACKAGED_CHECKPOINTS.get(architecture)
    if name is None:
        return None
    path = Path(__file__).resolve().parent / "weights" / name
    return path if path.is_file() else None
