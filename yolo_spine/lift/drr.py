"""From projections to 3D: triangulate each class's 2D mask centroid and box through the DRR cameras.

For every class seen in at least two views (AP and lateral, or several poses), the 2D centroid of its mask in
each view gives a ray; the 3D centroid is the least-squares intersection (linear triangulation through the
3×4 projection matrices of the sidecars' cameras, perspective or orthographic alike). The 3D box is the
tightest LPS-aligned box whose every point projects inside the class's 2D box in every view (six small linear
programs). The optional visual hull marks every voxel whose centre projects inside the class's mask in every
view that sees the class.

What two views can and cannot recover: AP and lateral silhouettes pin down *where* each structure is and
*which* it is (centroid within a few mm, extent along all three axes), but not its shape: every concavity
and every cross-section that is not a rectangle is lost, so a perfect AP+lateral visual hull of a vertebra
reaches only about 0.6 Dice. Projections give localisation and identification; slices give shape.
Note also that a silhouette's centroid is not the projection of the volume centroid (a thin spinous process
weighs as much as the thick body in a lateral silhouette), which is a bias of a few millimetres.

Evidence from several views: with a confidence ``conf`` (lift's option of that name), each view contributes only
the class's most confident instance, and a class is placed when its views' combined confidence
``1 − Π(1 − cᵥ)`` reaches ``conf``. For independent views that is the chance that at least one detection is
right; views of one study are not independent, so it is optimistic, which is why the bar is the operating
confidence itself, not a lower one. What it buys: a vertebra that the model finds weakly but at the same
place in many views (C6 of the demo: 0.10–0.30 in seven of eight test views) is placed; one weak view is not.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from yolo_spine.ct.sidecar import Camera, VolumeGeometry
from yolo_spine.geometry import polygons_to_mask
from yolo_spine.lift.io import LiftItem

log = logging.getLogger("yolo_spine")

#: Schema id of the centroid file ``lift`` writes for DRR inputs (``<out>.centroids.json``).
CENTROIDS_SCHEMA = "yolo_spine/lift-centroids@1"


@dataclass
class ViewObservation:
    """One class in one view: the union of its instances' masks.

    Attributes:
        view: The sidecar's view id (``ap``, ``lat`` or a pose id) or stem when absent.
        camera: The view's camera.
        size_wh: Image size.
        mask: ``(H, W)`` union mask.
        centroid_uv: Mask centroid in pixel index coordinates.
        box_uv: ``[u1, v1, u2, v2]`` of the mask's pixel edges.
        conf: Highest confidence of the class's instances (1 for ground truth).
    """

    view: str
    camera: Camera
    size_wh: tuple[int, int]
    mask: np.ndarray
    centroid_uv: np.ndarray
    box_uv: np.ndarray
    conf: float


@dataclass
class Triangulated:
    """A class placed in 3D.

    Attributes:
        name: Class name.
        centroid_lps_mm: Least-squares centroid, ``None`` when fewer than two views see the class.
        box_lps_mm: ``[xmin, ymin, zmin, xmax, ymax, zmax]``, ``None`` likewise.
        views: Views that saw the class.
        residual_px: RMS reprojection error of the centroid over those views.
        conf: Mean of the per-view confidences.
        combined_conf: ``1 − Π(1 − cᵥ)`` over the views (see the module's docstring).
        below_conf: Seen in two or more views but not placed: ``combined_conf`` is below the ``conf`` asked for.
    """

    name: str
    centroid_lps_mm: list[float] | None
    box_lps_mm: list[float] | None
    views: list[str] = field(default_factory=list)
    residual_px: float | None = None
    conf: float = 1.0
    combined_conf: float = 1.0
    below_conf: bool = False

    @property
    def single_view(self) -> bool:
        """Not placed because fewer than two views saw it (not for want of confidence)."""
        return self.centroid_lps_mm is None and not self.below_conf


def combined_confidence(confs: list[float]) -> float:
    """``1 − Π(1 − c)``: the chance that at least one of independent detections with these confidences is right."""
    return float(1.0 - np.prod([1.0 - min(max(c, 0.0), 1.0) for c in confs]))


def thickness_weighted_centroid(mask: np.ndarray, power: float = 2.0) -> np.ndarray:
    """``(u, v)`` centroid of a projected mask, each pixel weighted by its distance to the edge to ``power``.

    A DRR mask is a silhouette: a thin process that rays barely cross weighs as much per pixel as the thick
    vertebral body, which pulls the plain centroid away from the projection of the 3D centroid (measured on the
    example CT: up to 5.7 mm after triangulation). Weighting by the squared distance to the mask's edge, a proxy
    for the path length through the structure, brought every thoracic vertebra within 3.0 mm there
    (powers 1, 3, 4 did worse). ``power = 0`` gives the plain silhouette centroid.
    """
    import cv2

    vv, uu = np.nonzero(mask)
    if power == 0:
        return np.array([uu.mean(), vv.mean()])
    w = cv2.distanceTransform(np.pad(mask, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1][vv, uu] ** power
    return np.array([(uu * w).sum() / w.sum(), (vv * w).sum() / w.sum()])


def observations(
    items: list[LiftItem], nc: int, centroid_power: float = 2.0, most_confident: bool = False
) -> dict[int, list[ViewObservation]]:
    """Rasterise every DRR's instances and group them per class over views.

    Args:
        items: DRR items.
        nc: Number of registry classes (higher ids are ignored).
        centroid_power: Passed to :func:`thickness_weighted_centroid`.
        most_confident: Each view keeps only the class's most confident instance (predictions saved below the
            operating confidence hold duplicates and neighbours' weak guesses); otherwise the union of the
            class's instances (ground truth split into several polygons stays one mask).
    """
    out: dict[int, list[ViewObservation]] = {}
    for it in items:
        w, h = (int(s) for s in it.sidecar["image_size_wh"])
        cam = Camera.from_json(it.sidecar["camera"])
        by_class: dict[int, list] = {}
        for inst in it.instances:
            if inst.cls < nc and len(inst.polygon_xy_norm) >= 3:
                by_class.setdefault(inst.cls, []).append(inst)
        if most_confident:
            by_class = {c: [max(v, key=_conf_of)] for c, v in by_class.items()}
        for cls, insts in by_class.items():
            mask = polygons_to_mask([i.polygon_xy(w, h) for i in insts], h, w)
            if not mask.any():
                continue
            vv, uu = np.nonzero(mask)
            out.setdefault(cls, []).append(
                ViewObservation(
                    view=str(it.sidecar.get("view", it.stem)),
                    camera=cam,
                    size_wh=(w, h),
                    mask=mask,
                    centroid_uv=thickness_weighted_centroid(mask, centroid_power),
                    box_uv=np.array([uu.min() - 0.5, vv.min() - 0.5, uu.max() + 0.5, vv.max() + 0.5]),
                    conf=max(_conf_of(i) for i in insts),
                )
            )
    return out


def _conf_of(inst: Any) -> float:
    """An instance's confidence; ground truth (``None``) counts as certain."""
    return 1.0 if inst.conf is None else float(inst.conf)


def triangulate_point(projections: list[np.ndarray], points_uv: list[np.ndarray]) -> np.ndarray:
    """Least-squares 3D point from its pixel positions in several views (linear triangulation).

    Each view contributes ``u·P₃ − P₁`` and ``v·P₃ − P₂`` (rows of ``A``) with ``A·(X, 1) = 0``; rows are
    normalised so every view weighs alike.

    Args:
        projections: 3×4 projection matrices.
        points_uv: Matching ``(u, v)`` positions.

    Returns:
        ``(3,)`` world point (LPS mm).
    """
    rows = []
    for p, (u, v) in zip(projections, points_uv, strict=True):
        for r in (u * p[2] - p[0], v * p[2] - p[1]):
            rows.append(r / max(np.linalg.norm(r[:3]), 1e-12))
    a = np.asarray(rows)
    x, *_ = np.linalg.lstsq(a[:, :3], -a[:, 3], rcond=None)
    return x


def box_from_views(projections: list[np.ndarray], boxes_uv: list[np.ndarray]) -> np.ndarray | None:
    """Tightest LPS box of points projecting inside every 2D box (``None`` if the constraints are empty)."""
    from scipy.optimize import linprog

    a_ub, b_ub = [], []
    for p, (u1, v1, u2, v2) in zip(projections, boxes_uv, strict=True):
        # u >= u1  <=>  u1·P3·X − P1·X <= 0 (P3·X > 0 in front of the camera); same for the other edges
        for row in (u1 * p[2] - p[0], p[0] - u2 * p[2], v1 * p[2] - p[1], p[1] - v2 * p[2]):
            a_ub.append(row[:3])
            b_ub.append(-row[3])
    out = np.zeros(6)
    for axis in range(3):
        for sign, slot in ((1.0, axis), (-1.0, axis + 3)):
            c = np.zeros(3)
            c[axis] = sign
            res = linprog(c, A_ub=np.asarray(a_ub), b_ub=np.asarray(b_ub), bounds=[(None, None)] * 3, method="highs")
            if res.status != 0:
                return None
            out[slot] = res.x[axis]
    return out


def triangulate_observations(
    obs: dict[int, list[ViewObservation]], names: tuple[str, ...], conf: float | None = None
) -> list[Triangulated]:
    """Triangulate every class seen in the DRRs (registry order) from thickness-weighted mask centroids.

    Args:
        obs: Class id → its views, as :func:`observations` rasterised them (with ``most_confident`` set when
            ``conf`` is).
        names: Registry class names.
        conf: ``None``: every instance counts (the union per view) and every class seen in two views is placed.
            A number: each view's most confident instance counts and a class is placed only when its views'
            combined confidence reaches it (module docstring).
    """
    out: list[Triangulated] = []
    for cls in sorted(obs):
        views = obs[cls]
        confs = [o.conf for o in views]
        tri = Triangulated(
            names[cls],
            None,
            None,
            [o.view for o in views],
            conf=float(np.mean(confs)),
            combined_conf=combined_confidence(confs),
        )
        two_views = len({o.view for o in views}) >= 2
        tri.below_conf = two_views and conf is not None and tri.combined_conf < conf
        if two_views and not tri.below_conf:
            projs = [o.camera.projection_matrix() for o in views]
            x = triangulate_point(projs, [o.centroid_uv for o in views])
            reproj = np.concatenate([o.camera.project(x[None])[0] - o.centroid_uv for o in views])
            tri.centroid_lps_mm = [float(v) for v in x]
            tri.residual_px = float(np.sqrt(np.mean(reproj**2)))
            box = box_from_views(projs, [o.box_uv for o in views])
            tri.box_lps_mm = None if box is None else [float(v) for v in box]
        out.append(tri)
    return out


def visual_hull(
    obs: dict[int, list[ViewObservation]],
    geometry: VolumeGeometry,
    nc: int,
    boxes: dict[int, list[float] | None],
) -> np.ndarray:
    """Label map (class id + 1) of each class's visual hull; voxels claimed by several hulls go to the later class.

    Args:
        obs: Class id → its views, as :func:`observations` rasterised them for the triangulation (the same
            masks: with lift's ``conf``, each view's most confident instance).
        geometry: The volume grid.
        nc: Number of registry classes (sets the label map's integer type).
        boxes: Class id → its triangulated box (limits the voxels tested); classes without a box are skipped.
    """
    size_zyx = tuple(int(s) for s in reversed(geometry.size_xyz))
    labels = np.zeros(size_zyx, np.uint8 if nc < 255 else np.uint16)
    w2i = geometry.world_to_ijk()
    i2w = geometry.ijk_to_world()
    for cls, views in sorted(obs.items()):
        box = boxes.get(cls)
        if box is None:
            continue
        corners = np.array([[x, y, z, 1.0] for x in box[0::3] for y in box[1::3] for z in box[2::3]])
        ijk = (corners @ w2i.T)[:, :3]
        lo = np.clip(np.floor(ijk.min(0)).astype(int), 0, np.array(geometry.size_xyz) - 1)
        hi = np.clip(np.ceil(ijk.max(0)).astype(int), 0, np.array(geometry.size_xyz) - 1)
        kk, jj, ii = np.meshgrid(*(np.arange(lo[a], hi[a] + 1) for a in (2, 1, 0)), indexing="ij")
        pts = np.c_[ii.ravel(), jj.ravel(), kk.ravel(), np.ones(ii.size)] @ i2w.T
        inside = np.ones(ii.size, bool)
        for o in views:
            uv = np.floor(o.camera.project(pts[:, :3]) + 0.5).astype(np.int64)
            w, h = o.size_wh
            ok = (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)
            hit = np.zeros(ii.size, bool)
            hit[ok] = o.mask[uv[ok, 1], uv[ok, 0]]
            inside &= hit
        sel = inside.reshape(kk.shape)
        labels[lo[2] : hi[2] + 1, lo[1] : hi[1] + 1, lo[0] : hi[0] + 1][sel] = cls + 1
    return labels


def centroids_json(tris: list[Triangulated], study: str, anatomy: str) -> dict[str, Any]:
    """The ``<out>.centroids.json`` document (``centroids_lps_mm`` is what ``eval3d`` reads as landmarks)."""
    return {
        "schema": CENTROIDS_SCHEMA,
        "study": study,
        "anatomy": anatomy,
        "frame": "LPS mm (SimpleITK physical points)",
        "centroids_lps_mm": {t.name: t.centroid_lps_mm for t in tris if t.centroid_lps_mm is not None},
        "classes": {
            t.name: {
                "centroid_lps_mm": t.centroid_lps_mm,
                "box_lps_mm": t.box_lps_mm,
                "views": t.views,
                "residual_px": t.residual_px,
                "conf": t.conf,
                "combined_conf": t.combined_conf,
            }
            for t in tris
        },
        "single_view_classes": [t.name for t in tris if t.single_view],
        "below_conf_classes": [t.name for t in tris if t.below_conf],
    }
