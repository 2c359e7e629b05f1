"""Subcommands of the ``review`` stage (argparse only; library code is imported when a command runs)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add this stage's subcommands."""
