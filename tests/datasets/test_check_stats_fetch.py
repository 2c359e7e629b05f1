"""check names every problem training would hit; stats counts in registry order; fetch with Roboflow mocked."""

from __future__ import annotations

import json
import shutil
import sys
import types
from pathlib import Path

import cv2
import pytest

from yolo_spine.datasets.check import check_dataset
from yolo_spine.datasets.fetch import fetch_dataset
from yolo_spine.datasets.stats import dataset_stats, plot_class_histogram
from yolo_spine.errors import UserError
from yolo_spine.registry import load_registry


@pytest.fixture
def broken(spine_dataset: Path, tmp_path: Path) -> Path:
    """A copy of the generated spine dataset with one of each problem."""
    root = tmp_path / "ds"
    shutil.copytree(spine_dataset.parent, root)
    data = (root / "data.yaml").read_text().replace(str(spine_dataset.parent), str(root))
    (root / "data.yaml").write_text(data)
    lbl = sorted((root / "labels" / "train").glob("*.txt"))
    lbl[0].write_text(lbl[0].read_text() + "30 0.1 0.1 0.2 0.1 0.2 0.2\n")  # class id >= nc
    lbl[1].write_text(lbl[1].read_text() + "3 0.5 0.5 0.1 0.1\n")  # box row mixed with polygons
    lbl[2].write_text("2 0.1 0.1 1.3 0.1 1.3 0.4\n")  # out of range
    lbl[3].write_text("2 0.1 0.1 0.2 0.2 0.3 0.3\n2 0.1 0.1 0.2 0.2 0.3 0.3\n")  # degenerate + duplicate
    lbl[4].unlink()  # missing label
    (root / "labels" / "val" / "ghost.txt").write_text("")  # orphan label
    (root / "images" / "train" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    (root / "labels" / "train" / "corrupt.txt").write_text("")
    # copies of one Roboflow source image in train and test: leakage
    img = next((root / "images" / "train").glob("*.png"))
    shutil.copy(img, root / "images" / "train" / "x_png.rf.0123456789abcdef0123456789abcdef.png")
    shutil.copy(img, root / "images" / "test" / "x_png.rf.fedcba9876543210fedcba9876543210.png")
    for s in ("train", "test"):
        for f in (root / "images" / s).glob("x_png.rf.*"):
            (root / "labels" / s / f"{f.stem}.txt").write_text("")
    (root / "manifest.json").unlink()
    return root / "data.yaml"


def test_check_passes_clean_dataset(spine_dataset: Path):
    rep = check_dataset(spine_dataset)
    assert rep.ok, [str(p) for p in rep.problems]
    assert rep.images == {"train": 8, "val": 2, "test": 2}


def test_check_lists_each_problem(broken: Path):
    msgs = [str(p) for p in check_dataset(broken).problems]
    text = "\n".join(msgs)
    for needle in (
        "class id 30 >= nc (26)",
        "box row(s) mixed with polygon rows",
        "outside [0, 1]",
        "degenerate polygon",
        "duplicate row",
        "label file missing",
        "orphan label file",
        "corrupt.png",
        "straddles splits train, test",
        "byte-identical",
    ):
        assert needle in text, f"{needle!r} not reported:\n{text}"


def test_check_cli_exit_codes(cli_main, broken: Path, spine_dataset: Path):
    bad = cli_main("check", broken)
    assert bad.returncode == 1 and "problem(s)" in bad.stdout
    good = cli_main("check", spine_dataset)
    assert good.returncode == 0 and good.stdout.startswith("ok:")
    missing = cli_main("check", broken.parent / "nope.yaml")
    assert missing.returncode == 2 and "not found" in missing.stderr and "Traceback" not in missing.stderr


def test_wrong_file_for_data_yaml_is_one_sentence(cli_main, spine_dataset: Path, tmp_path: Path):
    """An image, a folder, a YAML file of something else: each says what was expected, never "unexpected error"."""
    image = next((spine_dataset.parent / "images" / "val").glob("*.png"))
    other = tmp_path / "other.yaml"
    other.write_text("epochs: 3\n")
    cases = {
        image: "is not a dataset's data.yaml: give the data.yaml",
        spine_dataset.parent: f"is a folder; give the dataset's data.yaml; did you mean {spine_dataset}",
        other: "is not a dataset's data.yaml: it has no 'names'",
    }
    for command in ("stats", "check"):
        for path, expected in cases.items():
            proc = cli_main(command, path)
            assert proc.returncode != 0 and expected in proc.stderr, (command, path, proc.stderr)
            assert "unexpected" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_check_flags_alphabetical_names(spine_dataset: Path, tmp_path: Path):
    root = tmp_path / "ds"
    shutil.copytree(spine_dataset.parent, root)
    text = (root / "data.yaml").read_text().replace(str(spine_dataset.parent), str(root))
    text = text.replace("1: C2", "1: C2x")
    (root / "data.yaml").write_text(text)
    assert any("anatomical order" in p.message for p in check_dataset(root / "data.yaml").problems)


def test_stats_counts_and_histogram(spine_dataset: Path, tmp_path: Path, cli_main):
    st = dataset_stats(spine_dataset)
    reg = load_registry("spine")
    assert st.names == list(reg.names)
    n_rows = sum(len(p.read_text().splitlines()) for p in (spine_dataset.parent / "labels").rglob("*.txt"))
    assert sum(sum(c.values()) for c in st.instances.values()) == n_rows
    table = st.table().splitlines()
    listed = [line.split()[0] for line in table[1:-3]]
    assert listed == [n for n in reg.names if n in listed]  # registry order, never alphabetical
    png = plot_class_histogram(st, tmp_path / "h.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    proc = cli_main("stats", spine_dataset, "--out", tmp_path / "cli.png")
    assert proc.returncode == 0 and "instances" in proc.stdout
    cli_png = cv2.imread(str(tmp_path / "cli.png"), cv2.IMREAD_GRAYSCALE)
    assert cli_png is not None and cli_png.shape == cv2.imread(str(png), cv2.IMREAD_GRAYSCALE).shape
    assert cli_png.std() > 10  # bars and labels drawn, not a blank canvas


def _fake_roboflow(monkeypatch, fail: Exception | None = None) -> dict:
    calls: dict = {}

    class Version:
        def download(self, fmt, location, overwrite=True):
            calls["download"] = (fmt, location)
            if fail:
                raise fail
            Path(location, "train", "images").mkdir(parents=True)
            Path(location, "data.yaml").write_text("names: [c1]\n")

    class Project:
        def version(self, n):
            calls["version"] = n
            return Version()

    class Workspace:
        def project(self, p):
            calls["project"] = p
            return Project()

    class Roboflow:
        def __init__(self, api_key):
            calls["key"] = api_key

        def workspace(self, w):
            calls["workspace"] = w
            return Workspace()

    monkeypatch.setitem(sys.modules, "roboflow", types.SimpleNamespace(Roboflow=Roboflow))
    return calls


def test_fetch_with_mocked_roboflow(monkeypatch, tmp_path: Path):
    calls = _fake_roboflow(monkeypatch)
    monkeypatch.setenv("ROBOFLOW_API_KEY", "k123")
    out = fetch_dataset("ws", "spine-xray", 3, "coco-segmentation", out_root=tmp_path)
    assert out == tmp_path / "spine-xray-3" and (out / "data.yaml").read_text() == "names: [c1]\n"
    record = json.loads((out / "fetch.json").read_text())
    assert record["command"] == "fetch"
    assert {k: record["options"][k] for k in ("workspace", "project", "version", "format")} == {
        "workspace": "ws",
        "project": "spine-xray",
        "version": 3,
        "format": "coco-segmentation",
    }
    assert "k123" not in (out / "fetch.json").read_text()  # the API key is never recorded
    assert calls["key"] == "k123" and calls["download"][0] == "coco-segmentation" and calls["version"] == 3
    with pytest.raises(UserError, match="--overwrite"):
        fetch_dataset("ws", "spine-xray", 3, out_root=tmp_path)


def test_fetch_errors(monkeypatch, tmp_path: Path):
    monkeypatch.delenv("ROBOFLOW_API_KEY", raising=False)
    with pytest.raises(UserError, match="no Roboflow API key"):
        fetch_dataset("ws", "p", 1, out_root=tmp_path)
    _fake_roboflow(monkeypatch, fail=ConnectionError("Max retries exceeded with url: /?api_key=rfSecret123"))
    with pytest.raises(UserError, match="cannot reach Roboflow") as err:
        fetch_dataset("ws", "p", 1, api_key="rfSecret123", out_root=tmp_path)
    assert "api_key=***" in str(err.value)
    _fake_roboflow(monkeypatch, fail=RuntimeError("This version does not exist"))
    with pytest.raises(UserError, match="does not exist"):
        fetch_dataset("ws", "p", 1, api_key="k", out_root=tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_fetch_cli_without_key_or_network(cli_main, tmp_path: Path):
    env = {"ROBOFLOW_API_KEY": ""}
    proc = cli_main("fetch", "--workspace", "w", "--project", "p", "--version", "1", "--out", tmp_path, env=env)
    assert proc.returncode == 2 and "API key" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli_main(
        "fetch",
        "--workspace",
        "w",
        "--project",
        "p",
        "--version",
        "1",
        "--api-key",
        "rfSecret123",
        "--out",
        tmp_path,
        offline=True,
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert len([line for line in proc.stderr.splitlines() if "error:" in line]) == 1
    assert "rfSecret123" not in proc.stderr  # the key never appears in messages


def test_check_reports_a_corrupt_image_after_ultralytics_is_imported(broken: Path):
    """Ultralytics patches PIL's Image.open process-wide (a pi-heif retry that raises ImportError offline):
    a corrupt image must still be reported, not crash the check (as in `serve` or a notebook)."""
    from yolo_spine.ultra import import_ultralytics

    import_ultralytics()
    text = "\n".join(str(p) for p in check_dataset(broken).problems)
    assert "corrupt.png" in text and "not a readable image" in text
