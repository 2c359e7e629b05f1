"""Subcommands of the CT stage: ``ct2yolo`` (argparse only; library code is imported when the command runs)."""

from __future__ import annotations

import argparse
from pathlib import Path

from yolo_spine._cli_common import (
    add_anatomy,
    add_batch,
    add_command,
    add_out,
    add_record_paths,
    add_workers,
    say,
)
from yolo_spine.errors import UserError


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


def _ct2yolo(args: argparse.Namespace) -> int:
    from yolo_spine.ct.batch import BatchOptions
    from yolo_spine.ct.convert import ct2yolo

    drr = {
        k: v
        for k, v in {
            "size": args.size,
            "sdd_mm": args.sdd,
            "orthographic": args.orthographic,
            "backend": args.drr_backend,
            "device": args.drr_device,
        }.items()
        if v
    }
    split = {"mode": args.split_mode} if args.split_mode else {}
    manifest = ct2yolo(
        args.out,
        volume=args.volume,
        labels=args.labels,
        study_list=args.csv,
        study=args.study,
        anatomy=args.anatomy,
        preset=args.preset,
        overrides={
            "planes": _csv_list(args.planes),
            "step": args.step,
            "views": _csv_list(args.views),
            "poses": args.poses,
            "window": _window(args.window),
            "drr": drr or None,
            "split": split or None,
            "study_id_salt": args.study_salt,
            "realism": {"preset": args.realism} if args.realism else None,
        },
        transform=args.transform,
        resample_labels=args.resample_labels,
        label_map=args.label_map,
        study_map=args.study_map,
        overwrite=args.overwrite,
        batch=BatchOptions(
            executor=args.executor,
            address=args.ray_address,
            workers=args.workers,
            task_cpus=args.task_cpus,
            task_memory=args.task_memory,
            retries=args.retries,
            redo=args.redo,
            skip_failed=args.skip_failed,
        ),
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
        "into the volume. Defaults: configs/ct/default.yaml ← configs/ct/<anatomy>.yaml ← flags.",
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
    p.add_argument("--study-salt", help="salt of the pseudonymous study ids (default: study_id_salt of the preset)")
    add_anatomy(p)
    add_out(p, "output dataset folder")
    p.add_argument("--preset", help="CT preset name or YAML (default: the anatomy's preset in configs/ct)")
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
    add_workers(p, help="studies converted at once (processes, or Ray tasks); 0: as many as the cores allow")
    add_batch(p)
    add_record_paths(p)
