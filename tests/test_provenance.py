import json
from pathlib import Path

from yolo_spine.io.atomic import write_json_atomic
from yolo_spine.provenance import run_manifest, sha256_files


def test_run_manifest_hashes_inputs(tmp_path: Path):
    f = tmp_path / "in.txt"
    f.write_text("hello")
    m = run_manifest("merge", {"out": tmp_path, "seed": 0}, inputs={"src": f})
    assert m["inputs"]["src"]["sha256"] == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    assert m["inputs"]["src"]["name"] == "in.txt" and "path" not in m["inputs"]["src"]
    assert m["versions"]["yolo_spine"] and m["options"]["out"] == "<folder>"  # folders are not recorded by name
    write_json_atomic(tmp_path / "run.json", m)
    assert json.loads((tmp_path / "run.json").read_text())["command"] == "merge"


def test_sha256_files_depends_on_names_and_bytes(tmp_path: Path):
    (tmp_path / "a.txt").write_text("1")
    (tmp_path / "b.txt").write_text("2")
    h1 = sha256_files(tmp_path.glob("*.txt"), tmp_path)
    (tmp_path / "b.txt").write_text("3")
    assert sha256_files(tmp_path.glob("*.txt"), tmp_path) != h1
