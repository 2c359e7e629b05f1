"""What the service sends back besides JSON: overlay and preview PNGs, instance masks and label images.

Masks are rasterised with :func:`yolo_spine.geometry.polygons_to_mask` (pixel centres), the rule ``lift`` and
``review`` use, so a label image from ``/infer`` holds the same pixels as the polygons in the JSON.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def encode_png(image: np.ndarray) -> bytes:
    """Encode an 8-bit image as PNG bytes (a BGR image whose channels are equal is written as grayscale)."""
    import cv2

    if image.ndim == 3 and image.shape[2] == 3 and _is_gray(image):
        image = image[:, :, 0]
    ok, buf = cv2.imencode(".png", image)
    if not ok:  # pragma: no cover - OpenCV encodes every uint8 image
        raise ValueError("OpenCV could not encode the PNG")
    return buf.tobytes()


def _is_gray(image: np.ndarray) -> bool:
    return bool(np.array_equal(image[:, :, 0], image[:, :, 1]) and np.array_equal(image[:, :, 1], image[:, :, 2]))


def overlay_png(image_bgr: np.ndarray, instances: list[dict[str, Any]], n_classes: int, alpha: float) -> bytes:
    """Draw instances (filled masks, outlines, name and confidence) over the image as ``predict`` does; PNG bytes.

    Args:
        image_bgr: ``(H, W, 3)`` ``uint8`` pixels the model saw.
        instances: The service's instance records (``class_id``, ``name``, ``confidence``, ``box_xyxy``,
            ``polygon_xy``).
        n_classes: Classes of the model (one colour each, the colours of ``predict``'s annotated images).
        alpha: Opacity of the masks.
    """
    from yolo_spine.predict.run import class_colors, draw_frame

    records = [
        {
            "class": i["name"],
            "class_id": i["class_id"],
            "conf": i["confidence"],
            "box_xyxy": i["box_xyxy"],
            "polygon_xy": i["polygon_xy"],
        }
        for i in _least_confident_first(instances)  # the most confident drawn last, on top
    ]
    return encode_png(draw_frame(image_bgr, records, class_colors(max(n_classes, 1)), None, alpha))


def _least_confident_first(instances: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Instances from the least to the most confident; ties keep the model's ranking (listed first = higher)."""
    ranked = sorted(enumerate(instances), key=lambda ki: (-ki[1]["confidence"], ki[0]))
    return [inst for _, inst in reversed(ranked)]


def instance_masks(instances: list[dict[str, Any]], height: int, width: int) -> np.ndarray:
    """Rasterise each instance's polygon: ``(N, height, width)`` bool, in the order of ``instances``."""
    from yolo_spine.geometry import polygons_to_mask

    if not instances:
        return np.zeros((0, height, width), dtype=bool)
    return np.stack(
        [polygons_to_mask([np.asarray(i["polygon_xy"], dtype=np.float64)], height, width) for i in instances]
    )


def label_image(instances: list[dict[str, Any]], height: int, width: int) -> np.ndarray:
    """One label image: ``class_id + 1`` per pixel (0: background), ``(height, width)`` ``uint16``.

    Where instances overlap, the more confident one wins (it is painted last; between equal rounded
    confidences, the one listed first, which the model ranked higher).
    """
    labels = np.zeros((height, width), dtype=np.uint16)
    order = _least_confident_first(instances)
    for inst, mask in zip(order, instance_masks(order, height, width), strict=True):
        labels[mask] = inst["class_id"] + 1
    return labels
