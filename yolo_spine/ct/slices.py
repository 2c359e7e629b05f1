"""Cut a CT and its label map into 2D slices with one polygon per connected component of each class.

Pure numpy/OpenCV: arrays in, images + instances + a ``pixel_to_world`` affine out; writing files is the caller's
job (:mod:`yolo_spine.ct.convert`). Arrays are SimpleITK's ``(k, j, i)`` order. A plane is cut along the voxel axis
closest to its anatomical normal, so slices are index-aligned (no oblique resampling); in-plane the image is
resampled to (nearly) square pixels and oriented radiologically:

============  =====================  ====================
plane         ``u`` (column) points  ``v`` (row) points
============  =====================  ====================
axial         patient left (+x)      posterior (+y)
coronal       patient left (+x)      inferior (−z)
sagittal      posterior (+y)         inferior (−z)
============  =====================  ====================

(The viewer sees the patient's right on the image's left in axial and coronal views, the usual convention.)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from yolo_spine.ct.sidecar import VolumeGeometry
from yolo_spine.geometry import mask_to_polygons
from yolo_spine.io.labels import SegInstance
from yolo_spine.io.xray import window_to_uint8

#: plane → (world axis of the normal, (world axis, sign) of u, (world axis, sign) of v); world axes LPS 0, 1, 2.
PLANE_AXES: dict[str, tuple[int, tuple[int, int], tuple[int, int]]] = {
    "axial": (2, (0, +1), (1, +1)),
    "coronal": (1, (0, +1), (2, -1)),
    "sagittal": (0, (1, +1), (2, -1)),
}


@dataclass(frozen=True)
class PlaneLayout:
    """How one plane's slices are cut from a volume.

    Attributes:
        plane: ``axial``, ``coronal`` or ``sagittal``.
        normal_axis: Voxel axis (0 = i, 1 = j, 2 = k) the slices step along; slice index = voxel index.
        u_axis: Voxel axis along image columns; ``u_sign`` −1 when the voxel index decreases with ``u``.
        v_axis: Voxel axis along image rows; ``v_sign`` likewise.
        width: Image width in pixels.
        height: Image height in pixels.
    """

    plane: str
    normal_axis: int
    u_axis: int
    u_sign: int
    v_axis: int
    v_sign: int
    width: int
    height: int
    n_slices: int

    def pixel_to_ijk(self, geom: VolumeGeometry, index: int) -> np.ndarray:
        """4×4 affine from pixel ``(u, v, w, 1)`` of slice ``index`` to continuous voxel index ``(i, j, k, 1)``.

        Pixel centres map to voxel coordinates as OpenCV's half-pixel resize does:
        ``a = (u + 0.5)·n/W − 0.5`` along the (possibly flipped) voxel axis; ``w`` is one voxel along the normal.
        """
        m = np.zeros((4, 4))
        m[3, 3] = 1.0
        for axis, sign, n_px, col in (
            (self.u_axis, self.u_sign, self.width, 0),
            (self.v_axis, self.v_sign, self.height, 1),
        ):
            n_vox = geom.size_xyz[axis]
            r = n_vox / n_px
            if sign > 0:
                m[axis, col], m[axis, 3] = r, 0.5 * r - 0.5
            else:
                m[axis, col], m[axis, 3] = -r, n_vox - 1 - (0.5 * r - 0.5)
        m[self.normal_axis, 2] = 1.0
        m[self.normal_axis, 3] = float(index)
        return m

    def pixel_to_world(self, geom: VolumeGeometry, index: int) -> np.ndarray:
        """4×4 affine from pixel ``(u, v, w, 1)`` of slice ``index`` to LPS mm."""
        return geom.ijk_to_world() @ self.pixel_to_ijk(geom, index)

    def sidecar_fields(self, geom: VolumeGeometry, index: int, step: int) -> dict[str, Any]:
        """The slice sidecar's fields that place slice ``index`` in the volume (what ``lift`` reads back).

        Args:
            geom: The source volume's geometry.
            index: The slice's voxel index along ``normal_axis``.
            step: Every ``step``-th slice was cut.

        Returns:
            ``plane``, ``index``, ``step``, ``axis``, ``image_size_wh`` (pixels) and ``pixel_to_world`` (4×4, LPS mm),
            in the order sidecars hold them.
        """
        return {
            "plane": self.plane,
            "index": index,
            "step": step,
            "axis": self.normal_axis,
            "image_size_wh": [self.width, self.height],
            "pixel_to_world": self.pixel_to_world(geom, index).tolist(),
        }


def plane_layout(geom: VolumeGeometry, plane: str) -> PlaneLayout:
    """Work out which voxel axes a plane's normal, columns and rows follow, and the square-pixel image size.

    Raises:
        ValueError: For an unknown plane name (the CLI validates names before calling).
    """
    if plane not in PLANE_AXES:
        raise ValueError(f"unknown plane {plane!r}; choose from {', '.join(PLANE_AXES)}")
    normal_world, (u_world, u_dir), (v_world, v_dir) = PLANE_AXES[plane]
    d = np.abs(geom.direction_matrix)  # rows world axes, columns voxel axes
    free = [0, 1, 2]
    picks = {}
    # Assign the most decisive world axis first, so an oblique grid still gets a one-to-one assignment.
    for world in sorted((normal_world, u_world, v_world), key=lambda w: -d[w, free].max()):
        voxel = max(free, key=lambda a: d[world, a])
        picks[world] = voxel
        free.remove(voxel)
    direction = geom.direction_matrix
    normal_axis, u_axis, v_axis = picks[normal_world], picks[u_world], picks[v_world]
    u_sign = int(np.sign(direction[u_world, u_axis]) * u_dir) or 1
    v_sign = int(np.sign(direction[v_world, v_axis]) * v_dir) or 1
    su, sv = geom.spacing_xyz[u_axis], geom.spacing_xyz[v_axis]
    nu, nv = geom.size_xyz[u_axis], geom.size_xyz[v_axis]
    p = min(su, sv)
    return PlaneLayout(
        plane=plane,
        normal_axis=normal_axis,
        u_axis=u_axis,
        u_sign=u_sign,
        v_axis=v_axis,
        v_sign=v_sign,
        width=max(1, round(nu * su / p)),
        height=max(1, round(nv * sv / p)),
        n_slices=geom.size_xyz[normal_axis],
    )


def plane_stack(arr_kji: np.ndarray, layout: PlaneLayout) -> np.ndarray:
    """View a ``(k, j, i)`` array as ``(slice, row, column)`` of a plane, before in-plane resampling."""
    np_axis = {0: 2, 1: 1, 2: 0}  # voxel axis i/j/k → numpy axis of a (k, j, i) array
    view = np.transpose(arr_kji, (np_axis[layout.normal_axis], np_axis[layout.v_axis], np_axis[layout.u_axis]))
    if layout.v_sign < 0:
        view = view[:, ::-1, :]
    if layout.u_sign < 0:
        view = view[:, :, ::-1]
    return view


@dataclass
class SliceResult:
    """One cut slice.

    Attributes:
        index: Voxel index along the plane's normal axis.
        pixels: ``(H, W)`` uint8 windowed image.
        instances: One instance per connected component of each class (ground truth, no confidence).
        dropped_small: Class id → number of components dropped for being smaller than the minimum area.
        classes_present: Class ids present in the slice before dropping.
    """

    index: int
    pixels: np.ndarray
    instances: list[SegInstance]
    dropped_small: dict[int, int] = field(default_factory=dict)
    classes_present: set[int] = field(default_factory=set)


def class_lut(class_of_id: Mapping[int, int], max_id: int) -> np.ndarray:
    """Lookup table ``source label id → class id`` (−1 for background and ids that map to nothing)."""
    lut = np.full(max(max_id, max(class_of_id, default=0)) + 1, -1, dtype=np.int16)
    for sid, cls in class_of_id.items():
        if sid > 0:
            lut[sid] = cls
    return lut


def instances_from_class_map(
    cls_map: np.ndarray, min_area_px: float
) -> tuple[list[SegInstance], dict[int, int], set[int]]:
    """Polygonise a ``(H, W)`` class map (−1 background) into one instance per connected component per class.

    Returns:
        ``(instances, dropped_small, classes_present)``; polygons are normalised ``polygon_xy_norm``.
    """
    import scipy.ndimage as ndi

    h, w = cls_map.shape
    scale = np.array([w, h], dtype=np.float64)
    instances: list[SegInstance] = []
    dropped: dict[int, int] = {}
    present: set[int] = set()
    boxes = ndi.find_objects(cls_map.astype(np.int32) + 1)  # boxes[t] bounds value t + 1, i.e. class t
    for value, box in enumerate(boxes, start=1):
        cls = value - 1
        if box is None or cls < 0:
            continue
        present.add(cls)
        crop = cls_map[box] == cls
        polys, small = mask_to_polygons(crop, min_area_px=min_area_px)
        if small:
            dropped[cls] = dropped.get(cls, 0) + len(small)
        offset = np.array([box[1].start, box[0].start], dtype=np.float64)
        for poly in polys:
            instances.append(SegInstance(cls=cls, polygon_xy_norm=(poly + offset) / scale))
    return instances, dropped, present


def iter_slices(
    image_kji: np.ndarray,
    labels_kji: np.ndarray,
    geom: VolumeGeometry,
    layout: PlaneLayout,
    lut: np.ndarray,
    window: tuple[float, float],
    step: int = 1,
    min_area_px: float = 20.0,
    indices: list[int] | None = None,
) -> Iterator[SliceResult]:
    """Yield every ``step``-th slice of one plane (or the given ``indices``) with its instances.

    Args:
        image_kji: CT in HU, ``(k, j, i)`` float32.
        labels_kji: Label map, same shape, integer ids (looked up through ``lut``).
        geom: Volume geometry (for sizes; the caller asks ``layout`` for the affine).
        layout: From :func:`plane_layout`.
        lut: From :func:`class_lut`.
        window: ``(center, width)`` in HU.
        step: Keep every ``step``-th slice, starting at 0.
        min_area_px: Smaller components are dropped and counted.
        indices: Explicit slice indices (overrides ``step``).
    """
    import cv2

    img_stack = plane_stack(image_kji, layout)
    lab_stack = plane_stack(labels_kji, layout)
    size = (layout.width, layout.height)
    todo = indices if indices is not None else range(0, layout.n_slices, max(1, int(step)))
    for idx in todo:
        hu = np.ascontiguousarray(img_stack[idx])
        lab = lut[np.ascontiguousarray(lab_stack[idx])]
        if hu.shape[::-1] != size:
            hu = cv2.resize(hu, size, interpolation=cv2.INTER_LINEAR)
            lab = cv2.resize(lab, size, interpolation=cv2.INTER_NEAREST_EXACT)
        instances, dropped, present = instances_from_class_map(lab, min_area_px)
        yield SliceResult(
            index=int(idx),
            pixels=window_to_uint8(hu, *window),
            instances=instances,
            dropped_small=dropped,
            classes_present=present,
        )
