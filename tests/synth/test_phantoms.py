"""The generated X-ray phantoms: anatomical order, registry names, mirror symmetry (radiological convention)."""

from pathlib import Path

import numpy as np
import yaml

from yolo_spine.io.labels import read_yolo_labels
from yolo_spine.registry import load_registry


def test_spine_phantom_order_top_to_bottom(spine_dataset: Path):
    data = yaml.safe_load(spine_dataset.read_text())
    reg = load_registry("spine")
    assert data["names"] == reg.names_dict and data["anatomy"] == "spine"
    for lbl in (spine_dataset.parent / "labels" / "train").glob("*.txt"):
        inst = read_yolo_labels(lbl).instances
        assert len(inst) >= 6
        ys = [i.polygon_xy_norm[:, 1].mean() for i in sorted(inst, key=lambda i: i.cls)]
        assert ys == sorted(ys)
        assert all(i.polygon_xy_norm.min() >= 0 and i.polygon_xy_norm.max() <= 1 for i in inst)


def test_brain_phantom_is_mirror_symmetric(brain_dataset: Path):
    reg = load_registry("brain")
    lbl = next((brain_dataset.parent / "labels" / "train").glob("*.txt"))
    inst = {reg.names[i.cls]: i.polygon_xy_norm.mean(0) for i in read_yolo_labels(lbl).instances}
    for name, c in inst.items():
        if name.endswith("_left"):
            assert c[0] > 0.5  # radiological convention: patient left on image right
            m = inst[reg.mirror[name]]
            np.testing.assert_allclose([1 - c[0], c[1]], m, atol=0.02)
