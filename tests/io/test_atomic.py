"""Atomic outputs: moved into place only on success, nothing half-written, modes that follow the user's umask."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from yolo_spine.errors import OutputExistsError, UserError
from yolo_spine.io.atomic import (
    ResumableOutput,
    atomic_output,
    give_folder_default_mode,
    in_place_output,
    write_bytes_atomic,
    write_json_atomic,
    write_text_atomic,
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o022, 0o027])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def test_atomic_output_moves_into_place(tmp_path: Path):
    out = tmp_path / "ds"
    with atomic_output(out) as tmp:
        assert tmp != out and tmp.parent == out.parent
        (tmp / "a.txt").write_text("x")
        assert not out.exists()
    assert (out / "a.txt").read_text() == "x"
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]  # no temporary leftovers


def test_atomic_output_failure_leaves_nothing(tmp_path: Path):
    out = tmp_path / "new" / "deeper" / "ds"
    with pytest.raises(RuntimeError), atomic_output(out) as tmp:
        (tmp / "half.txt").write_text("x")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []  # not even the parent folders it created


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
        (tmp_file.parent / "scratch.bin").write_bytes(b"only while working")
        tmp_file.write_bytes(b"abc")
    assert out.read_bytes() == b"abc"
    assert [p.name for p in tmp_path.iterdir()] == ["seg.nii.gz"]


def test_outputs_get_the_modes_a_plain_mkdir_and_open_give(tmp_path: Path, umask: int):
    os.mkdir(tmp_path / "plain_dir")
    (tmp_path / "plain_file").write_text("x")
    dir_mode, file_mode = mode(tmp_path / "plain_dir"), mode(tmp_path / "plain_file")
    assert (dir_mode, file_mode) == (0o777 & ~umask, 0o666 & ~umask)

    with atomic_output(tmp_path / "review") as tmp:  # a folder output with a JSON inside (metrics.json)
        write_json_atomic(tmp / "metrics.json", {"a": 1})
    assert mode(tmp_path / "review") == dir_mode
    assert mode(tmp_path / "review" / "metrics.json") == file_mode

    with atomic_output(tmp_path / "seg.nii.gz", is_dir=False) as tmp_file:  # a file output
        tmp_file.write_bytes(b"nii")
    assert mode(tmp_path / "seg.nii.gz") == file_mode

    write_json_atomic(tmp_path / "summary.json", {"b": 2})
    write_text_atomic(tmp_path / "summary.md", "# s\n")
    assert mode(tmp_path / "summary.json") == mode(tmp_path / "summary.md") == file_mode

    with in_place_output(tmp_path / "demo") as folder:
        (folder / "x").write_text("x")
    assert mode(tmp_path / "demo") == dir_mode

    run = ResumableOutput.start(tmp_path / "train")
    run.work.mkdir()
    os.chmod(run.work, 0o700)  # training keeps its work folder private (it holds full paths until it finishes)
    write_json_atomic(run.work / "run.json", {})
    write_bytes_atomic(run.work / "last.pt", b"\x00pt")
    give_folder_default_mode(run.work)
    run.commit()
    assert mode(tmp_path / "train") == dir_mode and mode(tmp_path / "train" / "run.json") == file_mode
    assert (
        mode(tmp_path / "train" / "last.pt") == file_mode and (tmp_path / "train" / "last.pt").read_bytes() == b"\x00pt"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["plain_dir", "plain_file", "review", "seg.nii.gz", "summary.json", "summary.md", "demo", "train"]
    )  # no probe folder left


def test_a_replaced_file_keeps_its_mode_as_open_would(tmp_path: Path):
    path = tmp_path / "run.json"
    path.write_text("{}")
    os.chmod(path, 0o640)
    write_json_atomic(path, {"x": 1})
    assert json.loads(path.read_text()) == {"x": 1} and mode(path) == 0o640
    with atomic_output(path, overwrite=True, is_dir=False) as tmp_file:
        tmp_file.write_text("[]")
    assert path.read_text() == "[]" and mode(path) == 0o640


def test_write_json_atomic_writes_the_same_bytes_as_json_dump(tmp_path: Path):
    data = {"path": tmp_path, "t": (1, 2.5), "s": {"b", "a"}, "none": None}
    write_json_atomic(tmp_path / "a.json", data, indent=1)
    expected = json.dumps({"path": str(tmp_path), "t": [1, 2.5], "s": ["a", "b"], "none": None}, indent=1) + "\n"
    assert (tmp_path / "a.json").read_text() == expected
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_resumable_output_keeps_the_work_of_a_failed_run(tmp_path: Path):
    out = tmp_path / "run"
    first = ResumableOutput.start(out)
    first.work.mkdir()
    (first.work / "last.pt").write_text("epoch 3")  # interrupted here: nothing commits, nothing is deleted
    with pytest.raises(UserError, match=r"nothing to resume: no interrupted run in .* \(no best\.pt there"):
        ResumableOutput.start(out, resume=True, resume_marker="best.pt")
    again = ResumableOutput.start(out, resume=True, resume_marker="last.pt")
    assert again.work == first.work and (again.work / "last.pt").read_text() == "epoch 3"
    assert again.commit() == out.resolve() and (out / "last.pt").exists() and not first.work.exists()
    with pytest.raises(OutputExistsError, match="--resume"):
        ResumableOutput.start(out)
    extend = ResumableOutput.start(out, resume=True, resume_marker="last.pt")  # a finished run, in place
    assert extend.work == out.resolve() and extend.commit() == out.resolve() and (out / "last.pt").exists()
    stale = ResumableOutput.start(out, overwrite=True)
    stale.work.mkdir()
    (stale.work / "junk").write_text("x")
    fresh = ResumableOutput.start(out, overwrite=True)  # a new run without --resume discards the stale attempt
    assert not fresh.work.exists() and (out / "last.pt").exists()


def test_in_place_output_restores_the_old_output_when_the_new_one_fails(tmp_path: Path):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "summary.md").write_text("old run")
    with pytest.raises(OutputExistsError), in_place_output(out):
        pass
    with pytest.raises(RuntimeError), in_place_output(out, overwrite=True) as folder:
        assert folder == out.resolve() and not (folder / "summary.md").exists()  # written at its final path
        (folder / "dataset").mkdir()
        raise RuntimeError("training failed")
    assert [p.name for p in out.iterdir()] == ["summary.md"] and (out / "summary.md").read_text() == "old run"
    with in_place_output(out, overwrite=True) as folder:
        (folder / "summary.md").write_text("new run")
    assert (out / "summary.md").read_text() == "new run" and [p.name for p in tmp_path.iterdir()] == ["demo"]
