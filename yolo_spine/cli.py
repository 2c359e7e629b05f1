"""The ``yolo_spine`` command line: parse, call one library function, report errors in one sentence.

Each stage package owns a small ``commands`` module with ``register(subparsers)``; it adds its subcommands
and points each at a handler that imports the heavy library code only when the command runs, so
``yolo_spine --help`` never imports torch or Ultralytics. Subcommands are listed in data-flow order.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from yolo_spine import __version__
from yolo_spine.errors import UserError
from yolo_spine.identifiers import recording_paths
from yolo_spine.parallel import configure_thread_policy

# Data-flow order: datasets → plan → train → review → predict → CT conversion → lifting → evaluation → the
# clinic's tools (serving, PACS) → demo.
STAGE_COMMAND_MODULES: tuple[str, ...] = (
    "yolo_spine.datasets.commands",
    "yolo_spine.train.plan_commands",
    "yolo_spine.train.commands",
    "yolo_spine.review.commands",
    "yolo_spine.predict.commands",
    "yolo_spine.ct.commands",
    "yolo_spine.lift.commands",
    "yolo_spine.evaluate.commands",
    "yolo_spine.serve.commands",
    "yolo_spine.pacs.commands",
    "yolo_spine.demo.commands",
)

log = logging.getLogger("yolo_spine")


def build_parser() -> argparse.ArgumentParser:
    """Build the full argument parser with every stage's subcommands."""
    parser = argparse.ArgumentParser(
        prog="yolo_spine",
        description="Instance segmentation of vertebrae, teeth and brain regions on X-rays and CT-derived images "
        "with YOLOv11-seg: merge datasets, augment, train, review, predict, convert CT, lift back to 3D, evaluate.",
    )
    parser.add_argument("--version", action="version", version=f"yolo_spine {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="more log output")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    parser.add_argument(
        "--debug", action="store_true", help="show the full traceback of unexpected errors (or YOLO_SPINE_DEBUG=1)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands (in data-flow order)")
    for module_name in STAGE_COMMAND_MODULES:
        importlib.import_module(module_name).register(sub)
    return parser


def _setup_logging(verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return the process exit code.

    Args:
        argv: Arguments without the program name; ``None`` reads ``sys.argv``.

    Returns:
        0 on success, the error's ``exit_code`` for a :class:`~yolo_spine.errors.UserError`, 1 for an
        unexpected error, 130 when interrupted.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    _setup_logging(args.verbose, args.quiet)
    configure_thread_policy()  # before any command imports torch: OpenMP reads it once, when it loads
    for note in getattr(args, "deprecations", ()):  # old flag names (see _cli_common.DeprecatedAlias)
        log.warning("yolo_spine %s: warning: %s", args.command, note)
    debug = args.debug or os.environ.get("YOLO_SPINE_DEBUG", "") not in ("", "0")
    try:
        with recording_paths(bool(getattr(args, "record_paths", False))):
            result = args.func(args)
    except UserError as exc:
        print(f"yolo_spine {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"yolo_spine {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: one sentence by default, the traceback with --debug
        if debug:
            raise
        print(
            f"yolo_spine {args.command}: unexpected error: {type(exc).__name__}: {exc} "
            "(run with --debug for the traceback and please report it)",
            file=sys.stderr,
        )
        return 1
    return int(result or 0)


if __name__ == "__main__":
    raise SystemExit(main())
