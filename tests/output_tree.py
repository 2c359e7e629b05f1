"""A folder's outputs as tests compare them across runs (also imported by tests/ray_cluster_check.py, a script)."""

from __future__ import annotations

import json
from pathlib import Path

from yolo_spine.provenance import without_volatile


def comparable_tree(root: Path) -> dict[str, object]:
    """Every file under ``root`` by relative path: its bytes, or for JSON its content without the run-record fields
    that differ between runs by design (:data:`yolo_spine.provenance.VOLATILE_KEYS`); ``ledger/`` (seconds, peak
    memory, worker per study) is left out."""
    out: dict[str, object] = {}
    for p in sorted(Path(root).rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and not rel.startswith("ledger/"):
            out[rel] = without_volatile(json.loads(p.read_text())) if p.suffix == ".json" else p.read_bytes()
    return out
