"""Left and right, proven: where lateralised anatomy lands in every image kind the pipeline writes.

Part 1 — the real CT (LIDC-IDRI-0001) and its own TotalSegmentator-v2 label map, read directly through
``ct2yolo --label-map structures.csv`` with a test-only anatomy registry whose classes are lateralised
structures (kidneys, lungs, ribs, the heart, the sternum, the vertebrae). None of them is in a shipped registry;
the pipeline does not need them to be. In a copy of the CT the left kidney is filled with contrast (2500 HU) and
the sternum made metal-dense (3000 HU, as sternal wires are), so the test also sees whether the *image* (not only
the labels) shows the patient's left, and the front, where the labels say: the kidneys lie far apart across an AP
view, the sternum far from the centre of a lateral one (a mirror about the centre would move it well away).

Part 2 — the two-hemisphere brain phantom, made asymmetric: the left lentiform nucleus is calcified (1000 HU)
and its right twin is deleted, so that any mirror error anywhere in the chain (ct2yolo slices and DRRs,
``augment`` flips, training's online flip, ``lift``) puts a region or a label on the wrong side.

Conventions asserted (docs/architecture.md, ``ct/slices.py``, ``ct/drr.py``): axial and coronal ``u`` → patient
left (the patient's right on the image's left), axial ``v`` → posterior, coronal and sagittal ``v`` → inferior,
sagittal ``u`` → posterior; DRR ``ap``: source anterior, patient's right on the image's left, head up; ``lat``:
source at the patient's left, anterior on the image's left, head up.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import yaml

from yolo_spine.ct.convert import ct2yolo
from yolo_spine.ct.options import CtOptions
from yolo_spine.ct.sidecar import Camera, find_sidecars, read_sidecar
from yolo_spine.geometry import polygons_to_mask
from yolo_spine.io.labels import SegInstance, read_yolo_labels
from yolo_spine.registry import configs_dir, load_registry

# ---------------------------------------------------------------------------------------------- helpers


def _image_and_masks(root: Path, stem: str, sidecar: dict, names: tuple[str, ...]):
    """The 8-bit image of ``stem`` and one boolean mask per class name (union of that class's polygons)."""
    import cv2

    split = sidecar["split"]
    pixels = cv2.imread(str(root / "images" / split / f"{stem}.png"), cv2.IMREAD_GRAYSCALE)
    w, h = sidecar["image_size_wh"]
    assert pixels.shape == (h, w)
    by_class: dict[str, list[np.ndarray]] = {}
    for inst in read_yolo_labels(root / "labels" / split / f"{stem}.txt").instances:
        by_class.setdefault(names[inst.cls], []).append(inst.polygon_xy(w, h))
    masks = {n: polygons_to_mask(polys, h, w) for n, polys in by_class.items()}
    return pixels, {n: m for n, m in masks.items() if m.any()}


def _uv(mask: np.ndarray) -> np.ndarray:
    """Centroid ``(u, v)`` of a mask in pixel index coordinates."""
    v, u = np.nonzero(mask)
    return np.array([u.mean(), v.mean()])


def _items(root: Path):
    """Every (stem, sidecar) of a ct2yolo output, in name order."""
    for stem, path in sorted(find_sidecars([root / "sidecars"]).items()):
        yield stem, read_sidecar(path)


# ------------------------------------------------------------------------------ part 1: the real chest CT

#: A test-only anatomy: lateralised structures of the example CT's TotalSegmentator-v2 map, named by aliases
#: that match its structures.csv (so the real file is the --label-map). Left and right as mirror pairs.
CHEST = {
    "name": "chest_laterality_test",
    "description": "Lateralised chest/abdomen structures of TotalSegmentator v2 (test only).",
    "classes": [
        {"name": "kidney_right"},
        {"name": "kidney_left"},
        {"name": "lung_right", "aliases": ["lung_upper_lobe_right", "lung_middle_lobe_right", "lung_lower_lobe_right"]},
        {"name": "lung_left", "aliases": ["lung_upper_lobe_left", "lung_lower_lobe_left"]},
        {"name": "ribs_right", "aliases": [f"rib_right_{n}" for n in range(1, 13)]},
        {"name": "ribs_left", "aliases": [f"rib_left_{n}" for n in range(1, 13)]},
        {"name": "heart"},
        {"name": "sternum"},
        {
            "name": "vertebrae",
            "aliases": [
                f"vertebrae_{v}" for v in ("C5", "C6", "C7", *(f"T{n}" for n in range(1, 13)), "L1", "L2", "L3")
            ],
        },
    ],
    "mirror_pairs": [["kidney_right", "kidney_left"], ["lung_right", "lung_left"], ["ribs_right", "ribs_left"]],
}
PAIRS = (("kidney_right", "kidney_left"), ("lung_right", "lung_left"), ("ribs_right", "ribs_left"))
#: TotalSegmentator v2 id → HU in the test copy: contrast in the left kidney, a metal-dense sternum.
MARKERS_HU = {3: 2500.0, 116: 3000.0}
DRR = {"size": 128, "n_samples": 64, "threads": 1, "min_area_px": 4}
CT_PRESETS = sorted(p.stem for p in (configs_dir() / "ct").glob("*.yaml"))


@pytest.fixture(scope="module")
def chest_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("anatomy") / "chest_laterality_test.yaml"
    path.write_text(yaml.safe_dump(CHEST, sort_keys=False), encoding="utf-8")
    return path


def _with_geometry(arr_kji: np.ndarray, like: sitk.Image) -> sitk.Image:
    img = sitk.GetImageFromArray(arr_kji)
    img.SetSpacing(like.GetSpacing())
    img.SetOrigin(like.GetOrigin())
    img.SetDirection(like.GetDirection())
    return img


@pytest.fixture(scope="module")
def contrast_ct(example_ct, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The real CT with the ``MARKERS_HU`` (``.mha``, int16 HU), and the real label map unchanged."""
    ct = sitk.ReadImage(str(example_ct.volume))
    hu = sitk.GetArrayFromImage(ct)
    lab = sitk.GetArrayFromImage(sitk.ReadImage(str(example_ct.labels)))
    for sid, value in MARKERS_HU.items():
        hu[lab == sid] = value
    path = tmp_path_factory.mktemp("contrast") / "chest.mha"
    sitk.WriteImage(_with_geometry(hu.astype(np.int16), ct), str(path))
    return path, example_ct.labels


def _regrid(image: sitk.Image, direction: np.ndarray, spacing: tuple[float, float, float], nearest: bool):
    """Resample ``image`` onto a grid with other axes and spacing that covers the same world box."""
    size = np.asarray(image.GetSize())
    corners = np.array(
        [
            image.TransformIndexToPhysicalPoint([int(c) for c in np.array(idx) * (size - 1)])
            for idx in np.ndindex(2, 2, 2)
        ]
    )
    local = corners @ direction  # coordinates along the new axes
    lo, hi = local.min(0), local.max(0)
    new_size = [int(n) for n in np.floor((hi - lo) / np.asarray(spacing) + 1e-6).astype(int) + 1]
    return sitk.Resample(
        image,
        new_size,
        sitk.Transform(),
        sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear,
        tuple(direction @ lo),
        spacing,
        tuple(direction.ravel()),
        0 if nearest else -1024,
        image.GetPixelID(),
    )


#: Re-oriented grids: voxel axes permuted and flipped (i → inferior, j → patient right, k → posterior), exactly
#: on the original voxel centres; and the same axes turned 8° about the body axis with anisotropic spacing.
_PERMUTED = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, 1.0], [-1.0, 0.0, 0.0]])  # columns: world dirs of i, j, k
_TURN = np.deg2rad(8.0)
_RZ = np.array([[np.cos(_TURN), -np.sin(_TURN), 0.0], [np.sin(_TURN), np.cos(_TURN), 0.0], [0.0, 0.0, 1.0]])
REGRIDS = {  # direction, spacing, interpolation of the CT (the permuted grid samples voxel centres exactly)
    "permuted_flipped": (_PERMUTED, (2.5, 0.703125, 0.703125), "nearest"),
    "oblique_anisotropic": (_RZ @ _PERMUTED, (1.7, 1.1, 2.3), "linear"),
}


def _chest_ct2yolo(out, ct, labels, registry, structures, preset="default", **option_values) -> dict:
    # ``preset`` is explicit: a registry *path* as --anatomy has no CT preset of its own.
    return ct2yolo(
        out,
        volume=ct,
        labels=labels,
        anatomy=str(registry),
        options=CtOptions.load(preset),
        label_map=structures,
        **option_values,
        progress=False,
    )


def _check_chest_drr(sidecar: dict, pixels: np.ndarray, masks: dict[str, np.ndarray], why: str) -> None:
    """The documented DRR conventions, on real anatomy: see the module docstring."""
    import cv2

    missing = set(CHEST_NAMES) - set(masks)
    assert not missing, f"{why}: {sorted(missing)} not projected"
    c = {n: _uv(m) for n, m in masks.items()}
    for right, left in (("lung_right", "kidney_right"), ("lung_left", "kidney_left")):
        assert c[right][1] < c[left][1] - 10, f"{why}: head not up ({right} v {c[right][1]:.0f})"
    if sidecar["view"] == "ap":
        for right, left in PAIRS:  # patient's right on the image's left
            assert c[right][0] < c[left][0] - 10, f"{why}: {right} u {c[right][0]:.0f} vs {left} {c[left][0]:.0f}"
        assert c["heart"][0] > c["vertebrae"][0] + 2, f"{why}: heart not to the patient's left of the spine"
        # the image agrees with the labels: the contrast-filled kidney is the one labelled left
        bright_left, bright_right = pixels[masks["kidney_left"]].mean(), pixels[masks["kidney_right"]].mean()
        assert bright_left > bright_right + 40, f"{why}: contrast kidney {bright_left:.0f} vs {bright_right:.0f}"
    else:  # lateral: anterior on the image's left
        assert c["sternum"][0] < c["vertebrae"][0] - 10, f"{why}: sternum not anterior"
        assert c["heart"][0] < c["vertebrae"][0] - 10, f"{why}: heart not anterior"
        assert c["kidney_left"][0] > c["heart"][0], f"{why}: kidney not posterior to the heart"
        # the image agrees: the dense sternum is where it is labelled (measured in 124 lateral views: 66 levels or
        # more above its surroundings; at most 29 in the same views mirrored)
        sternum = masks["sternum"]
        ring = cv2.dilate(sternum.astype(np.uint8), np.ones((11, 11), np.uint8)).astype(bool) & ~sternum
        contrast = pixels[sternum].mean() - pixels[ring].mean()
        assert contrast > 45, f"{why}: the dense sternum is not under its label (contrast {contrast:.0f})"
        # source at the patient's left: the left kidney is nearer the source, so magnified more
        ratio = masks["kidney_left"].sum() / masks["kidney_right"].sum()
        if sidecar["camera"]["orthographic"]:
            assert 0.85 < ratio < 1.15, f"{why}: parallel beam, kidney areas {ratio:.2f}"
        else:
            assert ratio > 1.1, f"{why}: left kidney magnified only {ratio:.2f}x (source not at the patient's left?)"


CHEST_NAMES = tuple(c["name"] for c in CHEST["classes"])


def _check_chest_slice(sidecar: dict, pixels: np.ndarray, masks: dict[str, np.ndarray], why: str) -> list[str]:
    """Slice conventions on real anatomy; returns which checks applied (a slice may hold only some organs)."""
    c = {n: _uv(m) for n, m in masks.items() if m.sum() >= 20}
    done = []
    plane = sidecar["plane"]
    if plane in ("axial", "coronal"):
        for right, left in PAIRS:  # u → patient left
            if right in c and left in c:
                assert c[right][0] < c[left][0], f"{why}: {right} u {c[right][0]:.0f} vs {left} {c[left][0]:.0f}"
                done.append(f"{plane}:{right}")
        if "kidney_left" in c:
            bright = pixels[masks["kidney_left"]].mean()
            other = pixels[masks["kidney_right"]].mean() if "kidney_right" in c else None
            assert bright > 200 and (other is None or other < bright - 80), f"{why}: contrast kidney {bright:.0f}"
            done.append(f"{plane}:contrast")
    if plane == "axial" and "sternum" in c and "vertebrae" in c:  # v → posterior
        assert c["sternum"][1] < c["vertebrae"][1], f"{why}: sternum below the spine"
        done.append("axial:posterior-down")
    if plane == "sagittal":  # u → posterior
        for front in ("sternum", "heart"):
            if front in c and "vertebrae" in c:
                assert c[front][0] < c["vertebrae"][0], f"{why}: {front} not anterior"
                done.append(f"sagittal:{front}")
    if plane in ("coronal", "sagittal"):  # v → inferior
        for lung, kidney in (("lung_right", "kidney_right"), ("lung_left", "kidney_left")):
            if lung in c and kidney in c:
                assert c[lung][1] < c[kidney][1], f"{why}: {lung} below {kidney}"
                done.append(f"{plane}:head-up")
    return done


def _check_chest_dataset(root: Path, expect_drrs: int, expect_slice_checks: set[str]) -> None:
    drrs, seen = 0, set()
    for stem, sc in _items(root):
        pixels, masks = _image_and_masks(root, stem, sc, CHEST_NAMES)
        if sc["kind"] == "drr":
            _check_chest_drr(sc, pixels, masks, stem)
            drrs += 1
        else:
            seen.update(_check_chest_slice(sc, pixels, masks, stem))
    assert drrs == expect_drrs
    assert expect_slice_checks <= seen, f"never checked: {sorted(expect_slice_checks - seen)}"


SLICE_CHECKS = {
    "axial:kidney_right",
    "axial:lung_right",
    "axial:ribs_right",
    "axial:contrast",
    "axial:posterior-down",
    "coronal:kidney_right",
    "coronal:lung_right",
    "coronal:ribs_right",
    "coronal:contrast",
    "coronal:head-up",
    "sagittal:sternum",
    "sagittal:heart",
    "sagittal:head-up",
}


def test_real_ct_left_right_through_the_ct2yolo_command(cli_main, example_ct, chest_registry, contrast_ct, tmp_path):
    """The command as a user types it, with the real structures.csv as --label-map: DRRs in random poses, slices."""
    ct, labels = contrast_ct
    out = tmp_path / "chest"
    proc = cli_main(
        "--quiet",
        "ct2yolo",
        "--volume",
        ct,
        "--labels",
        labels,
        "--anatomy",
        chest_registry,
        "--preset",
        "default",
        "--label-map",
        example_ct.structures,
        "--views",
        "ap,lat",
        "--poses",
        4,
        "--size",
        DRR["size"],
        "--planes",
        "axial,coronal,sagittal",
        "--step",
        12,
        "--out",
        out,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    manifest = json.loads((out / "manifest.json").read_text())
    structures = manifest["studies"][0]["structures"]
    assert set(structures) == set(CHEST_NAMES)  # every lateralised structure was read from the real label map
    _check_chest_dataset(out, expect_drrs=2 * 5, expect_slice_checks=SLICE_CHECKS)


@pytest.mark.parametrize(
    ("preset", "orthographic"),
    [
        *(pytest.param(p, False, id=f"{p}-perspective", marks=pytest.mark.slow) for p in CT_PRESETS),
        pytest.param("default", True, id="default-orthographic"),
    ],
)
def test_real_ct_drrs_keep_left_right_in_every_preset_and_pose(
    preset, orthographic, example_ct, chest_registry, contrast_ct, tmp_path
):
    """Every shipped CT preset (its detector geometry and random-pose ranges), perspective and parallel beams."""
    ct, labels = contrast_ct
    n_poses = 8
    report = _chest_ct2yolo(
        tmp_path / "chest",
        ct,
        labels,
        chest_registry,
        example_ct.structures,
        preset=preset,
        planes=[],
        views=["ap", "lat"],
        poses=n_poses,
        drr={**DRR, "orthographic": orthographic},
    )
    assert report["images_per_split"]
    poses = [
        read_sidecar(p)["pose_offset"]["rot_deg"] for p in find_sidecars([tmp_path / "chest" / "sidecars"]).values()
    ]
    assert sum(np.abs(r).max() > 3.0 for r in poses) >= n_poses  # the poses really turn the rig
    _check_chest_dataset(tmp_path / "chest", expect_drrs=2 * (n_poses + 1), expect_slice_checks=set())


@pytest.mark.parametrize("grid", sorted(REGRIDS))
def test_real_ct_left_right_after_reorienting_and_resampling(grid, example_ct, chest_registry, contrast_ct, tmp_path):
    """The same CT on a permuted/flipped voxel grid, and on an oblique anisotropic one: same anatomy, same images."""
    direction, spacing, ct_interpolation = REGRIDS[grid]
    ct, labels = contrast_ct
    files = {}
    for name, path, nearest in (("ct", ct, ct_interpolation == "nearest"), ("labels", labels, True)):
        img = _regrid(sitk.ReadImage(str(path)), direction, spacing, nearest)
        files[name] = tmp_path / f"{name}.mha"
        sitk.WriteImage(img, str(files[name]))
    new = sitk.ReadImage(str(files["labels"]))
    assert np.allclose(np.asarray(new.GetDirection()).reshape(3, 3), direction)
    # the left kidney is still at the patient's left (+x) of the right one in world coordinates
    arr = sitk.GetArrayFromImage(new)
    xs = {}
    for sid in (2, 3):
        k, j, i = np.nonzero(arr == sid)
        xs[sid] = new.TransformContinuousIndexToPhysicalPoint([float(i.mean()), float(j.mean()), float(k.mean())])[0]
    assert xs[3] > xs[2] + 100
    _chest_ct2yolo(
        tmp_path / "chest",
        files["ct"],
        files["labels"],
        chest_registry,
        example_ct.structures,
        planes=["axial", "coronal", "sagittal"],
        step=12,
        views=["ap", "lat"],
        poses=3,
        drr=DRR,
    )
    _check_chest_dataset(tmp_path / "chest", expect_drrs=2 * 4, expect_slice_checks=SLICE_CHECKS)


# ------------------------------------------------------------------------- part 2: the brain phantom chain

#: ``brain_phantom``'s own grid, re-oriented (i → superior, j → patient right, k → anterior), so ``lift`` has
#: to undo a permuted, flipped direction matrix.
BRAIN_DIRECTION = (0.0, 0.0, 1.0, -1.0, 0.0, 0.0, 0.0, -1.0, 0.0)
FOLLOWED, TWIN = "L_left", "L_right"  # the left lentiform nucleus; its right twin is deleted
CALCIFIED_HU = 1000.0  # dense enough to show in a DRR too
LR_AWARE = {"axial", "coronal", "ap"}  # planes/views whose image u runs from the patient's right to left


def _asymmetric_brain(folder: Path) -> tuple[Path, Path, np.ndarray]:
    """The brain phantom with the left lentiform nucleus calcified and the right one deleted.

    Returns the CT and label paths and the followed region's voxel mask ``(k, j, i)``.
    """
    from yolo_spine.synth.phantoms import brain_phantom, write_phantom

    ph = brain_phantom(direction=BRAIN_DIRECTION)
    ids = {name: sid for sid, name in load_registry("brain").source_id_map(ph.label_scheme).items()}
    hu = sitk.GetArrayFromImage(ph.image)
    lab = sitk.GetArrayFromImage(ph.labels)
    followed, twin = lab == ids[FOLLOWED], lab == ids[TWIN]
    assert followed.sum() > 200 and twin.sum() == followed.sum()  # exactly symmetric before the edit
    hu[followed] = CALCIFIED_HU
    hu[twin] = 35.0  # plain brain
    lab[twin] = 0
    ph.image, ph.labels = _with_geometry(hu, ph.image), _with_geometry(lab, ph.labels)
    vol, labels = write_phantom(ph, folder, "brain")
    return vol, labels, followed


def _midline_u(sidecar: dict, uv: np.ndarray) -> float:
    """Image column of the patient's mid-sagittal plane (world x = 0) near pixel ``uv`` (axial/coronal/AP)."""
    if sidecar["kind"] == "slice":
        p2w = np.asarray(sidecar["pixel_to_world"])
        return float(-(p2w[0, 1] * uv[1] + p2w[0, 3]) / p2w[0, 0])
    cam = Camera.from_json(sidecar["camera"])
    return float(cam.project(np.zeros(3))[0, 0])


def _mirror_mean(pixels: np.ndarray, mask: np.ndarray, u0: float) -> float:
    """Mean of ``pixels`` over ``mask`` mirrored about column ``u0``."""
    v, u = np.nonzero(mask)
    u2 = np.rint(2.0 * u0 - u).astype(int)
    ok = (u2 >= 0) & (u2 < pixels.shape[1])
    return float(pixels[v[ok], u2[ok]].mean())


def _check_followed(kind: str, pixels: np.ndarray, mask: np.ndarray, name: str, u0: float, why: str) -> None:
    """The followed region: labelled left on the patient's left (image right), and the dense region is it."""
    u = np.nonzero(mask)[1]
    if name == FOLLOWED:
        assert u.min() > u0, f"{why}: {name} reaches u {u.min()} left of the midline {u0:.1f}"
    else:
        assert u.max() < u0, f"{why}: {name} reaches u {u.max()} right of the midline {u0:.1f}"
    inside, mirrored = float(pixels[mask].mean()), _mirror_mean(pixels, mask, u0)
    margin = 60.0 if kind == "slice" else 15.0
    assert inside > mirrored + margin, f"{why}: the dense region is not under {name} ({inside:.0f} vs {mirrored:.0f})"


@pytest.mark.slow
def test_brain_left_region_keeps_its_side_from_ct_to_lifted_nifti(tmp_path):
    """One left region, followed through ct2yolo (slices, DRRs), augment flips, training's flip and lift."""
    from yolo_spine.datasets.augment import AugmentOptions, augment_dataset
    from yolo_spine.lift.lift import lift

    reg = load_registry("brain")
    left, right = reg.index(FOLLOWED), reg.index(TWIN)
    assert reg.mirror_index_map()[left] == right
    vol, labels, followed = _asymmetric_brain(tmp_path / "ct")

    # 1. ct2yolo: every plane and both DRR views, everything in train (augment only augments train)
    ds = tmp_path / "ds"
    ct2yolo(
        ds,
        volume=vol,
        labels=labels,
        anatomy="brain",
        views=["ap", "lat"],
        poses=2,
        drr={"size": 128, "threads": 1, "min_area_px": 4},
        split={"fractions": {"train": 1.0, "val": 0.0, "test": 0.0}},
        progress=False,
    )
    sources: dict[str, tuple[dict, np.ndarray, float | None]] = {}  # image name → sidecar, mask, midline
    kinds = set()
    for stem, sc in _items(ds):
        assert sc["split"] == "train"
        pixels, masks = _image_and_masks(ds, stem, sc, reg.names)
        assert TWIN not in masks, f"{stem}: a left region labelled right"
        if FOLLOWED not in masks:
            continue
        where = sc.get("plane") or sc["view"]
        u0 = None
        if where in LR_AWARE:
            u0 = _midline_u(sc, _uv(masks[FOLLOWED]))
            _check_followed(sc["kind"], pixels, masks[FOLLOWED], FOLLOWED, u0, stem)
        elif where == "sagittal":  # a sagittal slice is on the left when its plane is at x > 0
            assert np.asarray(sc["pixel_to_world"])[0, 3] > 0, f"{stem}: left region in a right sagittal slice"
        sources[f"{stem}.png"] = (sc, masks[FOLLOWED], u0)
        kinds.add(where)
    assert kinds == {"axial", "coronal", "sagittal", "ap", "lat"}

    # 2. augment: horizontal flips mirror the polygons exactly and swap left for right
    preset = tmp_path / "flip.yaml"
    preset.write_text("copies: 2\nhflip: 0.5\nmin_area_px: 1\n", encoding="utf-8")
    aug = tmp_path / "aug"
    augment_dataset(ds / "data.yaml", aug, AugmentOptions.load(preset), progress=False)
    copies = json.loads((aug / "manifest.json").read_text())["copies"]
    flips = {True: 0, False: 0}
    for copy in copies:
        name = Path(copy["source"]).name
        if name not in sources:
            continue
        sc, src_mask, u0 = sources[name]
        flipped = bool(copy["params"]["hflip"])
        stem = Path(copy["file"]).stem
        pixels, masks = _image_and_masks(aug, stem, {**sc, "split": "train"}, reg.names)
        expected, other = (TWIN, FOLLOWED) if flipped else (FOLLOWED, TWIN)
        assert other not in masks and expected in masks, f"{stem}: {sorted(masks)} (hflip {flipped})"
        np.testing.assert_array_equal(masks[expected], src_mask[:, ::-1] if flipped else src_mask, err_msg=stem)
        if u0 is not None:
            w = pixels.shape[1]
            _check_followed(sc["kind"], pixels, masks[expected], expected, w - 1 - u0 if flipped else u0, stem)
        flips[flipped] += 1
    assert flips[True] >= 10 and flips[False] >= 10, flips

    # 3. training's online flip (the trainer's own dataset and transforms, every image flipped)
    from yolo_spine.train.trainer import AnatomySegmentationTrainer, MirrorAwareFlip

    trainer = AnatomySegmentationTrainer(
        overrides={
            "model": "yolo11n-seg.yaml",
            "data": str(aug / "data.yaml"),
            "imgsz": 128,
            "fliplr": 1.0,
            "mosaic": 0.0,
            "degrees": 0.0,
            "translate": 0.0,
            "scale": 0.0,
            "hsv_h": 0.0,
            "hsv_s": 0.0,
            "hsv_v": 0.0,
            "device": "cpu",
            "project": str(tmp_path / "runs"),
            "name": "flip",
            "plots": False,
        }
    )
    trainer.model = trainer.get_model(cfg="yolo11n-seg.yaml", verbose=False)
    dataset = trainer.build_dataset(img_path=trainer.data["train"], mode="train", batch=1)
    flips_in_pipeline = [t for t in dataset.transforms.transforms if isinstance(t, MirrorAwareFlip)]
    assert len(flips_in_pipeline) == 1 and flips_in_pipeline[0].mirror[left] == right
    checked = {FOLLOWED: 0, TWIN: 0}
    for index, im_file in enumerate(dataset.im_files):
        stored = [i for i in _labels_of(Path(im_file)) if i.cls in (left, right)]
        if not stored or checked[reg.names[stored[0].cls]] >= 6:
            continue
        sample = dataset[index]
        cls = sample["cls"].numpy().reshape(-1).astype(int)
        boxes = sample["bboxes"].numpy()  # normalised x, y, w, h after the flip
        img = sample["img"].numpy()[0].astype(float)  # (H, W) of the letterboxed, flipped image
        ours = [k for k, c in enumerate(cls) if c in (left, right)]
        assert len(ours) == 1, (im_file, cls)
        k = ours[0]
        assert cls[k] == reg.mirror_index_map()[stored[0].cls], f"{im_file}: class not swapped by the flip"
        xs = stored[0].polygon_xy_norm[:, 0]
        x_box = (xs.min() + xs.max()) / 2.0
        assert abs(boxes[k, 0] - (1.0 - x_box)) < 0.05, f"{im_file}: box at x {boxes[k, 0]:.2f}, was {x_box:.2f}"
        h, w = img.shape
        x0, x1 = int((boxes[k, 0] - boxes[k, 2] / 2) * w), int(np.ceil((boxes[k, 0] + boxes[k, 2] / 2) * w))
        y0, y1 = int((boxes[k, 1] - boxes[k, 3] / 2) * h), int(np.ceil((boxes[k, 1] + boxes[k, 3] / 2) * h))
        inside, mirrored = img[y0:y1, x0:x1].max(), img[y0:y1, w - x1 : w - x0].max()
        assert inside > mirrored + 10, f"{im_file}: the flipped image's dense region is not in the box"
        checked[reg.names[stored[0].cls]] += 1
    assert checked[FOLLOWED] >= 6 and checked[TWIN] >= 6, checked

    # 4. lift: slices fused back onto the CT grid, DRR views triangulated
    result = lift(ds, tmp_path / "lifted" / "seg.nii.gz")
    seg = sitk.ReadImage(str(result.labels))
    assert seg.GetDirection() == BRAIN_DIRECTION
    arr = sitk.GetArrayFromImage(seg)
    assert not (arr == right + 1).any(), "a left region lifted as right"
    got = arr == left + 1
    dice = 2.0 * (got & followed).sum() / (got.sum() + followed.sum())
    assert dice > 0.9, f"lifted {FOLLOWED} overlaps the truth with Dice {dice:.3f}"
    ijk_to_world = _geometry_of(seg).ijk_to_world()
    k, j, i = np.nonzero(got)
    assert (np.c_[i, j, k, np.ones(len(i))] @ ijk_to_world.T)[:, 0].min() > 0, f"{FOLLOWED} lifted onto the right"
    k, j, i = np.nonzero(followed)
    truth_lps = (ijk_to_world @ np.r_[i.mean(), j.mean(), k.mean(), 1.0])[:3]
    assert truth_lps[0] > 8.0  # the phantom's left lentiform nucleus, 12 mm left of the midline
    centroids = json.loads(result.centroids.read_text())["centroids_lps_mm"]
    assert TWIN not in centroids, "DRR views triangulated a right twin"
    np.testing.assert_allclose(centroids[FOLLOWED], truth_lps, atol=1.0)


def _labels_of(image: Path) -> list[SegInstance]:
    return read_yolo_labels(image.parent.parent.parent / "labels" / image.parent.name / f"{image.stem}.txt").instances


def _geometry_of(image: sitk.Image):
    from yolo_spine.ct.sidecar import VolumeGeometry

    return VolumeGeometry.from_image(image)
