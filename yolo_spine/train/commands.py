"""Subcommand of the train stage (argparse only; Ultralytics is imported when the command runs)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from yolo_spine._cli_common import (
    add_command,
    add_config,
    add_device,
    add_out,
    add_record_paths,
    add_threads,
    say,
    stage_options,
)
from yolo_spine.errors import UserError

if TYPE_CHECKING:
    from yolo_spine.train.options import TrainOptions


def _train_options(args: argparse.Namespace) -> TrainOptions:
    from yolo_spine.train.options import TrainOptions

    model = ("model", "weights", "channels")
    run = ("epochs", "imgsz", "batch", "device", "workers", "threads", "patience", "seed")
    return stage_options(TrainOptions, args, same=model + run)


def _train(args: argparse.Namespace) -> int:
    from yolo_spine.train.budget import process_start

    start = process_start()  # a --budget counts from the process's start: imports and setup are part of it
    opts = _train_options(args)  # checked before torch and Ultralytics are imported
    plan = fit = None
    if args.plan is not None or args.budget is not None:
        from yolo_spine.train.plan import planned_training

        if args.resume:
            raise UserError("--resume continues a run with its own schedule; drop --plan/--budget")
        opts, plan, fit = planned_training(args.data, opts, plan_path=args.plan, budget=args.budget, start=start)
    from yolo_spine.train.train import train

    res = train(
        args.data,
        args.out,
        opts,
        resume=args.resume,
        overwrite=args.overwrite,
        weights_dir=args.weights_dir,
        callbacks=fit.callbacks() if fit is not None else None,
    )
    if plan is not None:
        from yolo_spine.train.plan import record_plan

        block = record_plan(res.run_json, plan, fit, time.monotonic() - start)
        if fit is not None:
            b = block["budget"]
            say(
                f"budget {b['budget_s']:.0f} s: the command took {b['wall_s']:.1f} s ({100 * b['ratio']:.0f} %); "
                f"{b['final_epochs']} epochs (planned {b['planned_epochs']}), mosaic off from epoch "
                f"{b['mosaic_off_epoch']}"
            )
    m = res.manifest
    ips = m.get("train_images_per_second")
    threads = f"{m['torch_threads']} threads" if m["torch_threads"] else "DDP"
    resumed = f" after epoch {m['resumed_from_epoch']}" if m.get("resumed_from_epoch") is not None else ""
    say(
        f"trained {m['epochs_this_session']} epoch(s){resumed} on {m['device']} ({threads}"
        f"{f', {ips:.1f} images/s' if ips else ''}); the run has {m['epochs_completed']} of "
        f"{m['epochs_requested']} epochs; model started from {m['model']['source']}; best weights: {res.best}"
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``train``."""
    p = add_command(
        sub,
        "train",
        "train a YOLOv11-seg model (offline; CPU, one GPU, or several through DDP)",
        _train,
        description="Train a YOLOv11-seg model. Defaults: configs/train/default.yaml (the spine recipe); "
        "--config picks a preset or your YAML; --set KEY=VALUE sets any key of it (augmentation, optimizer, "
        "cache, ...); named flags override all three (a flag not given keeps their value). --device 0,1 uses "
        "Ultralytics' DDP (one process per GPU on this node).",
    )
    p.add_argument("--data", type=Path, required=True, metavar="DATA_YAML", help="dataset written by merge/ct2yolo")
    add_out(p, "run folder", metavar="RUN_DIR", replaces="run")
    add_config(p, "train")
    p.add_argument("--model", default=None, help="architecture, e.g. yolo11n-seg (weights/<model>.pt used if present)")
    p.add_argument(
        "--weights",
        default=None,
        help="checkpoint to start from (never downloaded), or none: from scratch "
        "(default: weights/<model>.pt, else the packaged phantom-pretrained checkpoint)",
    )
    p.add_argument("--weights-dir", type=Path, default=Path("weights"), help="folder searched for <model>.pt")
    p.add_argument("--epochs", type=int, default=None, help="passes over the training split (default: the config's)")
    p.add_argument("--imgsz", type=int, default=None, help="square training size in pixels (default: the config's)")
    p.add_argument("--batch", type=int, default=None, help="images per batch; -1: the most that fit a GPU")
    add_device(p, ddp=True)
    p.add_argument("--workers", type=int, default=None, help="dataloader workers")
    add_threads(p)
    p.add_argument("--channels", type=int, choices=[1, 3], default=None, help="1 = grayscale model")
    p.add_argument(
        "--patience", type=int, default=None, help="stop after this many epochs without a better validation fitness"
    )
    p.add_argument("--seed", type=int, default=None, help="random seed of the training")
    p.add_argument("--plan", type=Path, default=None, help="a plan written by `yolo_spine plan` (flags override it)")
    p.add_argument(
        "--budget", default=None, help="wall-clock budget (90s, 15m, 1.5h): plans on the fly and fits the schedule"
    )
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    add_record_paths(p)
