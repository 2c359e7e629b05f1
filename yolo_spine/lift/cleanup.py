"""3D clean-up of a lifted label map: largest connected component per class, anatomical order along the body.

The order fix reuses :func:`yolo_spine.order.fix_order` (the routine ``predict --order-fix`` uses) on
one 3D detection per class: its centroid along the body axis and its confidence. The registry's image axis
maps to world axes as an upright radiograph shows the patient: image ``y`` (top to bottom) is inferior
(−z in LPS), image ``x`` (left to right, radiological view) runs from the patient's right to left (+x in LPS).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from yolo_spine.ct.sidecar import VolumeGeometry
from yolo_spine.registry import AnatomyRegistry


def largest_component_per_class(labels_zyx: np.ndarray) -> dict[int, int]:
    """Keep only the largest 6-connected component of every label, in place.

    Args:
        labels_zyx: Label map (class id + 1); modified in place.

    Returns:
        ``{label: voxels removed}`` for labels that lost voxels.
    """
    from scipy import ndimage

    removed: dict[int, int] = {}
    boxes = ndimage.find_objects(labels_zyx.astype(np.int32, copy=False))
    for value, box in enumerate(boxes, start=1):
        if box is None:
            continue
        crop = labels_zyx[box]
        mask = crop == value
        comp, n = ndimage.label(mask)
        if n <= 1:
            continue
        sizes = np.bincount(comp.ravel())
        sizes[0] = 0
        drop = mask & (comp != int(np.argmax(sizes)))
        removed[value] = int(drop.sum())
        crop[drop] = 0
    return removed


def components(labels_zyx: np.ndarray, geometry: VolumeGeometry, axis: str) -> list[dict]:
    """Every 6-connected component of every label as a 3D detection along the registry's image axis.

    Args:
        labels_zyx: Label map (class id + 1).
        geometry: Its grid.
        axis: Registry order axis: ``"y"`` → −z (LPS, top of an upright image is superior), ``"x"`` → +x.

    Returns:
        Dicts with ``label``, ``position_mm``, ``voxels`` and ``box`` / ``mask`` (the crop and its component).
    """
    from scipy import ndimage

    affine = geometry.ijk_to_world()
    out: list[dict] = []
    boxes = ndimage.find_objects(labels_zyx.astype(np.int32, copy=False))
    for value, box in enumerate(boxes, start=1):
        if box is None:
            continue
        comp, n = ndimage.label(labels_zyx[box] == value)
        for c in range(1, n + 1):
            mask = comp == c
            kji = np.argwhere(mask).mean(0) + [b.start for b in box]
            world = affine @ np.array([kji[2], kji[1], kji[0], 1.0])
            pos = -world[2] if axis == "y" else world[0]
            out.append({"label": value, "position_mm": float(pos), "voxels": int(mask.sum()), "box": box, "mask": mask})
    return out


def _fix_order(
    positions: np.ndarray,
    class_ids: np.ndarray,
    confs: np.ndarray,
    sequence: Sequence[int],
    move_penalty: float | None,
    skip_cost: float | None,
) -> np.ndarray:
    """Adapter over :func:`yolo_spine.order.fix_order` (None: its defaults)."""
    from yolo_spine.order import DEFAULT_MOVE_PENALTY, DEFAULT_SKIP_COST, fix_order

    new, _ = fix_order(
        positions,
        class_ids,
        confs,
        sequence,
        DEFAULT_MOVE_PENALTY if move_penalty is None else move_penalty,
        DEFAULT_SKIP_COST if skip_cost is None else skip_cost,
    )
    return np.asarray(new, dtype=np.int64)


def order_fix(
    labels_zyx: np.ndarray,
    geometry: VolumeGeometry,
    registry: AnatomyRegistry,
    confs: dict[int, float] | None = None,
    move_penalty: float | None = None,
    skip_cost: float | None = None,
) -> dict[str, str]:
    """Relabel classes so they follow the registry's anatomical order along the body axis, in place.

    Each connected component of a label is one detection at its centroid (so two components both called L3
    can become L3 and L4); ``confs`` (label → confidence, default: the component's share of the largest
    component's voxels, capped at 0.99) says how firmly it holds its name.

    Args:
        labels_zyx: Label map (class id + 1); modified in place.
        geometry: Its grid.
        registry: The anatomy (its ``order`` gives the chains and the axis).
        confs: Confidence per label.
        move_penalty: See :func:`yolo_spine.order.fix_order`.
        skip_cost: See :func:`yolo_spine.order.fix_order`.

    Returns:
        ``{old class name: new class name}`` for every relabelled component (empty when the order held).
    """
    if registry.order is None or not registry.order.sequences:
        return {}
    dets = components(labels_zyx, geometry, registry.order.axis)
    if not dets:
        return {}
    values = np.array([d["label"] for d in dets], dtype=np.int64)
    positions = np.array([d["position_mm"] for d in dets])
    biggest = max(d["voxels"] for d in dets)
    if confs is None:
        conf = np.array([min(0.99, d["voxels"] / biggest) for d in dets])
    else:
        conf = np.array([confs.get(int(v), 0.5) for v in values])
    ids = values - 1
    new = ids.copy()
    for seq in registry.order.sequences:
        new = _fix_order(positions, new, conf, [registry.index(n) for n in seq], move_penalty, skip_cost)
    changes: dict[str, str] = {}
    for d, a, b in zip(dets, ids, new, strict=True):
        if a != b:
            labels_zyx[d["box"]][d["mask"]] = b + 1
            changes[registry.names[int(a)]] = registry.names[int(b)]
    return changes
