"""Builders of fake Roboflow exports that copy the real naming and layout.

Real Roboflow exports: files ``<stem>_<ext>.rf.<32 hex>.<ext>`` (one per augmented copy), split folders
``train|valid|test``; YOLO exports carry ``data.yaml`` with alphabetical ``names`` (often lower case) and
``train: ../train/images``; COCO exports carry ``_annotations.coco.json`` per split whose category 0 is the
project name (supercategory ``none``) and whose classes name the project as supercategory.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import yaml

SPINE_LOWER = [f"c{i}" for i in range(1, 8)] + [f"t{i}" for i in range(1, 13)] + [f"l{i}" for i in range(1, 6)]
ALPHABETICAL_SPINE = sorted(SPINE_LOWER)  # c1 … c7, l1 … l5, t1, t10, t11, t12, t2 … (Roboflow's order)


def rf_name(stem: str, copy: int, ext: str = "jpg") -> str:
    """Roboflow's export name of copy ``copy`` of ``<stem>.<ext>``."""
    digest = hashlib.md5(f"{stem}/{copy}".encode()).hexdigest()  # 32 hex chars like Roboflow's
    return f"{stem}_{ext}.rf.{digest}.{ext}"


def picture(seed: int, size: int = 48) -> np.ndarray:
    """A small noisy grayscale picture; different seeds give different bytes."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 60, (size, size), dtype=np.uint8)
    cv2.rectangle(img, (10, 10), (size - 10, size - 10), int(rng.integers(150, 250)), -1)
    return img


def square(x0: float, y0: float, s: float = 0.1) -> list[float]:
    """A square polygon, flat ``[x1, y1, …]`` normalised."""
    return [x0, y0, x0 + s, y0, x0 + s, y0 + s, x0, y0 + s]


@dataclass
class FakeImage:
    """One exported image: its split, Roboflow file name, and label rows (class name, flat coords or None=box)."""

    split: str  # "train" | "valid" | "test"
    name: str
    rows: list[tuple[str, list[float] | None]] = field(default_factory=list)
    pixels: np.ndarray | None = None
    raw_bytes: bytes | None = None  # written as is (a corrupt file, a 16-bit PNG …)


def write_image(path: Path, im: FakeImage, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if im.raw_bytes is not None:
        path.write_bytes(im.raw_bytes)
        return
    pixels = im.pixels if im.pixels is not None else picture(seed)
    ok, buf = cv2.imencode(Path(path).suffix, pixels)
    assert ok
    path.write_bytes(buf.tobytes())


def make_yolo_export(root: Path, names: list[str], images: list[FakeImage], orphans: int = 0) -> Path:
    """Write a YOLOv11 export; ``names`` in the export's own (alphabetical) order."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "data.yaml").write_text(
        yaml.safe_dump(
            {
                "train": "../train/images",
                "val": "../valid/images",
                "test": "../test/images",
                "nc": len(names),
                "names": names,
                "roboflow": {
                    "workspace": "ws",
                    "project": root.name,
                    "version": 1,
                    "license": "CC BY 4.0",
                    "url": f"https://universe.roboflow.com/ws/{root.name}/dataset/1",
                },
            },
            sort_keys=False,
        )
    )
    index = {n: i for i, n in enumerate(names)}
    for k, im in enumerate(images):
        write_image(root / im.split / "images" / im.name, im, seed=zlib.crc32(f"{root.name}/{k}".encode()))
        lines = []
        for cname, coords in im.rows:
            cid = index.get(cname, len(names) + 5) if cname is not None else 0
            if coords is None:  # a box row
                lines.append(f"{cid} 0.5 0.5 0.2 0.2")
            else:
                lines.append(f"{cid} " + " ".join(f"{c:.6f}" for c in coords))
        lbl = root / im.split / "labels" / f"{Path(im.name).stem}.txt"
        lbl.parent.mkdir(parents=True, exist_ok=True)
        lbl.write_text("\n".join(lines) + ("\n" if lines else ""))
    for k in range(orphans):
        (root / "train" / "labels" / f"orphan{k}_jpg.rf.{'0' * 32}.txt").write_text(
            f"0 {' '.join(map(str, square(0.1, 0.1)))}\n"
        )
    return root


def make_coco_export(
    root: Path, project: str, names: list[str], images: list[FakeImage], rle: dict[str, np.ndarray] | None = None
) -> Path:
    """Write a COCO-segmentation export; ``rle`` maps an image name to a mask written as an RLE annotation."""
    from pycocotools import mask as mask_utils

    cats = [{"id": 0, "name": project, "supercategory": "none"}] + [
        {"id": i + 1, "name": n, "supercategory": project} for i, n in enumerate(names)
    ]
    cat_id = {n: i + 1 for i, n in enumerate(names)}
    per_split: dict[str, dict] = {}
    for k, im in enumerate(images):
        d = per_split.setdefault(im.split, {"images": [], "annotations": []})
        path = root / im.split / im.name
        write_image(path, im, seed=zlib.crc32(f"{project}/{k}".encode()))
        h, w = im.pixels.shape[:2] if im.pixels is not None else (48, 48)
        iid = len(d["images"])
        d["images"].append({"id": iid, "file_name": im.name, "width": w, "height": h})
        for cname, coords in im.rows:
            seg = [] if coords is None else [[c * (w if j % 2 == 0 else h) for j, c in enumerate(coords)]]
            d["annotations"].append(
                {
                    "id": len(d["annotations"]),
                    "image_id": iid,
                    "category_id": cat_id[cname],
                    "segmentation": seg,
                    "bbox": [1, 1, 5, 5],
                    "area": 25,
                    "iscrowd": 0,
                }
            )
        if rle and im.name in rle:
            enc = mask_utils.encode(np.asfortranarray(rle[im.name].astype(np.uint8)))
            enc["counts"] = enc["counts"].decode()
            d["annotations"].append(
                {
                    "id": len(d["annotations"]),
                    "image_id": iid,
                    "category_id": 1,
                    "segmentation": enc,
                    "bbox": [1, 1, 5, 5],
                    "area": 25,
                    "iscrowd": 1,
                }
            )
    for split, d in per_split.items():
        (root / split / "_annotations.coco.json").write_text(
            json.dumps({"info": {}, "licenses": [], "categories": cats, **d})
        )
    return root


def zip_folder(folder: Path, zip_path: Path) -> Path:
    with zipfile.ZipFile(zip_path, "w") as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(folder))
    return zip_path
