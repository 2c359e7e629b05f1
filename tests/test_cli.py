"""The command line itself: instant help, version, and the offline guard its subprocess tests rely on."""

import os
import subprocess
import sys
from pathlib import Path


def test_help_is_instant_and_imports_nothing_heavy():
    code = (
        "import sys; from yolo_spine.cli import build_parser; build_parser(); "
        "print(sorted(m for m in ('torch', 'ultralytics', 'cv2', 'SimpleITK') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_cli_version_and_no_command(cli_main):
    from yolo_spine import __version__

    version = cli_main("--version")
    assert version.returncode == 0 and version.stdout == f"yolo_spine {__version__}\n"
    bare = cli_main()
    assert bare.returncode == 0 and bare.stdout.startswith("usage: yolo_spine")
    for command in ("merge", "augment", "plan", "train", "val", "predict", "ct2yolo", "lift", "eval3d", "demo"):
        assert command in bare.stdout


def test_offline_subprocess_blocks_network(run_cli, tmp_path: Path):
    code = "import urllib.request; urllib.request.urlopen('https://pypi.org', timeout=5)"
    script = tmp_path / "net.py"
    script.write_text(code)
    offline_site = Path(__file__).parent / "_offline"
    env = {**os.environ, "PYTHONPATH": f"{offline_site}{os.pathsep}{os.environ['PYTHONPATH']}"}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env)
    assert proc.returncode != 0 and "blocked in an offline test" in proc.stderr
    from yolo_spine import __version__

    entry = run_cli("--version", offline=True)  # `python -m yolo_spine`, as installed, in a fresh process
    assert entry.returncode == 0 and entry.stdout == f"yolo_spine {__version__}\n"
