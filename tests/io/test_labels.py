from pathlib import Path

import numpy as np

from yolo_spine.io.labels import SegInstance, parse_label_text, read_yolo_labels, write_yolo_labels


def test_parse_ground_truth_rows():
    text = "0 0.1 0.1 0.2 0.1 0.2 0.2\n3 0.5 0.5 0.1 0.1\n\n2 a b c\n1 0.1 0.1 0.2\n-1 0.1 0.1 0.2 0.1 0.2 0.2\n"
    lf = parse_label_text(text)
    assert len(lf.instances) == 1 and lf.instances[0].cls == 0
    assert lf.instances[0].polygon_xy_norm.shape == (3, 2)
    assert lf.box_rows == 1
    assert [n for n, _ in lf.malformed] == [4, 5, 6]


def test_prediction_rows_with_conf_round_trip(tmp_path: Path):
    inst = [SegInstance(4, np.array([[0.1, 0.2], [0.3, 0.2], [0.3, 0.4]]), 0.87654), SegInstance(0, np.zeros((3, 2)))]
    p = write_yolo_labels(tmp_path / "a.txt", inst[:1])
    back = read_yolo_labels(p, with_conf=True).instances[0]
    assert back.cls == 4 and abs(back.conf - 0.87654) < 1e-5
    np.testing.assert_allclose(back.polygon_xy_norm, inst[0].polygon_xy_norm)
    auto = read_yolo_labels(p, with_conf=None).instances[0]
    assert auto.conf is not None


def test_missing_file_is_empty(tmp_path: Path):
    assert read_yolo_labels(tmp_path / "none.txt").instances == []


def test_data_yaml_round_trip(tmp_path):
    """read_data_yaml reads what write_data_yaml writes: folders per split, names in id order, the anatomy."""
    from yolo_spine.io.labels import read_data_yaml, write_data_yaml
    from yolo_spine.layout import SPLITS

    path = write_data_yaml(tmp_path, {0: "C7", 1: "T1", 2: "T2"}, "spine", splits=("train", "val"))
    lay = read_data_yaml(path)
    assert lay.names == ["C7", "T1", "T2"] and lay.nc == 3 and lay.anatomy == "spine"
    assert lay.image_dirs == {s: tmp_path / "images" / s for s in ("train", "val")}
    assert lay.label_dirs == {s: tmp_path / "labels" / s for s in ("train", "val")}
    assert list(read_data_yaml(write_data_yaml(tmp_path, {0: "C7"}, "spine")).image_dirs) == list(SPLITS)


def test_data_yaml_names_no_folder_and_moves_with_the_dataset(tmp_path, monkeypatch):
    """A written data.yaml holds no path (no absolute one that could name a user's folders); the dataset can move.

    Ultralytics' ``check_det_dataset`` takes the YAML's folder as the root when ``path`` is absent (the training
    and validation of the ``tiny_model`` fixture read such a file); an old file with an absolute ``path`` still reads.
    """
    import yaml

    from yolo_spine.io.labels import read_data_yaml, write_data_yaml

    made = tmp_path / "patient_smith" / "ds"
    made.mkdir(parents=True)
    text = write_data_yaml(made, {0: "C7", 1: "T1"}, "spine").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    assert "path" not in data and "patient_smith" not in text and str(tmp_path) not in text
    assert all(not Path(data[s]).is_absolute() for s in ("train", "val", "test"))
    moved = tmp_path / "elsewhere"
    made.rename(moved)
    assert read_data_yaml(moved / "data.yaml").image_dirs["train"] == moved / "images" / "train"
    monkeypatch.chdir(tmp_path)  # a relative data.yaml path: the root is its folder, not that folder twice
    assert read_data_yaml(Path("elsewhere/data.yaml")).root == moved.resolve()
    old = tmp_path / "old.yaml"  # written before: an absolute path elsewhere
    old.write_text(yaml.safe_dump({"path": str(moved), "train": "images/train", "names": ["C7"]}))
    assert read_data_yaml(old).image_dirs["train"] == moved / "images" / "train"
