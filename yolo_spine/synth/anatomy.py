"""Anatomical torso phantoms: CT-like volumes (HU) with TotalSegmentator-v2 label maps, for pretraining.

Every phantom is drawn from published morphometry and textbook anatomy, never from a real scan (in particular
never from the example CT, LIDC-IDRI-0001, nor from anything measured on it). One seed gives one phantom,
bit for bit. What is in a phantom:

* **Vertebrae C1–L5, S1 and the sacrum**, each level its own shape: a body (endplate width and depth, height,
  waist, flattened posterior wall), pedicles angled per level, laminae, superior and inferior articular
  processes (cervical lateral masses), transverse processes (cervical ones with a foramen transversarium),
  spinous processes with their per-level length and downward slope (bifid C2–C6), uncinate processes C3–C7;
  the atlas (ring, lateral masses, no body), the axis (dens), S1 with its alae, S2–S5 tapering and curving
  back. Cortical shell and cancellous interior with their own HU. Intervertebral discs fill the space between
  endplates (wedged by the curves).
* **Curves and variation**: cervical lordosis, thoracic kyphosis, lumbar lordosis concentrated at L4–S1,
  random scoliosis (single or double curve, apical rotation towards the convexity), overall stature scale and
  per-level jitter of every dimension.
* **Degeneration** at random: disc height loss with vacuum gas, endplate sclerosis, marginal osteophytes,
  anterior wedge (compression) deformity, osteoporotic (low-HU) cancellous bone.
* **Torso**: 12 paired ribs articulating with the thoracic bodies and transverse processes, sloping down to
  costal cartilages and the sternum; clavicles, scapulae; lungs in five lobes (left upper/lower, right
  upper/middle/lower) with vessels, diaphragm domes (right higher), heart offset to the patient's left, aorta,
  inferior vena cava, trachea and main bronchi, esophagus, spinal cord and CSF, liver, spleen, stomach (with
  gas), kidneys, psoas and paraspinal muscles, bowel and visceral fat, subcutaneous fat of random habitus,
  iliac wings when the pelvis is in view, skull base, brain and mandible when the head is, the CT table.
* **Field of view**: a random crop as clinical CTs have (neck, chest, abdomen/lumbar, thoracolumbar, whole
  spine), or the levels asked for.

Sources (rounded means; each phantom varies them):

* Vertebral dimensions: Panjabi MM et al., "Cervical human vertebrae. Quantitative three-dimensional anatomy of
  the middle and lower regions", Spine 1991;16(8):861–869; Panjabi MM et al., "Thoracic human vertebrae.
  Quantitative three-dimensional anatomy", Spine 1991;16(8):888–901; Panjabi MM et al., "Human lumbar
  vertebrae. Quantitative three-dimensional anatomy", Spine 1992;17(3):299–306; Zhou SH et al., "Geometrical
  dimensions of the lower lumbar vertebrae — analysis of data from digitised CT images", Eur Spine J
  2000;9(3):242–248 (lumbar bodies and disc heights); Zindrick MR et al., Spine 1987;12(2):160–166 (pedicle
  angles). The table below is a transcription rounded to 0.5 mm, meant as representative values for
  synthesis, not as a replacement for those tables.
* Sagittal curves: Fon GT et al., AJR 1980;134(5):979–983 (thoracic kyphosis); Been E, Kalichman L, Spine J
  2014;14(1):87–97 (lumbar lordosis, two thirds of it at L4–S1); Hardacker JW et al., Spine
  1997;22(13):1472–1480 (cervical lordosis).
* CT numbers: Kalender WA, Computed Tomography, 3rd ed. 2011 (HU of air, lung, fat, water, soft tissue, blood,
  bone); Pickhardt PJ et al., Ann Intern Med 2013;158(8):588–595 (trabecular HU of lumbar bodies: about
  150–250 HU in healthy adults, under about 110 HU in osteoporosis).
* Label ids: TotalSegmentator v2 ``total`` task (Wasserthal J et al., Radiol Artif Intell 2023;5(5):e230024);
  vertebra ids come from the spine registry (``configs/anatomy/spine.yaml``).

Geometry: world = LPS millimetres as SimpleITK uses them (x → patient left, y → posterior, z → superior);
the volume's direction is the identity, so voxel axes i, j, k follow x, y, z and arrays are ``(k, j, i)``.
Every vertebra has a local frame (x left, y posterior, z superior) at its body centre; parts are drawn in it,
so curves, tilts and rotations move whole vertebrae rigidly.

Speed: primitives are evaluated only on the voxel box they can touch (vectorised numpy), torso layers slice by
slice; a 300 × 230 × 260 volume takes a few seconds on one core.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from yolo_spine.registry import load_registry

if TYPE_CHECKING:
    import SimpleITK as sitk

log = logging.getLogger("yolo_spine")

#: Mobile and sacral levels drawn, cranial to caudal (the sacrum below S1 is one structure, ``sacrum``).
LEVELS: tuple[str, ...] = (
    *(f"C{i}" for i in range(1, 8)),
    *(f"T{i}" for i in range(1, 13)),
    *(f"L{i}" for i in range(1, 6)),
    "S1",
)

#: TotalSegmentator v2 ``total`` ids of the non-vertebral structures drawn (vertebra ids: the spine registry).
TS_V2_IDS: dict[str, int] = {
    "spleen": 1,
    "kidney_right": 2,
    "kidney_left": 3,
    "liver": 5,
    "stomach": 6,
    "lung_upper_lobe_left": 10,
    "lung_lower_lobe_left": 11,
    "lung_upper_lobe_right": 12,
    "lung_middle_lobe_right": 13,
    "lung_lower_lobe_right": 14,
    "esophagus": 15,
    "trachea": 16,
    "heart": 51,
    "aorta": 52,
    "inferior_vena_cava": 63,
    "iliac_artery_left": 65,
    "iliac_artery_right": 66,
    "scapula_left": 71,
    "scapula_right": 72,
    "clavicula_left": 73,
    "clavicula_right": 74,
    "hip_left": 77,
    "hip_right": 78,
    "spinal_cord": 79,
    "autochthon_left": 86,
    "autochthon_right": 87,
    "iliopsoas_left": 88,
    "iliopsoas_right": 89,
    "brain": 90,
    "skull": 91,
    **{f"rib_left_{k}": 91 + k for k in range(1, 13)},
    **{f"rib_right_{k}": 103 + k for k in range(1, 13)},
    "sternum": 116,
    "costal_cartilages": 117,
}


class Tissue:
    """Tissue codes of :attr:`AnatomicalPhantom.tissue` (what each voxel was drawn as, before noise)."""

    AIR, LUNG, FAT, SOFT, BLOOD, CANCELLOUS, CORTEX, DISC, CSF, CARTILAGE, TABLE = range(11)
    NAMES = ("air", "lung", "fat", "soft", "blood", "cancellous", "cortex", "disc", "csf", "cartilage", "table")


# --------------------------------------------------------------------------------------------------------------
# Morphometry
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Morph:
    """Dimensions of one vertebra (mm, degrees), named as in Panjabi et al.

    Attributes:
        epw: Endplate width (left-right).
        epd: Endplate depth (antero-posterior).
        vbh: Vertebral body height (posterior).
        pdw: Pedicle width.
        pdh: Pedicle height.
        scw: Spinal canal width.
        scd: Spinal canal depth.
        tpw: Transverse process width, tip to tip.
        spl: Spinous process length (from the laminar junction to the tip).
        sph: Spinous process height (cranio-caudal).
        sp_angle: Downward slope of the spinous process from the axial plane.
        ped_angle: Transverse (medial) angle of the pedicle axis.
        disc: Height of the disc below this level (mid-disc).
        lam_h: Lamina height.
        lam_t: Lamina thickness.
    """

    epw: float
    epd: float
    vbh: float
    pdw: float
    pdh: float
    scw: float
    scd: float
    tpw: float
    spl: float
    sph: float
    sp_angle: float
    ped_angle: float
    disc: float
    lam_h: float
    lam_t: float

    def scaled(self, factors: np.ndarray) -> Morph:
        """A copy with every length multiplied by its factor (angles are jittered additively by the caller)."""
        v = np.array([getattr(self, f) for f in _LENGTHS]) * factors
        return Morph(**dict(zip(_LENGTHS, v.tolist(), strict=True)), sp_angle=self.sp_angle, ped_angle=self.ped_angle)


_LENGTHS = ("epw", "epd", "vbh", "pdw", "pdh", "scw", "scd", "tpw", "spl", "sph", "disc", "lam_h", "lam_t")

# epw, epd, vbh, pdw, pdh, scw, scd, tpw, spl, sph, sp_angle, ped_angle, disc, lam_h, lam_t
# C1: epw/epd = outer width/depth of the lateral-mass ring, vbh = lateral-mass height, disc = C1–C2 joint gap.
# C2: vbh = body without the dens. S1: disc = 0 (the sacrum below is fused).
_TABLE: dict[str, tuple[float, ...]] = {
    "C1": (48.0, 44.0, 15.0, 6.0, 8.0, 28.0, 30.0, 78.0, 0.0, 8.0, 0.0, 0.0, 3.5, 8.0, 4.5),
    "C2": (17.5, 16.0, 16.0, 7.5, 8.5, 23.0, 16.0, 56.0, 26.0, 12.0, 15.0, 30.0, 5.0, 14.0, 5.0),
    "C3": (16.0, 15.5, 11.5, 5.5, 7.0, 23.5, 14.5, 50.0, 18.0, 7.0, 20.0, 45.0, 5.5, 10.0, 3.5),
    "C4": (17.0, 15.5, 11.5, 5.5, 7.0, 24.5, 14.3, 52.0, 18.0, 7.0, 20.0, 46.0, 5.8, 10.0, 3.5),
    "C5": (17.5, 16.0, 11.2, 6.0, 7.0, 25.0, 14.2, 54.0, 20.0, 7.0, 22.0, 45.0, 6.0, 10.0, 3.5),
    "C6": (19.0, 16.5, 11.5, 6.0, 7.0, 25.0, 14.0, 56.0, 24.0, 8.0, 25.0, 43.0, 6.0, 11.0, 4.0),
    "C7": (21.0, 16.5, 13.5, 6.5, 7.2, 24.5, 14.0, 70.0, 34.0, 9.0, 30.0, 35.0, 5.0, 12.0, 4.5),
    "T1": (25.0, 17.0, 14.5, 8.0, 9.5, 20.0, 14.5, 74.0, 36.0, 9.0, 35.0, 30.0, 4.0, 14.0, 5.5),
    "T2": (25.5, 18.5, 15.5, 6.5, 11.0, 17.0, 15.0, 70.0, 38.0, 9.0, 40.0, 24.0, 4.0, 15.0, 6.0),
    "T3": (26.0, 20.5, 16.0, 5.5, 11.0, 16.0, 15.0, 67.0, 40.0, 9.0, 50.0, 15.0, 4.0, 16.0, 6.0),
    "T4": (27.0, 22.5, 16.5, 5.0, 11.5, 15.5, 15.0, 65.0, 41.0, 9.0, 55.0, 12.0, 4.2, 17.0, 6.0),
    "T5": (28.0, 24.5, 17.0, 5.0, 11.5, 15.5, 15.0, 64.0, 42.0, 9.0, 60.0, 10.0, 4.5, 17.0, 6.5),
    "T6": (29.0, 26.0, 17.5, 5.5, 11.5, 15.5, 15.0, 63.0, 42.0, 9.0, 62.0, 9.0, 4.8, 17.0, 6.5),
    "T7": (30.5, 27.0, 18.0, 5.5, 12.0, 15.5, 15.0, 62.0, 42.0, 10.0, 62.0, 8.0, 5.0, 18.0, 6.5),
    "T8": (32.0, 28.0, 18.5, 6.0, 12.0, 16.0, 15.0, 61.0, 41.0, 10.0, 58.0, 7.0, 5.0, 18.0, 6.5),
    "T9": (33.5, 29.0, 19.0, 6.5, 12.5, 16.5, 15.0, 60.0, 39.0, 11.0, 50.0, 6.0, 5.5, 18.0, 7.0),
    "T10": (35.5, 30.0, 20.0, 7.0, 14.0, 17.0, 15.5, 59.0, 36.0, 13.0, 40.0, 5.0, 6.0, 19.0, 7.0),
    "T11": (38.0, 31.0, 21.5, 8.0, 15.5, 18.5, 16.5, 55.0, 33.0, 16.0, 25.0, 2.0, 7.0, 20.0, 7.0),
    "T12": (40.0, 32.0, 23.0, 8.5, 16.0, 21.0, 17.0, 50.0, 31.0, 20.0, 15.0, 0.0, 8.5, 22.0, 7.5),
    "L1": (41.0, 33.0, 25.5, 9.0, 15.5, 22.0, 18.0, 70.0, 30.0, 24.0, 8.0, 11.0, 9.5, 24.0, 7.5),
    "L2": (43.0, 34.0, 26.0, 9.5, 15.0, 22.5, 17.5, 76.0, 31.0, 25.0, 6.0, 12.0, 10.5, 25.0, 8.0),
    "L3": (45.0, 35.0, 26.5, 10.5, 14.5, 23.0, 17.0, 86.0, 31.0, 25.0, 5.0, 15.0, 11.0, 25.0, 8.0),
    "L4": (47.0, 35.5, 26.0, 12.5, 14.0, 23.5, 17.0, 82.0, 29.0, 23.0, 5.0, 18.0, 11.5, 24.0, 8.0),
    "L5": (49.0, 35.0, 25.0, 17.5, 14.0, 26.0, 17.0, 88.0, 24.0, 20.0, 5.0, 30.0, 10.5, 22.0, 8.0),
    "S1": (50.0, 34.0, 24.0, 14.0, 14.0, 26.0, 12.0, 105.0, 12.0, 12.0, 25.0, 30.0, 0.0, 16.0, 6.0),
}
MORPHOMETRY: dict[str, Morph] = {k: Morph(*v) for k, v in _TABLE.items()}

# Thoracic cage per rib (1–12): outer half-width (mm) at the rib's widest, drop of the anterior end below the
# tubercle (mm), angle where bone turns into costal cartilage (rad, 0 = posterior midline, π = anterior).
_RIB_HALF_WIDTH = (58, 84, 102, 114, 123, 129, 133, 135, 134, 130, 121, 104)
_RIB_DROP = (25, 45, 60, 70, 80, 86, 90, 90, 85, 75, 50, 30)
_RIB_BONE_END = (2.55, 2.5, 2.45, 2.45, 2.45, 2.45, 2.45, 2.35, 2.3, 2.2, 1.85, 1.45)

# Body-outline anchors along the level coordinate (C1 = 0 … L5 = 23, S1 = 24): half-width of the body without
# fat and the distance from the vertebral-body centre to the inner anterior wall (mm, before habitus).
_ANCHOR_LEVEL = (-4.0, 0.0, 3.0, 5.5, 6.5, 7.5, 9.0, 12.0, 15.0, 18.0, 21.0, 23.0, 24.0, 27.0)
_ANCHOR_HALF_WIDTH = (72, 60, 52, 56, 82, 112, 125, 125, 125, 128, 124, 140, 162, 165)
_ANCHOR_ANT_DEPTH = (95, 72, 50, 50, 50, 58, 80, 115, 132, 132, 125, 115, 120, 125)

#: Field-of-view presets: (probability, level-coordinate range of the top, range of the bottom).
FOV_PRESETS: dict[str, tuple[float, tuple[float, float], tuple[float, float]]] = {
    "neck": (0.15, (-2.6, -0.6), (6.4, 9.5)),
    "chest": (0.35, (4.0, 7.5), (17.6, 20.5)),
    "abdomen": (0.25, (14.5, 18.0), (22.6, 26.5)),
    "thoracolumbar": (0.15, (9.5, 13.5), (21.5, 25.5)),
    "whole": (0.10, (-2.5, -0.8), (24.5, 26.5)),
}


# --------------------------------------------------------------------------------------------------------------
# Small geometry helpers
# --------------------------------------------------------------------------------------------------------------


def _rot_x(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _rot_y(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The rotation taking unit vector ``a`` onto unit vector ``b`` (Rodrigues)."""
    a = a / np.linalg.norm(a)
    b = b / np.linalg.norm(b)
    v = np.cross(a, b)
    c = float(a @ b)
    if np.linalg.norm(v) < 1e-12:
        return np.eye(3)
    k = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + k + k @ k * (1.0 / (1.0 + c))


def _frame_along(t: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Orthonormal columns (t̂, n̂, û): ``t̂`` along ``t``, ``û`` the part of ``up`` perpendicular to it."""
    t = t / max(np.linalg.norm(t), 1e-9)
    u = up - (up @ t) * t
    if np.linalg.norm(u) < 1e-6:  # up parallel to t: any perpendicular
        u = np.array([1.0, 0.0, 0.0]) - t[0] * t
    u = u / np.linalg.norm(u)
    return np.stack([t, np.cross(u, t), u], axis=1)


@dataclass(frozen=True)
class Ellipsoid:
    """An ellipsoid in some frame: centre, semi-axes and the rotation whose columns are its axes.

    ``power`` > 2 gives a superellipsoid (boxier); inside is ``Σ |q_i / r_i|^power ≤ 1``. ``bar`` raises the
    first axis' power to 6 instead: a rod with an elliptic cross-section and blunt ends, so consecutive bars
    along a curve join without the beading a chain of ellipsoids has.
    """

    center: np.ndarray
    radii: np.ndarray
    rot: np.ndarray | None = None
    power: float = 2.0
    bar: bool = False

    def extent(self) -> np.ndarray:
        """Half-size of the axis-aligned box around it, in its frame."""
        r = np.asarray(self.radii, float)
        return r if self.rot is None else np.abs(self.rot) @ r


def _seg(p0: ArrayLike, p1: ArrayLike, r_side: float, r_up: float, up: ArrayLike = (0.0, 0.0, 1.0)) -> Ellipsoid:
    """An ellipsoid spanning the segment ``p0``–``p1`` (a bar), ``r_up`` along ``up``, ``r_side`` across."""
    a, b = np.asarray(p0, float), np.asarray(p1, float)
    t = b - a
    half = 0.5 * float(np.linalg.norm(t)) + 0.5 * min(r_side, r_up)
    return Ellipsoid((a + b) / 2.0, np.array([half, r_side, r_up]), _frame_along(t, np.asarray(up, float)), bar=True)


def _ell(center: ArrayLike, radii: ArrayLike, rot: np.ndarray | None = None, power: float = 2.0):
    return Ellipsoid(np.asarray(center, float), np.asarray(radii, float), rot, power)


# --------------------------------------------------------------------------------------------------------------
# The voxel canvas
# --------------------------------------------------------------------------------------------------------------


class _Canvas:
    """HU, label and tissue arrays on an LPS grid with identity direction; boxes and local coordinates."""

    def __init__(self, origin: np.ndarray, spacing: np.ndarray, size_xyz: tuple[int, int, int]) -> None:
        self.origin = np.asarray(origin, float)
        self.spacing = np.asarray(spacing, float)
        self.size_xyz = tuple(int(n) for n in size_xyz)
        nx, ny, nz = self.size_xyz
        self.axes = [
            (self.origin[a] + self.spacing[a] * np.arange(n)).astype(np.float32) for a, n in enumerate(self.size_xyz)
        ]
        self.hu = np.full((nz, ny, nx), -1000.0, np.float32)
        self.lab = np.zeros((nz, ny, nx), np.uint8)
        self.tis = np.zeros((nz, ny, nx), np.uint8)

    def box(self, lo: np.ndarray, hi: np.ndarray) -> tuple[slice, slice, slice] | None:
        """Voxel slices ``(k, j, i)`` covering the world box ``[lo, hi]`` (mm), or ``None`` outside the grid."""
        i0 = np.maximum(np.floor((lo - self.origin) / self.spacing).astype(int), 0)
        i1 = np.minimum(np.ceil((hi - self.origin) / self.spacing).astype(int) + 1, self.size_xyz)
        if np.any(i1 <= i0):
            return None
        return slice(i0[2], i1[2]), slice(i0[1], i1[1]), slice(i0[0], i1[0])

    def world(self, sl: tuple[slice, slice, slice]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Broadcastable world coordinates ``x, y, z`` of a box (shapes ``(1,1,n)``, ``(1,n,1)``, ``(n,1,1)``)."""
        return (
            self.axes[0][sl[2]][None, None, :],
            self.axes[1][sl[1]][None, :, None],
            self.axes[2][sl[0]][:, None, None],
        )

    def local(self, sl, center: np.ndarray, rot: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Coordinates of a box in a frame at ``center`` whose axes are the columns of ``rot`` (float32)."""
        x, y, z = self.world(sl)
        dx, dy, dz = x - np.float32(center[0]), y - np.float32(center[1]), z - np.float32(center[2])
        r = rot.astype(np.float32)
        return tuple(r[0, a] * dx + r[1, a] * dy + r[2, a] * dz for a in range(3))

    def put(self, sl, mask: np.ndarray, hu: float | np.ndarray, tissue: int, label: int | None = None) -> None:
        """Write HU, tissue and (optionally) a label where ``mask`` holds, inside box ``sl``."""
        h = self.hu[sl]
        h[mask] = hu[mask] if isinstance(hu, np.ndarray) else hu
        self.tis[sl][mask] = tissue
        if label is not None:
            self.lab[sl][mask] = label


def _field(q: tuple[np.ndarray, np.ndarray, np.ndarray], e: Ellipsoid) -> np.ndarray:
    """``Σ |q_i / r_i|^p`` of ellipsoid ``e`` at coordinates ``q`` given in ``e``'s parent frame."""
    d = [q[a] - np.float32(e.center[a]) for a in range(3)]
    if e.rot is not None:
        r = e.rot.astype(np.float32)
        d = [r[0, a] * d[0] + r[1, a] * d[1] + r[2, a] * d[2] for a in range(3)]
    inv = (1.0 / np.asarray(e.radii, np.float32)).astype(np.float32)
    if e.power == 2.0:
        first = (d[0] * inv[0]) ** 2
        if e.bar:
            first = first * first * first
        return first + (d[1] * inv[1]) ** 2 + (d[2] * inv[2]) ** 2
    p = np.float32(e.power)
    return np.abs(d[0] * inv[0]) ** p + np.abs(d[1] * inv[1]) ** p + np.abs(d[2] * inv[2]) ** p


def _paint_ellipsoid(
    cv: _Canvas,
    e: Ellipsoid,
    hu: float,
    tissue: int,
    label: int | None = None,
    frame: tuple[np.ndarray, np.ndarray] | None = None,
    where: Callable[[tuple, np.ndarray], np.ndarray] | None = None,
    shell: tuple[float, float, int] | None = None,
) -> None:
    """Paint an ellipsoid given in world coordinates or in ``frame = (center, rot)``.

    Args:
        cv: Canvas.
        e: The ellipsoid.
        hu: HU inside.
        tissue: Tissue code inside.
        label: Label id, or ``None`` to leave labels.
        frame: Parent frame of ``e`` (origin, axes as columns); ``None`` = world.
        where: ``f(box, mask) → mask`` restricting where it paints (e.g. never over bone).
        shell: ``(thickness_mm, hu, tissue)`` of an outer shell (cortex), the inside keeps ``hu``. The shell
            never covers marrow of the same label, so a bone drawn as overlapping pieces (a rib, the
            sternum) keeps one continuous marrow cavity instead of a cortical wall at every joint.
    """
    c0, r0 = (np.zeros(3), np.eye(3)) if frame is None else frame
    center_w = c0 + r0 @ e.center
    ext = np.abs(r0) @ e.extent()
    sl = cv.box(center_w - ext, center_w + ext)
    if sl is None:
        return
    q = cv.local(sl, c0, r0) if frame is not None else cv.world(sl)
    f = _field(q, e)
    mask = f <= 1.0
    if where is not None:
        mask &= where(sl, mask)
    if not mask.any():
        return
    if shell is None:
        cv.put(sl, mask, hu, tissue, label)
        return
    t, hu_shell, tis_shell = shell
    inner = Ellipsoid(e.center, np.maximum(np.asarray(e.radii) - t, 0.3), e.rot, e.power, e.bar)
    core = mask & (_field(q, inner) <= 1.0)
    shell_mask = mask & ~core
    if label is not None:
        shell_mask &= ~((cv.lab[sl] == label) & (cv.tis[sl] == tissue))
    cv.put(sl, shell_mask, hu_shell, tis_shell, label)
    cv.put(sl, core, hu, tissue, label)


def _paint_tube(
    cv: _Canvas,
    points: np.ndarray,
    radii: float | ArrayLike,
    hu: float,
    tissue: int,
    label: int | None = None,
    where: Callable[[tuple, np.ndarray], np.ndarray] | None = None,
    wall: tuple[float, float, int] | None = None,
) -> None:
    """Paint a tube of circular cross-section along a polyline (capsules with linearly varying radius).

    ``wall = (thickness, hu, tissue)`` paints a wall first and the lumen (``hu``) inside it, as for airways.
    """
    pts = np.asarray(points, float)
    rad = np.broadcast_to(np.asarray(radii, float), (len(pts),))
    for a, b, ra, rb in zip(pts[:-1], pts[1:], rad[:-1], rad[1:], strict=True):
        r = max(ra, rb) + (wall[0] if wall else 0.0)
        sl = cv.box(np.minimum(a, b) - r, np.maximum(a, b) + r)
        if sl is None:
            continue
        x, y, z = cv.world(sl)
        d = (b - a).astype(np.float32)
        dd = float(d @ d) or 1.0
        px, py, pz = x - np.float32(a[0]), y - np.float32(a[1]), z - np.float32(a[2])
        t = np.clip((px * d[0] + py * d[1] + pz * d[2]) / np.float32(dd), 0.0, 1.0)
        dist2 = (px - t * d[0]) ** 2 + (py - t * d[1]) ** 2 + (pz - t * d[2]) ** 2
        rt = np.float32(ra) + t * np.float32(rb - ra)
        if wall is not None:
            outer = dist2 <= (rt + np.float32(wall[0])) ** 2
            if where is not None:
                outer &= where(sl, outer)
            cv.put(sl, outer & (dist2 > rt * rt), wall[1], wall[2], label)
            lumen = outer & (dist2 <= rt * rt)
            cv.put(sl, lumen, hu, tissue, label)
            continue
        mask = dist2 <= rt * rt
        if where is not None:
            mask &= where(sl, mask)
        cv.put(sl, mask, hu, tissue, label)


def _not_bone(cv: _Canvas) -> Callable[[tuple, np.ndarray], np.ndarray]:
    """A ``where`` that keeps bone, cartilage and discs as they are."""

    def where(sl, mask):
        t = cv.tis[sl]
        return (t != Tissue.CORTEX) & (t != Tissue.CANCELLOUS) & (t != Tissue.DISC) & (t != Tissue.CARTILAGE)

    return where


def _smooth_field(rng: np.random.Generator, shape_zyx: tuple[int, int, int], cells: tuple[int, int, int]) -> np.ndarray:
    """A smooth random field (zero mean, spread ~0.6) interpolated linearly from a coarse random lattice.

    The lattice has ``cells`` (+2) points per axis; interpolation is separable (two planes and a weight per
    output position), so the cost is a few passes over the output whatever the lattice size.
    """
    out = rng.standard_normal(tuple(c + 2 for c in cells)).astype(np.float32)
    for axis, n in enumerate(shape_zyx):
        m = out.shape[axis]
        pos = np.linspace(0.5, m - 1.5, n)
        lo = np.clip(np.floor(pos).astype(int), 0, m - 2)
        w = (pos - lo).astype(np.float32)
        shape = [1, 1, 1]
        shape[axis] = n
        w = w.reshape(shape)
        out = np.take(out, lo, axis=axis) * (1.0 - w) + np.take(out, lo + 1, axis=axis) * w
    return out


# --------------------------------------------------------------------------------------------------------------
# The subject: random draws that make one phantom
# --------------------------------------------------------------------------------------------------------------


@dataclass
class _Vertebra:
    name: str
    label: int
    index: int  # level coordinate (C1 = 0 … S1 = 24)
    m: Morph
    center: np.ndarray = field(default_factory=lambda: np.zeros(3))
    rot: np.ndarray = field(default_factory=lambda: np.eye(3))
    wedge: float = 0.0  # anterior height loss (fraction)
    sclerosis: tuple[bool, bool] = (False, False)  # (superior, inferior) endplate
    osteophytes: list[Ellipsoid] = field(default_factory=list)

    @property
    def region(self) -> str:
        return {"C": "cervical", "T": "thoracic", "L": "lumbar", "S": "sacral"}[self.name[0]]

    def to_world(self, p: ArrayLike) -> np.ndarray:
        return self.center + self.rot @ np.asarray(p, float)


@dataclass
class _Disc:
    upper: int  # indices into the vertebra list
    lower: int
    height_factor: float
    vacuum: bool


@dataclass
class _Subject:
    """Random draws describing one phantom (recorded in :attr:`AnatomicalPhantom.info`)."""

    scale: float
    fat_mm: float
    width_factor: float
    visceral_fat: float
    cancellous_hu: float
    cortex_hu: float
    contrast: bool
    lordosis_cervical: float
    kyphosis_thoracic: float
    lordosis_lumbar: float
    scoliosis: list[dict[str, float]]
    inspiration: float  # diaphragm level shift (levels)
    noise_hu: float

    def to_json(self) -> dict[str, Any]:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def _draw_subject(rng: np.random.Generator) -> _Subject:
    old = rng.random() < 0.35  # older subject: lower bone density, more degeneration (decided below)
    scoliosis: list[dict[str, float]] = []
    if rng.random() < 0.3:
        apex = float(rng.uniform(8.5, 20.5))  # T2/T3 … L2
        cobb = float(rng.uniform(10.0, 45.0)) * (1 if rng.random() < 0.5 else -1)
        span = float(rng.uniform(2.5, 5.0))
        scoliosis.append({"apex": apex, "cobb_deg": cobb, "half_span": span})
        if rng.random() < 0.5:  # compensatory curve above or below, opposite sense, kept below C7
            side = 1 if apex < 14.5 else -1
            scoliosis.append(
                {
                    "apex": float(np.clip(apex + side * (2 * span + 1.0), 9.0, 22.0)),
                    "cobb_deg": -cobb * float(rng.uniform(0.4, 0.8)),
                    "half_span": span,
                }
            )
    return _Subject(
        scale=float(np.clip(rng.normal(1.0, 0.06), 0.86, 1.14)),
        fat_mm=float(np.clip(rng.lognormal(math.log(14.0), 0.55), 3.0, 60.0)),
        width_factor=float(rng.uniform(0.9, 1.12)),
        visceral_fat=float(rng.uniform(0.15, 0.8)),
        cancellous_hu=float(rng.uniform(70.0, 150.0) if old else rng.uniform(150.0, 270.0)),
        cortex_hu=float(rng.uniform(650.0, 1100.0)),
        contrast=bool(rng.random() < 0.4),
        lordosis_cervical=float(rng.uniform(-8.0, 35.0)),
        kyphosis_thoracic=float(rng.uniform(20.0, 50.0) + (10.0 if old else 0.0)),
        lordosis_lumbar=float(rng.uniform(35.0, 68.0)),
        scoliosis=scoliosis,
        inspiration=float(rng.uniform(-0.8, 1.2)),
        noise_hu=float(rng.uniform(20.0, 90.0)),
    )


# --------------------------------------------------------------------------------------------------------------
# The spine: per-level shapes, stacking along the curves, degeneration
# --------------------------------------------------------------------------------------------------------------


def _disc_angles(subj: _Subject, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sagittal, coronal and axial angle increments (rad) at each of the 24 joints below C1 … L5."""
    n = len(LEVELS) - 1  # joint j lies between LEVELS[j] and LEVELS[j + 1]
    sag = np.zeros(n)
    # cervical lordosis C2/3 … C6/7 (joints 1–5), positive: the column bends convex-anteriorly going down
    sag[1:6] = subj.lordosis_cervical / 5.0
    # thoracic kyphosis T1/2 … T11/12 (joints 7–17), peaked in the mid-thoracic spine
    w = np.sin(np.linspace(0.25, math.pi - 0.25, 11))
    sag[7:18] = -subj.kyphosis_thoracic * w / w.sum()
    # lumbar lordosis T12/L1 … L5/S1 (joints 18–23), two thirds of it at L4–S1
    lw = np.array([0.03, 0.08, 0.13, 0.20, 0.26, 0.30])
    sag[18:24] = subj.lordosis_lumbar * lw / lw.sum()
    sag += rng.normal(0.0, 1.0, n)
    cor = rng.normal(0.0, 0.6, n)
    axial = rng.normal(0.0, 0.8, n)
    joint_level = np.arange(n) + 0.5
    for curve in subj.scoliosis:
        # a C-curve: coronal bends of one sense over the span (their sum is the Cobb angle), and the apical
        # vertebrae rotated towards the convexity by up to ~40 % of the Cobb angle
        bump = np.exp(-0.5 * ((joint_level - curve["apex"]) / curve["half_span"]) ** 2)
        cor += -curve["cobb_deg"] * bump / bump.sum()
        level_bump = np.exp(-0.5 * ((np.arange(n + 1) - curve["apex"]) / curve["half_span"]) ** 2)
        axial += np.diff(0.4 * curve["cobb_deg"] * level_bump)
    # the neck keeps the head upright over the thorax: no scoliotic bending above C7/T1
    cor[:6] = rng.normal(0.0, 0.6, 6)
    axial[:6] = rng.normal(0.0, 0.8, 6)
    return np.deg2rad(sag), np.deg2rad(cor), np.deg2rad(axial)


def _build_spine(subj: _Subject, rng: np.random.Generator) -> tuple[list[_Vertebra], list[_Disc]]:
    """Vertebrae C1 … S1 with jittered dimensions, stacked along the drawn curves; discs between them."""
    ids = {name: sid for sid, name in load_registry("spine").source_id_map("totalsegmentator_v2").items()}
    verts: list[_Vertebra] = []
    for n, name in enumerate(LEVELS):
        jitter = np.clip(rng.normal(1.0, 0.04, len(_LENGTHS)), 0.88, 1.12)
        m = MORPHOMETRY[name].scaled(subj.scale * jitter)
        m = Morph(
            **{f: getattr(m, f) for f in _LENGTHS},
            sp_angle=MORPHOMETRY[name].sp_angle + float(rng.normal(0, 4)),
            ped_angle=MORPHOMETRY[name].ped_angle + float(rng.normal(0, 2)),
        )
        verts.append(_Vertebra(name=name, label=ids[name], index=n, m=m))

    # Degeneration: disc height loss (mostly lower cervical and lower lumbar), osteophytes, wedge fractures.
    old_prob = 0.55 if subj.cancellous_hu < 150 else 0.2
    discs: list[_Disc] = []
    for j in range(len(verts) - 1):
        lower_name = verts[j + 1].name
        prone = lower_name in ("C5", "C6", "C7", "L4", "L5", "S1") or verts[j].name in ("T11", "T12")
        degenerate = verts[j].name != "C1" and rng.random() < old_prob * (0.6 if prone else 0.2)
        discs.append(
            _Disc(
                j,
                j + 1,
                float(rng.uniform(0.35, 0.75)) if degenerate else 1.0,
                bool(degenerate and rng.random() < 0.35),
            )
        )
        if degenerate:
            for v, side in ((verts[j], -1), (verts[j + 1], +1)):
                if v.name in ("C1",):
                    continue
                v.sclerosis = (v.sclerosis[0] or side > 0, v.sclerosis[1] or side < 0)
                for _ in range(int(rng.integers(1, 5))):
                    phi = float(rng.uniform(-math.pi * 0.95, -math.pi * 0.05))  # anterior and lateral rim
                    a, b, c = v.m.epw / 2, v.m.epd / 2, v.m.vbh / 2
                    size = float(rng.uniform(1.5, 4.0))
                    pos = ((a + size * 0.5) * math.cos(phi), (b + size * 0.5) * math.sin(phi), side * (c - 0.5))
                    v.osteophytes.append(_ell(pos, (size + 1.0, size + 1.0, size * 0.9)))
    if rng.random() < (0.35 if subj.cancellous_hu < 150 else 0.08):
        k = int(rng.integers(LEVELS.index("T5"), LEVELS.index("L4") + 1))
        verts[k].wedge = float(rng.uniform(0.2, 0.45))

    # Stacking: rotations from the joint angles, centres from heights and disc heights along the mean axis.
    sag, cor, axial = _disc_angles(subj, rng)
    _stack(verts, discs, sag, cor, axial)
    # The head stays upright: the neck takes up the coronal tilt a scoliosis leaves at C7 (righting reflex).
    c7, s1 = verts[LEVELS.index("C7")].center, verts[LEVELS.index("S1")].center
    chord = s1 - c7
    tilt = math.atan2(chord[0], -chord[2])
    cor[1:6] += tilt / 5.0
    _stack(verts, discs, sag, cor, axial)

    # Align: the C7–S1 chord vertical, a small random tilt, the chord's middle at the origin.
    c7, s1 = verts[LEVELS.index("C7")].center, verts[LEVELS.index("S1")].center
    align = _rot_x(math.radians(rng.normal(0, 2.5))) @ _rot_y(math.radians(rng.normal(0, 2.0)))
    align = align @ _rotation_between(s1 - c7, np.array([0.0, 0.0, -1.0]))
    mid = (c7 + s1) / 2
    for v in verts:
        v.center = align @ (v.center - mid)
        v.rot = align @ v.rot
    return verts, discs


def _stack(verts: list[_Vertebra], discs: list[_Disc], sag: np.ndarray, cor: np.ndarray, axial: np.ndarray) -> None:
    """Orient each vertebra by the summed joint angles and place it below the one above (C1 at the origin)."""
    a_s = np.concatenate([[0.0], np.cumsum(sag)])
    a_c = np.concatenate([[0.0], np.cumsum(cor)])
    a_r = np.concatenate([[0.0], np.cumsum(axial)])
    a_r -= a_r.mean()
    verts[0].center = np.zeros(3)
    for n, v in enumerate(verts):
        v.rot = _rot_y(a_c[n]) @ _rot_x(a_s[n]) @ _rot_z(a_r[n])
    for j, d in enumerate(discs):
        up, lo = verts[j], verts[j + 1]
        gap = up.m.disc * d.height_factor
        if up.name == "C1":  # the atlas rides on the axis' shoulders, the dens goes through its ring
            lo.center = up.center - up.rot[:, 2] * (up.m.vbh / 2 + gap + lo.m.vbh / 2)
            continue
        # the bodies must not meet at the narrow side of a wedged disc
        tilt = abs(a_s[j + 1] - a_s[j]) + abs(a_c[j + 1] - a_c[j])
        gap = max(gap, 0.5 * max(up.m.epd, up.m.epw) * math.tan(tilt) + 1.2)
        axis_up, axis_lo = up.rot[:, 2], lo.rot[:, 2]
        mean_axis = (axis_up + axis_lo) / np.linalg.norm(axis_up + axis_lo)
        lo.center = up.center - axis_up * (up.m.vbh / 2) - mean_axis * gap - axis_lo * (lo.m.vbh / 2)


# Part lists of one vertebra, in its local frame: (ellipsoid, role) with role "body", "post" or "carve".
_Part = tuple[Ellipsoid, str]


def _keypoints(v: _Vertebra) -> dict[str, np.ndarray]:
    """Landmarks of a vertebra in its local frame: canal centre, pedicle junctions, laminar junction, tips."""
    m = v.m
    b, c = m.epd / 2, m.vbh / 2
    y_canal = b + m.scd / 2 - 0.5
    zp = 0.0 if v.region == "cervical" else 0.15 * c
    ang = math.radians(m.ped_angle)
    y_ped = b + 0.35 * m.scd
    length = 0.7 * m.scd + 3.0
    kp: dict[str, np.ndarray] = {"canal": np.array([0.0, y_canal, 0.0])}
    kp["lam_mid"] = np.array([0.0, y_canal + m.scd / 2 + m.lam_t / 2, zp - 0.15 * m.lam_h])
    sp_a = math.radians(m.sp_angle)
    kp["sp_tip"] = kp["lam_mid"] + m.spl * np.array([0.0, math.cos(sp_a), -math.sin(sp_a)])
    for s, tag in ((1, "L"), (-1, "R")):
        ped = np.array([s * (m.scw / 2 + m.pdw / 2 - 0.5), y_ped, zp])
        d = np.array([s * math.sin(ang), math.cos(ang), 0.0])
        kp[f"ped_{tag}"] = ped
        kp[f"ped_dir_{tag}"] = d
        kp[f"ped_len_{tag}"] = np.array([length])
        kp[f"junction_{tag}"] = ped + d * length / 2
        j = kp[f"junction_{tag}"]
        if v.region == "cervical":
            base = np.array([s * (m.epw / 2 * 0.9), b * 0.55, 0.0])
            tip = np.array([s * m.tpw / 2, b * 0.55 + 2.0, -1.0])
        else:
            back = {"thoracic": 0.6 if v.name not in ("T11", "T12") else 0.25, "lumbar": 0.08, "sacral": 0.0}[v.region]
            base = j + np.array([0.0, -2.0, 1.0])
            reach = m.tpw / 2 - abs(base[0])
            tip = np.array([s * m.tpw / 2, base[1] + reach * back, base[2] + (2.0 if v.region == "thoracic" else 0)])
        kp[f"tp_base_{tag}"] = base
        kp[f"tp_tip_{tag}"] = tip
    return kp


def _body(v: _Vertebra) -> _Part:
    m = v.m
    return _ell((0.0, 0.0, 0.0), (m.epw / 2, m.epd / 2, m.vbh / 2)), "body"


def _vertebra_parts(v: _Vertebra) -> list[_Part]:
    """Ellipsoids (role ``post``), the body (role ``body``, drawn by its own shape) and carves, local frame."""
    m = v.m
    if v.name == "C1":
        return _atlas_parts(v)
    kp = _keypoints(v)
    parts: list[_Part] = [_body(v)]
    cerv = v.region == "cervical"
    for tag, s in (("L", 1), ("R", -1)):
        d = kp[f"ped_dir_{tag}"]
        rot = _frame_along(d, np.array([0.0, 0.0, 1.0]))
        parts.append((_ell(kp[f"ped_{tag}"], (kp[f"ped_len_{tag}"][0] / 2 + 2.0, m.pdw / 2, m.pdh / 2), rot), "post"))
        j = kp[f"junction_{tag}"]
        parts.append((_seg(j, kp["lam_mid"] + np.array([s * 1.0, 0, 0]), m.lam_t / 2, m.lam_h / 2), "post"))
        if cerv:  # the articular pillar (lateral mass) carrying both facets
            parts.append((_ell(j + np.array([s * 2.0, 1.0, 0.0]), (5.5, 6.0, m.vbh / 2 + 3.0)), "post"))
        else:
            facet_h = 0.32 * m.vbh + 2.0
            parts.append((_ell(j + np.array([s * 1.5, 1.5, 0.7 * m.vbh / 2 + 2.0]), (4.0, 5.0, facet_h)), "post"))
            parts.append((_ell(j + np.array([-s * 1.0, 5.0, -0.8 * m.vbh / 2 - 1.0]), (4.0, 5.0, facet_h)), "post"))
        tp_r = {"cervical": (5.0, 3.5), "thoracic": (4.5, 5.0), "lumbar": (3.5, 0.25 * m.lam_h), "sacral": (6, 6)}
        r_side, r_up = tp_r[v.region]
        parts.append((_seg(kp[f"tp_base_{tag}"], kp[f"tp_tip_{tag}"], r_side, r_up), "post"))
        if v.region == "thoracic" and v.name not in ("T11", "T12"):  # costal facet bulb at the tip
            parts.append((_ell(kp[f"tp_tip_{tag}"], (5.0, 5.5, 5.5)), "post"))
        if cerv and v.name != "C7":  # foramen transversarium
            hole = kp[f"tp_base_{tag}"] + (kp[f"tp_tip_{tag}"] - kp[f"tp_base_{tag}"]) * 0.35
            parts.append((_ell(hole, (2.8, 2.8, 30.0)), "carve"))
        if cerv and v.name not in ("C2",):  # uncinate process
            parts.append((_ell((s * m.epw / 2 * 0.85, 0.0, m.vbh / 2 + 1.0), (2.0, m.epd * 0.3, 2.5)), "post"))
    sp_w = {"cervical": 3.0, "thoracic": 3.5, "lumbar": 4.0}[v.region]
    parts.append((_seg(kp["lam_mid"], kp["sp_tip"], sp_w, m.sph / 2), "post"))
    if v.region == "lumbar":  # the hatchet-shaped lumbar spinous process
        parts.append((_ell(kp["sp_tip"] - np.array([0, 3.0, 0]), (4.0, 6.0, m.sph / 2), power=4.0), "post"))
    if cerv and v.name != "C7":  # bifid tip
        for s in (1, -1):
            parts.append((_ell(kp["sp_tip"] + np.array([s * 3.0, 0, 0]), (3.0, 4.0, 3.5)), "post"))
    if v.name == "C2":
        parts += _axis_extra(v)
    parts.append((_ell(kp["canal"], (m.scw / 2, m.scd / 2, 60.0)), "carve"))
    parts += [(e, "post") for e in v.osteophytes]
    return parts


def _atlas_parts(v: _Vertebra) -> list[_Part]:
    """C1: anterior arch, lateral masses, posterior arch, long transverse processes with foramina; no body."""
    m = v.m
    parts: list[_Part] = [
        (_ell((0.0, -m.epd / 2 + 5.5, 0.0), (11.0, 4.0, 5.5)), "post"),  # anterior arch and tubercle
    ]
    for s in (1, -1):
        lm = np.array([s * (m.epw / 2 - 8.0), -m.epd * 0.05, 0.0])
        parts.append((_ell(lm, (7.5, 9.5, m.vbh / 2)), "post"))  # lateral mass
        parts.append((_seg((s * 9.0, -m.epd / 2 + 5.5, 0), lm, 3.5, 4.5), "post"))
        parts.append((_seg(lm + np.array([0, 6.0, 0]), (s * 8.0, m.epd / 2 - 3.0, -1.0), 3.5, 4.0), "post"))
        tip = np.array([s * m.tpw / 2, -m.epd * 0.05, -1.0])
        parts.append((_seg(lm, tip, 4.5, 4.0), "post"))
        parts.append((_ell(lm + (tip - lm) * 0.55, (2.8, 2.8, 20.0)), "carve"))
    parts.append((_ell((0.0, m.epd / 2 - 3.0, -1.0), (6.0, 4.0, 5.0)), "post"))  # posterior tubercle
    parts.append((_ell((0.0, 4.0, 0.0), (m.scw / 2 - 4.0, m.scd / 2 - 2.0, 40.0)), "carve"))
    return parts


def _axis_extra(v: _Vertebra) -> list[_Part]:
    """C2: the dens and the superior facets (shoulders) the atlas rests on."""
    m = v.m
    top = m.vbh / 2
    parts: list[_Part] = [(_ell((0.0, -1.0, top + 7.0), (5.0, 5.5, 9.0)), "post")]
    for s in (1, -1):
        parts.append((_ell((s * (m.epw / 2 + 1.0), 1.0, top - 2.0), (7.0, 8.0, 4.5)), "post"))
    return parts


def _body_field(v: _Vertebra, q: tuple[np.ndarray, np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Inside test of a vertebral body (≤ 1) and the normalised height ``z / c`` (for endplate effects).

    Elliptic anterior half, flatter (superelliptic) posterior half, a waist, rounded rims, slightly concave
    endplates, and the anterior wedge of a compression deformity.
    """
    m = v.m
    a, b, c = m.epw / 2, m.epd / 2, m.vbh / 2
    x, y, z = q
    zc = np.clip(z / np.float32(c), -1.5, 1.5)
    waist = 1.0 - 0.07 * (1.0 - np.minimum(zc * zc, 1.0))
    xa = np.abs(x) / (np.float32(a) * waist)
    yb = y / (np.float32(b) * waist)
    cross = np.where(yb < 0, xa * xa + yb * yb, (xa**3.5 + np.abs(yb) ** 3.5) ** (2.0 / 3.5))
    c_eff = np.float32(c) * (1.0 - 0.06 * np.clip(1.0 - cross, 0.0, 1.0))  # concave endplates
    if v.wedge > 0:
        c_eff = c_eff * (1.0 - np.float32(v.wedge) * np.clip((b - y) / (2 * b), 0.0, 1.0))
    zz = np.abs(z) / c_eff
    f = (np.maximum(cross, 0.0) ** 4 + zz**8) ** 0.125
    return f, z / np.float32(c)


def _sacrum_parts(s1: _Vertebra, rng: np.random.Generator) -> tuple[list[_Part], list[_Part]]:
    """S1 (body, alae, facets, lamina) and S2–S5 (fused, tapering, curving back), in S1's frame."""
    m = s1.m
    b, c = m.epd / 2, m.vbh / 2
    s1_parts: list[_Part] = [_body(s1)]
    for s in (1, -1):
        s1_parts.append((_ell((s * (m.epw / 2 + 9.0), 6.0, -2.0), (18.0, 15.0, 13.0)), "post"))  # ala
        s1_parts.append((_ell((s * (m.tpw / 2 - 9.0), 10.0, -6.0), (9.0, 16.0, 16.0)), "post"))  # auricular part
        s1_parts.append((_ell((s * (m.scw / 2 + 5.0), b + 10.0, c + 3.0), (5.0, 6.0, 8.0)), "post"))  # facet
        s1_parts.append((_seg((s * (m.scw / 2 + 4.0), b + 6.0, 0), (0, b + m.scd + 4, -2.0), 3.5, 7.0), "post"))
    s1_parts.append((_ell((0.0, b + m.scd + 6.0, -3.0), (3.5, 5.0, 6.0)), "post"))  # median crest
    s1_parts.append((_ell((0.0, b + m.scd / 2 - 0.5, 0.0), (m.scw / 2 - 3.0, m.scd / 2, 40.0)), "carve"))
    rest: list[_Part] = []
    # S2–S5: segment centres go down and curve back (sacral kyphosis), each smaller
    pos = np.array([0.0, 0.0, -c])
    direction = np.array([0.0, 0.25, -1.0])
    heights = np.array([19.0, 16.0, 13.0, 10.0]) * s1.m.epw / 50.0
    bend = math.radians(rng.uniform(8.0, 14.0))
    for k, h in enumerate(heights):
        direction = _rot_x(-bend) @ direction
        direction /= np.linalg.norm(direction)
        centre = pos + direction * (h / 2 + 1.0)
        pos = centre + direction * h / 2
        shrink = 1.0 - 0.2 * (k + 1)
        rot = _frame_along(direction, np.array([0.0, 1.0, 0.0]))[:, [1, 2, 0]]  # local x, y, z ≈ L, P, along
        width = (m.tpw * 0.8) * shrink
        rest.append((_ell(centre, (width / 2, 0.3 * m.epd * shrink + 4.0, h / 2 + 1.0), rot, 3.0), "post"))
        rest.append((_ell(centre + rot @ np.array([0, 0.3 * m.epd + 2.0, 0]), (4.0, 4.0, h / 2), rot), "post"))
        for s in (1, -1):  # anterior sacral foramina
            hole = centre + rot @ np.array([s * (width * 0.28), 0.0, h / 2 + 1.0])
            rest.append((_ell(hole, (3.5, 14.0, 3.5), rot), "carve"))
    return s1_parts, rest


def _paint_bone(
    cv: _Canvas,
    parts: list[_Part],
    frame: tuple[np.ndarray, np.ndarray],
    label: int,
    subj: _Subject,
    rng: np.random.Generator,
    body_of: _Vertebra | None = None,
    post_factor: float = 1.5,
) -> None:
    """Union of parts (minus carves) → cortical shell (one voxel) + cancellous interior with texture."""
    center, rot = frame
    solid = [e for e, role in parts if role != "carve"]
    lo = np.full(3, np.inf)
    hi = np.full(3, -np.inf)
    for e in solid:
        ext = e.extent()
        corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]) * ext + e.center
        w = corners @ rot.T + center
        lo, hi = np.minimum(lo, w.min(0)), np.maximum(hi, w.max(0))
    sl = cv.box(lo - 1.0, hi + 1.0)
    if sl is None:
        return
    q = cv.local(sl, center, rot)
    inside = np.zeros(q[0].shape, bool)
    body = np.zeros_like(inside)
    zc = None
    for e, role in parts:
        if role == "carve":
            continue
        if role == "body":
            assert body_of is not None  # parts hold a "body" role only when painting a vertebra
            f, zc = _body_field(body_of, q)
            m = f <= 1.0
            body |= m
        else:
            m = _field(q, e) <= 1.0
        inside |= m
    for e, role in parts:
        if role == "carve":
            inside &= _field(q, e) > 1.0
    body &= inside
    if not inside.any():
        return
    from scipy.ndimage import binary_erosion

    core = binary_erosion(inside, border_value=1)
    cortex = inside & ~core
    canc = np.float32(subj.cancellous_hu)
    hu = np.where(body, canc, canc * np.float32(post_factor)).astype(np.float32)
    hu *= 1.0 + 0.25 * rng.standard_normal(hu.shape).astype(np.float32)  # trabecular texture (smoothed later)
    if body_of is not None and zc is not None and any(body_of.sclerosis):
        sup, inf = body_of.sclerosis
        near = ((zc > 0.75) & sup) | ((zc < -0.75) & inf)
        hu = np.where(near & body, hu + np.float32(180.0), hu)
    cv.put(sl, core, hu, Tissue.CANCELLOUS, label)
    cv.put(sl, cortex, subj.cortex_hu, Tissue.CORTEX, label)


def _beyond_endplate(cv: _Canvas, sl: tuple, v: _Vertebra, sign: float) -> np.ndarray:
    """Signed distance (mm) past vertebra ``v``'s superior (``sign`` +1) or inferior (−1) endplate plane."""
    x, y, z = cv.world(sl)
    n = v.rot[:, 2].astype(np.float32) * np.float32(sign)
    p = v.to_world((0, 0, sign * v.m.vbh / 2))
    return (x - p[0]) * n[0] + (y - p[1]) * n[1] + (z - p[2]) * n[2]


def _paint_discs(cv: _Canvas, verts: list[_Vertebra], discs: list[_Disc], rng: np.random.Generator) -> None:
    """Fill between the inferior endplate above and the superior endplate below; gas when degenerate."""
    for d in discs:
        up, lo = verts[d.upper], verts[d.lower]
        if up.name == "C1":
            continue  # atlanto-axial joints, no disc
        top_c = up.to_world((0, 0, -up.m.vbh / 2))
        bot_c = lo.to_world((0, 0, lo.m.vbh / 2))
        centre = (top_c + bot_c) / 2
        ez = up.rot[:, 2] + lo.rot[:, 2]
        ez /= np.linalg.norm(ez)
        ey = up.rot[:, 1] + lo.rot[:, 1]
        ey -= (ey @ ez) * ez
        ey /= np.linalg.norm(ey)
        frame_rot = np.stack([np.cross(ey, ez), ey, ez], 1)
        a = (up.m.epw + lo.m.epw) / 4 * 1.02
        b = (up.m.epd + lo.m.epd) / 4 * 1.02
        h = float(np.linalg.norm(top_c - bot_c)) + 0.5 * max(a, b) * 0.6
        ext = np.array([a + 2, b + 2, h / 2 + 8])
        corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]) * ext
        w = corners @ frame_rot.T + centre
        sl = cv.box(w.min(0), w.max(0))
        if sl is None:
            continue
        q = cv.local(sl, centre, frame_rot)
        yb = q[1] / np.float32(b)
        xa = np.abs(q[0]) / np.float32(a)
        cross = np.where(yb < 0, xa * xa + yb * yb, (xa**3.5 + np.abs(yb) ** 3.5) ** (2.0 / 3.5))
        beyond_up = _beyond_endplate(cv, sl, up, -1.0)
        beyond_lo = _beyond_endplate(cv, sl, lo, 1.0)
        mask = (cross <= 1.0) & (beyond_up >= -0.3) & (beyond_lo >= -0.3)
        t = cv.tis[sl]
        mask &= (t != Tissue.CORTEX) & (t != Tissue.CANCELLOUS)
        hu = np.where(cross < 0.45, np.float32(75.0), np.float32(95.0))
        cv.put(sl, mask, hu, Tissue.DISC)
        if d.vacuum:
            gas = mask & (cross < 0.25) & (np.abs(q[2]) < 1.5)
            cv.put(sl, gas, -850.0, Tissue.AIR)


# --------------------------------------------------------------------------------------------------------------
# Torso
# --------------------------------------------------------------------------------------------------------------


@dataclass
class _Ribs:
    """World polylines of each rib (bone and cartilage) and the cage ellipse per rib (for lungs and wall)."""

    bone: dict[tuple[int, int], np.ndarray]  # (rib 1–12, side ±1) → points (n, 3)
    cartilage: dict[tuple[int, int], np.ndarray]
    sternal: dict[int, np.ndarray]  # rib → sternal joint point (ribs 1–7)
    cage_z: np.ndarray  # mean z of each rib (12,)
    cage_a: np.ndarray  # half-width
    cage_b: np.ndarray  # half-depth
    cage_xc: np.ndarray
    cage_yc: np.ndarray


class _Body:
    """Level-coordinate interpolation of the spine and body outline along z."""

    def __init__(self, verts: list[_Vertebra], subj: _Subject) -> None:
        zs = np.array([v.center[2] for v in verts])
        order = np.argsort(zs)
        self.z_sorted = zs[order]
        self.level_sorted = np.array([v.index for v in verts], float)[order]
        self.x_sorted = np.array([v.center[0] for v in verts])[order]
        self.y_sorted = np.array([v.center[1] for v in verts])[order]
        self.epd_sorted = np.array([v.m.epd for v in verts])[order]
        self.epw_sorted = np.array([v.m.epw for v in verts])[order]
        post = []
        for v in verts:
            kp = _keypoints(v) if v.name not in ("C1",) else {"sp_tip": np.array([0, v.m.epd / 2, 0])}
            post.append(v.to_world(kp["sp_tip"])[1] - v.center[1])
        self.post_sorted = np.array(post)[order]
        self.subj = subj
        self.ribs: _Ribs | None = None  # set once the ribs are built: the chest wall follows the cage
        # spacing of levels in z near the ends, to extrapolate beyond C1 and S1
        self.dz_top = (self.z_sorted[-1] - self.z_sorted[-4]) / 3.0
        self.dz_bot = (self.z_sorted[3] - self.z_sorted[0]) / 3.0

    def level_at(self, z: np.ndarray | float) -> np.ndarray:
        z = np.asarray(z, float)
        lev = np.interp(z, self.z_sorted, self.level_sorted)
        lev = np.where(z > self.z_sorted[-1], self.level_sorted[-1] - (z - self.z_sorted[-1]) / self.dz_top, lev)
        return np.where(z < self.z_sorted[0], self.level_sorted[0] + (self.z_sorted[0] - z) / self.dz_bot, lev)

    def z_at_level(self, level: float) -> float:
        lv = self.level_sorted[::-1]
        zz = self.z_sorted[::-1]
        if level < lv[0]:
            return float(zz[0] + (lv[0] - level) * self.dz_top)
        if level > lv[-1]:
            return float(zz[-1] - (level - lv[-1]) * self.dz_bot)
        return float(np.interp(level, lv, zz))

    def spine_at(self, z: float) -> tuple[float, float, float, float, float]:
        """Body centre x, y, endplate depth, width and posterior reach (SP tip) at height ``z``."""
        return tuple(
            float(np.interp(z, self.z_sorted, a))
            for a in (self.x_sorted, self.y_sorted, self.epd_sorted, self.epw_sorted, self.post_sorted)
        )  # type: ignore[return-value]

    def outline(self, z: float) -> tuple[float, float, float, float]:
        """Skin outline at ``z``: centre x, half-width, anterior and posterior skin y (mm)."""
        lev = float(self.level_at(z))
        _, sy, epd, _, post = self.spine_at(z)
        s = self.subj
        half = float(np.interp(lev, _ANCHOR_LEVEL, _ANCHOR_HALF_WIDTH)) * s.scale * s.width_factor
        if self.ribs is not None:  # chest wall: ribs, intercostal and thoracic muscles outside the cage
            _, _, a_cage, _, above = _cage_at(self.ribs, z)
            if above < 20.0 and z > self.ribs.cage_z.min() - 15.0:
                half = max(half, a_cage + 22.0 * s.scale)
        ant = float(np.interp(lev, _ANCHOR_LEVEL, _ANCHOR_ANT_DEPTH)) * s.scale
        belly = np.clip((lev - 17.0) / 3.0, 0.0, 1.0) * (s.visceral_fat - 0.3) * 60.0  # visceral fat bulges
        neck = lev < 6.5
        cover = float(np.interp(lev, (5.5, 7.5, 17.5, 19.5), (30.0, 12.0, 12.0, 18.0)))  # muscle behind the tips
        y_post = sy + post + cover + s.fat_mm * (0.6 if not neck else 0.4)
        belly_fat = 1.0 + 0.4 * float(np.clip((lev - 15.0) / 4.0, 0.0, 1.0))
        y_ant = sy - epd / 2 - ant - belly - s.fat_mm * (1.0 if not neck else 0.5) * belly_fat
        return 0.0, half + s.fat_mm * (0.9 if not neck else 0.4), y_ant, y_post


def _build_ribs(verts: list[_Vertebra], body: _Body, subj: _Subject, rng: np.random.Generator) -> _Ribs:
    """Rib polylines from each thoracic vertebra's head/tubercle along the cage ellipse, down to the front."""
    bone: dict[tuple[int, int], np.ndarray] = {}
    cart: dict[tuple[int, int], np.ndarray] = {}
    sternal: dict[int, np.ndarray] = {}
    cz, ca, cb, cxc, cyc = [], [], [], [], []
    for k in range(1, 13):
        v = verts[LEVELS.index(f"T{k}")]
        kp = _keypoints(v)
        m = v.m
        # cage depth: from the rib angle to the inner anterior wall at this level
        lev = v.index
        ant = float(np.interp(lev + _RIB_DROP[k - 1] / 22.0, _ANCHOR_LEVEL, _ANCHOR_ANT_DEPTH)) * subj.scale
        a_k = _RIB_HALF_WIDTH[k - 1] * subj.scale * subj.width_factor * float(rng.uniform(0.96, 1.04))
        a_k = min(a_k, float(np.interp(lev, _ANCHOR_LEVEL, _ANCHOR_HALF_WIDTH)) * subj.scale * subj.width_factor - 8)
        zs, xs, ys = [], [], []
        for s, tag in ((1, "L"), (-1, "R")):
            head = np.array([s * (m.epw / 2 - 2.0), m.epd * 0.22, m.vbh / 2 * (0.3 if k in (1, 11, 12) else 0.95)])
            tub = kp[f"tp_tip_{tag}"] + np.array([0.0, 2.0, -1.0])
            angle = tub + np.array([s * 16.0, 5.0, -4.0])
            theta0 = math.asin(min(abs(angle[0]) / a_k, 0.95))
            y_front = -m.epd / 2 - ant + 14.0  # inner anterior wall (sternum's back)
            b_k = max((angle[1] - y_front) / (1.0 + math.cos(theta0)), 25.0)
            yc = angle[1] - b_k * math.cos(theta0)
            theta_end = _RIB_BONE_END[k - 1]
            thetas = np.linspace(theta0, theta_end, 20)
            drop = _RIB_DROP[k - 1] * subj.scale * float(rng.uniform(0.85, 1.15))
            frac = (thetas - theta0) / (math.pi - theta0)
            arc = np.stack([s * a_k * np.sin(thetas), yc + b_k * np.cos(thetas), angle[2] - drop * frac**1.3], 1)
            local = np.vstack([head, tub, arc])
            bone[(k, s)] = np.array([v.to_world(p) for p in local])
            if k <= 10:  # costal cartilage to the sternum (1–7) or towards the costal margin (8–10)
                t_end = math.pi if k <= 7 else min(theta_end + 0.55, 2.95)
                tt = np.linspace(theta_end, t_end, 6)
                fr = (tt - theta0) / (math.pi - theta0)
                rise = 0.0 if k <= 7 else 1.0
                c_arc = np.stack(
                    [
                        s * a_k * np.sin(tt),
                        yc + b_k * np.cos(tt),
                        angle[2] - drop * fr**1.3 + rise * 18.0 * (tt - theta_end) / max(t_end - theta_end, 1e-3),
                    ],
                    1,
                )
                cart[(k, s)] = np.array([v.to_world(p) for p in c_arc])
                if k <= 7 and s == 1:
                    sternal[k] = cart[(k, s)][-1]
            zs.append(bone[(k, s)][:, 2].mean())
            xs.append(v.to_world((0, yc, 0))[0])
            ys.append(v.to_world((0, yc, 0))[1])
        cz.append(float(np.mean(zs)))
        ca.append(a_k)
        cb.append(b_k)
        cxc.append(float(np.mean(xs)))
        cyc.append(float(np.mean(ys)))
    return _Ribs(bone, cart, sternal, np.array(cz), np.array(ca), np.array(cb), np.array(cxc), np.array(cyc))


def _cage_at(ribs: _Ribs, z: float) -> tuple[float, float, float, float, float]:
    """Cage ellipse (xc, yc, a, b) at height ``z`` and how far above rib 1 (mm, ≤ 0 below it)."""
    order = np.argsort(ribs.cage_z)
    zz = ribs.cage_z[order]
    vals = [float(np.interp(z, zz, arr[order])) for arr in (ribs.cage_xc, ribs.cage_yc, ribs.cage_a, ribs.cage_b)]
    return vals[0], vals[1], vals[2], vals[3], float(z - zz[-1])


def _cells(shape_zyx: tuple[int, int, int], spacing_xyz: np.ndarray, mm: float) -> tuple[int, int, int]:
    """Lattice points per axis for a smooth field with features about ``mm`` across."""
    return tuple(max(2, int(n * s / mm)) for n, s in zip(shape_zyx, spacing_xyz[::-1], strict=True))  # type: ignore[return-value]


def _superellipse(dx: np.ndarray, dy: np.ndarray, half: float, depth: float) -> np.ndarray:
    """≤ 1 inside a body outline: elliptic in front (``dy`` < 0), flatter (power 4) at the back (supine)."""
    u = dx * np.float32(1.0 / half)
    u *= u
    v = dy * np.float32(1.0 / depth)
    v *= v
    return np.where(dy < 0, u + v, np.sqrt(u * u + v * v))


def _paint_torso(
    cv: _Canvas,
    body: _Body,
    ribs: _Ribs,
    subj: _Subject,
    rng: np.random.Generator,
    dome_map: np.ndarray,
) -> None:
    """Skin, subcutaneous fat, muscle wall and the cavity's background (neck muscle, thoracic fat, bowel/fat)."""
    nx, ny, nz = cv.size_xyz
    # abdominal contents: a smooth field split into bowel (soft) and visceral fat, a second one for gas
    zz = cv.axes[2]
    levels = body.level_at(zz)
    abdo_k = np.nonzero(levels > 13.5)[0]
    bowel = gas = None
    if abdo_k.size:
        a0, a1 = int(abdo_k.min()), int(abdo_k.max()) + 1
        shape = (a1 - a0, ny, nx)
        bowel = _smooth_field(rng, shape, _cells(shape, cv.spacing, 30.0))
        gas = _smooth_field(rng, shape, _cells(shape, cv.spacing, 18.0))
        thr_fat = float(np.quantile(bowel[::4, ::4, ::4], subj.visceral_fat))
    neck_fat = _smooth_field(
        rng, (1, ny, nx), (1, max(2, int(ny * cv.spacing[1] / 25)), max(2, int(nx * cv.spacing[0] / 25)))
    )[0]
    x = cv.axes[0][None, :]
    y = cv.axes[1][:, None]
    for k in range(nz):
        z = float(zz[k])
        lev = float(levels[k])
        xc, half, y_ant, y_post = body.outline(z)
        yc = (y_ant + y_post) / 2
        depth = (y_post - y_ant) / 2
        # only the rows and columns the body can cover
        j0 = max(int((y_ant - cv.origin[1]) / cv.spacing[1]) - 1, 0)
        j1 = min(int((y_post - cv.origin[1]) / cv.spacing[1]) + 2, ny)
        i0 = max(int((xc - half - cv.origin[0]) / cv.spacing[0]) - 1, 0)
        i1 = min(int((xc + half - cv.origin[0]) / cv.spacing[0]) + 2, nx)
        if j1 <= j0 or i1 <= i0:
            continue
        xs, ys = x[:, i0:i1], y[j0:j1]
        dx = np.abs(xs - np.float32(xc))
        dy = ys - np.float32(yc)
        hu = cv.hu[k, j0:j1, i0:i1]
        tis = cv.tis[k, j0:j1, i0:i1]
        skin = _superellipse(dx, dy, half, depth) <= 1.0
        hu[skin] = -100.0
        tis[skin] = Tissue.FAT
        fat_t = subj.fat_mm * (0.4 if lev < 6.5 else 1.0)
        h2, d2 = max(half - fat_t, 5.0), max(depth - fat_t * 0.8, 5.0)
        muscle = _superellipse(dx, dy, h2, d2) <= 1.0
        hu[muscle] = 50.0
        tis[muscle] = Tissue.SOFT
        wall_t = 12.0 if lev > 18 else 14.0
        cavity = _superellipse(dx, dy, max(h2 - wall_t, 5.0), max(d2 - wall_t, 5.0)) <= 1.0
        if lev < 6.5:  # neck: muscle with fat planes
            fatty = cavity & (neck_fat[j0:j1, i0:i1] > 0.9)
            hu[fatty] = -90.0
            tis[fatty] = Tissue.FAT
            continue
        xc_c, yc_c, a_c, b_c, above = _cage_at(ribs, z)
        thorax = np.zeros_like(cavity)
        if above <= 35.0:
            thorax = ((xs - xc_c) / (a_c - 6.0)) ** 2 + ((ys - yc_c) / (b_c - 6.0)) ** 2 <= 1.0
            thorax &= z > dome_map[j0:j1, i0:i1]
        hu[cavity & thorax] = -95.0
        tis[cavity & thorax] = Tissue.FAT
        if bowel is None or gas is None or lev <= 13.5:  # both are drawn together
            continue
        abdo = cavity & ~thorax
        kb = k - a0
        fatty = abdo & (bowel[kb, j0:j1, i0:i1] < thr_fat)
        hu[abdo] = 35.0
        tis[abdo] = Tissue.SOFT
        hu[fatty] = -100.0
        tis[fatty] = Tissue.FAT
        if lev > 17.5:
            air = abdo & (gas[kb, j0:j1, i0:i1] > 1.3)
            hu[air] = -1000.0
            tis[air] = Tissue.AIR


def _dome_function(body: _Body, ribs: _Ribs, subj: _Subject) -> Callable:
    """Diaphragm height z(x, y): two domes, the right one higher, deeper posterior recesses."""
    z_right = body.z_at_level(15.3 - subj.inspiration)  # about T9/T10
    z_left = z_right - 15.0
    xc, yc, a, b, _ = _cage_at(ribs, z_right)

    def dome(x, y):
        top = np.where(x > xc, np.float32(z_left), np.float32(z_right))
        r2 = ((np.abs(x - xc) - 0.35 * a) / (0.75 * a)) ** 2 + ((y - (yc - 0.1 * b)) / b) ** 2
        recess = 25.0 * np.clip((y - yc) / b, 0.0, 1.0)
        return top - 55.0 * r2 - recess

    return dome


def _paint_organs(
    cv: _Canvas,
    verts: list[_Vertebra],
    body: _Body,
    ribs: _Ribs,
    subj: _Subject,
    rng: np.random.Generator,
    dome_map: np.ndarray,
) -> dict[str, Any]:
    """Heart, great vessels, airways, esophagus, abdominal organs, muscles; returns landmarks for the lungs."""
    ids = TS_V2_IDS
    v = {x.name: x for x in verts}
    blood = float(rng.uniform(180.0, 320.0)) if subj.contrast else 40.0

    def front(name: str, extra: float = 0.0) -> np.ndarray:  # point just anterior to a vertebral body
        vv = v[name]
        return vv.to_world((0.0, -vv.m.epd / 2 - extra, 0.0))

    below = lambda sl, m: cv.axes[2][sl[0]][:, None, None] < dome_map[sl[1], sl[2]][None] - 3.0  # noqa: E731
    not_bone = _not_bone(cv)

    # Heart in its pericardial fat: long axis towards the patient's left, anterior and inferior.
    t7 = v["T7"].center
    _, yc, _, b, _ = _cage_at(ribs, t7[2])
    y_front = yc - b + 10.0
    y_back = front("T7", 12.0)[1]
    hc = np.array([t7[0] + rng.uniform(18.0, 34.0), (y_front + y_back) / 2, body.z_at_level(14.2)])
    axis = np.array([0.5, -0.55, -0.65]) + rng.normal(0, 0.08, 3)
    rot = _frame_along(axis, np.array([0.0, 0.0, 1.0]))
    size = subj.scale * rng.uniform(0.92, 1.1)
    r_heart = np.array([62.0, 50.0, float(np.clip((y_back - y_front) / 2 - 2, 28.0, 44.0))]) * size
    _paint_ellipsoid(cv, _ell(hc, r_heart + 5.0, rot), -95.0, Tissue.FAT)
    _paint_ellipsoid(cv, _ell(hc, r_heart, rot), 45.0, Tissue.SOFT, ids["heart"])
    _paint_ellipsoid(cv, _ell(hc - rot[:, 0] * 6.0, r_heart * 0.62, rot), blood, Tissue.BLOOD, ids["heart"])

    # Aorta: root at the heart base, ascending, arch at T4 going left-back, descending left of the spine.
    root = hc - rot[:, 0] * r_heart[0] * 0.7 + np.array([-8.0, 8.0, 10.0])
    arch_top = front("T3", 35.0) + np.array([3.0, 0.0, 12.0])
    pts = [root, root + np.array([-4.0, -4.0, 35.0]), arch_top, front("T4", 8.0) + np.array([22.0, 0.0, 8.0])]
    for name in ("T5", "T6", "T7", "T8", "T9", "T10", "T11"):
        pts.append(front(name, 6.0) + v[name].rot @ np.array([v[name].m.epw / 2 * 0.75, 0.0, 0.0]))
    for name in ("T12", "L1", "L2", "L3"):
        pts.append(front(name, 14.0) + v[name].rot @ np.array([8.0, 0.0, 0.0]))
    bif = front("L4", 14.0) + np.array([6.0, 0.0, 0.0])
    pts.append(bif)
    r_ao = np.array([15.0, 15.0, 14.0, 12.5] + [12.0] * 7 + [11.0] * 4 + [9.5]) * subj.scale
    _paint_tube(cv, np.array(pts), r_ao, blood, Tissue.BLOOD, ids["aorta"], where=not_bone)
    for s, name in ((1, "iliac_artery_left"), (-1, "iliac_artery_right")):
        end = front("S1", 5.0) + np.array([s * 55.0, 10.0, -25.0])
        _paint_tube(
            cv,
            np.array([bif, bif + np.array([s * 20.0, 2.0, -25.0]), end]),
            6.0,
            blood,
            Tissue.BLOOD,
            ids[name],
            where=not_bone,
        )

    # Inferior vena cava: right of the spine up to the right atrium.
    ivc = [
        front(n, 16.0) + v[n].rot @ np.array([-v[n].m.epw / 2 * 0.7, 0.0, 0.0])
        for n in ("L4", "L3", "L2", "L1", "T12", "T11")
    ]
    ivc.append(hc + np.array([-35.0, 10.0, -20.0]))
    _paint_tube(
        cv,
        np.array(ivc),
        11.0 * subj.scale,
        40.0 if not subj.contrast else 90.0,
        Tissue.BLOOD,
        ids["inferior_vena_cava"],
        where=not_bone,
    )

    # Trachea from C6 to the carina (T4/T5), main bronchi; esophagus behind it down to the stomach.
    carina = front("T5", 28.0) + np.array([0.0, 0.0, 8.0])
    trachea = [front("C5", 24.0) + np.array([0.0, 0.0, 20.0]), front("C7", 24.0), front("T2", 26.0), carina]
    _paint_tube(
        cv, np.array(trachea), 8.5 * subj.scale, -1000.0, Tissue.AIR, ids["trachea"], wall=(2.0, 60.0, Tissue.SOFT)
    )
    left_b = carina + np.array([42.0, 12.0, -30.0])
    right_b = carina + np.array([-30.0, 10.0, -18.0])
    for end in (left_b, right_b):
        _paint_tube(cv, np.array([carina, end]), 5.5, -1000.0, Tissue.AIR, wall=(1.5, 60.0, Tissue.SOFT))
    eso = [
        front("C6", 10.0),
        front("T2", 10.0),
        front("T6", 8.0) + np.array([6.0, 0, 0]),
        front("T10", 10.0) + np.array([18.0, -6.0, 0]),
    ]
    stomach_c = front("T12", 30.0) + np.array([60.0, -30.0, 25.0])
    eso.append(stomach_c)
    _paint_tube(cv, np.array(eso), 8.0, 45.0, Tissue.SOFT, ids["esophagus"], where=not_bone)

    # Abdomen, under the diaphragm: liver, spleen, stomach with gas anteriorly (supine), kidneys.
    z_dome_r = body.z_at_level(15.3 - subj.inspiration)
    liver_hu = float(rng.uniform(55.0, 65.0)) + (40.0 if subj.contrast else 0.0)
    t11 = v["T11"].center
    xcl, ycl, al, bl, _ = _cage_at(ribs, z_dome_r - 40.0)
    liver = _ell((xcl - 0.45 * al, ycl - 0.1 * bl, z_dome_r - 70.0), (0.55 * al, 0.7 * bl, 78.0 * subj.scale))
    _paint_ellipsoid(cv, liver, liver_hu, Tissue.SOFT, ids["liver"], where=below)
    left_lobe = _ell((xcl + 0.1 * al, ycl - 0.55 * bl, z_dome_r - 35.0), (0.5 * al, 0.35 * bl, 35.0))
    _paint_ellipsoid(cv, left_lobe, liver_hu, Tissue.SOFT, ids["liver"], where=below)
    spleen = _ell((xcl + 0.7 * al, ycl + 0.45 * bl, t11[2] - 10.0), (22.0, 45.0, 55.0), _rot_z(0.5))
    _paint_ellipsoid(cv, spleen, 45.0 + (60.0 if subj.contrast else 0.0), Tissue.SOFT, ids["spleen"], where=below)
    stomach = _ell(stomach_c, (45.0, 38.0, 55.0), _rot_y(-0.4))
    _paint_ellipsoid(cv, stomach, 25.0, Tissue.SOFT, ids["stomach"], where=below)
    gas_level = stomach_c[1] - rng.uniform(5.0, 30.0)
    gas = _ell(stomach_c, (40.0, 33.0, 50.0), _rot_y(-0.4))
    _paint_ellipsoid(
        cv, gas, -1000.0, Tissue.AIR, ids["stomach"], where=lambda sl, m: below(sl, m) & (cv.world(sl)[1] < gas_level)
    )
    kidney_hu = 30.0 if not subj.contrast else float(rng.uniform(120.0, 200.0))
    for s, name, level in ((1, "kidney_left", "L1"), (-1, "kidney_right", "L2")):
        vv = v[level]
        c = vv.to_world((s * (vv.m.epw / 2 + 42.0), 8.0, 12.0 if s > 0 else 0.0))
        rot_k = _rot_z(s * 0.35) @ _rot_y(s * 0.25) @ _rot_x(-0.2)
        _paint_ellipsoid(
            cv,
            _ell(c, (26.0, 19.0, 54.0) * np.array([subj.scale] * 3), rot_k),
            kidney_hu,
            Tissue.SOFT,
            ids[name],
            where=lambda sl, m: below(sl, m) & not_bone(sl, m),
        )
        sinus = _ell(c + np.array([-s * 9.0, -3.0, 0.0]), (9.0, 8.0, 28.0), rot_k)
        _paint_ellipsoid(cv, sinus, -60.0, Tissue.FAT, ids[name], where=below)

    # Psoas: along the lateral lumbar bodies, thickening downward; paraspinal muscles along the whole spine.
    for s, name in ((1, "iliopsoas_left"), (-1, "iliopsoas_right")):
        pts_p, rad = [], []
        for n, lev in enumerate(("T12", "L1", "L2", "L3", "L4", "L5")):
            vv = v[lev]
            r = 8.0 + 3.5 * n
            pts_p.append(vv.to_world((s * (vv.m.epw / 2 + r * 0.8), -vv.m.epd * 0.1 + n * 2.0, 0.0)))
            rad.append(r * subj.scale)
        s1 = v["S1"]
        pts_p.append(s1.to_world((s * (s1.m.epw / 2 + 38.0), -s1.m.epd / 2 - 10.0, -30.0)))
        rad.append(24.0 * subj.scale)
        _paint_tube(cv, np.array(pts_p), rad, 50.0, Tissue.SOFT, ids[name], where=not_bone)
    for s, name in ((1, "autochthon_left"), (-1, "autochthon_right")):
        for vv in verts[1:]:
            kp = _keypoints(vv)
            lam = kp["lam_mid"]
            wdt = {"cervical": 14.0, "thoracic": 16.0, "lumbar": 24.0, "sacral": 16.0}[vv.region]
            dep = {"cervical": 14.0, "thoracic": 15.0, "lumbar": 24.0, "sacral": 10.0}[vv.region]
            cen = np.array([s * (wdt + 4.0), lam[1] + dep * 0.55, 0.0])
            e = _ell(cen, (wdt, dep, vv.m.vbh / 2 + vv.m.disc / 2 + 3.0))
            _paint_ellipsoid(cv, e, 52.0, Tissue.SOFT, ids[name], frame=(vv.center, vv.rot), where=not_bone)
    return {"heart": hc, "carina": carina}


def _paint_lungs(
    cv: _Canvas,
    body: _Body,
    ribs: _Ribs,
    verts: list[_Vertebra],
    subj: _Subject,
    rng: np.random.Generator,
    dome_map: np.ndarray,
) -> None:
    """Lungs: inside the cage, above the domes, outside the mediastinum; five lobes; vessels; gravity."""
    ids = TS_V2_IDS
    v = {x.name: x for x in verts}
    z_apex = ribs.cage_z.max() + 30.0
    ks = np.nonzero((cv.axes[2] >= body.z_at_level(19.5)) & (cv.axes[2] <= z_apex))[0]
    if not ks.size:
        return
    k0, k1 = int(ks[0]), int(ks[-1]) + 1
    # in-plane box of the cage
    x_lo = float((ribs.cage_xc - ribs.cage_a).min())
    x_hi = float((ribs.cage_xc + ribs.cage_a).max())
    y_lo = float((ribs.cage_yc - ribs.cage_b).min())
    y_hi = float((ribs.cage_yc + ribs.cage_b).max())
    sl = cv.box(np.array([x_lo, y_lo, cv.axes[2][k0]]), np.array([x_hi, y_hi, cv.axes[2][k1 - 1]]))
    if sl is None:
        return
    _, sj, si = sl
    x = cv.axes[0][None, si]
    y = cv.axes[1][sj, None]
    dome = dome_map[sj, si]
    shape = (k1 - k0, y.shape[0], x.shape[1])
    cz, cy, cx = (max(2, int(n * sp / 14.0)) for n, sp in zip(shape, cv.spacing[::-1], strict=True))
    cells = (cz, cy, cx)
    f1 = _smooth_field(rng, shape, cells)
    f2 = _smooth_field(rng, shape, cells)
    vessel_w = 0.09
    # Fissures (lines in the sagittal plane): oblique from T4 posteriorly to the 6th costochondral junction
    # anteriorly; the right horizontal fissure at the 4th costal cartilage.
    t4 = v["T4"].center
    z_front6 = ribs.cartilage[(6, 1)][-1][2]
    z_front4 = ribs.cartilage[(4, -1)][-1][2]
    y_back = t4[1] + 20.0
    y_front = min(p[1] for p in ribs.sternal.values())
    slope = (t4[2] + 5.0 - z_front6) / max(y_back - y_front, 1.0)
    for k in range(k0, k1):
        z = float(cv.axes[2][k])
        xc, yc, a, b, above = _cage_at(ribs, z)
        shrink = 1.0
        if above > 0:  # apex: the lung narrows above the first rib
            shrink = math.sqrt(max(0.0, 1.0 - (above / 32.0) ** 2))
        aa, bb = (a - 11.0) * shrink, (b - 10.0) * shrink
        if aa <= 2 or bb <= 2:
            continue
        ell = ((x - xc) / aa) ** 2 + ((y - (yc + (1 - shrink) * b * 0.5)) / bb) ** 2 <= 1.0
        sx, sy, epd, epw, _ = body.spine_at(z)
        keep_out = (np.abs(x - sx) < epw / 2 + 7.0) & (y > sy - epd / 2 - 8.0)
        med_w = 7.0 + 16.0 * np.clip((y - (yc - b)) / max(sy - epd / 2 - (yc - b), 1.0), 0.0, 1.0)
        med_w = med_w + 14.0 * float(np.clip((z - t4[2] + 20.0) / 30.0, 0.0, 1.0))
        mediastinum = np.abs(x - sx - 2.0) < med_w
        t = cv.tis[k, sj, si]
        free = ((t == Tissue.FAT) | (t == Tissue.SOFT)) & (cv.lab[k, sj, si] == 0)
        lung = ell & ~keep_out & ~mediastinum & free & (z > dome + 2.0)
        if not lung.any():
            continue
        # gravity: the dependent (posterior) lung is denser when supine
        hu = np.broadcast_to(-860.0 + 90.0 * np.clip((y - (yc - b)) / (2 * b), 0.0, 1.0), lung.shape)
        vessels = (np.abs(f1[k - k0]) < vessel_w) & (np.abs(f2[k - k0]) < vessel_w * 2.5)
        hu = np.where(vessels, np.float32(20.0), hu)
        left = x > sx
        lower = z < (t4[2] + 5.0) - slope * (y_back - y)  # below/behind the oblique fissure
        lab = np.where(
            left,
            np.where(lower, ids["lung_lower_lobe_left"], ids["lung_upper_lobe_left"]),
            np.where(
                lower,
                ids["lung_lower_lobe_right"],
                ids["lung_middle_lobe_right"] if z < z_front4 else ids["lung_upper_lobe_right"],
            ),
        )
        cv.hu[k, sj, si][lung] = hu[lung]
        cv.tis[k, sj, si][lung] = np.where(vessels[lung], Tissue.BLOOD, Tissue.LUNG)
        cv.lab[k, sj, si][lung] = lab[lung]


def _paint_skeleton_torso(
    cv: _Canvas, verts: list[_Vertebra], ribs: _Ribs, subj: _Subject, rng: np.random.Generator
) -> None:
    """Ribs, costal cartilages, sternum, clavicles and scapulae."""
    ids = TS_V2_IDS
    cort = subj.cortex_hu * 0.85
    marrow = subj.cancellous_hu * 1.1
    for (k, s), pts in ribs.bone.items():
        name = f"rib_{'left' if s > 0 else 'right'}_{k}"
        r_up, r_side = (5.5, 3.2) if k > 1 else (3.5, 6.0)
        for a, b in pairwise(pts):
            _paint_ellipsoid(
                cv, _seg(a, b, r_side, r_up), marrow, Tissue.CANCELLOUS, ids[name], shell=(1.6, cort, Tissue.CORTEX)
            )
    cart_hu = float(rng.uniform(110.0, 180.0))
    calcified = rng.random() < 0.35
    for (_k, _s), pts in ribs.cartilage.items():
        for a, b in pairwise(pts):
            hu = cart_hu + (rng.uniform(150, 500) if calcified and rng.random() < 0.3 else 0.0)
            _paint_ellipsoid(cv, _seg(a, b, 3.5, 5.0), hu, Tissue.CARTILAGE, ids["costal_cartilages"])
    if ribs.sternal:
        joints = [ribs.sternal[k] for k in sorted(ribs.sternal)]
        top = joints[0] + np.array([0.0, -2.0, 18.0])
        bottom = joints[-1] + np.array([0.0, -6.0, -35.0])
        line = np.vstack([top, *joints, bottom])
        # a smooth plate: x and y as quadratics of z through the sternocostal joints
        for axis in (0, 1):
            coef = np.polyfit(line[:, 2], line[:, axis], 2 if len(line) > 3 else 1)
            line[:, axis] = np.polyval(coef, line[:, 2])
        widths = np.interp(np.arange(len(line)), [0, 1, 2, len(line) - 2, len(line) - 1], [26, 24, 15, 14, 7])
        for n, (a, b) in enumerate(pairwise(line)):
            e = _seg(a + np.array([0, 4.0, 0]), b + np.array([0, 4.0, 0]), widths[n], 6.0, up=(0.0, 1.0, 0.0))
            _paint_ellipsoid(cv, e, marrow, Tissue.CANCELLOUS, ids["sternum"], shell=(1.5, cort, Tissue.CORTEX))
        # clavicles: manubrium → lateral and back to the acromion
        t1 = verts[LEVELS.index("T1")]
        for s, name in ((1, "clavicula_left"), (-1, "clavicula_right")):
            med = top + np.array([s * 22.0, 6.0, -4.0])
            mid = med + np.array([s * 55.0, -8.0, 10.0])
            lat = np.array([t1.center[0] + s * (ribs.cage_a[1] + 55.0), t1.center[1] + 10.0, t1.center[2] + 18.0])
            for a, b, r in ((med, mid, 7.0), (mid, lat, 6.0)):
                _paint_ellipsoid(
                    cv, _seg(a, b, r, r * 0.8), marrow, Tissue.CANCELLOUS, ids[name], shell=(1.8, cort, Tissue.CORTEX)
                )
    # scapulae: thin plates behind ribs 2–7 with a spine ridge, glenoid laterally
    t2, t7 = verts[LEVELS.index("T2")], verts[LEVELS.index("T7")]
    for s, name in ((1, "scapula_left"), (-1, "scapula_right")):
        y_post = max(ribs.bone[(4, s)][:, 1].max(), ribs.bone[(3, s)][:, 1].max()) + 12.0
        sup = np.array([t2.center[0] + s * 55.0, y_post + 2.0, t2.center[2] + 10.0])
        inf = np.array([t7.center[0] + s * 80.0, y_post - 8.0, t7.center[2] - 10.0])
        gle = np.array([t2.center[0] + s * (ribs.cage_a[2] + 20.0), y_post - 35.0, t2.center[2] - 15.0])
        plate_normal = np.array([s * 0.35, 1.0, 0.0])  # the blade faces back and out, around the cage
        for a, b, r in ((sup, inf, 16.0), (sup + (gle - sup) * 0.2, gle, 20.0), (inf, gle, 12.0)):
            e = _seg(a, b, 2.5, r, up=np.cross(plate_normal, b - a))  # r in the blade, 2.5 mm across it
            _paint_ellipsoid(cv, e, marrow, Tissue.CANCELLOUS, ids[name], shell=(1.2, cort, Tissue.CORTEX))
        spine_a = sup + (inf - sup) * 0.28
        _paint_ellipsoid(
            cv,
            _seg(spine_a, gle + np.array([0, 12.0, 12.0]), 4.0, 5.0),
            marrow,
            Tissue.CANCELLOUS,
            ids[name],
            shell=(1.5, cort, Tissue.CORTEX),
        )
        _paint_ellipsoid(
            cv, _ell(gle, (6.0, 10.0, 14.0)), marrow, Tissue.CANCELLOUS, ids[name], shell=(1.5, cort, Tissue.CORTEX)
        )


def _paint_pelvis(cv: _Canvas, s1: _Vertebra, subj: _Subject) -> None:
    """Iliac wings: plates from the sacro-iliac joint to the anterior superior spine, rising to the crest.

    The wing's plane runs from the joint (postero-medial) to the spine (antero-lateral), so an AP view sees it
    obliquely as a broad fan; the thick body below the wing continues towards the acetabulum.
    """
    ids = TS_V2_IDS
    cort = subj.cortex_hu
    marrow = subj.cancellous_hu
    k = subj.scale
    for s, name in ((1, "hip_left"), (-1, "hip_right")):
        joint = np.array([s * (s1.m.tpw / 2 - 2.0), 14.0 * k, -8.0 * k])
        asis = np.array([s * (s1.m.tpw / 2 + 62.0 * k), -48.0 * k, 8.0 * k])
        wing = _seg(joint + np.array([0, 0, 22.0 * k]), asis + np.array([0, 0, 14.0 * k]), 5.0, 48.0 * k)
        frame = (s1.center, s1.rot)
        _paint_ellipsoid(cv, wing, marrow, Tissue.CANCELLOUS, ids[name], frame=frame, shell=(1.6, cort, Tissue.CORTEX))
        crest = _seg(joint + np.array([0, 6.0, 62.0 * k]), asis + np.array([0, 0, 40.0 * k]), 7.0, 6.0)
        _paint_ellipsoid(cv, crest, marrow, Tissue.CANCELLOUS, ids[name], frame=frame, shell=(1.6, cort, Tissue.CORTEX))
        body_c = joint + np.array([s * 22.0, -30.0, -55.0]) * k
        _paint_ellipsoid(
            cv,
            _ell(body_c, (18.0, 26.0, 38.0)),
            marrow,
            Tissue.CANCELLOUS,
            ids[name],
            frame=frame,
            shell=(1.6, cort, Tissue.CORTEX),
        )


def _paint_head(cv: _Canvas, c1: _Vertebra, c2: _Vertebra, subj: _Subject) -> None:
    """Skull base and vault (a shell with the foramen magnum), brain, mandible (part of TotalSegmentator's skull)."""
    ids = TS_V2_IDS
    radii = np.array([72.0, 92.0, 78.0]) * subj.scale
    # the occiput's lowest point sits just above the atlas; the vault's centre ~0.85 of its height above that
    centre = c1.to_world((0.0, -8.0, 12.0 + 0.85 * radii[2]))
    hole = c1.to_world((0.0, 4.0, 0.0))

    def not_foramen(sl, m):
        x, y, z = cv.world(sl)
        return ((x - hole[0]) ** 2 + (y - hole[1]) ** 2 > 17.0**2) | (z > hole[2] + 40.0)

    _paint_ellipsoid(cv, _ell(centre, radii, c1.rot), 1200.0, Tissue.CORTEX, ids["skull"], where=not_foramen)
    _paint_ellipsoid(cv, _ell(centre, radii - 6.0, c1.rot), 35.0, Tissue.SOFT, ids["brain"])
    for s in (1, -1):  # petrous ridges, the densest bone of the skull base
        petrous = _ell(c1.to_world((s * 32.0, -4.0, 40.0)), (22.0, 7.0, 8.0), c1.rot @ _rot_z(s * 0.7))
        _paint_ellipsoid(cv, petrous, 1400.0, Tissue.CORTEX, ids["skull"])
    # mandible: a U of two bodies meeting at the chin, rami up to the skull base
    chin = c2.to_world((0.0, -78.0 * subj.scale, -8.0))
    for s in (1, -1):
        angle = c2.to_world((s * 48.0 * subj.scale, -12.0, 2.0))
        condyle = c1.to_world((s * 50.0 * subj.scale, -10.0, 26.0))
        for a, b in ((chin, angle), (angle, condyle)):
            _paint_ellipsoid(
                cv, _seg(a, b, 5.0, 10.0), 500.0, Tissue.CANCELLOUS, ids["skull"], shell=(2.0, 1300.0, Tissue.CORTEX)
            )


def _paint_canal(cv: _Canvas, verts: list[_Vertebra]) -> None:
    """CSF along the canal and the spinal cord down to the conus (L1/L2)."""
    centres, cord_pts, cord_r = [], [], []
    for v in verts:
        p = v.to_world((0.0, 4.0, 0.0) if v.name == "C1" else _keypoints(v)["canal"])
        centres.append(p)
        if v.index <= LEVELS.index("L1"):
            cord_pts.append(p)
            cord_r.append(4.5 if v.region == "cervical" else 4.0 if v.name != "L1" else 2.5)
    r = [min(v.m.scw, v.m.scd) / 2 - 1.0 if v.name != "C1" else 9.0 for v in verts]
    _paint_tube(cv, np.array(centres), np.array(r), 10.0, Tissue.CSF, where=_not_bone(cv))
    _paint_tube(
        cv, np.array(cord_pts), np.array(cord_r), 35.0, Tissue.SOFT, TS_V2_IDS["spinal_cord"], where=_not_bone(cv)
    )


def _paint_table(cv: _Canvas, y_top: float, rng: np.random.Generator) -> None:
    """The CT table under the patient: carbon-fibre skins (bright) around a foam core, slightly curved."""
    thickness = float(rng.uniform(12.0, 35.0))
    sag = float(rng.uniform(0.0, 0.0006))
    x = cv.axes[0][None, None, :]
    y = cv.axes[1][None, :, None]
    top = np.float32(y_top) + np.float32(sag) * x * x
    inside = (y >= top) & (y <= top + thickness)
    skin = inside & ((y < top + 1.6) | (y > top + thickness - 1.6))
    full = (slice(None), slice(None), slice(None))
    cv.put(full, np.broadcast_to(inside & ~skin, cv.hu.shape), -800.0, Tissue.TABLE)
    cv.put(full, np.broadcast_to(skin, cv.hu.shape), 400.0, Tissue.TABLE)


# --------------------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------------------


@dataclass
class AnatomicalPhantom:
    """A generated torso CT with its TotalSegmentator-v2 label map.

    Attributes:
        image: CT in HU (``int16``), LPS, identity direction.
        labels: Label map (``uint8``) on the same grid, TotalSegmentator v2 ids.
        tissue: ``(k, j, i)`` tissue codes (:class:`Tissue`) as drawn, before blur and noise (for tests).
        levels: Vertebra classes present in the volume (registry names, cranial to caudal).
        info: The random draws and geometry (seed, field of view, spacing, curves, degeneration …).
        label_scheme: ``totalsegmentator_v2``.
    """

    image: sitk.Image
    labels: sitk.Image
    tissue: np.ndarray
    levels: list[str]
    info: dict[str, Any]
    label_scheme: str = "totalsegmentator_v2"


def _fov_levels(
    rng: np.random.Generator, fov: str | None, levels: Sequence[str] | None
) -> tuple[str, float | None, float | None, tuple[str, str] | None]:
    """Decide the cranio-caudal extent: a preset's random level range, or the requested levels."""
    if levels:
        names = [_canonical_level(n) for n in levels]
        idx = sorted(_level_index(n) for n in names)
        return "levels", None, None, (_index_name(idx[0]), _index_name(idx[-1]))
    if fov is None:
        names = list(FOV_PRESETS)
        p = np.array([FOV_PRESETS[n][0] for n in names])
        fov = names[int(rng.choice(len(names), p=p / p.sum()))]
    if fov not in FOV_PRESETS:
        from yolo_spine.errors import UserError

        raise UserError(f"unknown field of view {fov!r}; choose from {', '.join(FOV_PRESETS)}")
    _, top, bot = FOV_PRESETS[fov]
    return fov, float(rng.uniform(*top)), float(rng.uniform(*bot)), None


def _canonical_level(name: str) -> str:
    from yolo_spine.errors import UserError

    reg = load_registry("spine")
    canon = reg.resolve(str(name))
    if canon is None:
        raise UserError(f"{name!r} is not a vertebra of the spine registry (C1 … L5, S1, sacrum)")
    return canon


def _level_index(name: str) -> int:
    return len(LEVELS) if name == "sacrum" else LEVELS.index(name)


def _index_name(i: int) -> str:
    return "sacrum" if i >= len(LEVELS) else LEVELS[i]


def anatomical_phantom(
    seed: int,
    *,
    fov: str | None = None,
    levels: Sequence[str] | None = None,
    spacing_xyz: Sequence[float] | None = None,
    max_size: int = 320,
    margin_mm: float = 4.0,
) -> AnatomicalPhantom:
    """Generate one anatomical torso phantom.

    Args:
        seed: Random seed; the same seed and arguments give the same phantom, bit for bit.
        fov: Field-of-view preset (``neck``, ``chest``, ``abdomen``, ``thoracolumbar``, ``whole``); ``None``
            draws one (weights in :data:`FOV_PRESETS`). Ignored when ``levels`` is given.
        levels: Vertebra names to cover (``("T11", "L3")`` covers T11 … L3, endplate to endplate plus
            ``margin_mm``); neighbours may show partly (a spinous process reaching down, say).
        spacing_xyz: Voxel spacing (mm); ``None`` draws 1.0–1.6 mm in-plane and 1.0–2.0 mm between slices,
            coarsened where needed so no axis exceeds ``max_size`` voxels.
        max_size: Largest number of voxels along any axis when the spacing is drawn.
        margin_mm: Extra extent above and below the requested levels.

    Returns:
        The phantom (SimpleITK images, tissue map, levels present, random draws).

    Raises:
        UserError: For an unknown preset or level name.
    """
    import time

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    fov_name, lev_top, lev_bot, level_range = _fov_levels(rng, fov, levels)
    subj = _draw_subject(rng)
    verts, discs = _build_spine(subj, rng)
    body = _Body(verts, subj)
    ribs = _build_ribs(verts, body, subj, rng)
    body.ribs = ribs
    s1_parts, sacrum_parts = _sacrum_parts(verts[-1], rng)

    # Cranio-caudal extent
    if level_range is not None:
        top_name, bot_name = level_range
        top_v = verts[_level_index(top_name)] if top_name != "sacrum" else verts[-1]
        z_top = float(top_v.to_world((0, 0, top_v.m.vbh / 2 + (6.0 if top_name == "C2" else 0.0)))[2])
        if top_name == "sacrum":
            z_top = float(verts[-1].to_world((0, 0, -verts[-1].m.vbh / 2))[2])
        if bot_name == "sacrum":
            z_bot = float(verts[-1].to_world((0, 0, -verts[-1].m.vbh / 2 - 60.0))[2])
        else:
            bv = verts[_level_index(bot_name)]
            z_bot = float(bv.to_world((0, 0, -bv.m.vbh / 2))[2])
        z_top += margin_mm
        z_bot -= margin_mm
    else:
        assert lev_top is not None and lev_bot is not None  # _fov_levels draws both when it gives no level range
        z_top, z_bot = body.z_at_level(lev_top), body.z_at_level(lev_bot)

    # In-plane extent: the body outline over the z range, the table behind it
    zs = np.linspace(z_bot, z_top, 24)
    outl = np.array([body.outline(z) for z in zs])
    half = float(outl[:, 1].max())
    x_lo, x_hi = -half, half
    if rng.random() < 0.12:  # a tight reconstruction field cutting the flanks, as some protocols do
        cut = float(rng.uniform(0.0, 0.08)) * half
        x_lo, x_hi = x_lo + cut, x_hi - cut
    margin = float(rng.uniform(6.0, 30.0))
    y_lo = float(outl[:, 2].min()) - margin
    y_skin_back = float(outl[:, 3].max())
    with_table = rng.random() < 0.8
    table_gap = float(rng.uniform(0.0, 4.0))
    y_hi = y_skin_back + (40.0 if with_table else margin)
    lo = np.array([x_lo - margin, y_lo, z_bot])
    hi = np.array([x_hi + margin, y_hi, z_top])
    extent = hi - lo
    if spacing_xyz is None:
        inplane = float(rng.uniform(1.0, 1.6))
        between = float(rng.uniform(1.0, 2.0))
        spacing = np.array([inplane, inplane, between])
        spacing[:2] = np.maximum(spacing[:2], float(extent[:2].max()) / max_size)
        spacing[2] = max(spacing[2], float(extent[2]) / max_size)
    else:
        spacing = np.asarray(spacing_xyz, float)
    size = np.maximum(np.ceil(extent / spacing).astype(int) + 1, 2)
    cv = _Canvas(lo, spacing, tuple(size.tolist()))

    # Paint, back to front: body → organs → lungs → canal → bones → discs → table
    dome_map = _dome_function(body, ribs, subj)(cv.axes[0][None, :], cv.axes[1][:, None]).astype(np.float32)
    _paint_torso(cv, body, ribs, subj, rng, dome_map)
    _paint_lungs(cv, body, ribs, verts, subj, rng, dome_map)  # organs painted next displace the lungs
    _paint_organs(cv, verts, body, ribs, subj, rng, dome_map)
    _paint_canal(cv, verts)
    _paint_skeleton_torso(cv, verts, ribs, subj, rng)
    if z_bot < verts[-1].center[2] + 60.0:
        _paint_pelvis(cv, verts[-1], subj)
    if z_top > verts[0].center[2] + 15.0:
        _paint_head(cv, verts[0], verts[1], subj)
    for v in verts[:-1]:
        _paint_bone(cv, _vertebra_parts(v), (v.center, v.rot), v.label, subj, rng, body_of=v)
    s1 = verts[-1]
    _paint_bone(cv, s1_parts, (s1.center, s1.rot), s1.label, subj, rng, body_of=s1)
    sacrum_id = next(k for k, n in load_registry("spine").source_id_map("totalsegmentator_v2").items() if n == "sacrum")
    _paint_bone(cv, sacrum_parts, (s1.center, s1.rot), sacrum_id, subj, rng, post_factor=1.0)
    _paint_discs(cv, verts, discs, rng)
    if with_table:
        _paint_table(cv, y_skin_back + table_gap, rng)

    # Scanner: white noise, then a small point-spread function (which also correlates the noise as CT's is)
    image_arr = _scanner(cv.hu, subj.noise_hu, rng)

    import SimpleITK as sitk

    reg_names = {sid: n for sid, n in load_registry("spine").source_id_map("totalsegmentator_v2").items()}
    present_ids = np.unique(cv.lab)
    order = {n: i for i, n in enumerate(load_registry("spine").names)}
    present = sorted((reg_names[int(i)] for i in present_ids if int(i) in reg_names), key=order.__getitem__)
    images = []
    for arr in (image_arr, cv.lab):
        img = sitk.GetImageFromArray(arr)
        img.SetSpacing(tuple(float(s) for s in spacing))
        img.SetOrigin(tuple(float(o) for o in lo))
        img.SetDirection((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
        images.append(img)
    info = {
        "generator": "yolo_spine.synth.anatomy",
        "seed": int(seed),
        "fov": fov_name,
        "levels_requested": list(levels) if levels else None,
        "levels_present": present,
        "size_xyz": [int(n) for n in size],
        "spacing_xyz": [round(float(s), 4) for s in spacing],
        "subject": subj.to_json(),
        "degeneration": {
            "discs_narrowed": [f"{verts[d.upper].name}/{verts[d.lower].name}" for d in discs if d.height_factor < 1],
            "vacuum_discs": [f"{verts[d.upper].name}/{verts[d.lower].name}" for d in discs if d.vacuum],
            "osteophyte_levels": [v.name for v in verts if v.osteophytes],
            "wedge": {v.name: round(v.wedge, 3) for v in verts if v.wedge > 0},
        },
        "table": with_table,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    log.debug("phantom seed %d (%s): %s voxels in %.1f s", seed, fov_name, "×".join(map(str, size)), info["seconds"])
    return AnatomicalPhantom(images[0], images[1], cv.tis, present, info)


def _scanner(hu: np.ndarray, noise_hu: float, rng: np.random.Generator) -> np.ndarray:
    """Scanner noise and point-spread, rounded to int16 HU in [−1024, 3071]; overwrites ``hu``.

    Noise: random bytes through a table of 256 normal quantiles (Gaussian to the eye and several times faster
    than ``standard_normal``); then a [1, 2, 1]/4 blur per axis, which also correlates the noise as CT's is.
    """
    from scipy.ndimage import correlate1d
    from scipy.special import ndtri

    lut = (ndtri((np.arange(256) + 0.5) / 256.0) * noise_hu).astype(np.float32)
    noise = lut[np.frombuffer(rng.bytes(hu.size), np.uint8)].reshape(hu.shape)
    hu += noise
    buf = noise  # reuse the memory
    kernel = np.array([0.25, 0.5, 0.25], np.float32)
    src, dst = hu, buf
    for axis in range(3):
        correlate1d(src, kernel, axis=axis, output=dst, mode="nearest")
        src, dst = dst, src
    np.rint(src, out=src)
    np.clip(src, -1024, 3071, out=src)
    return src.astype(np.int16)


def write_anatomical_phantom(
    phantom: AnatomicalPhantom, folder: str | Path, name: str, compression_level: int = 1
) -> tuple[Path, Path]:
    """Write ``<name>_ct.nii.gz`` (int16 HU) and ``<name>_labels.nii.gz`` (uint8) atomically; return the paths.

    Each file is written under a temporary name and renamed, so an interrupted run never leaves a truncated
    volume behind.
    """
    import os

    import SimpleITK as sitk

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = (folder / f"{name}_ct.nii.gz", folder / f"{name}_labels.nii.gz")
    for img, path in zip((phantom.image, phantom.labels), paths, strict=True):
        tmp = path.with_name(f".{path.name[: -len('.nii.gz')]}.partial.nii.gz")
        writer = sitk.ImageFileWriter()
        writer.SetFileName(str(tmp))
        writer.SetUseCompression(True)
        writer.SetCompressionLevel(int(compression_level))
        writer.Execute(img)
        os.replace(tmp, path)
    return paths
