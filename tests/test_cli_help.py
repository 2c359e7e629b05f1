"""Every command's --help, as a newcomer reads it: each option explained, each default said once."""

from __future__ import annotations

import argparse
import re

import pytest

from yolo_spine.cli import build_parser

# "default" as a word, not inside a file name such as configs/train/default.yaml
_DEFAULT = re.compile(r"\bdefault\b(?!\.yaml)", re.IGNORECASE)


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _options(name: str) -> list[tuple[argparse.Action, str]]:
    parser = _subcommands()[name]
    formatter = parser._get_formatter()
    return [
        (a, formatter._expand_help(a) if a.help else "")
        for a in parser._actions
        if not isinstance(a, argparse._HelpAction) and a.help != argparse.SUPPRESS
    ]


@pytest.mark.parametrize("name", sorted(_subcommands()))
def test_every_option_has_help_and_says_its_default_once(name: str) -> None:
    for action, text in _options(name):
        label = "/".join(action.option_strings) or action.dest
        assert text.strip(), f"{name} {label} has no help"
        assert len(_DEFAULT.findall(text)) <= 1, f"{name} {label}: {text!r}"


def test_help_text_cases_a_newcomer_hit() -> None:
    """The examples from the issue: fetch's key, predict's device (one device; DDP is train's)."""
    (api_key,) = [t for a, t in _options("fetch") if "--api-key" in a.option_strings]
    assert api_key.count("ROBOFLOW_API_KEY") == 1 and "None" not in api_key
    for name in ("predict", "val"):
        (device,) = [t for a, t in _options(name) if "--device" in a.option_strings]
        assert "DDP" not in device, device
