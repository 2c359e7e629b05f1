"""ct2yolo: real CT DRRs, slice round trips through sidecars, transforms, phantoms, splits and bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from yolo_spine.ct.convert import ct2yolo, slab_splits
from yolo_spine.ct.options import CtOptions
from yolo_spine.ct.sidecar import find_sidecars, pixel_to_ijk, read_sidecar
from yolo_spine.datasets.check import check_dataset
from yolo_spine.errors import DataError, UserError
from yolo_spine.geometry import polygons_to_mask
from yolo_spine.io.labels import read_yolo_labels
from yolo_spine.io.volume import read_transform
from yolo_spine.registry import load_registry
from yolo_spine.synth.phantoms import brain_phantom, spine_phantom, teeth_phantom, write_phantom

FAST_DRR = {"size": 96, "n_samples": 48, "threads": 1, "min_area_px": 2}


OBLIQUE = (0.0, 0.0, 1.0, -1.0, 0.0, 0.0, 0.0, -1.0, 0.0)  # i → S, j → right, k → anterior


def _rasterise_back(root: Path, anatomy: str, shape_kji: tuple[int, int, int]) -> dict[str, np.ndarray]:
    """Put every slice's polygons back into a (k, j, i) class volume per plane (−1 = background)."""
    out: dict[str, np.ndarray] = {}
    for stem, path in find_sidecars([root / "sidecars"]).items():
        sc = read_sidecar(path)
        if sc["kind"] != "slice":
            continue
        vol = out.setdefault(sc["plane"], np.full(shape_kji, -1, np.int16))
        w, h = sc["image_size_wh"]
        labels = read_yolo_labels(root / "labels" / sc["split"] / f"{stem}.txt").instances
        cls_img = np.full((h, w), -1, np.int16)
        for inst in labels:
            cls_img[polygons_to_mask([inst.polygon_xy(w, h)], h, w)] = inst.cls
        # every voxel of this slice → its pixel (inverse of the sidecar affine), nearest pixel centre
        m_inv = np.linalg.inv(pixel_to_ijk(sc))
        axis = sc["axis"]
        grids = [np.arange(n) for n in shape_kji[::-1]]  # i, j, k ranges
        grids[axis] = np.array([sc["index"]])
        ii, jj, kk = np.meshgrid(*grids, indexing="ij")
        ijk = np.stack([ii.ravel(), jj.ravel(), kk.ravel(), np.ones(ii.size)])
        uv = np.rint(m_inv @ ijk)[:2].astype(int)
        assert np.abs((m_inv @ ijk)[2]).max() < 1e-6  # the slice's own voxels lie at w = 0
        vol[kk.ravel(), jj.ravel(), ii.ravel()] = cls_img[uv[1], uv[0]]
    return out


def _class_volume(labels: sitk.Image, anatomy: str, scheme: str) -> np.ndarray:
    reg = load_registry(anatomy)
    ids = reg.source_id_map(scheme)
    arr = sitk.GetArrayFromImage(labels)
    out = np.full(arr.shape, -1, np.int16)
    for sid, name in ids.items():
        out[arr == sid] = reg.index(name)
    return out


@pytest.mark.parametrize("direction", [None, OBLIQUE], ids=["identity", "reoriented"])
def test_slices_reproduce_the_label_map_through_sidecars(tmp_path, direction):
    ph = spine_phantom(size_xyz=(24, 20, 30), spacing_xyz=(1.2, 0.8, 2.0), direction=direction)
    vol, lab = write_phantom(ph, tmp_path, "sp")
    out = tmp_path / "ds"
    ct2yolo(
        out,
        volume=vol,
        labels=lab,
        anatomy="spine",
        views=[],
        slice={"min_area_px": 0, "skip_empty": False},
        progress=False,
    )
    truth = _class_volume(ph.labels, "spine", ph.label_scheme)
    back = _rasterise_back(out, "spine", truth.shape)
    assert set(back) == {"axial", "coronal", "sagittal"}
    for plane, vol_back in back.items():
        assert np.array_equal(vol_back, truth), plane
    assert check_dataset(out / "data.yaml").ok


def test_slice_orientation_is_radiological(tmp_path):
    """On a re-oriented grid, u still points to the patient's left in axial and coronal images."""
    ph = brain_phantom(size_xyz=(24, 28, 18), direction=OBLIQUE)
    vol, lab = write_phantom(ph, tmp_path, "br")
    out = tmp_path / "ds"
    ct2yolo(out, volume=vol, labels=lab, anatomy="brain", planes=["axial", "coronal"], progress=False)
    reg = load_registry("brain")
    seen = 0
    for stem, path in find_sidecars([out / "sidecars"]).items():
        sc = read_sidecar(path)
        w, h = sc["image_size_wh"]
        p2w = np.asarray(sc["pixel_to_world"])
        # u → +x (patient left) in both planes
        assert (p2w[:3, 0] / np.linalg.norm(p2w[:3, 0])) @ np.array([1.0, 0, 0]) > 0.99
        for inst in read_yolo_labels(out / "labels" / sc["split"] / f"{stem}.txt").instances:
            u, v = inst.polygon_xy(w, h).mean(0)
            x_mm = (p2w @ np.array([u, v, 0.0, 1.0]))[0]
            side = reg.names[inst.cls].rsplit("_", 1)[1]
            assert (x_mm > 0) == (side == "left"), (stem, reg.names[inst.cls], x_mm)
            seen += 1
    assert seen > 50


def test_brain_left_and_right_stay_apart_in_every_plane(tmp_path):
    ph = brain_phantom()
    vol, lab = write_phantom(ph, tmp_path, "br")
    out = tmp_path / "ds"
    ct2yolo(out, volume=vol, labels=lab, anatomy="brain", progress=False)
    reg = load_registry("brain")
    planes_seen = set()
    for stem, path in find_sidecars([out / "sidecars"]).items():
        sc = read_sidecar(path)
        w, h = sc["image_size_wh"]
        p2w = np.asarray(sc["pixel_to_world"])
        for inst in read_yolo_labels(out / "labels" / sc["split"] / f"{stem}.txt").instances:
            pts = inst.polygon_xy(w, h)
            x_mm = (np.c_[pts, np.zeros(len(pts)), np.ones(len(pts))] @ p2w.T)[:, 0]
            left = reg.names[inst.cls].endswith("_left")
            assert (x_mm > -1.0).all() if left else (x_mm < 1.0).all(), (stem, reg.names[inst.cls])
            planes_seen.add(sc["plane"])
    assert planes_seen == {"axial", "coronal", "sagittal"}
    manifest = json.loads((out / "manifest.json").read_text())
    structures = manifest["studies"][0]["structures"]
    assert len(structures) == 20 and all(s["slice_instances"] > 0 for s in structures.values())


def test_real_ct_ap_drr_has_every_vertebra(tmp_path, example_ct):
    out = tmp_path / "ds"
    ct2yolo(
        out,
        volume=example_ct.volume,
        labels=example_ct.labels,
        study="cxr",
        anatomy="spine",
        planes=[],
        views=["ap", "lat"],
        drr=FAST_DRR,
        progress=False,
    )
    reg = load_registry("spine")
    ids = reg.source_id_map("totalsegmentator_v2")
    present = np.unique(sitk.GetArrayFromImage(sitk.ReadImage(str(example_ct.labels))))
    vertebrae = {ids[i] for i in present if i in ids}
    assert len(vertebrae) == 18  # C5 … L3
    found = {}
    for view in ("ap", "lat"):
        stem = f"cxr_drr_{view}_p000"
        sc = read_sidecar(find_sidecars([out / "sidecars"])[stem])
        found[view] = {
            reg.names[i.cls] for i in read_yolo_labels(out / "labels" / sc["split"] / f"{stem}.txt").instances
        }
    assert found["ap"] == vertebrae
    # at 96 px a lateral view may lose the few voxels of C5 cut by the scan's edge; the report says which
    report = json.loads((out / "studies" / "cxr.json").read_text())
    assert found["lat"] == vertebrae - set(report["views"]["lat"]["classes_missing"]) and len(found["lat"]) >= 17
    # the polygons sit where the camera projects each vertebra's centroid
    sc = read_sidecar(find_sidecars([out / "sidecars"])["cxr_drr_ap_p000"])
    from yolo_spine.ct.sidecar import Camera, VolumeGeometry

    cam, geom = Camera.from_json(sc["camera"]), VolumeGeometry.from_json(sc["volume"])
    lab = sitk.GetArrayFromImage(sitk.ReadImage(str(example_ct.labels)))
    label_rows = read_yolo_labels(out / "labels" / sc["split"] / "cxr_drr_ap_p000.txt").instances
    for sid in (29, 38, 46):  # L3, T7, C5
        k, j, i = np.nonzero(lab == sid)
        c_world = (geom.ijk_to_world() @ np.r_[i.mean(), j.mean(), k.mean(), 1.0])[:3]
        u, v = cam.project(c_world)[0]
        cls = reg.index(ids[sid])
        inst = max((x for x in label_rows if x.cls == cls), key=lambda x: len(x.polygon_xy_norm))
        mask = polygons_to_mask([inst.polygon_xy(96, 96)], 96, 96)
        assert mask[int(np.rint(v)), int(np.rint(u))], ids[sid]
    assert check_dataset(out / "data.yaml").ok


def test_transform_file_resamples_the_image_into_the_label_frame(tmp_path):
    ph = spine_phantom(size_xyz=(24, 24, 30))
    tx = sitk.Euler3DTransform((0.0, 0.0, 0.0), np.deg2rad(8.0), np.deg2rad(-5.0), np.deg2rad(12.0), (3.0, -2.0, 4.0))
    # the "acquired" image: the phantom seen through the inverse transform, on the same grid
    acquired = sitk.Resample(ph.image, ph.image, tx.GetInverse(), sitk.sitkLinear, -1000.0)
    vol = tmp_path / "acq.nii.gz"
    sitk.WriteImage(acquired, str(vol))
    _, lab = write_phantom(ph, tmp_path, "sp")
    # a hand-written ITK text file, as ITK-SNAP saves it
    m = np.asarray(tx.GetMatrix()).reshape(3, 3)
    tfm = tmp_path / "reorient.tfm"
    tfm.write_text(
        "#Insight Transform File V1.0\n#Transform 0\nTransform: MatrixOffsetTransformBase_double_3_3\n"
        f"Parameters: {' '.join(f'{v:.10f}' for v in [*m.ravel(), *tx.GetTranslation()])}\n"
        "FixedParameters: 0 0 0\n"
    )
    read = read_transform(tfm)
    pts = np.random.default_rng(0).uniform(-20, 20, (5, 3))
    for p in pts:
        assert np.allclose(read.TransformPoint(p.tolist()), tx.TransformPoint(p.tolist()), atol=1e-6)
    common = {"anatomy": "spine", "study": "s", "planes": ["axial"], "views": [], "progress": False}
    ct2yolo(tmp_path / "with_tx", volume=vol, labels=lab, transform=tfm, **common)
    ct2yolo(tmp_path / "truth", volume=write_phantom(ph, tmp_path, "orig")[0], labels=lab, **common)
    import cv2

    diffs = []
    for png in sorted((tmp_path / "truth" / "images").rglob("*.png")):
        other = next((tmp_path / "with_tx" / "images").rglob(png.name))
        a, b = cv2.imread(str(png), 0).astype(float), cv2.imread(str(other), 0).astype(float)
        diffs.append(np.abs(a - b).mean())
    # what is left is resampling blur of the noisy phantom (seen: ~9 grey levels vs ~26 without the transform)
    assert diffs and np.median(diffs) < 12.0
    no_tx = tmp_path / "no_tx"
    ct2yolo(no_tx, volume=vol, labels=lab, **common)
    far = [
        np.abs(cv2.imread(str(p), 0).astype(float) - cv2.imread(str(next(no_tx.rglob(p.name))), 0)).mean()
        for p in sorted((tmp_path / "truth" / "images").rglob("*.png"))
    ]
    assert np.median(far) > 2 * np.median(diffs)  # the transform mattered


def test_teeth_phantom_mirror_pairs_keep_their_side(tmp_path):
    ph = teeth_phantom()
    vol, lab = write_phantom(ph, tmp_path, "th")
    out = tmp_path / "ds"
    ct2yolo(out, volume=vol, labels=lab, anatomy="teeth", planes=["axial"], views=[], progress=False)
    reg = load_registry("teeth")
    for stem, path in find_sidecars([out / "sidecars"]).items():
        sc = read_sidecar(path)
        w, h = sc["image_size_wh"]
        p2w = np.asarray(sc["pixel_to_world"])
        for inst in read_yolo_labels(out / "labels" / sc["split"] / f"{stem}.txt").instances:
            name = reg.names[inst.cls]
            if name.isdigit():
                x_mm = (p2w @ np.r_[inst.polygon_xy(w, h).mean(0), 0.0, 1.0])[0]
                assert (x_mm > 0) == (name[0] in "23"), name  # quadrants 2 and 3 are the patient's left


def test_study_list_with_workers_keeps_each_study_in_one_split(tmp_path):
    rows = ["volume,labels,study"]
    for n in range(3):
        vol, lab = write_phantom(spine_phantom(size_xyz=(20, 20, 24), seed=n), tmp_path, f"s{n}")
        rows.append(f"{vol.name},{lab.name},case{n}")
    (tmp_path / "list.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "ds"
    manifest = ct2yolo(
        out,
        study_list=tmp_path / "list.csv",
        anatomy="spine",
        planes=["axial", "sagittal"],
        step=2,
        views=["ap"],
        drr=FAST_DRR,
        workers=2,
        progress=False,
    )
    for n in range(3):
        splits = {p.parent.name for p in (out / "images").rglob(f"case{n}_*.png")}
        assert len(splits) == 1, (n, splits)
    assert {s["study"] for s in manifest["studies"]} == {"case0", "case1", "case2"}
    assert check_dataset(out / "data.yaml").ok


def test_slab_splits_interleave_and_follow_fractions():
    s = slab_splits(20, {"train": 0.7, "val": 0.15, "test": 0.15})
    assert s.count("train") == 14 and s.count("val") == 3 and s.count("test") == 3
    assert "test" in s[:10] and "test" in s[10:]  # spread over the extent, not one block


def test_unmapped_ids_are_reported(tmp_path):
    ph = spine_phantom(size_xyz=(20, 20, 24))
    arr = sitk.GetArrayFromImage(ph.labels)
    arr[:2, :2, :2] = 200  # an id no scheme knows
    lab_img = sitk.GetImageFromArray(arr)
    lab_img.CopyInformation(ph.labels)
    ph.labels = lab_img
    vol, lab = write_phantom(ph, tmp_path, "u")
    out = tmp_path / "ds"
    m = ct2yolo(out, volume=vol, labels=lab, views=[], progress=False)
    assert m["studies"][0]["unmapped_label_ids"] == {"200": 8}
    report = json.loads((out / "studies" / f"{m['studies'][0]['study']}.json").read_text())
    assert report["unmapped_label_ids"] == {"200": 8}


# ---- bad input: one sentence, non-zero exit, nothing written ------------------------------------------------


def _bad(cli_main, tmp_path, *args):
    out = tmp_path / "bad_out"
    res = cli_main("ct2yolo", *args, "--out", str(out))
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not out.exists()
    return res.stderr


def test_bad_inputs(tmp_path, cli_main):
    ph = spine_phantom(size_xyz=(20, 20, 24))
    vol, lab = write_phantom(ph, tmp_path, "ok")
    # a 2D image given as a volume
    flat = tmp_path / "flat.nii.gz"
    sitk.WriteImage(sitk.Image(32, 32, sitk.sitkFloat32), str(flat))
    assert "not a 3D volume" in _bad(cli_main, tmp_path, "--volume", str(flat), "--labels", str(lab))
    # NaNs
    arr = sitk.GetArrayFromImage(ph.image)
    arr[3, 3, 3] = np.nan
    nan_img = sitk.GetImageFromArray(arr)
    nan_img.CopyInformation(ph.image)
    nan_path = tmp_path / "nan.mha"  # ITK's NIfTI reader turns NaN into 0, MetaImage keeps it
    sitk.WriteImage(nan_img, str(nan_path))
    assert "NaN" in _bad(cli_main, tmp_path, "--volume", str(nan_path), "--labels", str(lab))
    # an empty label map
    empty = tmp_path / "empty.nii.gz"
    e = sitk.Image(ph.labels.GetSize(), sitk.sitkUInt8)
    e.CopyInformation(ph.labels)
    sitk.WriteImage(e, str(empty))
    assert "empty" in _bad(cli_main, tmp_path, "--volume", str(vol), "--labels", str(empty))
    # geometry that disagrees: the error names the difference; --resample-labels fixes it
    shifted = sitk.Image(ph.labels)
    shifted.SetSpacing((1.6, 1.5, 2.0))
    sh = tmp_path / "sh.nii.gz"
    sitk.WriteImage(shifted, str(sh))
    assert "spacing" in _bad(cli_main, tmp_path, "--volume", str(vol), "--labels", str(sh))
    ok = cli_main(
        "ct2yolo",
        "--volume",
        str(vol),
        "--labels",
        str(sh),
        "--resample-labels",
        "--views",
        "none",
        "--out",
        str(tmp_path / "resampled"),
    )
    assert ok.returncode == 0, ok.stderr
    assert check_dataset(tmp_path / "resampled" / "data.yaml").ok
    (study,) = json.loads((tmp_path / "resampled" / "manifest.json").read_text())["studies"]
    ids = load_registry("spine").source_id_map(ph.label_scheme)
    assert set(study["structures"]) == {ids[int(i)] for i in np.unique(sitk.GetArrayFromImage(ph.labels)) if i}
    # missing file, unknown plane, an unreadable transform
    assert "does not exist" in _bad(cli_main, tmp_path, "--volume", str(tmp_path / "nope.nii"), "--labels", str(lab))
    args = ("--volume", str(vol), "--labels", str(lab))
    planes = _bad(cli_main, tmp_path, *args, "--planes", "oblique")
    assert "planes = ['oblique'] is not valid: expected a list of values from 'axial', 'coronal'" in planes
    assert "runs on the CPU" in _bad(cli_main, tmp_path, *args, "--drr-device", "cuda:0")
    assert "not a torch device" in _bad(cli_main, tmp_path, *args, "--drr-backend", "nanodrr", "--drr-device", "gpu0")
    assert "not available" in _bad(cli_main, tmp_path, *args, "--drr-backend", "nanodrr", "--drr-device", "cuda:99")
    junk = tmp_path / "junk.tfm"
    junk.write_text("not a transform\n")
    assert "transform" in _bad(cli_main, tmp_path, "--volume", str(vol), "--labels", str(lab), "--transform", str(junk))
    # never overwrite without --overwrite
    res = cli_main("ct2yolo", "--volume", str(vol), "--labels", str(lab), "--out", str(tmp_path / "resampled"))
    assert res.returncode != 0 and "--overwrite" in res.stderr


def test_too_large_for_memory_is_refused_before_work(tmp_path):
    vol, lab = write_phantom(spine_phantom(size_xyz=(20, 20, 24)), tmp_path, "m")
    with pytest.raises(DataError, match="GiB"):
        ct2yolo(tmp_path / "o", volume=vol, labels=lab, max_memory_fraction=1e-9, progress=False)
    assert not (tmp_path / "o").exists()


def test_label_map_file_resolves_aliases(tmp_path, example_ct):
    ph = spine_phantom(size_xyz=(20, 20, 24))
    vol, lab = write_phantom(ph, tmp_path, "lm")
    out = tmp_path / "ds"
    # TotalSegmentator's own structures.csv: vertebrae_L1 … resolve, organs stay unmapped
    m = ct2yolo(out, volume=vol, labels=lab, label_map=example_ct.structures, views=[], progress=False)
    assert set(m["studies"][0]["structures"]) == {"T11", "T12", "L1", "L2", "L3"}
    bad = tmp_path / "bad.yaml"
    bad.write_text("31: liver\n")
    with pytest.raises(UserError, match="names no spine class"):
        ct2yolo(tmp_path / "o2", volume=vol, labels=lab, label_map=bad, progress=False)


def test_unconfigured_label_scheme_is_recognised_as_eval3d_does(tmp_path):
    """No label_scheme in the preset: the scheme comes from registry.detect_label_scheme, or the study is refused."""
    preset = tmp_path / "no-scheme.yaml"
    preset.write_text("label_scheme: null\nplanes: [axial]\nviews: []\n")
    vol, lab = write_phantom(brain_phantom(), tmp_path, "b")
    m = ct2yolo(tmp_path / "b", volume=vol, labels=lab, anatomy="brain", options=CtOptions.load(preset), progress=False)
    assert m["studies"][0]["label_scheme"] == "class_id+1"  # ASPECTS ids 1–20 are class id + 1: one reading
    assert len(m["studies"][0]["structures"]) == 20
    # TotalSegmentator v2 ids of T11–L3 (29–33) are T6–T2 in v1: two readings, no guess
    vol, lab = write_phantom(spine_phantom(size_xyz=(20, 20, 24)), tmp_path, "s")
    with pytest.raises(DataError, match=r"fit the schemes totalsegmentator_v2, totalsegmentator_v1 alike .*label_sch"):
        ct2yolo(tmp_path / "s", volume=vol, labels=lab, anatomy="spine", options=CtOptions.load(preset), progress=False)
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("backend", ["planes", "nanodrr"])
def test_orthographic_drr_projects_like_its_camera(tmp_path, backend):
    """A parallel-beam DRR: each vertebra's projected centroid falls inside its polygon (camera and labels agree)."""
    from yolo_spine.ct.sidecar import Camera, VolumeGeometry

    ph = spine_phantom(direction=OBLIQUE)
    vol, lab = write_phantom(ph, tmp_path, "o")
    out = tmp_path / "ds"
    drr = {**FAST_DRR, "orthographic": True, "backend": backend}
    m = ct2yolo(out, volume=vol, labels=lab, planes=[], views=["ap", "lat"], drr=drr, progress=False)
    study = m["studies"][0]["study"]  # a pseudonym: the file name is not the study's name
    reg = load_registry("spine")
    ids = reg.source_id_map(ph.label_scheme)
    arr = sitk.GetArrayFromImage(ph.labels)
    for view in ("ap", "lat"):
        sc = read_sidecar(find_sidecars([out / "sidecars"])[f"{study}_drr_{view}_p000"])
        cam, geom = Camera.from_json(sc["camera"]), VolumeGeometry.from_json(sc["volume"])
        assert cam.orthographic
        rows = read_yolo_labels(out / "labels" / sc["split"] / f"{study}_drr_{view}_p000.txt").instances
        assert {reg.names[r.cls] for r in rows} == {ids[i] for i in np.unique(arr) if i in ids}
        for sid in np.unique(arr[arr > 0]):
            k, j, i = np.nonzero(arr == sid)
            c = (geom.ijk_to_world() @ np.r_[i.mean(), j.mean(), k.mean(), 1.0])[:3]
            u, v = cam.project(c)[0]
            inst = next(r for r in rows if r.cls == reg.index(ids[int(sid)]))
            mask = polygons_to_mask([inst.polygon_xy(96, 96)], 96, 96)
            assert mask[int(np.rint(v)), int(np.rint(u))], (view, ids[int(sid)])


def test_euler_transform_file_written_by_itk_is_read(tmp_path):
    tx = sitk.Euler3DTransform((1.0, 2.0, 3.0), 0.1, -0.2, 0.3, (4.0, 5.0, 6.0))
    path = tmp_path / "euler.tfm"
    sitk.WriteTransform(tx, str(path))
    assert path.read_text().startswith("#Insight Transform File V1.0")
    read = read_transform(path)
    p = [10.0, -20.0, 30.0]
    assert np.allclose(read.TransformPoint(p), tx.TransformPoint(p), atol=1e-9)


def test_dicom_series_folder_is_read_as_a_volume(tmp_path):
    """A CT stored as a DICOM series (one file per slice) reads with the same geometry as the NIfTI."""
    import locale

    saved = locale.setlocale(locale.LC_ALL)
    ph = spine_phantom(size_xyz=(20, 20, 12), spacing_xyz=(1.5, 1.5, 2.0))
    image = sitk.Cast(ph.image, sitk.sitkInt16)
    folder = tmp_path / "dicom"
    folder.mkdir()
    direction = image.GetDirection()
    for k in range(image.GetDepth()):
        sl = image[:, :, k]
        pos = image.TransformIndexToPhysicalPoint((0, 0, k))
        for tag, value in (
            ("0008|0060", "CT"),
            ("0020|000d", "1.2.826.0.1.3680043.2.1125.1"),
            ("0020|000e", "1.2.826.0.1.3680043.2.1125.2"),
            ("0020|0032", "\\".join(f"{x:.4f}" for x in pos)),
            ("0020|0037", "\\".join(f"{x:.6f}" for x in (*direction[0:7:3], *direction[1:8:3]))),
            ("0020|0013", str(k + 1)),
            ("0008|0018", f"1.2.826.0.1.3680043.2.1125.3.{k + 1}"),
            ("0028|1052", "0"),
            ("0028|1053", "1"),
        ):
            sl.SetMetaData(tag, value)
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()  # one series: keep our series UID instead of a new one per file
        writer.SetFileName(str(folder / f"slice{k:03d}.dcm"))
        writer.Execute(sl)
    # GDCM's DICOM writer (used only here, to make the series) switches the process locale to "C", which would
    # leave every later test's text I/O defaulting to ASCII; reading (what yolo_spine does) leaves it alone.
    locale.setlocale(locale.LC_ALL, saved)
    encoding = locale.getpreferredencoding(False)
    from yolo_spine.io.volume import read_image

    vol = read_image(folder)
    assert locale.getpreferredencoding(False) == encoding
    assert vol.GetSize() == image.GetSize()
    assert np.allclose(vol.GetSpacing(), image.GetSpacing(), atol=1e-3)
    assert np.allclose(vol.GetOrigin(), image.GetOrigin(), atol=1e-3)
    assert np.array_equal(sitk.GetArrayFromImage(vol), sitk.GetArrayFromImage(image))


def test_slice_planes_are_the_shared_names():
    """ct2yolo's plane geometry is keyed by the one PLANES tuple lift and the CLI validate against, in its order."""
    from yolo_spine.ct.slices import PLANE_AXES
    from yolo_spine.layout import PLANES

    assert tuple(PLANE_AXES) == PLANES
