"""Subcommands of the ``evaluate`` stage (argparse only; library code is imported when a command runs)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from yolo_spine._cli_common import add_batch, add_command, add_config, add_out, add_record_paths, say, stage_options
from yolo_spine.errors import UserError

if TYPE_CHECKING:
    from yolo_spine.evaluate.options import Eval3dOptions


def register(sub: argparse._SubParsersAction) -> None:
    """Add this stage's subcommands."""
    p = add_command(
        sub,
        "eval3d",
        help="score a 3D label map (or landmarks) against ground truth: Dice, IoU, HD95, ASSD, NSD, volume, "
        "identification rate",
        handler=_eval3d,
        description="Score a predicted 3D label map against a ground-truth label map per class: Dice, IoU, "
        "precision, recall, HD95 and ASSD (mm, MONAI), normalised surface Dice and boundary F1 at a tolerance, volume "
        "difference (prediction − ground truth, ml), false-positive and false-negative volume ratios, "
        "misclassification rate, Cohen's kappa inside the structure's bounding box; optionally centroid "
        "identification rate as VerSe counts it. A prediction "
        "on another grid is resampled (nearest neighbour) onto the ground-truth grid. Each label map is read in the "
        "scheme --gt-scheme/--pred-scheme name, else class id + 1 when lift wrote it (its <name>.json beside it), "
        "else the scheme its ids are recognised as (as ct2yolo does); a map whose ids fit several schemes is "
        "refused. The anatomy defaults to the one lift recorded. Writes OUT (CSV) and the JSON and Markdown files "
        "beside it.",
    )
    p.add_argument("--pred", type=Path, help="predicted label map (NIfTI/MHA/NRRD) or centroid .json")
    p.add_argument("--gt", type=Path, help="ground-truth label map (NIfTI/MHA/NRRD) or centroid .json")
    p.add_argument(
        "--csv",
        type=Path,
        metavar="STUDIES.csv",
        help="score many studies: columns pred,gt[,study]; --out is then a folder (studies/<study>/metrics.*, "
        "metrics.csv and metrics.json over all studies), resumable, on any --executor",
    )
    p.add_argument(
        "--anatomy",
        default=None,
        help="anatomy registry: spine, teeth, brain or a YAML file; default: the one lift recorded for --pred",
    )
    add_out(p, help="metrics CSV path (metrics.json and metrics.md are written beside it); with --csv, a folder")
    add_record_paths(p)
    add_config(p, "eval3d")
    p.add_argument(
        "--tolerance-mm", type=float, help="tolerance of the normalised surface Dice and boundary F1, mm (default: 2)"
    )
    p.add_argument(
        "--gt-scheme",
        default=None,
        help="label-id scheme of the ground truth: class_id+1 or one of the registry's (totalsegmentator_v2, "
        "verse …); default: recognised from its ids",
    )
    p.add_argument(
        "--pred-scheme",
        default=None,
        help="label-id scheme of the prediction; default: class_id+1 when lift wrote it, else recognised",
    )
    p.add_argument(
        "--landmarks", action="store_true", help="also score class centroids: identification rate and errors (mm)"
    )
    p.add_argument("--max-dist-mm", type=float, help="identification distance limit (default: 20, as VerSe)")
    add_batch(p, workers_help="--csv: studies scored at once (processes, or Ray tasks)")


def _eval3d_options(args: argparse.Namespace) -> Eval3dOptions:
    from yolo_spine.batch import batch_flags
    from yolo_spine.evaluate.options import Eval3dOptions

    same = ("tolerance_mm", "max_dist_mm", "gt_scheme", "pred_scheme")
    return stage_options(Eval3dOptions, args, same=same, on=("landmarks",), **batch_flags(args))


def _eval3d(args: argparse.Namespace) -> int:
    pred: Path | None = args.pred
    gt: Path | None = args.gt
    if args.csv is not None:
        if pred is not None or gt is not None:
            raise UserError("give either --pred/--gt or --csv, not both")
        return _eval3d_csv(args, _eval3d_options(args))
    from yolo_spine.batch import refuse_batch_flags

    refuse_batch_flags(args)
    if pred is None or gt is None:
        raise UserError("give --pred and --gt (or --csv with a list of studies)")
    options = _eval3d_options(args)  # checked before SimpleITK and MONAI are imported
    from yolo_spine.evaluate.eval3d import run_eval3d

    result, paths = run_eval3d(
        pred, gt, args.anatomy, args.out, options, overwrite=args.overwrite, progress=not args.quiet
    )
    opts = result.options
    read = [
        f"{what} as {opts[f'{key}_scheme']} ({opts['decided_by'][f'{key}_scheme']})"
        for key, what in (("gt", "ground truth"), ("pred", "prediction"))
        if opts.get(f"{key}_scheme")
    ]
    say(f"anatomy {result.anatomy} ({opts['decided_by']['anatomy']}); label ids: {'; '.join(read) or 'landmarks only'}")
    if result.geometry.get("pred_resampled"):
        say("note: the prediction was resampled (nearest neighbour) onto the ground-truth grid")
    if result.mean is not None:
        m = result.mean
        say(
            f"{m.n_gt_classes} ground-truth classes ({m.n_gt_classes_predicted} predicted): "
            f"mean Dice {_f(m.values['dice'], 3)}, HD95 {_f(m.values['hd95_mm'], 2)} mm, "
            f"ASSD {_f(m.values['assd_mm'], 2)} mm, NSD@{options.tolerance_mm:g}mm {_f(m.values['nsd'], 3)}"
        )
    if result.landmarks is not None:
        lm = result.landmarks
        say(
            f"identification rate {lm.n_identified}/{lm.n_gt} ({_f(100 * lm.rate, 1)} %), "
            f"mean centroid error {_f(lm.mean_error_mm, 1)} mm"
        )
    say(f"wrote {paths['csv']}, {paths['json'].name}, {paths['md'].name} ({result.seconds:.1f} s)")
    return 0


def _eval3d_csv(args: argparse.Namespace, options: Eval3dOptions) -> int:
    from yolo_spine.batch import run_flags
    from yolo_spine.evaluate.batch import eval3d_batch

    doc = eval3d_batch(args.csv, args.out, options, anatomy=args.anatomy, **run_flags(args))
    say(f"studies: {doc['ledger']['line']}")
    dice = [s["mean"]["dice"] for s in doc["studies"] if s.get("mean") and s["mean"].get("dice") is not None]
    if dice:
        say(f"mean Dice over {len(dice)} studies: {sum(dice) / len(dice):.3f} (per study in metrics.csv)")
    say(f"scored {len(doc['studies'])} studies into {Path(args.out).resolve()}: metrics.csv, metrics.json")
    return 0


def _f(v: float, digits: int) -> str:
    return "n/a" if v != v else f"{v:.{digits}f}"  # NaN → n/a
