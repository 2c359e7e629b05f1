"""Subcommands of the CT stage: ``ct2yolo`` (argparse only; library code is imported when the command runs)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from yolo_spine._cli_common import (
    add_anatomy,
    add_batch,
    add_command,
    add_config,
    add_out,
    add_record_paths,
    add_workers,
    say,
)
from yolo_spine.errors import UserError

if TYPE_CHECKING:
    from yolo_spine.ct.options import CtOptions


def _csv_list(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [t.strip().lower() for t in text.split(",") if t.strip() and t.strip().lower() != "none"]


def _window(text: str | None) -> dict[str, float] | None:
    if text is None:
        return None
    try:
        center, width = (float(x) for x in text.split(","))
    except ValueError:
        raise UserError(f"--window needs CENTER,WIDTH in HU (e.g. 400,1800), got '{text}'") from None
    return {"center": center, "width": width}


def _ct2yolo_options(args: argparse.Namespace) -> CtOptions:
    """The options of this run: default.yaml ← the anatomy's preset (or --config) ← --set ← flags."""
    from yolo_spine.batch import batch_flags
    from yolo_spine.ct.options import CtOptions

    planes, views = _csv_list(args.planes), _csv_list(args.views)
    flags = {
        "planes": None if planes is None else tuple(planes),
        "step": args.step,
        "views": None if views is None else tuple(views),
        "poses": args.poses,
        "window": _window(args.window),
        "study_id_salt": args.study_salt,
        "drr.size": args.size,
        "drr.sdd_mm": args.sdd,
        "drr.orthographic": True if args.orthographic else None,
        "drr.backend": args.drr_backend,
        "drr.device": args.drr_device,
        "split.mode": args.split_mode,
        "realism.preset": args.realism,
        **batch_flags(args),
    }
    config, sets = getattr(args, "config", None), getattr(args, "set", [])
    return CtOptions.for_anatomy(args.anatomy, config, sets, flags, flags_from="flag")


def _ct2yolo(args: argparse.Namespace) -> int:
    from yolo_spine.registry import load_registry

    registry = load_registry(args.anatomy)  # resolved once; the conversion and its workers get the object
    opts = _ct2yolo_options(args)  # checked before SimpleITK, OpenCV and torch are imported
    from yolo_spine.ct.convert import ct2yolo

    manifest = ct2yolo(
        args.out,
        opts,
        volume=args.volume,
        labels=args.labels,
        study_list=args.csv,
        study=args.study,
        anatomy=registry,
        transform=args.transform,
        resample_labels=args.resample_labels,
        label_map=args.label_map,
        study_map=args.study_map,
        overwrite=args.overwrite,
        redo=args.redo,
    )
    n = manifest["images_per_split"]
    unmapped = ", ".join(
        f"{s['study']} {len(s['unmapped_label_ids'])}" for s in manifest["studies"] if s["unmapped_label_ids"]
    )
    say(f"studies: {manifest['ledger']['line']}")
    say(
        f"converted {len(manifest['studies'])} stud{'y' if len(manifest['studies']) == 1 else 'ies'} into "
        f"{Path(args.out).resolve()}: images train {n['train']}, val {n['val']}, test {n['test']}"
        + (f"; label ids mapping to no class (listed in studies/<study>.json): {unmapped}" if unmapped else "")
        + "; see manifest.json"
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add this stage's subcommands."""
    p = add_command(
        sub,
        "ct2yolo",
        "CT/CBCT volumes + label maps → YOLO-seg slices and DRR projections with sidecars",
        _ct2yolo,
        description="Convert CT/CBCT studies into a YOLO-seg dataset: every K-th slice of each plane and DRR "
        "projections (AP, lateral, random poses), each image with a sidecar JSON that puts its pixels back "
        "into the volume. Options: configs/ct/default.yaml ← configs/ct/<anatomy>.yaml (or --config) ← --set ← "
        "flags.",
    )
    p.add_argument("--volume", type=Path, help="CT: NIfTI, MHA/MHD, NRRD or a DICOM series folder (HU)")
    p.add_argument("--labels", type=Path, help="label map on the volume's grid (or see --transform)")
    p.add_argument("--csv", type=Path, help="list of studies: columns volume,labels[,transform][,study]")
    p.add_argument(
        "--study",
        help="study name for --volume, used as given (default: a pseudonym s-<hex> from the volume's content, "
        "never its file or folder name)",
    )
    p.add_argument(
        "--study-map",
        type=Path,
        metavar="FILE",
        help="write pseudonym -> original name (CSV) for the studies named by pseudonym; keep it apart from the "
        "dataset (refused inside --out; replaced only with --overwrite)",
    )
    p.add_argument("--study-salt", help="salt of the pseudonymous study ids (sets study_id_salt)")
    add_anatomy(p)
    add_out(p, "output dataset folder")
    add_config(p, "ct", default="configs/ct/<anatomy>.yaml when the anatomy has one", preset_alias=True)
    p.add_argument("--planes", help="comma list of axial,coronal,sagittal ('none' for no slices)")
    p.add_argument("--step", type=int, help="keep every K-th slice")
    p.add_argument("--views", help="comma list of DRR views ap,lat ('none' for no DRRs)")
    p.add_argument("--poses", type=int, help="random poses around each view per study")
    p.add_argument("--window", help="slice window CENTER,WIDTH in HU (default from the preset)")
    p.add_argument("--size", type=int, help="DRR detector size in pixels")
    p.add_argument("--sdd", type=float, help="DRR source-to-detector distance in mm")
    p.add_argument("--orthographic", action="store_true", default=None, help="parallel-beam DRRs")
    p.add_argument(
        "--drr-backend",
        choices=("planes", "nanodrr"),
        help="DRR renderer: planes (shear-warp, fast on CPUs; default) or nanodrr (ray marching, fast on GPUs)",
    )
    p.add_argument("--drr-device", help="torch device for --drr-backend nanodrr (e.g. cuda:0; default cpu)")
    p.add_argument(
        "--realism",
        metavar="off|physics|randomized|FILE",
        help="radiograph realism of the DRRs: off (clean, default), physics (fixed published parameters), "
        "randomized (drawn per image, for sim-to-real training) or a preset YAML (configs/ct/realism/)",
    )
    p.add_argument("--split-mode", choices=("study", "slab"), help="split whole studies, or slabs/poses of one")
    p.add_argument("--transform", type=Path, help="ITK transform file: label frame → image frame")
    p.add_argument("--resample-labels", action="store_true", help="resample labels onto the volume grid if needed")
    p.add_argument("--label-map", type=Path, help="YAML/JSON {id: name} or CSV (id, name|structure)")
    add_workers(
        p, default=None, help="studies converted at once (processes, or Ray tasks); 0: as many as the cores allow"
    )
    add_batch(p)
    add_record_paths(p)
