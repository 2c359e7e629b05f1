import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

from yolo_spine.cli import main
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


def test_help_is_instant_and_imports_nothing_heavy():
    code = (
        "import sys; from yolo_spine.cli import build_parser; build_parser(); "
        "print(sorted(m for m in ('torch', 'ultralytics', 'cv2', 'SimpleITK') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_cli_version_and_no_command(capsys):
    assert main([]) == 0
    proc = subprocess.run([sys.executable, "-m", "yolo_spine", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and "yolo_spine" in proc.stdout


def test_offline_subprocess_blocks_network(run_cli, tmp_path: Path):
    code = "import urllib.request; urllib.request.urlopen('https://pypi.org', timeout=5)"
    script = tmp_path / "net.py"
    script.write_text(code)
    offline_site = Path(__file__).parent / "_offline"
    env = {**os.environ, "PYTHONPATH": f"{offline_site}{os.pathsep}{os.environ['PYTHONPATH']}"}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env)
    assert proc.returncode != 0 and "blocked in an offline test" in proc.stderr
    assert run_cli("--version", offline=True).returncode == 0
