"""COCO segmentation files as Roboflow exports them (``_annotations.coco.json`` per split folder).

Roboflow adds a category named after the project (id 0, supercategory ``"none"``) that every real class
names as its supercategory; it is not a class and is skipped. Polygons are turned into normalised
``polygon_xy_norm`` arrays in the pixel frame of :mod:`yolo_spine.geometry`; an annotation made of several
parts becomes one ring with zero-width bridges (as Ultralytics' own COCO converter does); RLE masks are
decoded with pycocotools and traced; box-only annotations are reported, not turned into polygons.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from yolo_spine.errors import DataError
from yolo_spine.geometry import join_rings, mask_to_polygons


@dataclass
class CocoAnnotation:
    """One annotation: its category name and polygon, or why it has none.

    Attributes:
        category: Category name as written in the file.
        polygon_xy_norm: ``(N, 2)`` normalised vertices, or ``None`` for a box-only or empty annotation.
        kind: ``"polygon"``, ``"rle"``, ``"box"`` (no segmentation) or ``"empty"`` (segmentation without points).
    """

    category: str
    polygon_xy_norm: np.ndarray | None
    kind: str


@dataclass
class CocoImage:
    """One image entry with its annotations.

    Attributes:
        file_name: Image file name relative to the JSON file's folder.
        width: Image width in pixels.
        height: Image height in pixels.
        annotations: The image's annotations in file order.
    """

    file_name: str
    width: int
    height: int
    annotations: list[CocoAnnotation] = field(default_factory=list)


def class_categories(categories: list[dict]) -> dict[int, str]:
    """Return ``{category id: name}`` without Roboflow's project-named parent category.

    A category is a parent (not a class) when another category names it as its supercategory.
    """
    out = {}
    for c in categories:
        is_parent = any(o is not c and o.get("supercategory") == c["name"] for o in categories)
        if not is_parent:
            out[int(c["id"])] = str(c["name"])
    return out


def _polygon_from_segmentation(
    seg: dict[str, Any] | Sequence[Sequence[float]] | None, width: int, height: int
) -> tuple[np.ndarray | None, str]:
    """A COCO ``segmentation`` (RLE mapping or polygon lists) as one normalised polygon, and its kind."""
    if isinstance(seg, dict):  # RLE (iscrowd or Roboflow "smart polygon" masks)
        from pycocotools import mask as mask_utils

        rle = seg
        if isinstance(rle.get("counts"), list):
            rle = mask_utils.frPyObjects(rle, rle["size"][0], rle["size"][1])
        m = mask_utils.decode(rle)
        rings, _ = mask_to_polygons(m)
        if not rings:
            return None, "empty"
        return join_rings(rings) / np.array([m.shape[1], m.shape[0]], dtype=np.float64), "rle"
    if not seg:
        return None, "box"
    parts = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in seg if len(p) >= 2]
    parts = [p for p in parts if len(p)]
    if not parts:
        return None, "empty"
    ring = parts[0] if len(parts) == 1 else join_rings(parts)
    return ring / np.array([width, height], dtype=np.float64), "polygon"


@dataclass
class CocoFile:
    """A parsed COCO file: its categories as written and its images with annotations.

    Attributes:
        categories: The ``categories`` entries (``id``, ``name``, ``supercategory``).
        images: One :class:`CocoImage` per image entry, in file order.
    """

    categories: list[dict]
    images: list[CocoImage]


def read_coco(json_path: str | Path) -> CocoFile:
    """Read a COCO segmentation file into images with named, normalised polygons.

    Args:
        json_path: Path of ``_annotations.coco.json``.

    Returns:
        The :class:`CocoFile`. Annotations of categories that are not classes (Roboflow's parent) keep that
        category's name, so the caller can report them.

    Raises:
        DataError: If the file is not valid JSON or lacks the COCO keys.
    """
    json_path = Path(json_path)
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
        categories = data["categories"]
        images = data["images"]
        annotations = data.get("annotations", [])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{json_path} is not a readable COCO annotation file ({type(exc).__name__}: {exc})") from None
    names = {int(c["id"]): str(c["name"]) for c in categories}
    by_id: dict[int, CocoImage] = {}
    out: list[CocoImage] = []
    for im in images:
        entry = CocoImage(str(im["file_name"]), int(im.get("width") or 0), int(im.get("height") or 0))
        by_id[int(im["id"])] = entry
        out.append(entry)
    for ann in annotations:
        image = by_id.get(int(ann.get("image_id", -1)))
        if image is None:
            continue
        cat = names.get(int(ann.get("category_id", -1)), f"<category {ann.get('category_id')}>")
        poly, kind = _polygon_from_segmentation(ann.get("segmentation"), image.width or 1, image.height or 1)
        image.annotations.append(CocoAnnotation(cat, poly, kind))
    return CocoFile(list(categories), out)
