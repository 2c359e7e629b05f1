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
