"""Where the package's data files are: the ``configs/`` folder (anatomy registries and each stage's YAML).

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
