"""Polygons and masks in image space, shared by dataset tools, augmentation, CT conversion and lifting.

Pixel frame used everywhere in yolo_spine: ``(u, v)`` = (column, row) **index** coordinates, so vertex
``(u, v)`` is the centre of pixel ``[v, u]``; normalised coordinates are ``(u / W, v / H)``. This is the
convention of Ultralytics' own polygon rasteriser (``cv2.fillPoly`` on ``polygon * size``), so a mask turned
into polygons by :func:`mask_to_polygons` and rasterised again by :func:`polygons_to_mask` gives back the
same pixels, and a CT slice label survives the trip to YOLO and back (the lifting oracle relies on it).
"""

from __future__ import annotations

import cv2
import numpy as np

_SUBPIXEL_SHIFT = 4  # cv2.fillPoly fixed-point bits: vertices are rasterised at 1/16 pixel precision


def polygon_area(poly_xy: np.ndarray) -> float:
    """Return the unsigned area of a simple polygon (shoelace formula), in the units of its vertices squared."""
    p = np.asarray(poly_xy, dtype=np.float64).reshape(-1, 2)
    if len(p) < 3:
        return 0.0
    x, y = p[:, 0], p[:, 1]
    cross = x[:-1] @ y[1:] - y[:-1] @ x[1:] + x[-1] * y[0] - y[-1] * x[0]
    return float(abs(cross) / 2.0)


def clip_polygon_to_rect(
    poly_xy: np.ndarray, xmin: float = 0.0, ymin: float = 0.0, xmax: float = 1.0, ymax: float = 1.0
) -> np.ndarray:
    """Clip a polygon to an axis-aligned rectangle (Sutherland–Hodgman), keeping the part inside.

    Unlike clamping each coordinate (which moves vertices and changes the shape), this cuts the polygon
    along the rectangle's edges. A concave polygon that leaves and re-enters the rectangle comes back as one
    ring with zero-width joins, which rasterises to the right pixels.

    Args:
        poly_xy: ``(N, 2)`` vertices, x then y.
        xmin: Left edge of the rectangle (0 for normalised polygons).
        ymin: Top edge.
        xmax: Right edge (1 for normalised polygons).
        ymax: Bottom edge.

    Returns:
        ``(M, 2)`` vertices inside the rectangle; ``M`` may be 0 when nothing is inside.
    """
    pts = [tuple(p) for p in np.asarray(poly_xy, dtype=np.float64).reshape(-1, 2)]

    def clip(points: list, inside, intersect) -> list:
        out: list = []
        if not points:
            return out
        prev = points[-1]
        for cur in points:
            if inside(cur):
                if not inside(prev):
                    out.append(intersect(prev, cur))
                out.append(cur)
            elif inside(prev):
                out.append(intersect(prev, cur))
            prev = cur
        return out

    def x_cut(x0: float):
        return lambda a, b: (x0, a[1] + (b[1] - a[1]) * (x0 - a[0]) / (b[0] - a[0]))

    def y_cut(y0: float):
        return lambda a, b: (a[0] + (b[0] - a[0]) * (y0 - a[1]) / (b[1] - a[1]), y0)

    pts = clip(pts, lambda p: p[0] >= xmin, x_cut(xmin))
    pts = clip(pts, lambda p: p[0] <= xmax, x_cut(xmax))
    pts = clip(pts, lambda p: p[1] >= ymin, y_cut(ymin))
    pts = clip(pts, lambda p: p[1] <= ymax, y_cut(ymax))
    arr = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    if len(arr) > 1:  # drop consecutive duplicates the cuts can create
        keep = np.ones(len(arr), dtype=bool)
        keep[1:] = np.any(np.abs(np.diff(arr, axis=0)) > 1e-12, axis=1)
        arr = arr[keep]
    return arr


def polygons_to_mask(polygons_xy: list[np.ndarray], height: int, width: int) -> np.ndarray:
    """Rasterise polygons (pixel index coordinates) into one boolean mask of shape ``(height, width)``.

    Vertices are rasterised with 1/16-pixel precision; pixels whose centre lies on or inside a polygon are set
    (``cv2.fillPoly``'s rule). Rings with zero-width bridges to holes (from :func:`mask_to_polygons`) keep
    their holes empty.
    """
    mask = np.zeros((height, width), dtype=np.uint8)
    rings = [
        np.round(np.asarray(p, dtype=np.float64).reshape(-1, 2) * (1 << _SUBPIXEL_SHIFT)).astype(np.int32)
        for p in polygons_xy
        if len(p) >= 3
    ]
    for ring in rings:  # one call per ring: rings of one instance never cancel each other out
        cv2.fillPoly(mask, [ring], 1, lineType=cv2.LINE_8, shift=_SUBPIXEL_SHIFT)
    return mask.astype(bool)


def _bridge_holes(outer: np.ndarray, holes: list[np.ndarray]) -> np.ndarray:
    """Join hole rings to the outer ring with zero-width cuts, so one YOLO polygon keeps the holes out."""
    ring = outer
    for hole in holes:
        d = ((ring[:, None, :].astype(np.float64) - hole[None, :, :]) ** 2).sum(-1)
        i, j = np.unravel_index(int(np.argmin(d)), d.shape)
        hole_loop = np.concatenate([hole[j:], hole[: j + 1]])
        ring = np.concatenate([ring[: i + 1], hole_loop, ring[i:]])
    return ring


def join_rings(rings: list[np.ndarray]) -> np.ndarray:
    """Join several rings (parts of one instance, or an outer ring and its holes) into one ring.

    Each further ring is spliced in at its nearest vertex pair with a zero-width cut, so one YOLO polygon
    row carries the whole instance; rasterising it gives the union of the parts (holes stay empty because
    they run the other way round). The first ring is the anchor.
    """
    rings = [np.asarray(r, dtype=np.float64).reshape(-1, 2) for r in rings if len(r)]
    if not rings:
        return np.zeros((0, 2))
    return _bridge_holes(rings[0], rings[1:])


def mask_to_polygons(
    mask: np.ndarray, min_area_px: float = 0.0, epsilon_px: float = 0.0
) -> tuple[list[np.ndarray], list[float]]:
    """Turn a binary mask into one polygon per connected component, holes kept out by zero-width bridges.

    Args:
        mask: ``(H, W)`` boolean or 0/1 array.
        min_area_px: Components whose pixel count is below this are not returned (but are reported).
        epsilon_px: Douglas–Peucker tolerance in pixels; 0 keeps every boundary corner (lossless).

    Returns:
        ``(polygons, dropped_areas)``: polygons as ``(N, 2)`` float arrays in pixel index coordinates
        (x, y), largest component first; and the pixel areas of components dropped for being too small.
    """
    m = np.ascontiguousarray(mask, dtype=np.uint8)
    if not m.any():
        return [], []
    _, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    order = np.argsort(-stats[1:, cv2.CC_STAT_AREA]) + 1
    polygons: list[np.ndarray] = []
    dropped: list[float] = []
    for lab in order:
        area = float(stats[lab, cv2.CC_STAT_AREA])
        if area < min_area_px:
            dropped.append(area)
            continue
        x, y, w, h = (
            int(stats[lab, k]) for k in (cv2.CC_STAT_LEFT, cv2.CC_STAT_TOP, cv2.CC_STAT_WIDTH, cv2.CC_STAT_HEIGHT)
        )
        crop = (labels[y : y + h, x : x + w] == lab).astype(np.uint8)
        crop = np.pad(crop, 1)  # so contours of components touching the crop edge close properly
        contours, hierarchy = cv2.findContours(crop, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
        if not contours:
            continue
        hier = hierarchy[0]
        outer_ids = [k for k in range(len(contours)) if hier[k][3] < 0]
        # One component has one outer boundary; pick the longest in case of degenerate extra ones.
        outer_id = max(outer_ids, key=lambda k: len(contours[k]))
        holes = [contours[k] for k in range(len(contours)) if hier[k][3] == outer_id]
        ring = _simplify(contours[outer_id], epsilon_px)
        hole_rings = [h for h in (_simplify(c, epsilon_px) for c in holes) if len(h) >= 3]
        ring = _bridge_holes(ring, hole_rings) if hole_rings else ring
        pts = ring.reshape(-1, 2).astype(np.float64) + np.array([x - 1, y - 1], dtype=np.float64)
        if len(pts) < 3:  # a single pixel or a straight line of pixels
            pts = _thin_polygon(pts)
        polygons.append(pts)
    return polygons, dropped


def _simplify(contour: np.ndarray, epsilon_px: float) -> np.ndarray:
    c = contour.reshape(-1, 2)
    if epsilon_px > 0 and len(c) > 4:
        c = cv2.approxPolyDP(c.reshape(-1, 1, 2), epsilon_px, True).reshape(-1, 2)
    return c


def _thin_polygon(pts: np.ndarray) -> np.ndarray:
    """Return a sliver triangle over a one- or two-pixel-wide line (its contour has fewer than 3 vertices)."""
    a, b = pts[0], pts[-1]
    return np.array([a, b, (a + b) / 2.0 + 0.25], dtype=np.float64)


def polygon_centroid(poly_xy: np.ndarray) -> np.ndarray:
    """Return the area centroid ``[x, y]`` of a simple polygon (vertex mean for degenerate ones)."""
    p = np.asarray(poly_xy, dtype=np.float64).reshape(-1, 2)
    x, y = p[:, 0], p[:, 1]
    cross = x * np.roll(y, -1) - np.roll(x, -1) * y
    a = cross.sum() / 2.0
    if abs(a) < 1e-12:
        return p.mean(0)
    cx = ((x + np.roll(x, -1)) * cross).sum() / (6.0 * a)
    cy = ((y + np.roll(y, -1)) * cross).sum() / (6.0 * a)
    return np.array([cx, cy])
