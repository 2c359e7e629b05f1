"""Physics sanity of the DRR realism stage (``yolo_spine.ct.realism``) and its place in ``ct2yolo``.

Small phantoms only (fast tier): flat slabs of known material thickness for the detector physics, the spine
phantom for the end-to-end checks.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from yolo_spine.ct import realism as R
from yolo_spine.ct.convert import ct2yolo
from yolo_spine.ct.sidecar import read_sidecar, realism_record
from yolo_spine.errors import UserError
from yolo_spine.synth.phantoms import spine_phantom, write_phantom

FAST_DRR = {"size": 96, "n_samples": 48, "threads": 1, "min_area_px": 2}
PIXEL_MM = 0.5


def _params(**changes) -> dict:
    """Physics parameters with every effect but the quantum noise switched off, then ``changes``."""
    p = R.draw_parameters(R.load_preset("physics"), np.random.default_rng(0))
    quiet = {
        "electronic_noise_quanta": 0.0,
        "scatter_to_primary": 0.0,
        "focal_spot_mm": 0.0,
        "detector_sigma_mm": 0.0,
        "glare_fraction": 0.0,
        "heel": 0.0,
        "marker": False,
        **{f"collimation_{s}": 0.0 for s in ("left", "right", "top", "bottom")},
    }
    return {**p, **quiet, **changes}


def _slabs(tissue_mm: np.ndarray, bone_mm: np.ndarray | float = 0.0) -> np.ndarray:
    """Material line integrals (g/cm³·mm) of soft tissue (1.0 g/cm³) and bone (1.9 g/cm³) thicknesses."""
    out = np.zeros((*tissue_mm.shape, 3), np.float32)
    out[..., 1] = tissue_mm * 1.0
    out[..., 2] = np.asarray(bone_mm) * 1.9
    return out


def test_quantum_noise_variance_grows_with_signal_as_poisson():
    # four bands of tissue thickness: four mean signals; no blur, no electronic noise
    tissue = np.repeat(np.array([50.0, 100.0, 150.0, 200.0]), 64)[:, None] * np.ones((1, 256), np.float32)
    det = R.detector_image(_slabs(tissue), _params(), PIXEL_MM, 1.0, "R", np.random.default_rng(1))
    means, variances = [], []
    for band in range(4):
        sig = det.signal[band * 64 + 4 : band * 64 + 60]
        means.append(float(sig.mean()))
        variances.append(float(sig.var()))
    assert means[0] > means[1] > means[2] > means[3] > 50  # thicker → fewer quanta
    assert variances[0] > variances[1] > variances[2] > variances[3]
    for m, v in zip(means, variances, strict=True):
        assert v / m == pytest.approx(1.0, rel=0.1)  # Poisson: variance = mean
    # additive electronic noise adds a constant variance on top
    det_e = R.detector_image(
        _slabs(tissue), _params(electronic_noise_quanta=20.0), PIXEL_MM, 1.0, "R", np.random.default_rng(1)
    )
    v_e = float(det_e.signal[200:250].var())
    assert v_e - variances[3] == pytest.approx(400.0, rel=0.25)


def test_scatter_raises_the_floor_and_lowers_contrast():
    tissue = np.full((128, 128), 200.0, np.float32)
    bone = np.zeros_like(tissue)
    bone[:, 48:80] = 30.0  # a bone bar behind 20 cm of tissue
    rng = np.random.default_rng(2)
    ref = R.detector_image(_slabs(tissue, bone), _params(detector_kerma_ugy=200.0), PIXEL_MM, 1.0, "R", rng)
    rng = np.random.default_rng(2)
    sc = R.detector_image(
        _slabs(tissue, bone), _params(detector_kerma_ugy=200.0, scatter_to_primary=1.0), PIXEL_MM, 1.0, "R", rng
    )

    def contrast(img: np.ndarray) -> tuple[float, float]:
        bg, fg = float(img[:, 8:32].mean()), float(img[:, 56:72].mean())
        return fg, (bg - fg) / (bg + fg)

    floor_ref, c_ref = contrast(ref.signal / ref.open_quanta)
    floor_sc, c_sc = contrast(sc.signal / sc.open_quanta)
    assert floor_sc > 1.5 * floor_ref  # behind the bone: scatter fills in
    assert c_sc < 0.7 * c_ref
    assert c_ref > 0.2


def test_scatter_comes_from_the_body_not_from_the_open_beam():
    # a 20 cm slab over the middle half of the detector, open beam (air) on both sides
    tissue = np.zeros((64, 256), np.float32)
    tissue[:, 64:192] = 200.0
    kw = {"detector_kerma_ugy": 200.0, "scatter_sigma_mm": 20.0}
    ref = R.detector_image(_slabs(tissue), _params(**kw), PIXEL_MM, 1.0, "R", np.random.default_rng(5))
    sc = R.detector_image(
        _slabs(tissue), _params(scatter_to_primary=1.0, **kw), PIXEL_MM, 1.0, "R", np.random.default_rng(5)
    )
    spr = ((sc.expected - ref.expected) / ref.expected).mean(axis=0)  # scatter-to-primary ratio per column
    assert spr[128] == pytest.approx(1.0, rel=0.15)  # the preset's SPR in the body's middle
    assert spr[66] < spr[128]  # the body's edge gets less, not the open beam's glow (≈ 15 with a bare-primary kernel)
    assert spr[:8].max() < 0.05  # rays that miss the body scatter nothing; only the body's tail reaches there
    assert R.scatter_field(ref.expected, np.ones_like(tissue), np.zeros_like(tissue, bool), 1.0, 40.0).max() == 0


def test_processing_works_inside_the_exposed_field_only():
    # strong dynamic range compression beside a wide collimated border: the border stays plain white
    tissue = np.full((128, 128), 150.0, np.float32)
    tissue[:, :40] = 0.0  # open beam on the left
    cols = {"collimation_left": 0.0, "collimation_right": 0.25, "collimation_top": 0.2, "collimation_bottom": 0.0}
    p = _params(drc_amount=0.9, drc_sigma_mm=20.0, unsharp_amount=1.0, electronic_noise_quanta=10.0, **cols)
    det = R.detector_image(_slabs(tissue), p, PIXEL_MM, 1.0, "R", np.random.default_rng(6))
    img = R.clinical_look(det, p, PIXEL_MM)
    assert (img[~det.field] == 255).all()  # no primary there: white, not its noise pulled into the window
    assert det.field.sum() == (128 - 32) * (128 - 26) and not det.visible[:, 100:].any()
    body = img[40:, 50:90]
    assert 20 < body.mean() < 235 and body.std() > 0  # the body itself still spans the window


def _edge_strength(signal: np.ndarray) -> float:
    profile = signal[16:-16].mean(axis=0)
    return float(np.abs(np.diff(profile)).max() / (profile.max() - profile.min()))


def test_detector_blur_lowers_the_edge_response():
    tissue = np.full((96, 96), 100.0, np.float32)
    bone = np.zeros_like(tissue)
    bone[:, 48:] = 20.0  # a step edge
    kw = {"detector_kerma_ugy": 500.0}
    sharp = R.detector_image(_slabs(tissue, bone), _params(**kw), PIXEL_MM, 1.0, "R", np.random.default_rng(3))
    blurred = R.detector_image(
        _slabs(tissue, bone), _params(detector_sigma_mm=1.0, **kw), PIXEL_MM, 1.0, "R", np.random.default_rng(3)
    )
    glare = R.detector_image(
        _slabs(tissue, bone),
        _params(glare_fraction=0.3, glare_gamma_mm=3.0, **kw),
        PIXEL_MM,
        1.0,
        "R",
        np.random.default_rng(3),
    )
    focal = R.detector_image(
        _slabs(tissue, bone), _params(focal_spot_mm=1.2, **kw), PIXEL_MM, 1.5, "R", np.random.default_rng(3)
    )
    e_sharp = _edge_strength(sharp.signal)
    assert e_sharp > 0.9  # the whole step in one pixel
    assert _edge_strength(blurred.signal) < 0.5 * e_sharp
    assert _edge_strength(glare.signal) < 0.85 * e_sharp
    assert _edge_strength(focal.signal) < 0.9 * e_sharp  # geometric unsharpness of the focal spot


def test_detector_blur_adds_only_what_the_ct_voxels_have_not_blurred():
    # a DRR images the CT, already blurred by its voxels: the detector's σ is added in quadrature beyond that
    tissue = np.full((96, 96), 100.0, np.float32)
    bone = np.zeros_like(tissue)
    bone[:, 48:] = 20.0
    p = _params(detector_sigma_mm=1.0, detector_kerma_ugy=500.0)

    def det(source: float):
        return R.detector_image(
            _slabs(tissue, bone), p, PIXEL_MM, 1.0, "R", np.random.default_rng(3), source_sigma_mm=source
        )

    full, partial, none = det(0.0), det(0.6), det(1.2)
    sharp = R.detector_image(
        _slabs(tissue, bone), _params(detector_kerma_ugy=500.0), PIXEL_MM, 1.0, "R", np.random.default_rng(3)
    )
    np.testing.assert_array_equal(none.signal, sharp.signal)  # the CT is already blurrier: nothing added
    assert none.record["added_blur_sigma_mm"] == 0.0 and none.record["blur_sigma_mm"] == 1.0
    assert partial.record["added_blur_sigma_mm"] == pytest.approx(0.8, abs=1e-4)  # sqrt(1.0² − 0.6²)
    assert _edge_strength(full.signal) < _edge_strength(partial.signal) < _edge_strength(none.signal)
    # the finest voxel edge, projected: 0.7 mm voxels at magnification 1.25 → 0.7·1.25/√12
    assert R.ct_footprint_sigma_mm((0.7, 0.7, 2.5), 1.25) == pytest.approx(0.7 * 1.25 / 12**0.5)


def test_collimator_edge_has_the_focal_spot_penumbra():
    tissue = np.full((64, 160), 100.0, np.float32)
    p = _params(collimation_left=0.25, focal_spot_mm=1.2, collimator_mm=200.0, detector_kerma_ugy=500.0)
    soft = R.detector_image(_slabs(tissue), p, PIXEL_MM, 1.0, "R", np.random.default_rng(2), sdd_mm=1000.0)
    hard = R.detector_image(_slabs(tissue), p, PIXEL_MM, 1.0, "R", np.random.default_rng(2))  # parallel beam
    assert soft.record["collimator_penumbra_mm"] == pytest.approx(1.2 * 800.0 / 200.0)  # focal spot · (SDD−d)/d
    row = soft.expected[32] / soft.expected[32, -1]
    edge = 40 - 0.5  # the window's nominal edge (25 % of 160 columns)
    centre = np.interp(0.5, row[:80], np.arange(80))
    assert centre == pytest.approx(edge, abs=0.3)  # the nominal edge passes half the primary
    rise = np.interp(0.9, row[:80], np.arange(80)) - np.interp(0.1, row[:80], np.arange(80))
    sigma_px = 4.8 / PIXEL_MM / 2.355
    assert rise == pytest.approx(2.563 * sigma_px, rel=0.1)  # 10-90 % of an error function: 2.563 σ
    assert np.allclose(row[100:], 1.0)  # the open sides keep the full beam
    assert (hard.expected[32, :40] == 0).all() and np.allclose(hard.expected[32, 40:] / hard.expected[32, -1], 1.0)
    img = R.clinical_look(soft, p, PIXEL_MM)
    assert (img[:, :15] == 255).all()  # far outside: white
    assert img[32, 36:44].min() < 255 and np.diff(img[32, 30:50].astype(int)).max() < 128  # a soft border
    np.testing.assert_array_equal(soft.visible, hard.visible)  # labels are clipped at the nominal edge either way


def test_heel_effect_falls_from_cathode_to_anode():
    tissue = np.full((128, 64), 100.0, np.float32)
    det = R.detector_image(
        _slabs(tissue),
        _params(heel=0.2, cathode_side="bottom", detector_kerma_ugy=200.0),
        PIXEL_MM,
        1.0,
        "R",
        np.random.default_rng(4),
    )
    top, bottom = float(det.signal[:16].mean()), float(det.signal[-16:].mean())
    assert bottom / top == pytest.approx((1 + 0.1 * 15 / 16) / (1 - 0.1 * 15 / 16), rel=0.03)


@pytest.mark.parametrize(
    ("material", "kev", "nist"),
    [
        # NIST X-Ray Mass Attenuation Coefficients (Hubbell & Seltzer, NISTIR 5632, July 2004 data), μ/ρ in cm²/g
        ("air", 20.0, 0.7779),
        ("air", 60.0, 0.1875),
        ("soft_tissue", 15.0, 1.699),  # ICRU-44 soft tissue, not skeletal muscle (1.693)
        ("soft_tissue", 30.0, 0.3790),
        ("soft_tissue", 50.0, 0.2264),
        ("soft_tissue", 100.0, 0.1693),
        ("bone", 30.0, 1.331),
        ("bone", 60.0, 0.3148),
        ("bone", 100.0, 0.1855),
        ("aluminium", 40.0, 0.5685),
        ("aluminium", 80.0, 0.2018),
    ],
)
def test_mass_attenuation_matches_the_nist_table(material, kev, nist):
    assert R.mu_rho(material, np.array([kev]))[0] == pytest.approx(nist, rel=1e-6)


def test_mass_attenuation_interpolates_log_log_between_table_energies():
    # between 60 and 80 keV bone follows a power law: log-log interpolation at the geometric mean
    mid = R.mu_rho("bone", np.array([np.sqrt(60.0 * 80.0)]))[0]
    assert mid == pytest.approx(np.sqrt(0.3148 * 0.2229), rel=1e-6)
    assert R.mu_rho("bone", np.array([40.0]))[0] / R.mu_rho("soft_tissue", np.array([40.0]))[0] > 2.4


def test_harder_beam_lowers_bone_contrast():
    tissue = np.full((32, 64), 150.0, np.float32)
    bone = np.zeros_like(tissue)
    bone[:, 32:] = 15.0
    m = _slabs(tissue, bone)
    c = []
    for kvp in (60.0, 120.0):
        t = R.transmission(m / 10.0, kvp, 2.5)
        c.append(float(np.log(t[:, :32].mean() / t[:, 32:].mean())))
    assert c[0] > 1.3 * c[1] > 0  # bone's photoelectric attenuation falls with energy


def test_material_split_by_hu():
    hu = np.array([-1000.0, -900.0, -100.0, 40.0, 349.0, 350.0, 1500.0], np.float32)
    air, soft, bone = R.material_densities(hu, -800.0, 350.0)
    assert (air[:2] > 0).all() and (air[2:] == 0).all()
    assert (soft[2:5] > 0).all() and (soft[[0, 1, 5, 6]] == 0).all()
    assert (bone[5:] > 0).all() and (bone[:5] == 0).all()
    assert bone[6] == pytest.approx(1.9, abs=0.01)  # cortical bone ≈ 1.9 g/cm³
    assert soft[3] == pytest.approx(1.024, abs=0.002)  # muscle-like 40 HU
    assert air[0] == pytest.approx(0.0012)  # air's density, never 0


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_material_slab_sums_equal_the_slabs_of_the_material_volumes(axis):
    from yolo_spine.ct import shearwarp

    rng = np.random.default_rng(7)
    hu = rng.uniform(-1100.0, 2000.0, (23, 19, 37)).astype(np.float32)  # sizes no slab count divides
    vols = R.material_densities(hu, -800.0, 350.0)
    ref = [shearwarp.slab_sums(v, axis, 6) for v in vols]
    slabs, centres = R.material_slab_sums(hu, axis, 6, -800.0, 350.0)
    np.testing.assert_array_equal(centres, ref[0][1])
    assert slabs.shape == (*ref[0][0].shape, 3)
    for m in range(3):
        np.testing.assert_allclose(slabs[..., m], ref[m][0], rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("group", [1, 2, 4, 5])
def test_group_sums_equal_reduceat_also_with_a_short_last_run(axis, group):
    from yolo_spine.ct import shearwarp

    arr = np.random.default_rng(3).uniform(-1.0, 2.0, (23, 19, 37)).astype(np.float32)  # no group divides all
    ref = np.add.reduceat(arr, np.arange(0, arr.shape[axis], group), axis=axis, dtype=np.float32)
    out = shearwarp.group_sums(arr, group, axis)
    assert out.dtype == np.float32 and out.shape == ref.shape
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6)


def test_material_slab_sums_of_several_axes_in_one_pass_equal_each_axis_alone():
    rng = np.random.default_rng(11)
    hu = rng.uniform(-1100.0, 2000.0, (23, 19, 37)).astype(np.float32)  # several blocks of whole slabs along k
    together = R.material_slab_sums_axes(hu, [1, 0, 2, 1], 6, -800.0, 350.0)
    assert sorted(together) == [0, 1, 2]
    for axis in (0, 1, 2):
        alone = R.material_slab_sums(hu, axis, 6, -800.0, 350.0)
        np.testing.assert_array_equal(together[axis][0], alone[0])  # bit for bit: the speed-up changes no pixel
        np.testing.assert_array_equal(together[axis][1], alone[1])
        assert together[axis][0].flags.c_contiguous


def test_renderer_splits_materials_from_hu_like_the_material_volumes(phantom_files):
    import SimpleITK as sitk

    from yolo_spine.ct import drr
    from yolo_spine.ct.sidecar import VolumeGeometry

    image = sitk.ReadImage(str(phantom_files[0]))
    hu = sitk.GetArrayFromImage(image).astype(np.float32)
    geom = VolumeGeometry.from_image(image)
    none = np.full(hu.shape, -1, np.int16)
    det = drr.DrrGeometry(64, 1000.0, 800.0, False, 0.05)
    iso = (geom.ijk_to_world() @ np.r_[(np.array(geom.size_xyz) - 1) / 2, 1])[:3]
    vols = drr.Renderer(hu, none, geom, threads=1, materials=R.material_densities(hu, -800.0, 350.0))
    split = drr.Renderer(hu, none, geom, threads=1, material_split=(-800.0, 350.0))
    for view in ("ap", "lat"):
        cam = drr.make_camera(geom, det, view, iso)
        a, b = vols.render_materials(cam, 64), split.render_materials(cam, 64)
        assert a[..., 2].max() > 1.0  # bone seen
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-3)
    # summing both views' axes up front (as ct2yolo does) renders the same line integrals, bit for bit
    ahead = drr.Renderer(hu, none, geom, threads=1, material_split=(-800.0, 350.0))
    cams = [drr.make_camera(geom, det, view, iso) for view in ("ap", "lat")]
    ahead.prepare_materials(cams)
    for cam in cams:
        np.testing.assert_array_equal(ahead.render_materials(cam, 64), split.render_materials(cam, 64))


def test_shipped_presets_load_and_physics_is_fixed():
    phys = R.load_preset("physics")
    rand = R.load_preset("randomized")
    assert not R.load_preset("off").enabled and not R.load_preset(False).enabled
    assert phys.enabled and rand.enabled
    assert not any(
        isinstance(v, tuple) and len(v) == 2 and v[0] != v[1] for k, v in phys.values.items() if k in R.NUMERIC
    )
    assert sum(isinstance(v, tuple) for k, v in rand.values.items() if k in R.NUMERIC) >= 15
    a = R.draw_parameters(rand, R.image_rng(0, "s_drr_ap_p000"))
    b = R.draw_parameters(rand, R.image_rng(0, "s_drr_ap_p000"))
    c = R.draw_parameters(rand, R.image_rng(0, "s_drr_ap_p001"))
    assert a == b and a != c
    lo, hi = rand.values["kvp"]
    assert lo <= a["kvp"] <= hi


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("kvp: 500\n", "kvp must be a number in [40, 150]"),
        ("kvp: [100, 70]\n", "low above high"),
        ("kvpp: 80\n", "unknown key 'kvpp'"),
        ("lut: curvy\n", "lut must be one or a list of linear, gamma, sigmoid"),
        ("bone_min_hu: [300, 400]\n", "must be one number"),
        ("base: chest\n", "base must be physics or randomized"),
        ("window_low_pct: 40\nwindow_high_pct: 50\n", None),
    ],
)
def test_bad_preset_values_are_refused_in_one_sentence(tmp_path, text, words):
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    if words is None:
        R.load_preset(path)  # a partial file over physics is fine
        return
    with pytest.raises(UserError) as err:
        R.load_preset(path)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_unknown_preset_name_is_refused():
    with pytest.raises(UserError, match="neither a shipped preset"):
        R.load_preset("photorealistic")


@pytest.fixture(scope="module")
def phantom_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("phantom")
    return write_phantom(spine_phantom(), folder, "sp")


def _run(out: Path, files, realism: str | Path, seed: int = 0, views=("ap", "lat")) -> Path:
    vol, lab = files[:2]
    ct2yolo(
        out,
        volume=vol,
        labels=lab,
        study="sp",
        planes=[],
        views=list(views),
        drr=FAST_DRR,
        realism={"preset": str(realism), "seed": seed},
        progress=False,
    )
    return out


def _files(root: Path, sub: str) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((root / sub).rglob("*")) if p.is_file()}


def test_polygons_identical_with_realism_on_and_deterministic(tmp_path, phantom_files):
    off = _run(tmp_path / "off", phantom_files, "off")
    phys = _run(tmp_path / "phys", phantom_files, "physics")
    again = _run(tmp_path / "again", phantom_files, "physics")
    other = _run(tmp_path / "other", phantom_files, "physics", seed=1)
    labels_off = _files(off, "labels")
    assert labels_off and labels_off == _files(phys, "labels")  # geometry never changes
    img_off, img_phys = _files(off, "images"), _files(phys, "images")
    assert img_off.keys() == img_phys.keys() and all(img_off[k] != img_phys[k] for k in img_off)
    assert img_phys == _files(again, "images")  # same seed and names: same pixels
    assert all(img_phys[k] != v for k, v in _files(other, "images").items())  # another seed: other noise
    rec = realism_record(read_sidecar(next((phys / "sidecars").rglob("sp_drr_ap_p000.json"))))
    assert rec["preset"] == "physics" and rec["kvp"] == 80.0 and rec["seed"] == 0
    assert 30 < rec["mean_energy_kev"] < 60 and rec["open_field_quanta_per_px"] > 0
    assert realism_record(read_sidecar(next((off / "sidecars").rglob("sp_drr_ap_p000.json")))) is None
    pix = np.asarray(Image.open(next((phys / "images").rglob("sp_drr_ap_p000.png"))))
    assert pix.dtype == np.uint8 and pix.std() > 10


def test_collimation_and_marker_clip_polygons_and_are_counted(tmp_path, phantom_files):
    preset = tmp_path / "tight.yaml"
    preset.write_text("base: physics\ncollimation: 0.3\nmarker: 1.0\n")
    out = _run(tmp_path / "tight", phantom_files, preset, views=("ap",))
    study = json.loads((out / "studies" / "sp.json").read_text())["views"]["ap"]
    assert study["clipped_hidden"] + study["dropped_hidden"] > 0
    sc = json.loads(next((out / "sidecars").rglob("sp_drr_ap_p000.json")).read_text())["realism"]
    x0, y0, x1, y1 = sc["collimator_window_xyxy"]
    assert sc["marker_text"] == "R"
    label = next((out / "labels").rglob("sp_drr_ap_p000.txt")).read_text().split("\n")
    size = FAST_DRR["size"]
    for row in filter(None, label):
        xy = np.array(row.split()[1:], float).reshape(-1, 2) * size
        assert (xy[:, 0] >= x0 - 1).all() and (xy[:, 0] <= x1).all()
        assert (xy[:, 1] >= y0 - 1).all() and (xy[:, 1] <= y1).all()
    pix = np.asarray(Image.open(next((out / "images").rglob("sp_drr_ap_p000.png"))))
    inside = pix[y0:y1, x0:x1]
    assert pix[: max(y0 - 2, 1)].mean() > inside.mean()  # collimated border shows bright (only scatter reaches it)


def test_cli_refuses_a_bad_realism_preset_in_one_line(tmp_path, run_cli, phantom_files):
    vol, lab = phantom_files[:2]
    out = tmp_path / "bad"
    res = run_cli("ct2yolo", "--volume", vol, "--labels", lab, "--out", out, "--realism", "glossy")
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "realism preset 'glossy'" in res.stderr
    assert not out.exists()


@pytest.mark.slow  # about 10 s: nanodrr's CPU ray marcher
def test_both_backends_project_the_same_material_line_integrals():
    import SimpleITK as sitk

    from yolo_spine.ct import drr
    from yolo_spine.ct.sidecar import VolumeGeometry

    ph = spine_phantom()
    hu = sitk.GetArrayFromImage(ph.image)
    geom = VolumeGeometry.from_image(ph.image)
    classes = np.where(sitk.GetArrayFromImage(ph.labels) > 0, 0, -1)
    mats = R.material_densities(hu)
    det = drr.DrrGeometry(64, 1000.0, 800.0, False, 0.05)
    iso = (geom.ijk_to_world() @ np.r_[(np.array(geom.size_xyz) - 1) / 2, 1])[:3]
    cam = drr.make_camera(geom, det, "lat", iso)
    planes = drr.Renderer(hu, classes, geom, materials=mats, threads=1).render_materials(cam, 64)
    rays = drr.Renderer(hu, classes, geom, materials=mats, threads=1, backend="nanodrr", n_samples=512)
    rays = rays.render_materials(cam, 64)
    assert planes.shape == rays.shape == (64, 64, 3)
    for m in (1, 2):  # soft tissue and bone (the phantom's air is outside the body)
        ref = planes[..., m]
        inside = ref > 0.05 * ref.max()
        assert np.median(np.abs(rays[..., m] - ref)[inside] / ref[inside]) < 0.01
    assert planes[..., 2].max() > 5.0  # bone: g/cm³·mm through the vertebrae
