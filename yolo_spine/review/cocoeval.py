"""An independent mask mAP with pycocotools, from the predictions Ultralytics' validator itself made.

Ultralytics computes mAP with its own matcher and interpolation; pycocotools is the reference the papers
use. Both read the same predictions (``predictions.json`` written by ``val(save_json=True)``: RLE masks at
the original image size, ``category_id = class + 1``) and the same ground truth (the split's label files
rasterised at the original image size), so a difference beyond :data:`TOLERANCE` means one of them is wrong,
and it is reported, not hidden.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np

from yolo_spine.geometry import polygon_area, polygons_to_mask
from yolo_spine.io.labels import read_yolo_labels

#: Largest absolute difference in mask mAP50-95 (and mAP50) taken as agreement. Ultralytics interpolates
#: precision at 101 recall points like COCO but matches per class with its own routine; on real data the two
#: differ by well under 0.02; 0.03 leaves room for ties at equal scores.
TOLERANCE = 0.03


def ground_truth_coco(images: list[tuple[str, Path, int, int]], nc: int) -> dict:
    """Build a COCO ground-truth dict from YOLO label files.

    Args:
        images: ``(stem, label file, width, height)`` per image; the stem is the image id, as Ultralytics writes.
        nc: Number of classes (category ids 1…nc).

    Returns:
        The COCO dict (segmentation as RLE of the rasterised polygon, so both tools see the same pixels).
    """
    from pycocotools import mask as mask_utils

    coco = {"images": [], "annotations": [], "categories": [{"id": c + 1, "name": str(c)} for c in range(nc)]}
    for stem, lbl, w, h in images:
        coco["images"].append({"id": stem, "width": w, "height": h})
        for inst in read_yolo_labels(lbl).instances:
            poly = inst.polygon_xy(w, h)
            m = polygons_to_mask([poly], h, w)
            if not m.any() or polygon_area(poly) <= 0:
                continue
            rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
            rle["counts"] = rle["counts"].decode()
            x0, y0 = poly.min(0)
            x1, y1 = poly.max(0)
            coco["annotations"].append(
                {
                    "id": len(coco["annotations"]) + 1,
                    "image_id": stem,
                    "category_id": int(inst.cls) + 1,
                    "segmentation": rle,
                    "area": float(m.sum()),
                    "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                    "iscrowd": 0,
                }
            )
    return coco


def coco_mask_map(gt: dict, predictions: list[dict]) -> dict[str, float]:
    """Return pycocotools' segm ``mAP50-95`` and ``mAP50`` (0 when there are no predictions)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if not predictions or not gt["annotations"]:
        return {"mAP50-95": 0.0, "mAP50": 0.0, "predictions": len(predictions)}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its tables
        g = COCO()
        g.dataset = gt
        g.createIndex()
        ids = {im["id"] for im in gt["images"]}
        dets = [
            {k: p[k] for k in ("image_id", "category_id", "segmentation", "score")}
            for p in predictions
            if p["image_id"] in ids or str(p["image_id"]) in ids
        ]
        for d in dets:
            d["image_id"] = d["image_id"] if d["image_id"] in ids else str(d["image_id"])
        d_coco = g.loadRes(dets) if dets else None
        if d_coco is None:
            return {"mAP50-95": 0.0, "mAP50": 0.0, "predictions": 0}
        ev = COCOeval(g, d_coco, iouType="segm")
        ev.params.maxDets = [1, 10, 300]  # Ultralytics keeps up to 300 detections per image
        ev.evaluate()
        ev.accumulate()
    # precision: [IoU thresholds, recall points, classes, area ranges, max dets]; area "all", 300 detections
    prec = ev.eval["precision"][:, :, :, 0, -1]

    def mean_valid(a: np.ndarray) -> float:
        v = a[a > -1]
        return float(v.mean()) if v.size else 0.0

    return {"mAP50-95": mean_valid(prec), "mAP50": mean_valid(prec[0]), "predictions": len(dets)}
