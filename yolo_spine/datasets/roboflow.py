"""Reading Roboflow exports (YOLOv11-seg or COCO-segmentation; folders or ``.zip``) into plain records.

Roboflow names every exported file ``<stem>_<ext>.rf.<32 hex>.<ext>``: the original file ``<stem>.<ext>``
plus a hash per exported version, so the augmented copies of one source image share ``<stem>`` (their
*group*). Splits are ``train``, ``valid`` and ``test`` folders; ``valid`` is called ``val`` here, as
Ultralytics does. YOLO exports list ``names`` alphabetically (``L1 … T1, T10, T11, T12, T2 …``); merge
maps them onto the anatomy registry's order.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from yolo_spine.errors import DataError
from yolo_spine.io.coco import class_categories, read_coco
from yolo_spine.io.labels import parse_label_text
from yolo_spine.io.xray import XRAY_SUFFIXES

_RF_NAME = re.compile(r"^(?P<stem>.+)_(?P<ext>[A-Za-z0-9]{2,5})\.rf\.(?P<hash>[0-9a-fA-F]{16,64})$")
SPLIT_ALIASES = {"train": "train", "valid": "val", "val": "val", "validation": "val", "test": "test"}


def roboflow_group(file_name: str) -> str:
    """Return the original stem of a Roboflow-exported file (all its augmented copies share it).

    ``"01-July-2019-83_jpg.rf.3f2a….jpg"`` → ``"01-July-2019-83"``; a name without ``.rf.`` gives its stem.
    """
    stem = Path(file_name).stem
    m = _RF_NAME.match(stem)
    return m.group("stem") if m else stem


@dataclass
class RawInstance:
    """One instance as read from a source, before name mapping and clipping.

    Attributes:
        name: Source class name; ``None`` when a YOLO class id is outside the source's ``names``.
        polygon_xy_norm: ``(N, 2)`` normalised vertices, or ``None`` for rows that are not polygons.
        kind: ``polygon``, ``rle``, ``box`` (box-only row), ``empty`` or ``malformed``.
    """

    name: str | None
    polygon_xy_norm: np.ndarray | None
    kind: str


@dataclass
class SourceImage:
    """One image of one export.

    Attributes:
        path: The image file (inside the extracted export).
        rel: Path relative to the export's root, for the manifest.
        split: The export's split (``train``, ``val``, ``test``).
        instances: The image's instances.
        label_file: YOLO label file read for this image, if any.
    """

    path: Path
    rel: str
    split: str
    instances: list[RawInstance] = field(default_factory=list)
    label_file: Path | None = None


@dataclass
class Export:
    """A whole export: its format, declared class names, images and label files without an image.

    Attributes:
        tag: Short unique name of the source, used as output file-name prefix and in groups.
        path: Folder or zip given by the user.
        format: ``yolov11`` or ``coco``.
        names: Class names the export declares (YOLO ``names`` or COCO categories), in its own order.
        images: The images, in a stable order.
        orphan_labels: ``(label file rel path, rows)`` of YOLO label files that have no image.
        unlisted_images: Image files in a COCO split folder that its JSON does not list (not used: unlabelled).
    """

    tag: str
    path: Path
    format: str
    names: list[str]
    images: list[SourceImage]
    orphan_labels: list[tuple[str, int]] = field(default_factory=list)
    unlisted_images: list[str] = field(default_factory=list)


def open_source(path: Path, scratch: Path) -> Path:
    """Return a folder holding the export: the folder itself, or a zip extracted under ``scratch``."""
    if path.is_dir():
        return path
    if path.is_file() and zipfile.is_zipfile(path):
        dest = scratch / f"{path.stem}-{abs(hash(str(path.resolve()))) % 10**8}"
        with zipfile.ZipFile(path) as zf:
            for member in zf.infolist():  # refuse path traversal ("../" or absolute names)
                target = (dest / member.filename).resolve()
                if not str(target).startswith(str(dest.resolve())):
                    raise DataError(f"{path} contains an unsafe path: {member.filename}")
            zf.extractall(dest)
        return dest
    if not path.exists():
        raise DataError(f"source not found: {path}")
    raise DataError(f"{path} is neither a folder nor a zip file")


def _find_root(folder: Path) -> tuple[Path, str]:
    """Locate the export's root and format (a data.yaml or per-split COCO files, at most two levels down)."""
    for depth in ("", "*/", "*/*/"):
        yamls = sorted(folder.glob(f"{depth}data.yaml"))
        if yamls:
            return yamls[0].parent, "yolov11"
        cocos = sorted(folder.glob(f"{depth}*/_annotations.coco.json")) or sorted(
            folder.glob(f"{depth}_annotations.coco.json")
        )
        if cocos:
            root = cocos[0].parent
            return (root.parent if root.name.lower() in SPLIT_ALIASES else root), "coco"
    raise DataError(f"{folder} is not a Roboflow export: no data.yaml (YOLO) or _annotations.coco.json (COCO) found")


def _yolo_names(data_yaml: Path) -> list[str]:
    try:
        data = yaml.safe_load(data_yaml.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError:
        raise DataError(f"{data_yaml} is not valid YAML") from None
    names = data.get("names")
    if isinstance(names, dict):
        return [str(names[k]) for k in sorted(names, key=int)]
    if isinstance(names, list):
        return [str(n) for n in names]
    raise DataError(f"{data_yaml} has no 'names' list")


def _yolo_split_dirs(root: Path) -> list[tuple[str, Path, Path]]:
    """Return ``(split, images dir, labels dir)`` for Roboflow (``train/images``) or Ultralytics (``images/train``)."""
    found = []
    for name in sorted(p.name for p in root.iterdir() if p.is_dir()):
        split = SPLIT_ALIASES.get(name.lower())
        if split and (root / name / "images").is_dir():
            found.append((split, root / name / "images", root / name / "labels"))
    if not found and (root / "images").is_dir():
        for d in sorted(p for p in (root / "images").iterdir() if p.is_dir()):
            split = SPLIT_ALIASES.get(d.name.lower())
            if split:
                found.append((split, d, root / "labels" / d.name))
    if not found:
        raise DataError(f"{root} has a data.yaml but no train/valid/test image folders")
    return found


def _is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in XRAY_SUFFIXES


def read_yolo_export(root: Path, tag: str, given: Path) -> Export:
    """Read a YOLOv11-seg export (``data.yaml`` + ``<split>/images|labels``)."""
    names = _yolo_names(root / "data.yaml")
    images: list[SourceImage] = []
    orphans: list[tuple[str, int]] = []
    for split, img_dir, lbl_dir in _yolo_split_dirs(root):
        stems = set()
        for img in sorted(p for p in img_dir.iterdir() if _is_image(p)):
            stems.add(img.stem)
            lbl = lbl_dir / f"{img.stem}.txt"
            src = SourceImage(img, str(img.relative_to(root)), split, label_file=lbl if lbl.is_file() else None)
            if src.label_file is not None:
                src.instances = _yolo_instances(lbl, names)
            images.append(src)
        if lbl_dir.is_dir():
            for lbl in sorted(lbl_dir.glob("*.txt")):
                if lbl.stem not in stems:
                    rows = sum(1 for line in lbl.read_text(errors="replace").splitlines() if line.strip())
                    orphans.append((str(lbl.relative_to(root)), rows))
    return Export(tag, given, "yolov11", names, images, orphans)


def _yolo_instances(lbl: Path, names: list[str]) -> list[RawInstance]:
    try:
        text = lbl.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return [RawInstance(None, None, "malformed")]
    parsed = parse_label_text(text, with_conf=False)
    out = [
        RawInstance(names[i.cls] if i.cls < len(names) else None, i.polygon_xy_norm, "polygon")
        for i in parsed.instances
    ]
    out += [RawInstance(None, None, "box")] * parsed.box_rows
    out += [RawInstance(None, None, "malformed")] * len(parsed.malformed)
    return out


def read_coco_export(root: Path, tag: str, given: Path) -> Export:
    """Read a COCO-segmentation export (``<split>/_annotations.coco.json`` with the images beside it)."""
    names: list[str] = []
    images: list[SourceImage] = []
    split_dirs = [
        (SPLIT_ALIASES[d.name.lower()], d)
        for d in sorted(root.iterdir())
        if d.is_dir() and d.name.lower() in SPLIT_ALIASES and (d / "_annotations.coco.json").is_file()
    ]
    if not split_dirs and (root / "_annotations.coco.json").is_file():
        split_dirs = [("train", root)]
    unlisted: list[str] = []
    for split, d in split_dirs:
        coco = read_coco(d / "_annotations.coco.json")
        for n in class_categories(coco.categories).values():
            if n not in names:
                names.append(n)
        listed = set()
        for entry in coco.images:
            img = d / entry.file_name
            listed.add(img.name)
            src = SourceImage(img, str(img.relative_to(root)), split)
            src.instances = [RawInstance(a.category, a.polygon_xy_norm, a.kind) for a in entry.annotations]
            images.append(src)
        unlisted += [str(p.relative_to(root)) for p in sorted(d.iterdir()) if _is_image(p) and p.name not in listed]
    return Export(tag, given, "coco", names, images, [], unlisted)


def read_export(path: Path, tag: str, scratch: Path) -> Export:
    """Open a folder or zip and read it as a YOLO or COCO Roboflow export."""
    folder = open_source(path, scratch)
    root, fmt = _find_root(folder)
    return read_yolo_export(root, tag, path) if fmt == "yolov11" else read_coco_export(root, tag, path)
