from pathlib import Path

import pytest

from yolo_spine.config import check_keys, deep_update, read_yaml
from yolo_spine.errors import UserError


def test_unknown_key_suggests():
    with pytest.raises(UserError, match="unknown key 'epoch' \\(did you mean 'epochs'\\?\\)"):
        check_keys({"epoch": 3}, {"epochs": 250, "imgsz": 640}, "preset.yaml")


def test_nested_keys_checked():
    with pytest.raises(UserError, match="rotate: unknown key 'limt'"):
        check_keys({"rotate": {"limt": 5}}, {"rotate": {"limit": 15, "p": 0.5}}, "aug.yaml")


def test_deep_update_merges_nested():
    assert deep_update({"a": {"b": 1, "c": 2}, "d": 1}, {"a": {"c": 3}}) == {"a": {"b": 1, "c": 3}, "d": 1}


def test_read_yaml_errors(tmp_path: Path):
    with pytest.raises(UserError, match="not found"):
        read_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(UserError, match="not valid YAML"):
        read_yaml(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(UserError, match="mapping"):
        read_yaml(lst)
