"""Subcommand of the review stage (argparse only; Ultralytics is imported when the command runs)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from yolo_spine._cli_common import (
    add_command,
    add_config,
    add_device,
    add_out,
    add_record_paths,
    add_weights,
    say,
    stage_options,
)

if TYPE_CHECKING:
    from yolo_spine.review.options import ReviewOptions


def _val_options(args: argparse.Namespace) -> ReviewOptions:
    from yolo_spine.review.options import ReviewOptions

    return stage_options(ReviewOptions, args, same=("split", "imgsz", "batch", "device"))


def _val(args: argparse.Namespace) -> int:
    opts = _val_options(args)  # checked before Ultralytics is imported
    from yolo_spine.review.val import review

    m = review(args.weights, args.data, args.out, opts, overwrite=args.overwrite)
    conf = m["best_conf"]["mask"]["all"]["conf"]
    cc = m["pycocotools"]
    say(
        f"{m['split']}: {m['images']} images; mask mAP50 {m['mask']['mAP50']:.3f}, mAP50-95 {m['mask']['mAP50-95']:.3f}"
        f" (pycocotools {cc['mask_mAP50-95']:.3f}, {'agree' if cc['agree'] else 'DISAGREE'}); "
        f"best-F1 confidence {conf if conf is not None else 'n/a'}; report: {Path(args.out) / 'report.html'}"
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``val``."""
    p = add_command(sub, "val", "review a model: P/R/PR/F1 curves, best-F1 confidence, metrics, HTML report", _val)
    add_weights(p)
    p.add_argument("--data", type=Path, required=True, metavar="DATA_YAML", help="the dataset's data.yaml")
    add_out(p, "review folder (REVIEW_DIR)")
    add_record_paths(p)
    p.add_argument("--split", default=None, choices=["val", "test"], help="split to review (default: val)")
    p.add_argument("--imgsz", type=int, default=None, help="inference size (default: the training size)")
    p.add_argument("--batch", type=int, default=None, help="images per batch (default: 16)")
    add_device(p)
    add_config(p, "review")
