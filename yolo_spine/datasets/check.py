"""Validate a YOLO-seg dataset the way training will read it, and list every problem with its file.

Ultralytics skips problems quietly: an image whose label file mixes box and polygon rows loses all its
polygons, a class id ≥ ``nc`` marks the image corrupt, duplicate rows vanish. ``check`` names each of
these before training does, plus the problems Ultralytics cannot see: groups of augmented copies (or
byte-identical images) that straddle splits, and class names out of the registry's anatomical order.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from yolo_spine.datasets.merge import inspect_image
from yolo_spine.datasets.roboflow import roboflow_group
from yolo_spine.errors import UserError
from yolo_spine.geometry import polygon_area
from yolo_spine.io.labels import read_data_yaml, read_yolo_labels
from yolo_spine.io.xray import XRAY_SUFFIXES
from yolo_spine.layout import SPLITS
from yolo_spine.registry import load_registry


@dataclass
class Problem:
    """One problem: the file it is in (relative to the dataset root) and what is wrong."""

    file: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.message}"


@dataclass
class CheckReport:
    """Result of :func:`check_dataset`.

    Attributes:
        root: Dataset root folder.
        problems: Every problem found, in a stable order.
        images: Images per split.
        instances: Polygon instances per split.
    """

    root: Path
    problems: list[Problem] = field(default_factory=list)
    images: dict[str, int] = field(default_factory=dict)
    instances: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether no problem was found."""
        return not self.problems


def check_dataset(data_yaml: str | Path) -> CheckReport:
    """Check a dataset and return every problem found (an empty list means training will read it as is).

    Args:
        data_yaml: The dataset's ``data.yaml``.

    Returns:
        The :class:`CheckReport`.

    Raises:
        DataError: If ``data.yaml`` itself cannot be used (then nothing else can be checked).
    """
    lay = read_data_yaml(data_yaml)
    rep = CheckReport(lay.root)

    def rel(p: Path) -> str:
        try:
            return str(p.relative_to(lay.root))
        except ValueError:
            return str(p)

    if lay.nc != len(lay.names):
        rep.problems.append(Problem("data.yaml", f"nc is {lay.nc} but {len(lay.names)} names are listed"))
    if lay.anatomy:
        try:
            reg = load_registry(lay.anatomy)
        except UserError as exc:
            rep.problems.append(Problem("data.yaml", str(exc)))
        else:
            if list(reg.names) != lay.names:
                rep.problems.append(
                    Problem(
                        "data.yaml",
                        f"names are not the '{reg.name}' registry's classes in "
                        f"anatomical order (expected {', '.join(reg.names[:4])}, …)",
                    )
                )

    group_splits: dict[str, set[str]] = defaultdict(set)
    hash_splits: dict[str, set[str]] = defaultdict(set)
    groups_of = manifest_groups(lay.root)
    for split, img_dir in lay.image_dirs.items():
        lbl_dir = lay.label_dirs[split]
        if not img_dir.is_dir():
            rep.problems.append(Problem(rel(img_dir), f"{split} image folder does not exist"))
            continue
        images = sorted(p for p in img_dir.iterdir() if p.is_file() and p.suffix.lower() in XRAY_SUFFIXES)
        rep.images[split] = len(images)
        rep.instances[split] = 0
        stems = set()
        for img in images:
            stems.add(img.stem)
            chk = inspect_image(img)
            if not chk.readable:
                rep.problems.append(Problem(rel(img), chk.reason))
            elif chk.high_bit:
                rep.problems.append(
                    Problem(
                        rel(img),
                        "more than 8 bits per sample: Ultralytics keeps only the high "
                        "byte (window it to 8 bits, e.g. with yolo_spine merge)",
                    )
                )
            if chk.sha256:
                hash_splits[chk.sha256].add(split)
            group = groups_of.get(f"{img_dir.name}/{img.name}") or groups_of.get(img.name)
            group_splits[group or roboflow_group(img.name)].add(split)
            lbl = lbl_dir / f"{img.stem}.txt"
            if not lbl.is_file():
                rep.problems.append(
                    Problem(rel(lbl), "label file missing (write an empty file for an image without instances)")
                )
                continue
            rep.instances[split] += _check_labels(lbl, lay.nc, rel(lbl), rep.problems)
        if lbl_dir.is_dir():
            for lbl in sorted(lbl_dir.glob("*.txt")):
                if lbl.stem not in stems:
                    rep.problems.append(Problem(rel(lbl), "orphan label file: no image with this stem"))
    for group, splits in sorted(group_splits.items()):
        if len(splits) > 1:
            rep.problems.append(
                Problem(
                    group,
                    f"group of copies of one source image straddles splits "
                    f"{', '.join(s for s in SPLITS if s in splits)} (leakage)",
                )
            )
    n_dup = sum(1 for s in hash_splits.values() if len(s) > 1)
    if n_dup:
        rep.problems.append(
            Problem("images", f"{n_dup} byte-identical image(s) appear in more than one split (leakage)")
        )
    return rep


def manifest_groups(root: Path) -> dict[str, str]:
    """``{"<split folder>/<file name>": group}`` from a dataset's ``manifest.json`` (empty if there is none)."""
    path = root / "manifest.json"
    if not path.is_file():
        return {}
    try:
        images = json.loads(path.read_text(encoding="utf-8")).get("images", [])
    except (ValueError, AttributeError):
        return {}
    out = {}
    for e in images if isinstance(images, list) else []:
        if isinstance(e, dict) and e.get("file") and e.get("group"):
            p = Path(e["file"])
            out[f"{p.parent.name}/{p.name}"] = str(e["group"])
    return out


def _check_labels(lbl: Path, nc: int, name: str, problems: list[Problem]) -> int:
    lf = read_yolo_labels(lbl, with_conf=False)
    if lf.box_rows and lf.instances:
        problems.append(
            Problem(
                name,
                f"{lf.box_rows} box row(s) mixed with polygon rows: Ultralytics drops every instance of this image",
            )
        )
    elif lf.box_rows:
        problems.append(Problem(name, f"{lf.box_rows} box row(s) in a segmentation dataset"))
    for lineno, reason in lf.malformed:
        problems.append(Problem(name, f"line {lineno}: {reason}"))
    seen = set()
    for k, inst in enumerate(lf.instances, start=1):
        p = inst.polygon_xy_norm
        if inst.cls >= nc:
            problems.append(Problem(name, f"instance {k}: class id {inst.cls} >= nc ({nc})"))
        if len(p) < 3 or polygon_area(p) <= 0:
            problems.append(Problem(name, f"instance {k}: degenerate polygon ({len(p)} points, zero area)"))
        elif p.min() < 0 or p.max() > 1:
            problems.append(
                Problem(name, f"instance {k}: coordinates outside [0, 1] (min {p.min():.4f}, max {p.max():.4f})")
            )
        key = (inst.cls, p.tobytes())
        if key in seen:
            problems.append(Problem(name, f"instance {k}: duplicate row (Ultralytics removes it)"))
        seen.add(key)
    return len(lf.instances)
