"""Argument helpers shared by the stage ``commands`` modules (argparse only: no heavy imports here)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path


def add_command(
    sub: argparse._SubParsersAction,
    name: str,
    help: str,
    handler: Callable[[argparse.Namespace], int | None],
    description: str | None = None,
) -> argparse.ArgumentParser:
    """Add a subcommand whose handler receives the parsed namespace."""
    p = sub.add_parser(
        name, help=help, description=description or help, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.set_defaults(func=handler)
    return p


def add_out(p: argparse.ArgumentParser, help: str = "output folder", required: bool = True) -> None:
    """Add ``--out`` and ``--overwrite`` (outputs are never replaced without it)."""
    p.add_argument("--out", type=Path, required=required, help=help)
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")


def add_record_paths(p: argparse.ArgumentParser) -> None:
    """Add ``--record-paths`` to a command that writes a run record (``cli.main`` applies it to the whole command)."""
    p.add_argument(
        "--record-paths",
        action="store_true",
        help="keep full input/output paths in run records and manifests (default: base file names only, folders "
        "as <folder>, since folder names often carry patient names); credentials and secrets stay masked",
    )


def add_anatomy(p: argparse.ArgumentParser, default: str | None = "spine") -> None:
    """Add ``--anatomy`` (a registry name from configs/anatomy or a YAML path)."""
    p.add_argument(
        "--anatomy", default=default, help="anatomy registry: spine, teeth, brain, or a YAML file of the same shape"
    )


def add_workers(p: argparse.ArgumentParser, default: int = 1) -> None:
    """Add ``--workers`` (processes)."""
    p.add_argument("--workers", type=int, default=default, help="worker processes (0 or 1: in this process)")


def add_seed(p: argparse.ArgumentParser, default: int = 0) -> None:
    """Add ``--seed``."""
    p.add_argument("--seed", type=int, default=default, help="random seed (same seed, same output)")


def add_device(p: argparse.ArgumentParser, default: str | None = None) -> None:
    """Add ``--device`` in Ultralytics' syntax."""
    p.add_argument(
        "--device",
        default=default,
        help="cpu, a GPU index (0), several for DDP (0,1), or mps; default: GPU 0 if present, else cpu",
    )


def say(*lines: object) -> None:
    """Write a command's result for the user to stdout (library code logs instead; only commands call this)."""
    for line in lines:
        sys.stdout.write(f"{line}\n")
    sys.stdout.flush()
