"""CT sidecars: the JSON beside every 2D image ``ct2yolo`` writes, enough to put its pixels back into the volume.

Frames (all world coordinates are SimpleITK physical points: LPS millimetres):

* ``ijk`` — continuous voxel index of the source volume, x fastest (``i`` = column of a SimpleITK array
  ``arr[k, j, i]``); ``world = origin + direction @ (spacing * ijk)``.
* ``uv`` — pixel index coordinates of the 2D image: vertex ``(u, v)`` is the centre of pixel ``[v, u]``
  (the convention of :mod:`yolo_spine.geometry`).

A slice sidecar holds ``pixel_to_world``, a 4×4 affine taking ``(u, v, w, 1)`` to ``(x, y, z, 1)`` in LPS mm;
``w`` steps one voxel along the slice normal (``w = 0`` is the slice itself), so the matrix is invertible and
``pixel_to_ijk`` follows from the volume geometry.

A DRR sidecar holds a pinhole (or orthographic) ``camera``: ``world_to_camera`` (4×4, LPS mm → camera mm, the
camera looks along +z, +x is +u and +y is +v) and intrinsics ``K`` (3×3, pixels). Perspective:
``u = K[0,0]·x/z + K[0,2]``, ``v = K[1,1]·y/z + K[1,2]``; orthographic: ``u = K[0,0]·x + K[0,2]`` (``K`` in px/mm).
A DRR made with ``--realism`` other than ``off`` also holds ``realism``: the preset, seed and every parameter
drawn for that image, and derived values (``collimator_window_xyxy``, ``marker_box_xyxy`` in pixels,
``mean_energy_kev``, ``open_field_quanta_per_px``, ``pixel_mm`` …); see :mod:`yolo_spine.ct.realism`. Optional:
readers that do not need it ignore it, and its absence means a clean DRR.

Sidecars live at ``OUT/sidecars/<split>/<stem>.json`` beside ``OUT/images/<split>/<stem>.png``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from yolo_spine.errors import DataError

if TYPE_CHECKING:
    import SimpleITK as sitk

SCHEMA = "yolo_spine/ct-sidecar@1"

N = TypeVar("N", int, float)


def _xyz(values: Sequence[Any], kind: Callable[[Any], N]) -> tuple[N, N, N]:
    """Three numbers (x, y, z) converted by ``kind``; a ValueError unless there are exactly three."""
    x, y, z = values
    return kind(x), kind(y), kind(z)


@dataclass(frozen=True)
class VolumeGeometry:
    """A volume's grid in world space.

    Attributes:
        size_xyz: Voxels along i, j, k.
        spacing_xyz: Voxel spacing along i, j, k in mm.
        origin_xyz: World position (LPS mm) of voxel (0, 0, 0)'s centre.
        direction: 3×3 matrix, columns are the world directions of the i, j, k axes (row-major in JSON, as
            SimpleITK's ``GetDirection`` returns it).
    """

    size_xyz: tuple[int, int, int]
    spacing_xyz: tuple[float, float, float]
    origin_xyz: tuple[float, float, float]
    direction: tuple[float, ...]

    @classmethod
    def from_image(cls, image: sitk.Image) -> VolumeGeometry:
        """Read the geometry of a 3D SimpleITK image."""
        return cls(
            size_xyz=_xyz(image.GetSize(), int),
            spacing_xyz=_xyz(image.GetSpacing(), float),
            origin_xyz=_xyz(image.GetOrigin(), float),
            direction=tuple(float(s) for s in image.GetDirection()),
        )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VolumeGeometry:
        """Parse the ``volume`` block of a sidecar."""
        try:
            return cls(
                size_xyz=_xyz(data["size_xyz"], int),
                spacing_xyz=_xyz(data["spacing_xyz"], float),
                origin_xyz=_xyz(data["origin_xyz"], float),
                direction=tuple(float(s) for s in data["direction"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"sidecar volume geometry is incomplete ({exc})") from None

    def to_json(self) -> dict[str, Any]:
        """The ``volume`` block of a sidecar."""
        return {
            "size_xyz": list(self.size_xyz),
            "spacing_xyz": list(self.spacing_xyz),
            "origin_xyz": list(self.origin_xyz),
            "direction": list(self.direction),
        }

    @property
    def direction_matrix(self) -> np.ndarray:
        """3×3 direction matrix (columns: world direction of i, j, k)."""
        return np.asarray(self.direction, dtype=float).reshape(3, 3)

    def ijk_to_world(self) -> np.ndarray:
        """4×4 affine from continuous voxel index ``(i, j, k, 1)`` to LPS mm."""
        m = np.eye(4)
        m[:3, :3] = self.direction_matrix @ np.diag(self.spacing_xyz)
        m[:3, 3] = self.origin_xyz
        return m

    def world_to_ijk(self) -> np.ndarray:
        """4×4 affine from LPS mm to continuous voxel index."""
        return np.linalg.inv(self.ijk_to_world())

    def empty_image(self, pixel_id: int | None = None) -> sitk.Image:
        """A zero SimpleITK image on this grid (``uint8`` unless ``pixel_id`` says otherwise)."""
        import SimpleITK as sitk

        img = sitk.Image([int(s) for s in self.size_xyz], pixel_id if pixel_id is not None else sitk.sitkUInt8)
        img.SetSpacing(self.spacing_xyz)
        img.SetOrigin(self.origin_xyz)
        img.SetDirection(self.direction)
        return img


@dataclass(frozen=True)
class Camera:
    """A DRR camera in the CT's world frame.

    Attributes:
        K: 3×3 intrinsics in pixels (perspective) or px/mm (orthographic).
        world_to_camera: 4×4 rigid transform, LPS mm → camera mm (camera looks along +z).
        orthographic: Parallel projection instead of a pinhole.
        sdd_mm: Source-to-detector distance (perspective; informative for orthographic).
    """

    K: np.ndarray
    world_to_camera: np.ndarray
    orthographic: bool
    sdd_mm: float

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Camera:
        """Parse the ``camera`` block of a sidecar."""
        try:
            return cls(
                K=np.asarray(data["K"], dtype=float).reshape(3, 3),
                world_to_camera=np.asarray(data["world_to_camera"], dtype=float).reshape(4, 4),
                orthographic=bool(data["orthographic"]),
                sdd_mm=float(data["sdd_mm"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"sidecar camera is incomplete ({exc})") from None

    def to_json(self) -> dict[str, Any]:
        """The ``camera`` block of a sidecar."""
        return {
            "K": np.asarray(self.K, dtype=float).tolist(),
            "world_to_camera": np.asarray(self.world_to_camera, dtype=float).tolist(),
            "orthographic": self.orthographic,
            "sdd_mm": float(self.sdd_mm),
        }

    def projection_matrix(self) -> np.ndarray:
        """3×4 matrix ``P`` with ``(u·s, v·s, s) = P @ (x, y, z, 1)`` (``s = 1`` for orthographic)."""
        if self.orthographic:
            rt = self.world_to_camera[[0, 1], :]
            p = np.zeros((3, 4))
            p[0] = self.K[0, 0] * rt[0]
            p[0, 3] += self.K[0, 2]
            p[1] = self.K[1, 1] * rt[1]
            p[1, 3] += self.K[1, 2]
            p[2, 3] = 1.0
            return p
        return self.K @ self.world_to_camera[:3, :]

    def project(self, pts_lps_mm: np.ndarray) -> np.ndarray:
        """Project ``(N, 3)`` world points (LPS mm) to ``(N, 2)`` pixel coordinates ``(u, v)``."""
        pts = np.atleast_2d(np.asarray(pts_lps_mm, dtype=float))
        homog = np.c_[pts, np.ones(len(pts))] @ self.projection_matrix().T
        return homog[:, :2] / homog[:, 2:3]


def pixel_to_ijk(sidecar: dict[str, Any]) -> np.ndarray:
    """4×4 affine from slice pixel ``(u, v, w, 1)`` to continuous voxel index ``(i, j, k, 1)``."""
    if sidecar.get("kind") != "slice":
        raise DataError("pixel_to_ijk needs a slice sidecar")
    geom = VolumeGeometry.from_json(sidecar["volume"])
    return geom.world_to_ijk() @ np.asarray(sidecar["pixel_to_world"], dtype=float).reshape(4, 4)


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """Read and check one sidecar; returns the parsed JSON (``kind`` is ``"slice"`` or ``"drr"``)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read sidecar {path}: {exc}") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise DataError(f"{path} is not a yolo_spine CT sidecar (schema {SCHEMA!r} expected)")
    need = {"slice": ("pixel_to_world", "plane", "index"), "drr": ("camera", "view")}.get(str(data.get("kind")))
    if need is None:
        raise DataError(f"{path}: unknown sidecar kind {data.get('kind')!r}")
    missing = [k for k in (*need, "volume", "image_size_wh", "study", "anatomy") if k not in data]
    if missing:
        raise DataError(f"{path}: sidecar lacks {', '.join(missing)}")
    return data


def find_sidecars(roots: Sequence[str | Path]) -> dict[str, Path]:
    """Index every ``*.json`` sidecar under ``roots`` by file stem (the image stem).

    Raises:
        DataError: Two sidecars share a stem (lifting could not tell which image a label file belongs to).
    """
    index: dict[str, Path] = {}
    for root in roots:
        for p in sorted(Path(root).rglob("*.json")):
            try:
                head = p.read_text(encoding="utf-8")[:200]
            except OSError:
                continue
            if SCHEMA not in head:
                continue
            if p.stem in index and index[p.stem] != p:
                raise DataError(f"two sidecars named {p.stem}.json: {index[p.stem]} and {p}")
            index[p.stem] = p
    return index


def realism_record(sidecar: dict[str, Any]) -> dict[str, Any] | None:
    """The realism a DRR was made with (its drawn parameters, ``ct.realism``); ``None`` for a clean DRR or a slice.

    Raises:
        DataError: A ``realism`` block that is not a mapping with a ``preset``.
    """
    rec = sidecar.get("realism")
    if rec is None:
        return None
    if not isinstance(rec, dict) or "preset" not in rec:
        raise DataError(f"sidecar {sidecar.get('image', '?')}: realism must be a mapping with a preset")
    return rec
