"""Small CT phantoms with label maps: a spine column, a dental arch and a two-hemisphere brain.

Made-up anatomy with plausible Hounsfield units, for tests and demos where no labelled public volume is
reachable (teeth and brain regions); never presented as real data. Label ids follow the registry's own
``source_ids`` scheme (``totalsegmentator_v2`` for the spine, ``toothfairy2`` for teeth, ``aspects`` for the
brain), so phantoms go through exactly the path real label maps take.

Geometry: LPS world; by default the voxel axes i, j, k point to the patient's left, posterior and superior
(direction = identity). ``direction`` and ``spacing_xyz`` can be changed to exercise re-oriented and
anisotropic grids; the anatomy is drawn in world millimetres, so it stays anatomically placed whatever the grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from yolo_spine.registry import load_registry

if TYPE_CHECKING:
    import SimpleITK as sitk


@dataclass
class Phantom:
    """A phantom study: CT (HU, float32) and label map (uint8) on one grid, and the label scheme used."""

    image: sitk.Image
    labels: sitk.Image
    label_scheme: str


def _grid(
    size_xyz: Sequence[int], spacing_xyz: Sequence[float], direction: Sequence[float] | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World coordinates (mm, centred on the volume) of every voxel, as ``(k, j, i)`` arrays x, y, z."""
    size = np.asarray(size_xyz, int)
    spacing = np.asarray(spacing_xyz, float)
    d = np.eye(3) if direction is None else np.asarray(direction, float).reshape(3, 3)
    center_ijk = (size - 1) / 2.0
    origin = -d @ (spacing * center_ijk)  # world origin at the volume centre
    k, j, i = np.meshgrid(*(np.arange(n) for n in size[::-1]), indexing="ij")
    ijk = np.stack([i, j, k], -1).astype(np.float64) * spacing
    world = ijk @ d.T + origin
    return world[..., 0], world[..., 1], world[..., 2]


def _to_images(hu: np.ndarray, lab: np.ndarray, meta: dict) -> tuple[sitk.Image, sitk.Image]:
    import SimpleITK as sitk

    out = []
    for arr in (hu.astype(np.float32), lab.astype(np.uint8)):
        img = sitk.GetImageFromArray(arr)
        img.SetSpacing(meta["spacing"])
        img.SetOrigin(meta["origin"])
        img.SetDirection(meta["direction"])
        out.append(img)
    return out[0], out[1]


def _ids(anatomy: str, scheme: str) -> dict[str, int]:
    return {name: sid for sid, name in load_registry(anatomy).source_id_map(scheme).items()}


def spine_phantom(
    levels: Sequence[str] = ("T11", "T12", "L1", "L2", "L3"),
    size_xyz: Sequence[int] = (40, 40, 60),
    spacing_xyz: Sequence[float] = (1.5, 1.5, 2.0),
    direction: Sequence[float] | None = None,
    seed: int = 0,
) -> Phantom:
    """A column of vertebrae (body + posterior arch + spinous process) in a soft-tissue torso.

    Levels run top (superior, +z) to bottom, separated by discs; ids are TotalSegmentator v2's.
    """
    rng = np.random.default_rng(seed)
    x, y, z = _grid(size_xyz, spacing_xyz, direction)
    ids = _ids("spine", "totalsegmentator_v2")
    hu = np.full(x.shape, -1000.0)
    ext = np.asarray(size_xyz) * np.asarray(spacing_xyz)
    torso = (x / (0.45 * ext[0])) ** 2 + (y / (0.42 * ext[1])) ** 2 <= 1.0
    hu[torso] = 40.0 + rng.normal(0, 10, torso.sum())
    lab = np.zeros(x.shape, np.uint8)
    height = 0.9 * ext[2] / len(levels)
    top = 0.45 * ext[2]
    for n, level in enumerate(levels):
        zc = top - (n + 0.5) * height
        in_level = np.abs(z - zc) <= 0.4 * height
        body = in_level & ((x / 7.0) ** 2 + ((y + 3.0) / 5.5) ** 2 <= 1.0)
        ring = ((x / 6.0) ** 2 + ((y - 6.0) / 3.0) ** 2 <= 1.0) & ((x / 3.0) ** 2 + ((y - 6.0) / 1.5) ** 2 > 1.0)
        arch = in_level & ring
        spinous = in_level & (np.abs(x) <= 1.2) & (y > 8.0) & (y < 13.0) & (np.abs(z - zc) <= 0.25 * height)
        bone = body | arch | spinous
        lab[bone] = ids[level]
        hu[bone] = 300.0 + rng.normal(0, 30, bone.sum())
        hu[bone & ~((x / 6.0) ** 2 + ((y + 3.0) / 4.5) ** 2 <= 1.0)] += 500.0  # cortical shell brighter
    image, labels = _to_images(hu, lab, _meta_of(size_xyz, spacing_xyz, direction))
    return Phantom(image, labels, "totalsegmentator_v2")


def _meta_of(size_xyz, spacing_xyz, direction) -> dict:
    size = np.asarray(size_xyz, int)
    spacing = np.asarray(spacing_xyz, float)
    d = np.eye(3) if direction is None else np.asarray(direction, float).reshape(3, 3)
    origin = -d @ (spacing * (size - 1) / 2.0)
    return {"spacing": tuple(spacing), "origin": tuple(origin), "direction": tuple(d.ravel())}


def teeth_phantom(
    size_xyz: Sequence[int] = (64, 56, 40),
    spacing_xyz: Sequence[float] = (1.0, 1.0, 1.0),
    direction: Sequence[float] | None = None,
    seed: int = 0,
) -> Phantom:
    """Upper and lower dental arches of 8 teeth per quadrant, mirror-symmetric, in jaw bone (ToothFairy2 ids).

    FDI quadrants: 1 upper right, 2 upper left, 3 lower left, 4 lower right; the patient's left is +x (LPS).
    """
    rng = np.random.default_rng(seed)
    x, y, z = _grid(size_xyz, spacing_xyz, direction)
    ids = _ids("teeth", "toothfairy2")
    hu = np.full(x.shape, -1000.0)
    head = (x / 30.0) ** 2 + ((y - 2.0) / 26.0) ** 2 <= 1.0
    hu[head] = 30.0 + rng.normal(0, 8, head.sum())
    lab = np.zeros(x.shape, np.uint8)
    for upper, zc in ((True, 6.0), (False, -6.0)):
        jaw = head & (np.abs(z - zc) <= 5.0)
        hu[jaw] = 700.0
        lab[jaw] = ids["upper_jawbone" if upper else "lower_jawbone"]
        for side in (+1, -1):  # +1 patient left
            quadrant = (2 if side > 0 else 1) if upper else (3 if side > 0 else 4)
            for t in range(1, 9):
                ang = np.deg2rad(8.0 + (t - 1) * 11.0)  # along a parabola-like arch from the midline
                cx, cy = side * 20.0 * np.sin(ang), -18.0 * np.cos(ang) + 4.0
                r = 1.6 + 0.25 * t
                tooth = ((x - cx) ** 2 + (y - cy) ** 2 <= r**2) & (np.abs(z - zc) <= 4.0)
                lab[tooth] = ids[f"{quadrant}{t}"]
                hu[tooth] = 1800.0 + rng.normal(0, 50, tooth.sum())
    image, labels = _to_images(hu, lab, _meta_of(size_xyz, spacing_xyz, direction))
    return Phantom(image, labels, "toothfairy2")


def brain_phantom(
    size_xyz: Sequence[int] = (48, 56, 36),
    spacing_xyz: Sequence[float] = (1.0, 1.0, 1.5),
    direction: Sequence[float] | None = None,
    seed: int = 0,
) -> Phantom:
    """A skull and a brain with the 10 ASPECTS regions per hemisphere, exactly left/right symmetric.

    Left hemisphere (x > 0 in LPS) gets ids 1–10, the right one 11–20 at the mirrored positions, so only the
    side tells a left region from its right twin.
    """
    rng = np.random.default_rng(seed)
    x, y, z = _grid(size_xyz, spacing_xyz, direction)
    ids = _ids("brain", "aspects")
    hu = np.full(x.shape, -1000.0)
    r = np.sqrt((x / 22.0) ** 2 + (y / 26.0) ** 2 + (z / 20.0) ** 2)
    hu[r <= 1.08] = 1000.0  # skull
    brain = r <= 1.0
    hu[brain] = 35.0 + rng.normal(0, 3, brain.sum())
    lab = np.zeros(x.shape, np.uint8)
    ax = np.abs(x)  # mirror symmetry: every region is drawn on |x| and named by the side

    def put(region: str, mask: np.ndarray, hu_value: float) -> None:
        for side, suffix in ((x > 0.5, "left"), (x < -0.5, "right")):
            m = mask & side & brain
            lab[m] = ids[f"{region}_{suffix}"]
            hu[m] = hu_value

    deep = np.abs(z) <= 8.0
    put("C", deep & ((ax - 5.0) ** 2 / 9.0 + (y + 6.0) ** 2 / 16.0 <= 1.0), 38.0)
    put("L", deep & ((ax - 12.0) ** 2 / 9.0 + (y - 1.0) ** 2 / 25.0 <= 1.0), 40.0)
    put("IC", deep & ((ax - 8.0) ** 2 / 2.0 + (y - 1.0) ** 2 / 30.0 <= 1.0), 30.0)
    put("I", deep & ((ax - 17.0) ** 2 / 2.0 + (y - 1.0) ** 2 / 36.0 <= 1.0), 42.0)
    cortex = (r > 0.8) & (r <= 1.0) & (ax > 6.0)
    ang = np.degrees(np.arctan2(y, ax))  # −90 anterior … +90 posterior
    for n, (lo, hi) in enumerate(((-90, -30), (-30, 30), (30, 90)), start=1):
        sector = cortex & (ang >= lo) & (ang < hi)
        put(f"M{n}", sector & (z < 4.0), 45.0)
        put(f"M{n + 3}", sector & (z >= 4.0), 45.0)
    image, labels = _to_images(hu, lab, _meta_of(size_xyz, spacing_xyz, direction))
    return Phantom(image, labels, "aspects")


def write_phantom(phantom: Phantom, folder, name: str) -> tuple:
    """Write ``<name>_ct.nii.gz`` and ``<name>_labels.nii.gz`` into ``folder``; return their paths."""
    from pathlib import Path

    import SimpleITK as sitk

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vol, lab = folder / f"{name}_ct.nii.gz", folder / f"{name}_labels.nii.gz"
    sitk.WriteImage(phantom.image, str(vol))
    sitk.WriteImage(phantom.labels, str(lab))
    return vol, lab
