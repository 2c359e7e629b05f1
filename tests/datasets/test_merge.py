"""merge: registry order, leakage-free splits, dedup, windowing, accounting, atomic and safe outputs."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from tests.datasets_utils import (
    ALPHABETICAL_SPINE,
    FakeImage,
    make_coco_export,
    make_yolo_export,
    picture,
    rf_name,
    square,
    zip_folder,
)
from yolo_spine.datasets.check import check_dataset
from yolo_spine.datasets.merge import assign_splits, merge_exports
from yolo_spine.datasets.roboflow import roboflow_group
from yolo_spine.errors import OutputExistsError, UserError
from yolo_spine.io.labels import read_data_yaml
from yolo_spine.registry import load_registry


def _yolo_images() -> list[FakeImage]:
    """12 source images x 3 Roboflow copies in train, 3 in valid, 2 in test, plus the bad cases."""
    ims = []
    for s in range(12):
        for c in range(3):
            ims.append(
                FakeImage(
                    "train",
                    rf_name(f"case{s:02d}-ap", c),
                    [("c6", square(0.2, 0.2)), ("t1", square(0.2, 0.4)), ("l2", square(0.2, 0.6))],
                )
            )
    for s in range(3):
        ims.append(FakeImage("valid", rf_name(f"val{s}", 0), [("c7", square(0.3, 0.3))]))
    for s in range(2):
        ims.append(FakeImage("test", rf_name(f"test{s}", 0), [("t10", square(0.3, 0.3))]))
    ims.append(
        FakeImage(
            "train",
            rf_name("edge", 0),
            [
                ("l1", [0.9, 0.5, 1.2, 0.5, 1.2, 0.7, 0.9, 0.7]),  # partly outside: clipped, kept
                ("l1", [1.1, 0.1, 1.3, 0.1, 1.3, 0.3]),  # wholly outside: out_of_image
                ("l1", [0.1, 0.1, 0.2, 0.2, 0.3, 0.3]),  # three collinear points: zero area, degenerate
                ("t2", None),  # a box row mixed with polygons
                ("t2", square(0.5, 0.5)),
                ("t2", square(0.5, 0.5)),  # exact duplicate row
            ],
        )
    )
    ims.append(FakeImage("train", rf_name("broken", 0), [("c1", square(0.1, 0.1))], raw_bytes=b"\xff\xd8garbage"))
    return ims


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("rf")
    yolo = make_yolo_export(base / "spine-yolo", ALPHABETICAL_SPINE, _yolo_images(), orphans=1)
    # COCO export: other spellings, category 0 = project, a box-only annotation, an RLE mask,
    # and one image that is byte-identical to an image of the YOLO export (the same X-ray exported twice).
    dup_src = yolo / "train" / "images" / rf_name("case03-ap", 1)
    coco_imgs = [
        FakeImage("train", rf_name(f"pat{s}", c), [("C-6", square(0.2, 0.2)), ("Cervical 7", square(0.2, 0.4))])
        for s in range(4)
        for c in range(2)
    ]
    coco_imgs.append(FakeImage("train", rf_name("pat9", 0), [("C-6", None)]))
    coco_imgs.append(
        FakeImage(
            "valid", "again_jpg.rf." + "a" * 32 + ".jpg", [("C-6", square(0.5, 0.5))], raw_bytes=dup_src.read_bytes()
        )
    )
    mask = np.zeros((48, 48), bool)
    mask[5:20, 5:20] = True
    mask[30:40, 30:45] = True  # two parts -> one ring
    coco_imgs.append(FakeImage("test", rf_name("rle0", 0), []))
    coco = make_coco_export(
        base / "spine-coco", "spine-xray", ["C-6", "Cervical 7"], coco_imgs, rle={rf_name("rle0", 0): mask}
    )
    # a 16-bit PNG (12-bit X-ray) export, zipped
    ramp = np.tile(np.linspace(0, 4095, 64).astype(np.uint16), (64, 1))
    _, buf = cv2.imencode(".png", ramp)
    hb = make_yolo_export(
        base / "hb-yolo",
        ["L5", "S1"],
        [FakeImage("train", rf_name("xr12", 0, "png"), [("S1", square(0.4, 0.4))], raw_bytes=buf.tobytes())],
    )
    return {"yolo": yolo, "coco": coco, "zip": zip_folder(hb, base / "hb-yolo.zip")}


@pytest.fixture(scope="module")
def merged(exports: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("merged") / "ds"
    summary = merge_exports([exports["yolo"], exports["coco"], exports["zip"]], out, anatomy="spine", seed=0, workers=1)
    return out, summary


def _manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def test_registry_order_and_no_folder_in_data_yaml(merged):
    out, _ = merged
    text = (out / "data.yaml").read_text()
    data = yaml.safe_load(text)
    assert "path" not in data and str(out.parent) not in text  # splits resolve from the YAML's folder
    assert read_data_yaml(out / "data.yaml").image_dirs["train"] == out.resolve() / "images" / "train"
    assert list(data["names"].values()) == list(load_registry("spine").names)
    assert data["anatomy"] == "spine" and data["nc"] == 26
    # a label that was "t1" (id 17 in the alphabetical export) is T1 = id 7 now
    reg = load_registry("spine")
    lbl = next((out / "labels").glob(f"*/spine-yolo__{Path(rf_name('case00-ap', 0)).stem}.txt"))
    classes = [int(line.split()[0]) for line in lbl.read_text().splitlines()]
    assert classes == [reg.index("C6"), reg.index("T1"), reg.index("L2")]


def test_no_group_straddles_splits(merged):
    out, _ = merged
    by_group = defaultdict(set)
    for e in _manifest(out)["images"]:
        if e["status"] in ("kept", "duplicate"):
            by_group[e["group"]].add(e["split"])
    assert by_group and all(len(s) == 1 for s in by_group.values())
    # every copy of one Roboflow source image is in one split
    per_stem = defaultdict(set)
    for split_dir in (out / "images").iterdir():
        for f in split_dir.iterdir():
            per_stem[roboflow_group(f.name)].add(split_dir.name)
    assert all(len(s) == 1 for s in per_stem.values())
    assert check_dataset(out / "data.yaml").ok


def test_same_image_exported_twice_is_stored_once_in_one_group(merged, exports):
    out, _ = merged
    m = _manifest(out)
    dups = [e for e in m["images"] if e["status"] == "duplicate"]
    assert len(dups) == 1 and dups[0]["source"].startswith("spine-coco/")
    first = next(e for e in m["images"] if e.get("file") == dups[0]["duplicate_of"])
    assert first["group"] == dups[0]["group"] and first["split"] == dups[0]["split"]
    assert m["instances"]["dropped"]["duplicate_image"] == 1


def test_every_instance_and_image_accounted(merged, exports):
    out, summary = merged
    m = _manifest(out)
    inst = m["instances"]
    n_yolo = sum(len(im.rows) for im in _yolo_images()) + 1  # + orphan label row
    n_coco = 4 * 2 * 2 + 1 + 1 + 1  # polygons, box-only, duplicate image, RLE
    n_hb = 1
    assert inst["in"] == n_yolo + n_coco + n_hb
    assert inst["kept"] + sum(inst["dropped"].values()) == inst["in"]
    d = inst["dropped"]
    assert d["box_row"] == 2 and d["out_of_image"] == 1 and d["degenerate"] == 1 and d["duplicate_row"] == 1
    assert d["unreadable_image"] == 1 and d["orphan_label"] == 1
    assert inst["clipped"] == 1
    assert inst["remapped"]["c6->C6"] == 36 and inst["remapped"]["Cervical 7->C7"] == 8
    statuses = [e["status"] for e in m["images"]]
    assert statuses.count("unreadable") == 1 and statuses.count("orphan_label") == 1
    n_files = sum(1 for p in (out / "images").rglob("*") if p.is_file())
    assert n_files == statuses.count("kept") == sum(summary["images"].values())
    # kept label rows equal the manifest's kept count
    rows = sum(len(p.read_text().splitlines()) for p in (out / "labels").rglob("*.txt"))
    assert rows == inst["kept"]
    # per-split class counts add up too
    assert sum(sum(c.values()) for c in m["summary"]["class_counts"].values()) == inst["kept"]
    assert m["versions"]["yolo_spine"] and m["sources"][2]["sha256"]  # the zip is hashed


def test_clipped_polygon_inside_unit_square(merged):
    out, _ = merged
    for p in (out / "labels").rglob("*.txt"):
        for line in p.read_text().splitlines():
            xy = np.array(line.split()[1:], float)
            assert len(xy) >= 6 and xy.min() >= 0 and xy.max() <= 1


def test_images_hard_linked_not_reencoded(merged, exports):
    out, _ = merged
    name = rf_name("case00-ap", 0)
    src = exports["yolo"] / "train" / "images" / name
    dst = next((out / "images").glob(f"*/spine-yolo__{name}"))
    assert dst.read_bytes() == src.read_bytes()
    assert os.stat(dst).st_ino == os.stat(src).st_ino


def test_16bit_png_windowed_to_8bit(merged):
    out, _ = merged
    png = next((out / "images").glob("*/hb-yolo__xr12_png.rf.*.png"))
    img = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
    assert img.dtype == np.uint8 and img.min() == 0 and img.max() == 255
    entry = next(e for e in _manifest(out)["images"] if e.get("file", "") and "xr12" in e["file"])
    assert entry["converted"]


def test_rle_annotation_becomes_one_polygon(merged):
    out, _ = merged
    lbl = next((out / "labels").glob(f"*/spine-coco__{Path(rf_name('rle0', 0)).stem}.txt"))
    rows = lbl.read_text().splitlines()
    assert len(rows) == 1 and int(rows[0].split()[0]) == load_registry("spine").index("C6")


def test_splits_follow_fractions_and_seed():
    sizes = {f"g{i}": 1 + i % 3 for i in range(200)}
    a = assign_splits(sizes, (0.8, 0.1, 0.1), seed=0)
    assert a == assign_splits(sizes, (0.8, 0.1, 0.1), seed=0)
    assert a != assign_splits(sizes, (0.8, 0.1, 0.1), seed=1)
    tot = defaultdict(int)
    for g, s in a.items():
        tot[s] += sizes[g]
    n = sum(sizes.values())
    assert abs(tot["train"] / n - 0.8) < 0.02 and abs(tot["val"] / n - 0.1) < 0.02


def test_unknown_names_stop_before_writing(tmp_path: Path):
    src = make_yolo_export(
        tmp_path / "odd",
        ["c1", "cervical-8", "thing"],
        [FakeImage("train", rf_name("a", 0), [("cervical-8", square(0.1, 0.1)), ("thing", square(0.3, 0.3))])],
    )
    out = tmp_path / "out"
    with pytest.raises(UserError) as err:
        merge_exports([src], out)
    msg = str(err.value)
    assert "'cervical-8'" in msg and "'thing'" in msg and "--map" in msg and "--drop" in msg
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["odd"]
    summary = merge_exports([src], out, maps={"cervical-8": "T1"}, drops=["thing"])
    assert summary["instances"]["kept"] == 1 and summary["instances"]["dropped"]["unmapped"] == 1
    assert summary["instances"]["remapped"] == {"cervical-8->T1": 1}


def test_no_overwrite_and_atomic_failure(tmp_path: Path, exports, monkeypatch):
    out = tmp_path / "ds"
    merge_exports([exports["zip"]], out)
    before = sorted(p.name for p in out.rglob("*"))
    with pytest.raises(OutputExistsError, match="--overwrite"):
        merge_exports([exports["zip"]], out)
    # an interruption half-way leaves the old dataset intact and no temporary folder behind
    import yolo_spine.datasets.merge as merge_mod

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(merge_mod, "format_labels", boom)
    with pytest.raises(KeyboardInterrupt):
        merge_exports([exports["zip"]], out, overwrite=True)
    assert sorted(p.name for p in out.rglob("*")) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]
    monkeypatch.undo()
    merge_exports([exports["zip"]], out, overwrite=True)


def test_keep_splits_moves_leaky_groups(tmp_path: Path):
    ims = [
        FakeImage("train", rf_name("leaky", 0), [("c1", square(0.1, 0.1))]),
        FakeImage("train", rf_name("leaky", 1), [("c1", square(0.1, 0.1))]),
        FakeImage("valid", rf_name("leaky", 2), [("c1", square(0.1, 0.1))]),
        FakeImage("valid", rf_name("clean", 0), [("c2", square(0.1, 0.1))]),
    ]
    src = make_yolo_export(tmp_path / "k", ALPHABETICAL_SPINE, ims)
    s = merge_exports([src], tmp_path / "o", keep_splits=True)
    assert s["leakage_fixed"] == {"groups": 1, "images_moved": 1}
    assert s["images"] == {"train": 3, "val": 1, "test": 0}


def test_cli_merge_and_errors(cli_main, exports, tmp_path: Path):
    out = tmp_path / "cli"
    proc = cli_main("merge", exports["zip"], "--anatomy", "spine", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "merged into" in proc.stdout
    assert check_dataset(out / "data.yaml").ok
    assert list(yaml.safe_load((out / "data.yaml").read_text())["names"].values()) == list(load_registry("spine").names)
    kept = _manifest(out)["instances"]["kept"]
    assert kept > 0 and kept == sum(len(p.read_text().splitlines()) for p in (out / "labels").rglob("*.txt"))
    again = cli_main("merge", exports["zip"], "--out", out)
    assert again.returncode != 0 and "already exists" in again.stderr and "Traceback" not in again.stderr
    missing = cli_main("merge", tmp_path / "nope", "--out", tmp_path / "x")
    assert missing.returncode != 0 and "source not found" in missing.stderr and "Traceback" not in missing.stderr
    notexport = tmp_path / "empty"
    notexport.mkdir()
    proc = cli_main("merge", notexport, "--out", tmp_path / "y")
    assert proc.returncode != 0 and "not a Roboflow export" in proc.stderr
    assert len([line for line in proc.stderr.splitlines() if "error:" in line]) == 1


def test_picture_helper_differs():
    assert picture(1).tobytes() != picture(2).tobytes()
