"""DRR backends: shear-warp (planes) against nanodrr's ray marcher, and both against a box's known thickness."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from yolo_spine.ct import drr as drr_mod
from yolo_spine.ct.sidecar import VolumeGeometry
from yolo_spine.registry import load_registry
from yolo_spine.synth.phantoms import spine_phantom

OBLIQUE = (0.0, 0.0, 1.0, -1.0, 0.0, 0.0, 0.0, -1.0, 0.0)  # i → S, j → right, k → anterior
_A = np.deg2rad(40.0)
ROTATED_40 = (np.cos(_A), -np.sin(_A), 0.0, np.sin(_A), np.cos(_A), 0.0, 0.0, 0.0, 1.0)  # i, j 40° off L, P


def _geometry(size_xyz, spacing_xyz, direction=None) -> VolumeGeometry:
    img = sitk.Image([int(n) for n in size_xyz], sitk.sitkFloat32)
    img.SetSpacing([float(s) for s in spacing_xyz])
    img.SetOrigin((-12.0, 7.0, 30.0))
    if direction is not None:
        img.SetDirection(direction)
    return VolumeGeometry.from_image(img)


def _iso(geom: VolumeGeometry) -> np.ndarray:
    return (geom.ijk_to_world() @ np.r_[(np.asarray(geom.size_xyz, float) - 1) / 2.0, 1.0])[:3]


def test_hu_to_mu_is_nanodrrs_conversion():
    import torch
    from nanodrr.data.preprocess import hu_to_mu

    hu = np.linspace(-3000.0, 3000.0, 20001, dtype=np.float32)
    for bone_hu in (1000.0, 1500.0):
        ref = hu_to_mu(torch.from_numpy(hu), hu_bone=bone_hu).numpy()
        np.testing.assert_allclose(drr_mod.hu_to_mu(hu, bone_hu), ref, atol=1e-7)


@pytest.mark.parametrize("backend", drr_mod.BACKENDS)
@pytest.mark.parametrize("orthographic", [False, True])
def test_line_integral_through_a_box_is_its_thickness(backend, orthographic):
    """A 10×20×30 box of water-equivalent μ, spacing 1×2×0.5 mm: the central AP ray crosses 40 mm, lateral 10 mm."""
    geom = _geometry((10, 20, 30), (1.0, 2.0, 0.5))
    hu = np.full((30, 20, 10), 0.0, np.float32)  # (k, j, i); 0 HU → μ_water
    labels = np.full(hu.shape, -1, np.int16)
    labels[10:20, 5:15, 3:7] = 2
    det = drr_mod.DrrGeometry(size=64, sdd_mm=1000.0, sod_mm=800.0, orthographic=orthographic, margin=0.1)
    renderer = drr_mod.Renderer(hu, labels, geom, n_samples=64, threads=1, backend=backend)
    for view, thickness_mm in (("ap", 40.0), ("lat", 10.0)):
        cam = drr_mod.make_camera(geom, det, view, _iso(geom))
        img = renderer.render_image(cam, 64)
        u, v = np.rint(cam.project(_iso(geom))[0]).astype(int)
        assert img[v, u] == pytest.approx(drr_mod.MU_WATER * thickness_mm, rel=0.03), (view, img[v, u])
        masks = renderer.render_masks(cam, 64)
        assert list(masks) == [2] and masks[2][v, u]
        assert not masks[2][0, 0] and not masks[2][-1, -1]


@pytest.mark.parametrize(("orthographic", "direction"), [(False, OBLIQUE), (True, OBLIQUE), (False, ROTATED_40)])
def test_planes_agree_with_nanodrr_on_an_oblique_phantom_in_random_poses(orthographic, direction):
    """Same camera, same attenuation: images agree per pixel, every vertebra's mask overlaps its twin.

    ``ROTATED_40`` puts the rays about 40° off every voxel axis, near the worst case of shear-warp (45°).
    """
    ph = spine_phantom(direction=direction)
    geom = VolumeGeometry.from_image(ph.image)
    reg = load_registry("spine")
    ids = reg.source_id_map(ph.label_scheme)
    lab = sitk.GetArrayFromImage(ph.labels)
    classes = np.full(lab.shape, -1, np.int16)
    for sid, name in ids.items():
        classes[lab == sid] = reg.index(name)
    hu = sitk.GetArrayFromImage(ph.image)
    size = 128
    planes = drr_mod.Renderer(hu, classes, geom, n_samples=128, threads=1, backend="planes")
    rays = drr_mod.Renderer(hu, classes, geom, n_samples=256, threads=1, backend="nanodrr")
    det = drr_mod.DrrGeometry(size=size, sdd_mm=1000.0, sod_mm=800.0, orthographic=orthographic, margin=0.05)
    rng = np.random.default_rng(1)
    for view in ("ap", "lat"):
        canonical = drr_mod.make_camera(geom, det, view, _iso(geom))
        for rot in (np.zeros(3), rng.uniform(-1, 1, 3) * [10.0, 10.0, 5.0]):
            cam = drr_mod.make_camera(
                geom, det, view, _iso(geom), drr_mod.rotation_xyz_deg(rot), rng.uniform(-5, 5, 3), canonical
            )
            a, b = planes.render_image(cam, size), rays.render_image(cam, size)
            inside = b > 0.05 * b.max()
            rel = np.abs(a - b)[inside] / b[inside]
            assert np.median(rel) < 0.01 and np.percentile(rel, 95) < 0.05, (view, rot, np.median(rel))
            ma, mb = planes.render_masks(cam, size), rays.render_masks(cam, size)
            assert set(ma) == set(mb) == set(planes.classes)
            for cls in ma:
                iou = (ma[cls] & mb[cls]).sum() / (ma[cls] | mb[cls]).sum()
                assert iou > 0.9, (view, reg.names[cls], iou)


def test_unknown_backend_is_refused():
    geom = _geometry((4, 4, 4), (1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="unknown DRR backend"):
        drr_mod.Renderer(np.zeros((4, 4, 4), np.float32), np.full((4, 4, 4), -1), geom, backend="raytrace")


@pytest.mark.slow
def test_planes_agree_with_a_many_sample_reference_on_the_real_ct_in_random_poses():
    """Real CT (LIDC-IDRI-0001, 0.7×0.7×2.5 mm, 18 vertebrae): ``planes`` at its default 128 planes against nanodrr
    at 1024 samples per ray, canonical and random poses (the preset's ranges) of both views.

    Unlike the phantom, whose slabs are single slices, the real CT's AP and lateral stacks sum 4 slices per
    slab, and its vertebrae are thin and cut by the scan's edge (C5).
    """
    from yolo_spine.ct import slices as sl
    from yolo_spine.data import example_ct
    from yolo_spine.io.volume import load_study

    ex = example_ct()
    study = load_study(ex.volume, ex.labels, "cxr")
    reg = load_registry("spine")
    ids = reg.source_id_map("totalsegmentator_v2")
    hu = sitk.GetArrayFromImage(study.image)
    lab = sitk.GetArrayFromImage(study.labels)
    classes = sl.class_lut({k: reg.index(v) for k, v in ids.items()}, int(lab.max()))[lab]
    geom = VolumeGeometry.from_image(study.image)
    size = 192
    planes = drr_mod.Renderer(hu, classes, geom, n_samples=128, threads=1, backend="planes")
    ref = drr_mod.Renderer(hu, classes, geom, n_samples=1024, threads=1, backend="nanodrr")
    assert len(planes.classes) == 18
    det = drr_mod.DrrGeometry(size=size, sdd_mm=1000.0, sod_mm=800.0, orthographic=False, margin=0.05)
    rng = np.random.default_rng(7)
    for view in ("ap", "lat"):
        canonical = drr_mod.make_camera(geom, det, view, _iso(geom))
        for k in range(2):
            rot = np.zeros(3) if k == 0 else rng.uniform(-1, 1, 3) * [10.0, 10.0, 5.0]
            trans = np.zeros(3) if k == 0 else rng.uniform(-1, 1, 3) * [10.0, 10.0, 20.0]
            cam = drr_mod.make_camera(
                geom, det, view, _iso(geom), drr_mod.rotation_xyz_deg(rot), trans, intrinsics_from=canonical
            )
            a, b = planes.render_image(cam, size), ref.render_image(cam, size)
            inside = b > 0.05 * b.max()
            rel = np.abs(a - b)[inside] / b[inside]
            median, p95 = np.median(rel), np.percentile(rel, 95)
            assert median < 0.001 and p95 < 0.005, (view, rot, median, p95)  # measured ≤ 0.03 %, ≤ 0.2 %
            ma, mb = planes.render_masks(cam, size), ref.render_masks(cam, size)
            assert set(ma) == set(mb) and len(mb) >= 17, (view, rot, set(ma) ^ set(mb))
            ious = {reg.names[c]: (ma[c] & mb[c]).sum() / (ma[c] | mb[c]).sum() for c in mb}
            worst = min(ious, key=ious.get)
            assert ious[worst] > 0.85, (view, rot, worst, ious[worst])  # measured ≥ 0.92 (C6, AP)
            assert np.median(list(ious.values())) > 0.98, (view, rot, ious)  # measured ≥ 0.995
