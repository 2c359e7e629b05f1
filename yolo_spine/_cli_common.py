"""Argument helpers shared by the stage ``commands`` modules (argparse only: no heavy imports here)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from yolo_spine.resources import configs_dir

if TYPE_CHECKING:
    from yolo_spine.options import StageOptions

S = TypeVar("S", bound="StageOptions")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a flag's default only when it says something.

    Not for ``None``, ``False`` or empty defaults (the value then comes from the stage's YAML, or the flag is off),
    nor when the help already names the default: "(default: onnx) (default: None)" told users nothing.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text or action.default in (None, False, [], argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


def add_command(
    sub: argparse._SubParsersAction,
    name: str,
    help: str,
    handler: Callable[[argparse.Namespace], int | None],
    description: str | None = None,
) -> argparse.ArgumentParser:
    """Add a subcommand whose handler receives the parsed namespace."""
    p = sub.add_parser(name, help=help, description=description or help, formatter_class=_HelpFormatter)
    p.set_defaults(func=handler)
    return p


def add_out(
    p: argparse.ArgumentParser,
    help: str = "output folder",
    required: bool = True,
    *,
    metavar: str | None = None,
    default: Path | None = None,
    replaces: str = "output",
) -> None:
    """Add ``--out`` and ``--overwrite`` (outputs are never replaced without it; ``replaces``: what it replaces)."""
    p.add_argument("--out", type=Path, required=required, default=default, metavar=metavar, help=help)
    p.add_argument("--overwrite", action="store_true", help=f"replace an existing {replaces}")


def add_record_paths(p: argparse.ArgumentParser) -> None:
    """Add ``--record-paths`` to a command that writes a run record (``cli.main`` applies it to the whole command)."""
    p.add_argument(
        "--record-paths",
        action="store_true",
        help="keep full input/output paths in run records and manifests (default: base file names only, folders "
        "as <folder>, since folder names often carry patient names); credentials and secrets stay masked",
    )


#: ``--anatomy`` of a command that loads a model: by default the shipped registry with the model's class names.
MODEL_ANATOMY_HELP = (
    "registry of the model's classes (spine, teeth, brain or a YAML file; found from the model's class names when "
    "not given)"
)


def add_anatomy(p: argparse.ArgumentParser, default: str | None = "spine", help: str | None = None) -> None:
    """Add ``--anatomy`` (a registry name from configs/anatomy or a YAML path)."""
    p.add_argument(
        "--anatomy",
        default=default,
        help=help or "anatomy registry: spine, teeth, brain, or a YAML file of the same shape",
    )


def add_weights(p: argparse.ArgumentParser) -> None:
    """Add ``--weights``: the one model a command loads (``.pt``, ``.onnx`` or an OpenVINO folder)."""
    p.add_argument("--weights", type=Path, required=True, help="model: .pt, .onnx or an OpenVINO folder")


def add_threads(p: argparse.ArgumentParser, help: str = "CPU threads (default: every core)") -> None:
    """Add ``--threads`` (torch's CPU threads; ``None``: the stage's default, every core)."""
    p.add_argument("--threads", type=int, default=None, help=help)


def add_inference(
    p: argparse.ArgumentParser, conf_help: str, threads_help: str = "CPU threads (default: every core)"
) -> None:
    """Add how a loaded model runs: ``--conf`` (a number or ``auto``), ``--threads`` and ``--device`` (one device)."""
    p.add_argument("--conf", type=conf_arg, default=None, help=conf_help)
    add_threads(p, threads_help)
    add_device(p)


def add_workers(p: argparse.ArgumentParser, default: int | None = 1, help: str | None = None) -> None:
    """Add ``--workers`` (processes)."""
    p.add_argument("--workers", type=int, default=default, help=help or "worker processes (0 or 1: in this process)")


def add_batch(p: argparse.ArgumentParser, workers_help: str | None = None) -> None:
    """Add the batch flags: ``--executor``, ``--ray-address``, ``--task-cpus``, ``--task-memory``, retries, redo.

    ``--workers`` (:func:`add_workers`, added here when ``workers_help`` is given) means the same with every
    executor: studies run at once.
    """
    from yolo_spine.parallel import executor_names

    if workers_help is not None:
        add_workers(p, default=None, help=workers_help)

    g = p.add_argument_group("batch execution (how studies run; never changes the output)")
    g.add_argument(
        "--executor",
        choices=executor_names(),
        help="local: processes on this machine (default); ray: Ray tasks (pip install 'yolo_spine[cluster]')",
    )
    g.add_argument(
        "--ray-address",
        metavar="auto|ray://HOST:PORT",
        help="Ray cluster to join (auto: the one started on this machine with 'ray start'); default: a private "
        "Ray instance for this command",
    )
    g.add_argument("--task-cpus", type=int, metavar="N", help="threads (Ray: CPUs) per study")
    g.add_argument(
        "--task-memory",
        metavar="SIZE",
        help="memory one study needs, e.g. 4G (local: caps --workers 0 at the available memory; Ray: a request)",
    )
    g.add_argument(
        "--task-batch",
        type=int,
        metavar="N",
        help="studies per task (fewer Ray round trips for many short studies); 0: automatic (default)",
    )
    g.add_argument("--retries", type=int, metavar="N", help="further attempts for a failing study (default 1)")
    g.add_argument("--redo", action="store_true", help="convert every study again, even those already done")
    g.add_argument(
        "--skip-failed",
        action="store_true",
        help="write the dataset without the studies that failed every attempt (listed in manifest.json)",
    )


def add_seed(p: argparse.ArgumentParser, default: int = 0) -> None:
    """Add ``--seed``."""
    p.add_argument("--seed", type=int, default=default, help="random seed (same seed, same output)")


def add_device(p: argparse.ArgumentParser, default: str | None = None, *, ddp: bool = False) -> None:
    """Add ``--device`` in Ultralytics' syntax: one device, or with ``ddp`` several GPUs (``train`` and ``demo``)."""
    p.add_argument(
        "--device",
        default=default,
        help="cpu, 0, 0,1 (DDP), mps (default: GPU 0 if present, else cpu)"
        if ddp
        else "cpu, a GPU index (0) or mps; default: GPU 0 if present, else cpu",
    )


class DeprecatedAlias(argparse.Action):
    """An old flag that still works for one release: stores into the new flag's ``dest`` and notes a warning.

    The notes collect in ``args.deprecations``; :func:`yolo_spine.cli.main` logs them before the command runs.
    """

    def __init__(self, option_strings: Sequence[str], dest: str, new: str, **kwargs: Any) -> None:
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, values)
        note = f"{option_string} is deprecated and goes in the next release; use {self.new}"
        namespace.deprecations = [*getattr(namespace, "deprecations", []), note]


def add_config(p: argparse.ArgumentParser, stage: str, default: str | None = None, preset_alias: bool = False) -> None:
    """Add ``--config`` and ``--set`` (and the deprecated ``--preset`` alias) for a stage's options.

    Args:
        p: The subcommand's parser.
        stage: The folder in ``configs/`` with the stage's ``default.yaml`` and presets.
        default: The preset used without ``--config`` (shown in the help; the options class applies it).
        preset_alias: Also accept ``--preset`` (the old name), with a warning.
    """
    presets = sorted(f.stem for f in (configs_dir() / stage).glob("*.yaml") if f.stem != "default")
    shipped = f"a preset ({', '.join(presets)}) or " if presets else ""
    # default=SUPPRESS: the help states the real default instead of argparse's "(default: None)"
    p.add_argument(
        "--config",
        default=argparse.SUPPRESS,
        metavar="NAME|YAML",
        help=f"{shipped}a YAML file with keys of configs/{stage}/default.yaml"
        + (f"; default: {default}" if default else f"; default: configs/{stage}/default.yaml alone"),
    )
    p.add_argument(
        "--set",
        dest="set",
        action="append",
        default=argparse.SUPPRESS,
        metavar="KEY=VALUE",
        help=f"set any key of configs/{stage}/default.yaml, dotted for nested keys (e.g. a.b=1); the value is YAML; "
        "repeatable; overrides --config, named flags override --set",
    )
    if preset_alias:
        p.add_argument(
            "--preset",
            dest="config",
            action=DeprecatedAlias,
            new="--config",
            metavar="NAME|YAML",
            default=argparse.SUPPRESS,
            help="deprecated: use --config",
        )


def stage_options(
    cls: type[S], args: argparse.Namespace, *, same: Iterable[str] = (), on: Iterable[str] = (), **flags: Any
) -> S:
    """Load a stage's options from ``--config``, ``--set`` and the named flags.

    Args:
        cls: The stage's options class.
        args: The parsed command line.
        same: Keys set by the flag of the same name (``max_det``: ``--max-det``; ``None`` when not given).
        on: Keys a switch of the same name sets to ``True`` (``save_txt``: ``--save-txt``); left alone without it.
        **flags: Other keys by value (``None``: flag not given).
    """
    from yolo_spine.options import load_options

    given = {**{k: getattr(args, k) for k in same}, **{k: True if getattr(args, k) else None for k in on}, **flags}
    config, sets = getattr(args, "config", None), getattr(args, "set", [])
    return load_options(cls, config, sets, given)


def say(*lines: object) -> None:
    """Write a command's result for the user to stdout (library code logs instead; only commands call this)."""
    for line in lines:
        sys.stdout.write(f"{line}\n")
    sys.stdout.flush()


def conf_arg(text: str) -> float | str:
    """``--conf``: ``auto`` (any case) or a number; anything else is passed on for the options check to name."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return float(text)
    except ValueError:
        return text
