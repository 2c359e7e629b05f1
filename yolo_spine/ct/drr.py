"""DRR projections (simulated radiographs) of a CT with each structure's label projected through the same camera.

This module owns the geometry and the label path; two backends render (``Renderer``):

* ``planes`` (default) — shear-warp on the CPU (``shearwarp``): the attenuation volume as slabs warped onto the
  detector with OpenCV, tens of milliseconds per 512² view on two cores.
* ``nanodrr`` — nanodrr's ray marcher (``nanodrr.drr.render``): fused kernels on CUDA and Apple GPUs; on CPUs
  it is PyTorch's 3D ``grid_sample`` (scalar code), so the detector is cut into horizontal tiles rendered as
  one batch to use every core (``grid_sample`` parallelises over the batch).

Geometry, shared by both:

* Frames: world = SimpleITK physical LPS mm; camera = +x along image columns ``u``, +y along rows ``v``, looking
  along +z; the source sits at the camera origin (perspective) and the detector at ``z = sdd_mm``.
* Views: ``ap`` — source in front of the patient (beam anterior → posterior), patient's right on the image's left,
  head up; ``lat`` — source at the patient's left (beam left → right), anterior on the image's left, head up.
  Random poses rotate the source-detector rig about the isocentre and shift it (ranges in the preset).
* Intrinsics: square detector pixels sized so the whole volume fits with a margin; ``K`` is written in this
  project's pixel-centre convention (nanodrr's pixel centres sit at ``u + 0.5``, so ``c`` differs by 0.5).
* Labels: the structures are projected on their own bounding box, cropped from the label map, over the
  detector window their box projects to; a pixel belongs to a structure when its ray meets it. Projections
  of structures may overlap.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from yolo_spine.ct import shearwarp
from yolo_spine.ct.sidecar import Camera, VolumeGeometry

#: view → camera axes (columns x, y, z of camera-to-world rotation) in LPS.
VIEW_AXES: dict[str, np.ndarray] = {
    "ap": np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]]).T,
    "lat": np.array([[0.0, 1.0, 0.0], [0.0, 0.0, -1.0], [-1.0, 0.0, 0.0]]).T,
}


@dataclass(frozen=True)
class DrrGeometry:
    """Detector settings shared by every view of a study.

    Attributes:
        size: Detector width = height in pixels.
        sdd_mm: Source-to-detector distance.
        sod_mm: Source-to-isocentre distance.
        orthographic: Parallel rays.
        margin: Empty border, as a fraction of the detector.
    """

    size: int
    sdd_mm: float
    sod_mm: float
    orthographic: bool
    margin: float


def rotation_xyz_deg(angles_deg: np.ndarray) -> np.ndarray:
    """Rotation matrix for successive rotations about the world x (L-R), y (A-P) and z (S-I) axes."""
    ax, ay, az = np.deg2rad(np.asarray(angles_deg, dtype=float))
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def volume_corners_lps(geom: VolumeGeometry, lo_ijk: np.ndarray | None = None, hi_ijk: np.ndarray | None = None):
    """World positions (LPS mm) of the 8 outer corners of a voxel box (whole volume by default)."""
    lo = np.full(3, -0.5) if lo_ijk is None else np.asarray(lo_ijk, float) - 0.5
    hi = np.asarray(geom.size_xyz, float) - 0.5 if hi_ijk is None else np.asarray(hi_ijk, float) + 0.5
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    return (np.c_[corners, np.ones(8)] @ geom.ijk_to_world().T)[:, :3]


def make_camera(
    geom: VolumeGeometry,
    det: DrrGeometry,
    view: str,
    isocenter_lps: np.ndarray,
    rotation: np.ndarray | None = None,
    translation_mm: np.ndarray | None = None,
    intrinsics_from: Camera | None = None,
) -> Camera:
    """Place the source-detector rig for one view and size the detector to the volume.

    Args:
        geom: Volume geometry.
        det: Detector settings.
        view: ``ap`` or ``lat``.
        isocenter_lps: Point the central ray passes through (LPS mm).
        rotation: Extra rig rotation about the isocentre (3×3), for random poses.
        translation_mm: Extra rig translation (LPS mm).
        intrinsics_from: Reuse this camera's ``K`` (a fixed detector for poses around a view).

    Returns:
        The camera (this project's pixel-centre ``K``).
    """
    rot_c2w = (np.eye(3) if rotation is None else rotation) @ VIEW_AXES[view]
    iso = np.asarray(isocenter_lps, float) + (0.0 if translation_mm is None else np.asarray(translation_mm, float))
    source = iso - rot_c2w[:, 2] * det.sod_mm
    w2c = np.eye(4)
    w2c[:3, :3] = rot_c2w.T
    w2c[:3, 3] = -rot_c2w.T @ source
    if intrinsics_from is not None:
        return Camera(K=intrinsics_from.K, world_to_camera=w2c, orthographic=det.orthographic, sdd_mm=det.sdd_mm)
    cam = (np.c_[volume_corners_lps(geom), np.ones(8)] @ w2c.T)[:, :3]
    xy = cam[:, :2] if det.orthographic else det.sdd_mm * cam[:, :2] / cam[:, 2:3]
    lo, hi = xy.min(0), xy.max(0)
    mm_per_px = float((hi - lo).max()) * (1.0 + 2.0 * det.margin) / det.size
    mid = (lo + hi) / 2.0
    scale = (det.sdd_mm if not det.orthographic else 1.0) / mm_per_px
    k = np.array(
        [
            [scale, 0.0, det.size / 2.0 - mid[0] / mm_per_px - 0.5],
            [0.0, scale, det.size / 2.0 - mid[1] / mm_per_px - 0.5],
            [0.0, 0.0, 1.0],
        ]
    )
    return Camera(K=k, world_to_camera=w2c, orthographic=det.orthographic, sdd_mm=det.sdd_mm)


#: nanodrr's attenuation of water and cortical bone at about 70 keV (1/mm), ``nanodrr.data.preprocess``.
MU_WATER, MU_BONE = 0.0192, 0.0573


def hu_to_mu(image_hu: np.ndarray, bone_hu: float = 1000.0) -> np.ndarray:
    """HU → linear attenuation (1/mm) as nanodrr converts it, in float32.

    Piecewise linear: ``μ = μ_w (1 + HU/1000)`` for HU ≤ 0 and ``μ_w + (μ_b − μ_w) HU / HU_bone`` above, HU
    clamped at −1000 (so μ ≥ 0).
    """
    hu = np.asarray(image_hu)
    mu = np.empty(hu.shape, np.float32)
    flat_in, flat_out = hu.reshape(-1), mu.reshape(-1)
    chunk = 1 << 22  # a few MB of temporaries at a time, whatever the volume's size
    for a in range(0, flat_in.size, chunk):
        x = flat_in[a : a + chunk].astype(np.float32)
        low = np.clip(x, -1000.0, 0.0)
        low *= np.float32(MU_WATER / 1000.0)
        np.maximum(x, 0.0, out=x)
        x *= np.float32((MU_BONE - MU_WATER) / bone_hu)
        x += low
        x += np.float32(MU_WATER)
        flat_out[a : a + chunk] = x
    return mu


#: Rendering backends: ``planes`` — shear-warp with OpenCV (``shearwarp``), the fast one on CPUs;
#: ``nanodrr`` — nanodrr's ray marcher (fused kernels on CUDA and Apple GPUs, ``grid_sample`` on CPUs).
BACKENDS = ("planes", "nanodrr")


class Renderer:
    """Render DRRs and projected label masks of one study.

    Both backends integrate the same attenuation volume through the same ``Camera``; on the example CT,
    ``planes`` at 128 planes agrees with nanodrr at 1024 samples per ray to a median ≤ 0.03 % per pixel (p95
    ≤ 0.2 %) and vertebra masks to IoU ≥ 0.92 (``tests/ct/test_drr.py``).

    Args:
        image_kji: CT in HU, ``(k, j, i)`` float32.
        class_kji: Class map, ``(k, j, i)``, −1 for background (already mapped through the registry).
        geom: Volume geometry.
        n_samples: Samples along each ray (``nanodrr``); most planes across the volume (``planes``: slices are
            summed in slabs of ``ceil(slices / n_samples)``).
        bone_hu: HU of cortical bone for the HU → attenuation conversion.
        threads: CPU threads (0: every core): OpenCV's for ``planes``, tiles rendered as one batch for
            ``nanodrr`` (PyTorch's CPU ``grid_sample`` parallelises over the batch).
        device: Torch device (``nanodrr``).
        backend: ``planes`` or ``nanodrr``.
        materials: Optional ``(M, k, j, i)`` float32 per-material densities (``realism.material_densities``),
            projected by :meth:`render_materials`. The attenuation volume of :meth:`render_image` is then
            made on its first use only (a realistic DRR needs only the materials).
        material_split: Instead of ``materials``, the HU thresholds ``(air_max_hu, bone_min_hu)`` of
            ``realism.material_densities``: ``planes`` then sums the materials' slabs straight from the CT
            (``realism.material_slab_sums``, no material volumes); ``nanodrr`` builds the volumes on first use.
    """

    def __init__(
        self,
        image_kji: np.ndarray,
        class_kji: np.ndarray,
        geom: VolumeGeometry,
        n_samples: int = 128,
        bone_hu: float = 1000.0,
        threads: int = 0,
        device: str = "cpu",
        backend: str = "planes",
        materials: np.ndarray | None = None,
        material_split: tuple[float, float] | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown DRR backend {backend!r}; expected one of {', '.join(BACKENDS)}")
        self.backend = backend
        self.geom = geom
        self.n_samples = int(n_samples)
        self.threads = int(threads)
        self.materials = materials
        self.material_split = material_split
        self._image_kji = image_kji
        self._material_stacks: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # axis → (slabs, M channels), centres
        self._material_subjects: list | None = None
        # Labels: crop to the structures' bounding box and renumber compactly (1..n) for the label pass.
        present = np.unique(class_kji)
        self.classes = [int(c) for c in present if c >= 0]
        crop = None
        if self.classes:
            nz = np.nonzero(class_kji >= 0)
            lo_kji = np.array([a.min() for a in nz])
            hi_kji = np.array([a.max() for a in nz])
            crop = class_kji[lo_kji[0] : hi_kji[0] + 1, lo_kji[1] : hi_kji[1] + 1, lo_kji[2] : hi_kji[2] + 1]
            lut = np.zeros(max(self.classes) + 2, dtype=np.uint8 if len(self.classes) < 255 else np.int32)
            for n, c in enumerate(self.classes, start=1):
                lut[c + 1] = n
            crop = lut[crop.astype(np.int64) + 1]
            self.box_lo_ijk, self.box_hi_ijk = lo_kji[::-1].astype(float), hi_kji[::-1].astype(float)
            offset = np.eye(4)
            offset[:3, 3] = self.box_lo_ijk
            self.box_ijk_to_world = geom.ijk_to_world() @ offset
        if backend == "planes":
            self._image_kji, self._bone_hu = image_kji, bone_hu
            lazy = materials is not None or material_split is not None  # a realistic DRR needs no μ volume
            self._mu_kji: np.ndarray | None = None if lazy else hu_to_mu(image_kji, bone_hu)
            self._stacks: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # axis → slabs, centres
            self._label_stacks: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # axis → slices, non-empty ones
            self.label_bits = None if crop is None else shearwarp.pack_label_bits(crop, len(self.classes))
        else:
            self._init_nanodrr(image_kji, crop, bone_hu, device)

    def _init_nanodrr(self, image_kji: np.ndarray, crop: np.ndarray | None, bone_hu: float, device: str) -> None:
        import torch
        from nanodrr.data import Subject

        self.device = torch.device(device)
        self.tiles = self.threads or max(1, torch.get_num_threads())
        ijk_to_world = torch.from_numpy(self.geom.ijk_to_world())
        img = torch.from_numpy(np.ascontiguousarray(image_kji, dtype=np.float32))[None, None]
        self.subject = Subject(
            img,
            torch.zeros_like(img),
            ijk_to_world.float(),
            ijk_to_world.inverse().float(),
            Subject._make_voxel_to_grid(img.shape),
            torch.zeros(3),
            max_label=0,
            hu_bone=bone_hu,
        ).to(self.device)
        self.label_subject = None
        if crop is not None:
            lab = torch.from_numpy(crop.astype(np.float32))[None, None]
            v2w = torch.from_numpy(self.box_ijk_to_world)
            self.label_subject = Subject(
                torch.ones_like(lab),
                lab,
                v2w.float(),
                v2w.inverse().float(),
                Subject._make_voxel_to_grid(lab.shape),
                torch.zeros(3),
                max_label=len(self.classes),
                convert_to_mu=False,
            ).to(self.device)

    def _axis(self, camera: Camera) -> int:
        central_ray = np.linalg.inv(camera.world_to_camera)[:3, 2]
        return shearwarp.stacking_axis(self.geom.ijk_to_world(), central_ray)

    def _render(self, subject, camera: Camera, window: tuple[int, int, int, int]) -> np.ndarray:
        """nanodrr: render ``subject`` over the detector window ``(u0, v0, width, height)``; ``(C, h, w)``."""
        import torch
        from nanodrr.drr import render

        u0, v0, w, h = window
        tiles = max(1, min(self.tiles, h))
        edges = np.linspace(0, h, tiles + 1).round().astype(int)
        rows = int(np.diff(edges).max())
        k = camera.K.astype(np.float64).copy()
        if camera.orthographic:  # nanodrr scales K⁻¹ rays by sdd also for parallel beams; our K is in px/mm
            k[0, 0] *= camera.sdd_mm
            k[1, 1] *= camera.sdd_mm
        k_inv = []
        for t in range(tiles):
            kt = k.copy()
            kt[0, 2] = k[0, 2] + 0.5 - u0  # nanodrr samples pixel centres at u + 0.5
            kt[1, 2] = k[1, 2] + 0.5 - (v0 + edges[t])
            k_inv.append(np.linalg.inv(kt))
        c2w = np.linalg.inv(camera.world_to_camera)
        dtype = torch.float32
        out = render(
            subject,
            torch.tensor(np.stack(k_inv), dtype=dtype, device=self.device),
            torch.tensor(np.repeat(c2w[None], tiles, 0), dtype=dtype, device=self.device),
            torch.full((tiles,), float(camera.sdd_mm), dtype=dtype, device=self.device),
            rows,
            w,
            n_samples=self.n_samples,
            orthographic=camera.orthographic,
            backend="auto",
        )
        arr = out.cpu().numpy()  # (tiles, C, rows, w)
        parts = [arr[t, :, : edges[t + 1] - edges[t]] for t in range(tiles)]
        return np.concatenate(parts, axis=1)

    def render_image(self, camera: Camera, size: int) -> np.ndarray:
        """Line integral of attenuation (``(size, size)`` float32, mm·mm⁻¹ = unitless) for the full detector."""
        if self.backend == "planes":
            axis = self._axis(camera)
            if axis not in self._stacks:
                if self._mu_kji is None:
                    self._mu_kji = hu_to_mu(self._image_kji, self._bone_hu)
                self._stacks[axis] = shearwarp.slab_sums(self._mu_kji, axis, self.n_samples)
            with _cv2_threads(self.threads):
                return shearwarp.project_stack(
                    *self._stacks[axis], axis, camera, self.geom.ijk_to_world(), (0, 0, size, size)
                )
        import torch

        with torch.inference_mode():
            return self._render(self.subject, camera, (0, 0, size, size))[0].astype(np.float32)

    def prepare_materials(self, cameras: Iterable[Camera]) -> None:
        """Sum the material slabs of every view axis these cameras stack along, in one pass over the CT.

        Optional: :meth:`render_materials` sums an axis on first use anyway. With a ``material_split`` and the
        ``planes`` backend, several axes (an AP and a lateral view) then share one HU → density pass; otherwise
        this does nothing. Axes already summed are not summed again.
        """
        if self.backend != "planes" or self.materials is not None or self.material_split is None:
            return
        from yolo_spine.ct import realism

        axes = [a for a in dict.fromkeys(self._axis(c) for c in cameras) if a not in self._material_stacks]
        if axes:
            air_max, bone_min = self.material_split
            self._material_stacks.update(
                realism.material_slab_sums_axes(self._image_kji, axes, self.n_samples, air_max, bone_min)
            )

    def render_materials(self, camera: Camera, size: int) -> np.ndarray:
        """Line integrals of each material's density, ``(size, size, M)`` float32 (g/cm³·mm).

        ``planes`` warps the M material slabs as one M-channel image per slab (one pass for every material);
        ``nanodrr`` renders one subject per material.
        """
        from yolo_spine.ct import realism

        if self.materials is None and self.material_split is None:
            raise ValueError("this renderer was made without material volumes or a material split")
        if self.backend == "planes":
            axis = self._axis(camera)
            if axis not in self._material_stacks and self.materials is not None:
                # one volume at a time (contiguous), then channels last
                sums = [shearwarp.slab_sums(vol, axis, self.n_samples) for vol in self.materials]
                self._material_stacks[axis] = (np.stack([s for s, _ in sums], axis=-1), sums[0][1])
            elif axis not in self._material_stacks:
                air_max, bone_min = self.material_split  # type: ignore[misc]
                self._material_stacks[axis] = realism.material_slab_sums(
                    self._image_kji, axis, self.n_samples, air_max, bone_min
                )
            with _cv2_threads(self.threads):
                return shearwarp.project_stack(
                    *self._material_stacks[axis], axis, camera, self.geom.ijk_to_world(), (0, 0, size, size)
                )
        import torch
        from nanodrr.data import Subject

        if self.materials is None:
            self.materials = realism.material_densities(self._image_kji, *self.material_split)  # type: ignore[misc]
        if self._material_subjects is None:
            ijk_to_world = torch.from_numpy(self.geom.ijk_to_world()).float()
            self._material_subjects = []
            for density in self.materials:
                vol = torch.from_numpy(np.ascontiguousarray(density))[None, None]
                self._material_subjects.append(
                    Subject(
                        vol,
                        torch.zeros_like(vol),
                        ijk_to_world,
                        ijk_to_world.inverse(),
                        Subject._make_voxel_to_grid(vol.shape),
                        torch.zeros(3),
                        max_label=0,
                        convert_to_mu=False,
                    ).to(self.device)
                )
        with torch.inference_mode():
            chans = [self._render(s, camera, (0, 0, size, size))[0] for s in self._material_subjects]
        return np.stack(chans, axis=-1).astype(np.float32)

    def render_masks(self, camera: Camera, size: int) -> dict[int, np.ndarray]:
        """Binary ``(size, size)`` masks of each class whose projection reaches the detector."""
        if not self.classes:
            return {}
        uv = camera.project(volume_corners_lps(self.geom, self.box_lo_ijk, self.box_hi_ijk))
        u0, v0 = np.floor(uv.min(0)).astype(int) - 1
        u1, v1 = np.ceil(uv.max(0)).astype(int) + 2
        u0, v0, u1, v1 = max(u0, 0), max(v0, 0), min(u1, size), min(v1, size)
        if u1 <= u0 or v1 <= v0:
            return {}
        window = (u0, v0, u1 - u0, v1 - v0)
        if self.backend == "planes":
            axis = self._axis(camera)
            if axis not in self._label_stacks:
                assert self.label_bits is not None  # packed whenever there are classes (checked above)
                self._label_stacks[axis] = shearwarp.label_stack(self.label_bits, axis)
            with _cv2_threads(self.threads):
                bits = shearwarp.project_label_bits(
                    *self._label_stacks[axis], axis, camera, self.box_ijk_to_world, window
                )
            hits = [(bits[..., (n - 1) // 8] >> ((n - 1) % 8)) & 1 for n in range(1, len(self.classes) + 1)]
        else:
            import torch

            with torch.inference_mode():
                chans = self._render(self.label_subject, camera, window)
            hits = [chans[n] > 0 for n in range(1, len(self.classes) + 1)]
        masks: dict[int, np.ndarray] = {}
        for cls, hit in zip(self.classes, hits, strict=True):
            if hit.any():
                full = np.zeros((size, size), dtype=bool)
                full[v0:v1, u0:u1] = hit.astype(bool)
                masks[cls] = full
        return masks


@contextmanager
def _cv2_threads(threads: int) -> Iterator[None]:
    """OpenCV's thread count for a block (0: leave OpenCV's default, every core)."""
    import cv2

    before = cv2.getNumThreads()
    if threads > 0:
        cv2.setNumThreads(int(threads))
    try:
        yield
    finally:
        cv2.setNumThreads(before)


def display_radiograph(line_integral: np.ndarray, percentiles: tuple[float, float]) -> np.ndarray:
    """Window a line-integral image to 8 bits as a radiograph is shown: more attenuation brighter (bone bright).

    The window spans the given percentiles of the pixels the volume covers (rays that miss it stay black).
    """
    inside = line_integral[line_integral > 0]
    if inside.size == 0:
        return np.zeros(line_integral.shape, dtype=np.uint8)
    lo, hi = np.percentile(inside, percentiles)
    hi = max(hi, lo + 1e-6)
    return (np.clip((line_integral - lo) / (hi - lo), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
