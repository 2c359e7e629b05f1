"""Slice stacks back into the volume: one label map (and confidence map) per plane on the volume's voxel grid.

Each polygon is rasterised in its own image (:func:`yolo_spine.geometry.polygons_to_mask`, pixel centres) and
the image is read back at every voxel centre of the slice through the sidecar's ``pixel_to_ijk``: voxel
``(i, j, k)`` → continuous pixel ``(u, v)`` → nearest pixel. For the index-aligned planes ``ct2yolo`` writes,
that map is a permutation/flip plus the in-plane resampling from square pixels back to the voxel grid; it is
the same for every slice of a plane, so the index arrays are built once per plane and applied per slice as two
``take`` calls.

Memory: a plane holds one ``uint8`` label map (class id + 1; ``uint16`` past 254 classes) and, for predictions,
one ``uint8`` confidence map (``conf × 255``), instead of one score volume per class. Slices skipped by
``ct2yolo --step`` are filled per class by shape-based interpolation: the signed distance (mm, in-plane) of a
class's mask in the two neighbouring slices is interpolated linearly and thresholded at zero; where classes
compete the larger distance wins. Overlapping instances in one image: the more confident one is painted last.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from yolo_spine.ct.sidecar import VolumeGeometry, pixel_to_ijk
from yolo_spine.errors import DataError
from yolo_spine.geometry import polygons_to_mask
from yolo_spine.lift.io import LiftItem

log = logging.getLogger("yolo_spine")


@dataclass
class PlaneMaps:
    """One plane's lifted labels on the volume grid.

    Attributes:
        plane: ``axial``, ``coronal`` or ``sagittal`` (as the sidecars name it).
        axis: Voxel axis of the slice normal (0 = i, 1 = j, 2 = k).
        labels_zyx: Class id + 1 per voxel (0 = background), SimpleITK array order.
        conf_zyx: Confidence × 255 per voxel (``uint8``), ``None`` when every instance is ground truth.
        normal_covered: Per index along the normal: a slice (or an interpolated gap) covers it.
        inplane_covered: Per in-plane voxel (the two remaining array axes, in array order): inside the image.
        lr_blind: The slice normal runs left–right, so the plane cannot tell left from right.
        counts: ``slices``, ``interpolated``, ``instances``, ``unknown_class`` (instances whose class id is past
            the registry and are not lifted), ``empty_polygons`` (fewer than 3 vertices).
    """

    plane: str
    axis: int
    labels_zyx: np.ndarray
    conf_zyx: np.ndarray | None
    normal_covered: np.ndarray
    inplane_covered: np.ndarray
    lr_blind: bool
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def array_axis(self) -> int:
        """Axis of the normal in the (z, y, x) arrays."""
        return 2 - self.axis

    def covered(self, zyx: Sequence[np.ndarray]) -> np.ndarray:
        """Whether this plane covers the voxels at array indices ``zyx`` (three equal-length index arrays)."""
        a = self.array_axis
        rest = [zyx[d] for d in range(3) if d != a]
        return self.normal_covered[zyx[a]] & self.inplane_covered[rest[0], rest[1]]


def _slice_axis(p2i: np.ndarray, stem: str) -> int:
    """The voxel axis of an index-aligned slice's normal (raises for oblique slices)."""
    lin = p2i[:3, :3]
    scale = np.abs(lin).max()
    axis = int(np.argmax(np.abs(lin[:, 2])))
    w_off = np.delete(lin[:, 2], axis)
    uv_along = lin[axis, :2]
    if np.abs(w_off).max() > 1e-6 * scale or np.abs(uv_along).max() > 1e-6 * scale:
        raise DataError(f"slice {stem} is not aligned with the voxel grid; lift supports index-aligned planes only")
    return axis


@dataclass
class _InPlaneMap:
    """Pixel indices of every in-plane voxel of a plane (``-1``: outside the image along that axis)."""

    vv: np.ndarray  # (R, C) row index into the image, -1 outside
    uu: np.ndarray  # (R, C) column index, -1 outside
    mode: str  # "rows_v" (v depends on R only, u on C only), "rows_u" (transposed) or "general"

    def apply(self, img_padded: np.ndarray) -> np.ndarray:
        """Sample an image padded with one zero row and column at the end at every in-plane voxel."""
        if self.mode == "rows_v":
            return np.take(np.take(img_padded, self.vv[:, 0], axis=0), self.uu[0, :], axis=1)
        if self.mode == "rows_u":
            return np.take(np.take(img_padded, self.vv[0, :], axis=0), self.uu[:, 0], axis=1).T
        return img_padded[self.vv, self.uu]


def _inplane_map(p2i: np.ndarray, axis: int, shape_rc: tuple[int, int], size_wh: tuple[int, int]) -> _InPlaneMap:
    """Map each in-plane voxel centre to its nearest pixel for a slice with pixel→ijk affine ``p2i``."""
    ijk_to_uvw = np.linalg.inv(p2i)
    other = [a for a in (2, 1, 0) if a != axis]  # voxel axes of the remaining array axes, in array order
    rr, cc = np.meshgrid(np.arange(shape_rc[0]), np.arange(shape_rc[1]), indexing="ij")
    ijk = np.zeros((4, rr.size))
    ijk[other[0]] = rr.ravel()
    ijk[other[1]] = cc.ravel()
    ijk[axis] = p2i[axis, 3]
    ijk[3] = 1.0
    uvw = ijk_to_uvw @ ijk
    w, h = size_wh
    uu = np.floor(uvw[0] + 0.5).astype(np.int64).reshape(shape_rc)
    vv = np.floor(uvw[1] + 0.5).astype(np.int64).reshape(shape_rc)
    uu[(uu < 0) | (uu >= w)] = -1  # -1 reads the zero row/column the images are padded with
    vv[(vv < 0) | (vv >= h)] = -1
    if np.array_equal(vv, np.broadcast_to(vv[:, :1], vv.shape)) and np.array_equal(
        uu, np.broadcast_to(uu[:1, :], uu.shape)
    ):
        mode = "rows_v"
    elif np.array_equal(vv, np.broadcast_to(vv[:1, :], vv.shape)) and np.array_equal(
        uu, np.broadcast_to(uu[:, :1], uu.shape)
    ):
        mode = "rows_u"
    else:
        mode = "general"
    return _InPlaneMap(vv, uu, mode)


def rasterise_slice(
    item: LiftItem, nc: int, counts: dict[str, int], label_dtype: type = np.uint8
) -> tuple[np.ndarray, np.ndarray | None]:
    """Paint one slice's instances into a label image and a confidence image, padded by one zero row and column.

    Args:
        item: The slice with its instances.
        nc: Number of registry classes (class ids at or past it are counted and skipped).
        counts: Counters to update (``instances``, ``unknown_class``, ``empty_polygons``).
        label_dtype: dtype of the label image (class id + 1).

    Returns:
        ``(labels, conf)`` of shape ``(H + 1, W + 1)``; ``conf`` (``uint8``, ×255) is ``None`` when no instance
        has a confidence.
    """
    w, h = (int(s) for s in item.sidecar["image_size_wh"])
    labels: np.ndarray = np.zeros((h + 1, w + 1), label_dtype)
    has_conf = any(inst.conf is not None for inst in item.instances)
    conf = np.zeros((h + 1, w + 1), np.uint8) if has_conf else None
    order = sorted(item.instances, key=lambda inst: 1.0 if inst.conf is None else inst.conf)
    for inst in order:
        if inst.cls >= nc:
            counts["unknown_class"] = counts.get("unknown_class", 0) + 1
            continue
        poly = inst.polygon_xy(w, h)
        if len(poly) < 3:
            counts["empty_polygons"] = counts.get("empty_polygons", 0) + 1
            continue
        x0, y0 = (max(0, int(np.floor(m)) - 1) for m in poly.min(0))
        x1, y1 = int(np.ceil(poly[:, 0].max())) + 2, int(np.ceil(poly[:, 1].max())) + 2
        x1, y1 = min(w, x1), min(h, y1)
        if x1 <= x0 or y1 <= y0:
            counts["empty_polygons"] = counts.get("empty_polygons", 0) + 1
            continue
        mask = polygons_to_mask([poly - np.array([x0, y0])], y1 - y0, x1 - x0)
        labels[y0:y1, x0:x1][mask] = inst.cls + 1
        if conf is not None:
            value = 255 if inst.conf is None else round(255 * min(max(inst.conf, 0.0), 1.0))
            conf[y0:y1, x0:x1][mask] = value
        counts["instances"] = counts.get("instances", 0) + 1
    return labels, conf


def _signed_distance(mask: np.ndarray, sampling: tuple[float, float]) -> np.ndarray:
    """Signed distance (mm): positive inside, negative outside; the crop's border counts as outside."""
    from scipy import ndimage

    padded = np.pad(mask, 1)
    inside = ndimage.distance_transform_edt(padded, sampling=sampling)
    outside = ndimage.distance_transform_edt(~padded, sampling=sampling)
    return (inside - outside)[1:-1, 1:-1].astype(np.float32)


def interpolate_gap(
    la: np.ndarray,
    lb: np.ndarray,
    ca: np.ndarray | None,
    cb: np.ndarray | None,
    n_between: int,
    sampling: tuple[float, float],
) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Fill ``n_between`` slices between two lifted slices by shape-based interpolation per class.

    Args:
        la: In-plane labels (class id + 1) of the lower slice.
        lb: In-plane labels of the upper slice.
        ca: Confidence (×255) of the lower slice, or ``None``.
        cb: Confidence of the upper slice, or ``None``.
        n_between: Number of missing slices.
        sampling: In-plane voxel spacing (mm) of the two array axes.

    Returns:
        ``n_between`` ``(labels, conf)`` pairs, lower to upper.
    """
    classes = np.union1d(np.unique(la), np.unique(lb))
    classes = classes[classes != 0]
    ts = [(s + 1) / (n_between + 1) for s in range(n_between)]
    out_l = [np.zeros_like(la) for _ in ts]
    best = [np.full(la.shape, 0.0, np.float32) for _ in ts]
    for c in classes:
        ma, mb = la == c, lb == c
        rows = np.flatnonzero((ma | mb).any(1))
        cols = np.flatnonzero((ma | mb).any(0))
        box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        da = _signed_distance(ma[box], sampling) if ma.any() else None
        db = _signed_distance(mb[box], sampling) if mb.any() else None
        if da is None:
            assert db is not None  # class c is present in at least one of the two slices
            da = np.full_like(db, -float(db.max()))
        if db is None:
            db = np.full_like(da, -float(da.max()))
        for s, t in enumerate(ts):
            d = (1 - t) * da + t * db
            win = d > best[s][box]
            best[s][box][win] = d[win]
            out_l[s][box][win] = c
    if ca is None and cb is None:
        return [(lab, None) for lab in out_l]
    conf = np.maximum(ca if ca is not None else 0, cb if cb is not None else 0).astype(np.uint8)
    return [(lab, np.where(lab != 0, conf, 0).astype(np.uint8)) for lab in out_l]


def lift_plane(
    items: Iterable[LiftItem],
    geometry: VolumeGeometry,
    nc: int,
    max_gap: int | None = None,
    progress: bool = False,
) -> PlaneMaps:
    """Lift the slices of one plane into a label map on the volume grid.

    Args:
        items: Slice items of one plane (one sidecar ``plane``).
        geometry: The volume grid (from the sidecars).
        nc: Number of registry classes.
        max_gap: Fill gaps between consecutive slices up to this many indices apart (``None``: the largest
            ``step`` the sidecars record; 1 disables interpolation).
        progress: Show a progress bar.

    Returns:
        The plane's label (and confidence) maps with coverage.

    Raises:
        DataError: Slices of one plane with different normals or in-plane geometry, or an oblique slice.
    """
    items = list(items)
    plane = str(items[0].sidecar["plane"])
    size_zyx = tuple(int(s) for s in reversed(geometry.size_xyz))
    dtype = np.uint8 if nc < 255 else np.uint16
    labels = np.zeros(size_zyx, dtype)
    has_conf = any(inst.conf is not None for it in items for inst in it.instances)
    conf = np.zeros(size_zyx, np.uint8) if has_conf else None
    counts: dict[str, int] = {"slices": 0, "interpolated": 0, "instances": 0, "unknown_class": 0, "empty_polygons": 0}

    axis = _slice_axis(pixel_to_ijk(items[0].sidecar), items[0].stem)
    a = 2 - axis
    lab_view = np.moveaxis(labels, a, 0)
    conf_view = np.moveaxis(conf, a, 0) if conf is not None else None
    normal_covered = np.zeros(lab_view.shape[0], bool)
    maps, present = _stack_slices(items, axis, lab_view, conf_view, normal_covered, nc, counts, progress)

    inplane_covered = np.zeros(lab_view.shape[1:], bool)
    for m in maps.values():
        cov = (m.uu >= 0) & (m.vv >= 0)
        inplane_covered |= cov

    steps = [int(it.sidecar.get("step", 1) or 1) for it in items]
    gap_limit = max(steps) if max_gap is None else int(max_gap)
    spacing_arr = [geometry.spacing_xyz[2 - d] for d in range(3) if d != a]
    spacing_rc = (float(spacing_arr[0]), float(spacing_arr[1]))
    _fill_gaps(lab_view, conf_view, sorted(set(present)), gap_limit, spacing_rc, normal_covered, counts)

    normal_world = geometry.direction_matrix[:, axis]
    lr_blind = int(np.argmax(np.abs(normal_world))) == 0
    return PlaneMaps(plane, axis, labels, conf, normal_covered, inplane_covered, lr_blind, counts)


def _stack_slices(
    items: list[LiftItem],
    axis: int,
    lab_view: np.ndarray,
    conf_view: np.ndarray | None,
    normal_covered: np.ndarray,
    nc: int,
    counts: dict[str, int],
    progress: bool,
) -> tuple[dict[tuple, _InPlaneMap], list[int]]:
    """Rasterise each slice and put it at its index along the plane's normal (views of the label volume).

    Returns:
        The in-plane maps (one per distinct in-plane geometry) and the slice indices lifted.

    Raises:
        DataError: A slice with another normal, or one that does not lie on a voxel plane.
    """
    plane = str(items[0].sidecar["plane"])
    shape_rc = lab_view.shape[1:]
    n_normal = lab_view.shape[0]
    maps: dict[tuple, _InPlaneMap] = {}
    present: list[int] = []
    iterator = items
    if progress:
        from tqdm import tqdm

        iterator = tqdm(items, desc=f"lift {plane}", unit="slice", leave=False)
    for it in iterator:
        p2i = pixel_to_ijk(it.sidecar)
        if _slice_axis(p2i, it.stem) != axis:
            raise DataError(f"slice {it.stem} of plane {plane} has another normal than {items[0].stem}")
        index = float(p2i[axis, 3])
        n = round(index)
        if abs(index - n) > 1e-3 or not 0 <= n < n_normal:
            raise DataError(f"slice {it.stem} does not lie on a voxel plane of the volume (index {index:.3f})")
        sw, sh = (int(s) for s in it.sidecar["image_size_wh"])
        size_wh = (sw, sh)
        inplane = p2i.copy()
        inplane[axis, 3] = 0.0
        key = (tuple(np.round(inplane, 6).ravel()), size_wh)
        if key not in maps:
            maps[key] = _inplane_map(p2i, axis, shape_rc, size_wh)
        counts["slices"] += 1
        normal_covered[n] = True
        present.append(n)
        if not it.instances:
            continue
        lab2d, conf2d = rasterise_slice(it, nc, counts, lab_view.dtype.type)
        lab_view[n] = maps[key].apply(lab2d)
        if conf_view is not None and conf2d is not None:
            conf_view[n] = maps[key].apply(conf2d)
    return maps, present


def _fill_gaps(
    lab_view: np.ndarray,
    conf_view: np.ndarray | None,
    present: list[int],
    gap_limit: int,
    spacing_rc: tuple[float, float],
    normal_covered: np.ndarray,
    counts: dict[str, int],
) -> None:
    """Interpolate the slices missing between two lifted ones at most ``gap_limit`` indices apart, in place."""
    for lo, hi in itertools.pairwise(present):
        gap = hi - lo
        if gap <= 1 or gap > gap_limit:
            continue
        filled = interpolate_gap(
            lab_view[lo],
            lab_view[hi],
            conf_view[lo] if conf_view is not None else None,
            conf_view[hi] if conf_view is not None else None,
            gap - 1,
            spacing_rc,
        )
        for s, (lab2, conf2) in enumerate(filled, start=lo + 1):
            lab_view[s] = lab2
            if conf_view is not None and conf2 is not None:
                conf_view[s] = conf2
            normal_covered[s] = True
            counts["interpolated"] += 1
