"""Offline augmentation (issue 3): exact polygons, anatomy order, left/right swaps, complete datasets, CLI."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from yolo_spine.datasets.augment import (
    augment_dataset,
    augment_sample,
    build_pipeline,
    masks_to_instances,
    rasterise_instances,
)
from yolo_spine.datasets.check import check_dataset
from yolo_spine.datasets.options import AugmentOptions
from yolo_spine.errors import OutputExistsError, UserError
from yolo_spine.geometry import polygon_area, polygon_centroid, polygons_to_mask
from yolo_spine.io.labels import SegInstance, read_data_yaml, read_yolo_labels
from yolo_spine.registry import load_registry


def _blob(cx: float, cy: float, r: float, n: int = 48, seed: int = 0) -> np.ndarray:
    """An irregular star-shaped polygon in pixels (not axis-aligned anywhere)."""
    rng = np.random.default_rng(seed)
    ang = np.linspace(0, 2 * np.pi, n, endpoint=False)
    rad = r * (1 + 0.15 * np.sin(3 * ang) + 0.03 * rng.uniform(-1, 1, n))
    return np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], 1)


def _pipeline(**overrides: object):
    return build_pipeline(AugmentOptions.load("default", **overrides))


def _masks_by_class(instances: list[SegInstance], h: int, w: int) -> dict[int, np.ndarray]:
    out: dict[int, np.ndarray] = {}
    for inst in instances:
        m = polygons_to_mask([inst.polygon_xy(w, h)], h, w)
        out[inst.cls] = out.get(inst.cls, np.zeros_like(m)) | m
    return out


def _train_pairs(data_yaml: Path) -> list[tuple[np.ndarray, list[SegInstance], str]]:
    lay = read_data_yaml(data_yaml)
    out = []
    for img in sorted(lay.image_dirs["train"].glob("*.png")):
        pixels = cv2.imread(str(img), cv2.IMREAD_UNCHANGED)
        out.append((pixels, read_yolo_labels(lay.label_dirs["train"] / f"{img.stem}.txt").instances, img.name))
    return out


# ------------------------------------------------------------------------------------------------ pure core


def test_rasterise_and_decode_round_trip_keeps_each_overlapping_instance() -> None:
    h, w = 96, 128
    polys = [_blob(40, 40, 20, seed=1), _blob(55, 45, 18, seed=2), _blob(100, 70, 12, seed=3)]  # 0 and 1 overlap
    packed, has_pixels = rasterise_instances(polys, h, w)
    assert packed.shape == (h, w, 1) and has_pixels.all()
    insts, dropped = masks_to_instances(packed, [3, 5, 7], min_area_px=1)
    assert [i.cls for i in insts] == [3, 5, 7]
    assert sum(dropped.values()) == 0
    for poly, inst in zip(polys, insts, strict=True):
        np.testing.assert_array_equal(polygons_to_mask([inst.polygon_xy(w, h)], h, w), polygons_to_mask([poly], h, w))


def test_more_than_eight_instances_pack_into_several_channels() -> None:
    polys = [_blob(12 + 14 * (k % 8), 20 + 40 * (k // 8), 5, n=12, seed=k) for k in range(19)]
    packed, _ = rasterise_instances(polys, 100, 128)
    assert packed.shape[2] == 3
    insts, _ = masks_to_instances(packed, list(range(19)), min_area_px=1)
    assert [i.cls for i in insts] == list(range(19))


@pytest.mark.parametrize("angle", [7.0, 15.0, 33.0])
def test_rotated_polygon_mapped_back_keeps_area_within_2_percent(angle: float) -> None:
    h = w = 160
    poly = _blob(80, 80, 40)
    img = np.full((h, w), 100, np.uint8)
    forward = _pipeline(affine={"p": 1.0, "rotate": [angle, angle]})
    back = _pipeline(affine={"p": 1.0, "rotate": [-angle, -angle]})
    inst = SegInstance(2, poly / [w, h])
    there = augment_sample(img, [inst], forward, seed=1, min_area_px=1)
    assert there.params["angle_deg"] == pytest.approx(angle)
    again = augment_sample(there.pixels, there.instances, back, seed=2, min_area_px=1)
    assert len(again.instances) == 1 and again.instances[0].cls == 2
    a0 = polygon_area(poly)
    a1 = polygon_area(again.instances[0].polygon_xy(w, h))
    assert abs(a1 - a0) / a0 < 0.02, (a0, a1)
    # and it came back to the same place
    c1 = polygon_centroid(again.instances[0].polygon_xy(w, h))
    assert np.abs(c1 - polygon_centroid(poly)).max() < 1.0


def test_no_vertex_leaves_the_unit_square_and_pieces_are_counted() -> None:
    h = w = 128
    # A "U" opening to the right; a shift to the left pushes its base out, so its two arms become two pieces.
    u_shape = np.array([[60, 20], [126, 20], [126, 40], [80, 40], [80, 88], [126, 88], [126, 108], [60, 108]], float)
    corner = _blob(6, 6, 10, seed=4)  # touching the frame; pushed wholly out by the shift
    far = _blob(110, 64, 6, n=16, seed=5)  # stays in
    insts = [SegInstance(0, u_shape / [w, h]), SegInstance(1, corner / [w, h]), SegInstance(2, far / [w, h])]
    import albumentations as A

    shift = A.Compose(
        [A.Affine(translate_px={"x": (-85, -85), "y": (0, 0)}, p=1.0, mask_interpolation=cv2.INTER_NEAREST)],
        save_applied_params=True,
    )
    res = augment_sample(np.zeros((h, w), np.uint8), insts, shift, seed=0, min_area_px=16)
    for inst in res.instances:
        assert inst.polygon_xy_norm.min() >= 0.0 and inst.polygon_xy_norm.max() <= 1.0
    assert sorted(i.cls for i in res.instances) == [0, 0, 2]
    assert res.dropped["pieces"] == 1 and res.dropped["out_of_image"] == 1
    arms = [i for i in res.instances if i.cls == 0]
    for arm in arms:  # each arm is clipped at the left edge: x from 0 to 126 - 85
        xs = arm.polygon_xy(w, h)[:, 0]
        assert xs.min() == 0.0 and xs.max() == pytest.approx(41.0)
    # Rotation too: vertices stay inside the frame on every copy.
    pipe = _pipeline(affine={"p": 1.0, "rotate": 40.0, "scale": [1.2, 1.3], "translate": 0.2})
    for seed in range(6):
        out = augment_sample(np.zeros((h, w), np.uint8), insts, pipe, seed=seed, min_area_px=1)
        for inst in out.instances:
            assert inst.polygon_xy_norm.min() >= 0.0 and inst.polygon_xy_norm.max() <= 1.0


def test_split_instance_keeps_large_pieces_and_counts_small_ones() -> None:
    h = w = 64
    packed = np.zeros((h, w, 1), np.uint8)
    packed[5:25, 5:25, 0] |= 1  # instance 0: big piece …
    packed[40:50, 40:50, 0] |= 1  # … a second big piece …
    packed[60:62, 2:4, 0] |= 1  # … and a 4-pixel crumb
    packed[30:32, 30:32, 0] |= 2  # instance 1: only a crumb
    insts, dropped = masks_to_instances(packed, [4, 9, 6], min_area_px=16)
    assert [i.cls for i in insts] == [4, 4]
    assert dropped["pieces"] == 1 and dropped["small_piece"] == 1
    assert dropped["too_small"] == 1 and dropped["out_of_image"] == 1


def test_seeds_are_per_transform_and_reproducible() -> None:
    pipe = _pipeline(hflip=0.5, brightness_contrast={"p": 0.5}, gamma={"p": 0.5}, blur={"p": 0.5})
    img = np.random.default_rng(0).integers(0, 255, (32, 32), dtype=np.uint8)
    runs = [augment_sample(img, [], pipe, seed=s).params["transforms"] for s in range(40)]
    # albumentations' Compose seed alone gives every transform one draw: all applied or none
    assert any(0 < len(r) < 4 for r in runs)
    a = augment_sample(img, [], pipe, seed=11)
    b = augment_sample(img, [], pipe, seed=11)
    assert a.params == b.params and np.array_equal(a.pixels, b.pixels)


# ------------------------------------------------------------------------------------------------ flips


def test_brain_flip_puts_left_classes_exactly_where_right_ones_were(brain_dataset: Path) -> None:
    reg = load_registry("brain")
    mirror = reg.mirror_index_map()
    pipe = _pipeline(hflip=1.0)
    for pixels, insts, _ in _train_pairs(brain_dataset)[:3]:
        h, w = pixels.shape[:2]
        res = augment_sample(pixels, insts, pipe, seed=0, mirror_map=mirror, min_area_px=1)
        assert res.params["hflip"] is True
        np.testing.assert_array_equal(res.pixels, pixels[:, ::-1])
        before, after = _masks_by_class(insts, h, w), _masks_by_class(res.instances, h, w)
        assert set(after) == set(before)
        for cls, mask in before.items():
            name = reg.names[cls]
            twin = reg.index(reg.mirror[name])
            np.testing.assert_array_equal(after[twin], mask[:, ::-1], err_msg=f"{reg.names[twin]} vs flipped {name}")
        # the radiological convention still holds in the copy: patient-left regions on the image's right half
        for cls, mask in after.items():
            cx = np.nonzero(mask)[1].mean()
            assert (cx > w / 2) == reg.names[cls].endswith("_left")


def test_spine_flip_changes_no_class(spine_dataset: Path) -> None:
    reg = load_registry("spine")
    assert not reg.has_mirror_pairs
    pipe = _pipeline(hflip=1.0)
    for pixels, insts, _ in _train_pairs(spine_dataset)[:3]:
        h, w = pixels.shape[:2]
        res = augment_sample(pixels, insts, pipe, seed=0, mirror_map=None, min_area_px=1)
        assert sorted(i.cls for i in res.instances) == sorted(i.cls for i in insts)
        before, after = _masks_by_class(insts, h, w), _masks_by_class(res.instances, h, w)
        for cls, mask in before.items():
            np.testing.assert_array_equal(after[cls], mask[:, ::-1])


# ------------------------------------------------------------------------------------------------ datasets


@pytest.fixture(scope="module")
def spine_augmented(spine_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("aug") / "spine_aug"
    augment_dataset(spine_dataset, out, AugmentOptions.load("xray-spine", copies=3), seed=7, progress=False)
    return out


def test_xray_spine_keeps_c1_to_s1_top_to_bottom(spine_augmented: Path) -> None:
    lay = read_data_yaml(spine_augmented / "data.yaml")
    copies = sorted(lay.label_dirs["train"].glob("*_aug*.txt"))
    assert len(copies) == 8 * 3
    for lbl in copies:
        insts = read_yolo_labels(lbl).instances
        assert insts, lbl.name
        ys: dict[int, list[float]] = {}
        for inst in insts:
            ys.setdefault(inst.cls, []).append(float(polygon_centroid(inst.polygon_xy_norm)[1]))
            assert inst.polygon_xy_norm.min() >= 0.0 and inst.polygon_xy_norm.max() <= 1.0
        classes = sorted(ys)
        mean_y = [np.mean(ys[c]) for c in classes]
        assert mean_y == sorted(mean_y), f"{lbl.name}: classes {classes} not top to bottom"


def test_output_is_a_complete_checked_dataset(spine_dataset: Path, spine_augmented: Path) -> None:
    data = yaml.safe_load((spine_augmented / "data.yaml").read_text())
    assert "path" not in data  # splits resolve from the YAML's folder; no folder name is written
    assert data["anatomy"] == "spine" and list(data["names"].values()) == list(load_registry("spine").names)
    rep = check_dataset(spine_augmented / "data.yaml")
    assert rep.ok, [str(p) for p in rep.problems]
    assert rep.images == {"train": 8 * 4, "val": 2, "test": 2}
    src = read_data_yaml(spine_dataset)
    for split in ("val", "test"):  # untouched
        for folder, kind in ((src.image_dirs[split], "images"), (src.label_dirs[split], "labels")):
            files = sorted(folder.iterdir())
            assert files
            for f in files:
                assert (spine_augmented / kind / split / f.name).read_bytes() == f.read_bytes()
    for f in src.image_dirs["train"].iterdir():  # originals kept as they were
        assert (spine_augmented / "images" / "train" / f.name).read_bytes() == f.read_bytes()
    man = json.loads((spine_augmented / "manifest.json").read_text())
    assert len(man["copies"]) == 24
    c = man["copies"][0]
    assert c["file"].endswith("_aug1.png") and c["source"].startswith("images/train/")
    assert {"transforms", "hflip", "angle_deg", "seed"} <= set(c["params"])
    assert abs(c["params"]["angle_deg"]) <= 15.0
    assert not c["params"]["vflip"] and c["params"]["rot90"] == 0
    groups = {e["file"]: e["group"] for e in man["images"]}
    src_file = c["source"]
    assert groups[c["file"]] == groups[src_file]
    inst = man["summary"]["instances"]
    assert set(man["dropped"]) >= {"out_of_image", "small_piece", "too_small"}
    assert (
        inst["in"] - sum(v for k, v in inst["dropped"].items() if k != "small_piece") + inst["split_pieces"]
        == (inst["out"])
    )


def test_same_seed_same_bytes_whatever_the_workers(spine_dataset: Path, tmp_path: Path) -> None:
    a = augment_dataset(spine_dataset, tmp_path / "a", copies=1, seed=3, workers=1, progress=False)
    augment_dataset(spine_dataset, tmp_path / "b", copies=1, seed=3, workers=2, progress=False)
    augment_dataset(spine_dataset, tmp_path / "c", copies=1, seed=4, workers=1, progress=False)
    assert a["copies"] == 8
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*_aug*.*"))
    assert len(files) == 16
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
    assert any((tmp_path / "a" / f).read_bytes() != (tmp_path / "c" / f).read_bytes() for f in files)


def test_refuses_to_overwrite_without_flag(spine_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        augment_dataset(spine_dataset, out, copies=1, progress=False)
    assert (out / "keep.txt").read_text() == "mine"
    augment_dataset(spine_dataset, out, copies=1, overwrite=True, progress=False)
    assert not (out / "keep.txt").exists()
    assert "path" not in yaml.safe_load((out / "data.yaml").read_text())  # splits resolve from its own folder
    assert len(list((out / "images" / "train").glob("*_aug*"))) == 8  # one copy of each training image


def test_out_inside_input_is_refused(spine_dataset: Path) -> None:
    with pytest.raises(UserError, match="inside the input"):
        augment_dataset(spine_dataset, spine_dataset.parent / "aug", copies=1, progress=False)


def test_names_out_of_registry_order_are_refused(spine_dataset: Path, tmp_path: Path) -> None:
    data = yaml.safe_load(spine_dataset.read_text())
    names = list(data["names"].values())
    data["names"] = dict(enumerate(sorted(names)))  # Roboflow's alphabetical order
    bad = tmp_path / "data.yaml"
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(UserError, match="anatomical order"):
        augment_dataset(bad, tmp_path / "out", copies=1, progress=False)


# ------------------------------------------------------------------------------------------------ options


def test_unknown_key_is_an_error_with_suggestion(tmp_path: Path) -> None:
    cfg = tmp_path / "mine.yaml"
    cfg.write_text("hflp: 0.5\n")
    with pytest.raises(UserError, match="unknown key 'hflp' \\(did you mean 'hflip'\\?\\)"):
        AugmentOptions.load(cfg)
    cfg.write_text("affine:\n  p: 1.0\n  rotat: 5\n")
    with pytest.raises(UserError, match=r"unknown key 'affine\.rotat' \(did you mean 'affine\.rotate'\?\)"):
        AugmentOptions.load(cfg)
    with pytest.raises(UserError, match="did you mean 'xray-spine'"):
        AugmentOptions.load("xray-spin")


def test_bad_values_are_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"hflip = 1\.5 is out of range: expected a number in \[0, 1\]"):
        AugmentOptions.load("default", hflip=1.5)
    with pytest.raises(UserError, match="copies = 0 is out of range: expected a whole number of at least 1"):
        AugmentOptions.load("default", copies=0)
    with pytest.raises(UserError, match=r"clahe\.clip_limit = \[3, 1\] is not valid: .* with low <= high"):
        AugmentOptions.load("default", clahe={"clip_limit": [3, 1]})
    with pytest.raises(UserError, match=r"affine\.rotate = -5 is not valid: expected a number in \[0, 180\]"):
        AugmentOptions.load("default", affine={"rotate": -5})
    assert AugmentOptions.load("default", affine={"rotate": [-5, 10]}).affine.rotate == (-5.0, 10.0)


#: Option → the albumentations transform it turns on, in the pipeline's order (spatial first, then intensity).
TRANSFORM_OF_OPTION = {
    "hflip": "HorizontalFlip",
    "vflip": "VerticalFlip",
    "rot90": "RandomRotate90",
    "affine": "Affine",
    "brightness_contrast": "RandomBrightnessContrast",
    "clahe": "CLAHE",
    "gamma": "RandomGamma",
    "noise": "GaussNoise",
    "blur": "Blur",
}


@pytest.mark.parametrize("preset", ["xray-spine", "xray-teeth", "ct-slice"])
def test_every_shipped_preset_builds_what_its_yaml_asks_for(preset: str) -> None:
    """Read the preset file itself (over default.yaml): each transform it turns on is in the pipeline with its
    probability and ranges, in order, and nothing else is; a dropped preset key or transform would show."""
    folder = Path(__file__).resolve().parents[2] / "configs" / "augment"
    default = yaml.safe_load((folder / "default.yaml").read_text())
    own = yaml.safe_load((folder / f"{preset}.yaml").read_text())

    def asked(key: str, field: str = "p") -> object:
        value = own.get(key, default[key])
        return value.get(field, default[key][field]) if isinstance(value, dict) else value

    pipeline = build_pipeline(AugmentOptions.load(preset))
    expected = [(name, asked(key)) for key, name in TRANSFORM_OF_OPTION.items() if asked(key) > 0]
    assert [(type(t).__name__, t.p) for t in pipeline.transforms] == expected
    assert asked("vflip") == 0 and asked("rot90") == 0  # no shipped preset breaks the top-to-bottom order
    affine = next(t for t in pipeline.transforms if type(t).__name__ == "Affine")
    rotate, translate = float(asked("affine", "rotate")), float(asked("affine", "translate"))
    assert affine.rotate == (-rotate, rotate)
    assert affine.scale == {"x": tuple(asked("affine", "scale")), "y": tuple(asked("affine", "scale"))}
    if translate > 0:
        assert affine.translate_percent == {"x": (-translate, translate), "y": (-translate, translate)}


def test_order_breaking_needs_the_flag_and_warns(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--allow-order-breaking"):
        AugmentOptions.load("xray-spine", vflip=0.5)
    with caplog.at_level(logging.WARNING, logger="yolo_spine"):
        opts = AugmentOptions.load("xray-spine", vflip=0.5, rot90=0.5, allow_order_breaking=True)
    assert "confuse neighbouring levels" in caplog.text
    names = [type(t).__name__ for t in build_pipeline(opts).transforms]
    assert "VerticalFlip" in names and "RandomRotate90" in names


def test_user_yaml_preset_flip_only_on_brain_dataset(brain_dataset: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "flip.yaml"
    cfg.write_text("copies: 1\nhflip: 1.0\nmin_area_px: 1\n")
    out = tmp_path / "brain_aug"
    summary = augment_dataset(brain_dataset, out, AugmentOptions.load(cfg), progress=False)
    assert summary["copies"] == 6 and sum(summary["instances"]["dropped"].values()) == 0
    reg = load_registry("brain")
    lay = read_data_yaml(brain_dataset)
    for img in sorted(lay.image_dirs["train"].glob("*.png"))[:2]:
        h, w = cv2.imread(str(img), cv2.IMREAD_UNCHANGED).shape[:2]
        before = _masks_by_class(read_yolo_labels(lay.label_dirs["train"] / f"{img.stem}.txt").instances, h, w)
        after = _masks_by_class(read_yolo_labels(out / "labels" / "train" / f"{img.stem}_aug1.txt").instances, h, w)
        for cls, mask in before.items():
            twin = reg.index(reg.mirror[reg.names[cls]])
            np.testing.assert_array_equal(after[twin], mask[:, ::-1])
    assert check_dataset(out / "data.yaml").ok


# ------------------------------------------------------------------------------------------------ CLI


def test_cli_augment_then_check(cli_main, spine_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli_aug"
    args = ["augment", spine_dataset, "--out", out, "--copies", "1", "--config", "xray-spine", "--seed", "2"]
    proc = cli_main(*args, "--set", "blur.p=0", offline=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "8 copies" in proc.stdout
    options = json.loads((out / "manifest.json").read_text())["options"]
    assert options["config"] == "xray-spine" and options["copies"] == 1 and options["blur"]["p"] == 0
    assert options["options_from"]["copies"] == "flag" and options["options_from"]["blur.p"] == "--set"
    assert options["options_from"]["hflip"] == "config" and "jpeg_quality" not in options["options_from"]
    chk = cli_main("check", out / "data.yaml")
    assert chk.returncode == 0 and chk.stdout.startswith("ok:"), chk.stdout + chk.stderr
    assert len(list((out / "labels" / "train").glob("*_aug*.txt"))) == 8
    again = cli_main(*args)
    assert again.returncode != 0 and "--overwrite" in again.stderr
    bad = cli_main(*args, "--overwrite", "--config", "xray-spin")
    assert bad.returncode != 0 and "did you mean 'xray-spine'" in bad.stderr


def test_colour_jpeg_dataset_keeps_type_and_passes_check(spine_dataset: Path, tmp_path: Path) -> None:
    import shutil

    src = tmp_path / "jpg"
    shutil.copytree(spine_dataset.parent, src)
    for png in (src / "images" / "train").glob("*.png"):  # Roboflow-style RGB JPEG exports
        cv2.imwrite(str(png.with_suffix(".jpg")), cv2.cvtColor(cv2.imread(str(png), 0), cv2.COLOR_GRAY2BGR))
        png.unlink()
    data = yaml.safe_load((src / "data.yaml").read_text())
    data["path"] = str(src)
    (src / "data.yaml").write_text(yaml.safe_dump(data))
    (src / "manifest.json").unlink()
    out = tmp_path / "out"
    augment_dataset(src / "data.yaml", out, copies=1, progress=False)
    copies = sorted((out / "images" / "train").glob("*_aug1.*"))
    assert len(copies) == 8 and all(p.suffix == ".jpg" for p in copies)
    assert cv2.imread(str(copies[0]), cv2.IMREAD_UNCHANGED).shape == (128, 128, 3)
    rep = check_dataset(out / "data.yaml")
    assert rep.ok, [str(p) for p in rep.problems]


def test_rows_that_cannot_be_augmented_are_counted(spine_dataset: Path, tmp_path: Path) -> None:
    import shutil

    src = tmp_path / "src"
    shutil.copytree(spine_dataset.parent, src)
    data = yaml.safe_load((src / "data.yaml").read_text())
    data["path"] = str(src)
    (src / "data.yaml").write_text(yaml.safe_dump(data))
    lbl = sorted((src / "labels" / "train").glob("*.txt"))[0]
    n_rows = len(lbl.read_text().splitlines())
    with lbl.open("a") as f:  # a box row, a malformed row, a class id beyond the registry
        f.write("0 0.5 0.5 0.1 0.1\n3 0.1 0.2 0.3\n99 0.1 0.1 0.2 0.1 0.2 0.2\n")
    summary = augment_dataset(src / "data.yaml", tmp_path / "out", copies=2, progress=False)
    dropped = summary["instances"]["dropped"]
    assert dropped["not_polygon"] == 2 * 2 and dropped["unknown_class"] == 2
    copy = tmp_path / "out" / "labels" / "train" / f"{lbl.stem}_aug1.txt"
    assert all(int(r.split()[0]) < 26 for r in copy.read_text().splitlines())
    assert len(copy.read_text().splitlines()) <= n_rows + summary["instances"]["split_pieces"]
    assert (tmp_path / "out" / "labels" / "train" / lbl.name).read_bytes() == lbl.read_bytes()  # original as is
