"""Subcommands of the ``lift`` stage (argparse only; library code is imported when a command runs)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from yolo_spine._cli_common import add_batch, add_command, add_config, add_out, add_record_paths, say, stage_options
from yolo_spine.errors import UserError
from yolo_spine.layout import PLANES

if TYPE_CHECKING:
    from yolo_spine.lift.options import LiftOptions


def _planes(text: str) -> list[str]:
    planes = [p.strip() for p in text.split(",") if p.strip()]
    bad = [p for p in planes if p not in PLANES]
    if bad or not planes:
        raise argparse.ArgumentTypeError(f"planes are a comma-separated subset of {','.join(PLANES)}")
    return planes


def register(sub: argparse._SubParsersAction) -> None:
    """Add this stage's subcommands."""
    p = add_command(
        sub,
        "lift",
        help="lift 2D instances on CT slices and DRRs back into the study's 3D geometry (NIfTI, centroids)",
        handler=_lift,
        description="Lift YOLO-seg instances (a ct2yolo dataset's ground truth, or predict --save-txt output) back "
        "into the CT they were cut from, through the sidecars ct2yolo wrote: slices are stacked per plane (gaps "
        "left by --step are interpolated), planes are fused per voxel, and the label map (class id + 1) is written "
        "in the original size, spacing, origin and direction. DRR views are triangulated into per-class 3D "
        "centroids and boxes (<out>.centroids.json beside --out). A run manifest <out>.json records inputs and "
        "counts; eval3d reads the anatomy from it.",
    )
    p.add_argument(
        "labels_dir",
        type=Path,
        nargs="?",
        metavar="LABELS_DIR",
        help="ct2yolo dataset root or predict output folder (with --csv: of the rows that name no labels_dir)",
    )
    p.add_argument(
        "--csv",
        type=Path,
        metavar="STUDIES.csv",
        help="lift many studies: columns study[,labels_dir][,sidecars][,split]; --out is then a folder "
        "(studies/<study>.nii.gz, manifest.json), resumable, on any --executor",
    )
    p.add_argument(
        "--sidecars", type=Path, default=None, help="ct2yolo output root holding sidecars/ (if not LABELS_DIR)"
    )
    add_out(p, help="label map to write (.nii.gz, .nii, .mha or .nrrd); with --csv, the output folder")
    add_record_paths(p)
    p.add_argument(
        "--planes", type=_planes, default=None, help="slice planes to use, e.g. axial,coronal (default: all)"
    )
    p.add_argument("--fusion", choices=("vote", "weighted"), default=None, help="multi-planar fusion (default: vote)")
    p.add_argument("--largest-cc", action="store_true", default=None, help="keep each class's largest component")
    p.add_argument("--order-fix", action="store_true", default=None, help="enforce anatomical order along the body")
    p.add_argument("--hull", action="store_true", default=None, help="DRR inputs: write the visual hull as --out")
    p.add_argument("--max-gap", type=int, default=None, help="interpolate across gaps of up to this many slices")
    p.add_argument(
        "--conf",
        type=float,
        default=None,
        help="predictions: drop slice instances below it; place a DRR class when its views' combined confidence "
        "reaches it (save predictions lower, e.g. predict --conf 0.05; default: every instance counts)",
    )
    p.add_argument("--split", default=None, help="only this split of the dataset (e.g. test)")
    p.add_argument("--study", default=None, help="the study to lift when the sidecars hold several")
    p.add_argument(
        "--dicom-seg",
        type=Path,
        default=None,
        metavar="OUT.dcm",
        help="also write the label map as a DICOM Segmentation (needs --source-dicom; not for clinical use)",
    )
    p.add_argument(
        "--source-dicom",
        type=Path,
        default=None,
        metavar="SERIES_DIR",
        help="the DICOM series ct2yolo read for this study; read when the SEG is written and checked to be that "
        "study (no DICOM UID is stored by yolo_spine)",
    )
    p.add_argument("--study-salt", default=None, help="ct2yolo's --study-salt, if it had one (default: its manifest's)")
    add_config(p, "lift")
    p.add_argument(
        "--anatomy",
        default=None,
        help="anatomy registry YAML, needed only when ct2yolo was given its own file (default: the sidecars' name)",
    )
    add_batch(p, workers_help="--csv: studies lifted at once (processes, or Ray tasks)")


def _lift_options(args: argparse.Namespace) -> LiftOptions:
    from yolo_spine.batch import batch_flags
    from yolo_spine.lift.options import LiftOptions

    planes = tuple(args.planes) if args.planes else None
    same = ("fusion", "largest_cc", "order_fix", "hull", "max_gap", "conf")
    return stage_options(LiftOptions, args, same=same, planes=planes, **batch_flags(args))


def _lift(args: argparse.Namespace) -> int:
    if args.csv is None:
        from yolo_spine.batch import refuse_batch_flags

        refuse_batch_flags(args)
        if args.labels_dir is None:
            raise UserError("give LABELS_DIR (or --csv with a list of studies)")
    options = _lift_options(args)  # checked before SimpleITK and scipy are imported
    if args.csv is not None:
        return _lift_csv(args, options)
    from yolo_spine.lift.lift import lift

    result = lift(
        args.labels_dir,
        args.out,
        options,
        sidecars=args.sidecars,
        split=args.split,
        study=args.study,
        anatomy=args.anatomy,
        overwrite=args.overwrite,
        progress=not args.quiet,
        dicom_seg=args.dicom_seg,
        source_dicom=args.source_dicom,
        study_salt=args.study_salt,
    )
    c = result.counts
    say(
        f"lifted {c.get('sidecars', 0)} images ({c.get('sidecars_without_labels', 0)} without instances); "
        f"{len(result.classes_found)} classes found: {', '.join(result.classes_found) or 'none'}"
    )
    if c.get("labels_without_sidecar"):
        say(f"warning: {c['labels_without_sidecar']} label files had no sidecar and were not lifted")
    for path in (result.labels, result.centroids, result.dicom_seg, result.manifest):
        if path is not None:
            say(f"wrote {path}")
    return 0


def _lift_csv(args: argparse.Namespace, options: LiftOptions) -> int:
    from yolo_spine.batch import run_flags
    from yolo_spine.lift.batch import lift_batch

    if args.study is not None or args.split is not None or args.sidecars is not None:
        raise UserError("with --csv, give study, split and sidecars as columns of the list, not as flags")
    if args.dicom_seg is not None or args.source_dicom is not None:
        raise UserError("--dicom-seg and --source-dicom take one study; with --csv, lift each study on its own")
    run = run_flags(args)
    manifest = lift_batch(args.csv, args.out, options, labels_dir=args.labels_dir, anatomy=args.anatomy, **run)
    say(f"studies: {manifest['ledger']['line']}")
    say(f"lifted {len(manifest['studies'])} studies into {Path(args.out).resolve()}; see manifest.json")
    return 0
