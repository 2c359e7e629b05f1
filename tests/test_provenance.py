import json
from pathlib import Path

import pytest

from yolo_spine.errors import OutputExistsError
from yolo_spine.provenance import atomic_output, run_manifest, sha256_files, write_json_atomic


def test_atomic_output_moves_into_place(tmp_path: Path):
    out = tmp_path / "ds"
    with atomic_output(out) as tmp:
        assert tmp != out and tmp.parent == out.parent
        (tmp / "a.txt").write_text("x")
        assert not out.exists()
    assert (out / "a.txt").read_text() == "x"
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]  # no temporary leftovers


def test_atomic_output_failure_leaves_nothing(tmp_path: Path):
    out = tmp_path / "ds"
    with pytest.raises(RuntimeError), atomic_output(out) as tmp:
        (tmp / "half.txt").write_text("x")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_atomic_output_refuses_then_overwrites(tmp_path: Path):
    out = tmp_path / "ds"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(OutputExistsError, match="--overwrite"), atomic_output(out):
        pass
    assert (out / "old.txt").exists()
    with atomic_output(out, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]


def test_atomic_output_single_file(tmp_path: Path):
    out = tmp_path / "seg.nii.gz"
    with atomic_output(out, is_dir=False) as tmp_file:
        tmp_file.write_bytes(b"abc")
    assert out.read_bytes() == b"abc"


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
