"""The checkpoint sanitiser: what Ultralytics pickles about the machine leaves no folder and no credential."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from yolo_spine.train.shareable import sanitize_checkpoint


@pytest.mark.parametrize(
    ("origin", "expected"),
    [
        ("/home/Doe_Janet/code/yolo_spine", "<folder>"),  # a clone of a local folder
        ("https://janet:ghp_secret123@github.com/org/repo.git", "https://***@github.com/org/repo.git"),
        ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),  # no user information: kept
    ],
)
def test_git_root_and_origin_are_sanitised(tmp_path: Path, origin: str, expected: str) -> None:
    path = tmp_path / "best.pt"
    git = {"root": "/home/Doe_Janet/venv/lib/python3.11", "branch": "main", "commit": "abc", "origin": origin}
    torch.save({"git": git, "epoch": 3}, path)
    sanitize_checkpoint(path)
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    assert ckpt["git"] == {"root": "<folder>", "branch": "main", "commit": "abc", "origin": expected}
    assert ckpt["epoch"] == 3
    assert b"Doe_Janet" not in path.read_bytes() and b"ghp_secret123" not in path.read_bytes()
