"""Subcommand ``plan`` (argparse only; the planner and torch are imported when the command runs)."""

from __future__ import annotations

import argparse
from pathlib import Path

from yolo_spine._cli_common import add_command, add_out, add_record_paths, say


def _plan(args: argparse.Namespace) -> int:
    from yolo_spine.train.plan import parse_budget, plan_training, write_plan

    budget_s = parse_budget(args.budget) if args.budget is not None else None  # checked before torch loads
    out = args.out or Path(args.data).with_name("plan.yaml")
    plan = plan_training(args.data, budget_s, args.device, model=args.model)
    write_plan(plan, out, overwrite=args.overwrite)
    t = plan.train
    say(
        f"plan: imgsz {t['imgsz']}, batch {t['batch']}, {t['epochs']} epochs"
        + (f" in {budget_s:.0f} s" if budget_s else "")
        + f", mosaic {t['mosaic']} (off for the last {t['close_mosaic']}), workers {t['workers']}, cache {t['cache']}"
        f" on {plan.reasons['device']}; reasons in {out}; train with: yolo_spine train --data {args.data} "
        f"--out RUN_DIR --plan {out}"
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``plan``."""
    p = add_command(
        sub,
        "plan",
        "plan a training from the dataset's fingerprint, this machine and a time budget",
        _plan,
        description="Read the dataset's fingerprint (image sizes and bit depth from image headers, instances per "
        "image, instance sizes, class balance) and this machine (cores, memory, GPU memory), time a few batches "
        "of the model, and write a commented plan YAML (imgsz, batch, epochs, learning-rate schedule, "
        "augmentation, workers, cache) with one line of reasoning per choice. Use it with train --plan.",
    )
    p.add_argument("data", type=Path, metavar="DATA_YAML", help="dataset written by merge/ct2yolo")
    p.add_argument("--budget", default=None, help="wall-clock budget of the training command: 90s, 15m, 1.5h")
    p.add_argument("--device", default=None, help="cpu or a GPU (0); default: GPU 0 if torch sees one, else cpu")
    p.add_argument("--model", default="yolo11n-seg", help="architecture whose throughput is measured")
    add_out(p, "default: plan.yaml beside DATA_YAML", required=False, metavar="PLAN_YAML", replaces="plan file")
    add_record_paths(p)
