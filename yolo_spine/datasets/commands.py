"""Subcommands of the datasets stage: fetch, merge, check, stats, augment (argparse only; work happens in handlers)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from yolo_spine._cli_common import (
    add_anatomy,
    add_command,
    add_config,
    add_out,
    add_record_paths,
    add_seed,
    add_workers,
    say,
    stage_options,
)
from yolo_spine.errors import UserError

if TYPE_CHECKING:
    from yolo_spine.datasets.options import AugmentOptions, MergeOptions


def _parse_maps(items: list[str]) -> dict[str, str]:
    maps = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"--map needs NAME=CLASS, got '{item}'")
        k, v = item.split("=", 1)
        maps[k.strip()] = v.strip()
    return maps


def _fetch(args: argparse.Namespace) -> int:
    from yolo_spine.datasets.fetch import fetch_dataset

    out = fetch_dataset(
        workspace=args.workspace,
        project=args.project,
        version=args.version,
        fmt=args.format,
        api_key=args.api_key,
        out_root=args.out,
        overwrite=args.overwrite,
    )
    say(out)
    return 0


def _merge_options(args: argparse.Namespace) -> MergeOptions:
    from yolo_spine.datasets.options import MergeOptions

    return stage_options(MergeOptions, args, same=("split", "seed", "workers"), on=("keep_splits",))


def _merge(args: argparse.Namespace) -> int:
    opts = _merge_options(args)
    from yolo_spine.datasets.merge import merge_exports

    summary = merge_exports(
        args.sources,
        args.out,
        opts,
        anatomy=args.anatomy,
        maps=_parse_maps(args.map),
        drops=args.drop,
        overwrite=args.overwrite,
    )
    inst = summary["instances"]
    dropped = ", ".join(f"{k} {v}" for k, v in inst["dropped"].items() if v) or "none"
    say(
        f"merged into {summary['out']}: images train {summary['images']['train']}, val {summary['images']['val']}, "
        f"test {summary['images']['test']}; instances kept {inst['kept']} of {inst['in']} "
        f"(clipped {inst['clipped']}; dropped: {dropped}); see manifest.json"
    )
    return 0


def _check(args: argparse.Namespace) -> int:
    from yolo_spine.datasets.check import check_dataset

    rep = check_dataset(args.data)
    n_img = sum(rep.images.values())
    if rep.ok:
        say(f"ok: {n_img} images, {sum(rep.instances.values())} instances, no problems")
        return 0
    for p in rep.problems:
        say(p)
    say(f"{len(rep.problems)} problem(s) in {rep.root} ({n_img} images)")
    return 1


def _stats(args: argparse.Namespace) -> int:
    from yolo_spine.datasets.stats import dataset_stats, plot_class_histogram

    st = dataset_stats(args.data)
    say(st.table())
    png = args.out or Path(args.data).resolve().parent / "class_histogram.png"
    plot_class_histogram(st, png, title=f"{Path(args.data).resolve().parent.name}: instances per class")
    say(f"histogram: {png}")
    return 0


def _augment_options(args: argparse.Namespace) -> AugmentOptions:
    from yolo_spine.datasets.options import AugmentOptions

    return stage_options(AugmentOptions, args, same=("copies",), on=("allow_order_breaking",))


def _augment(args: argparse.Namespace) -> int:
    opts = _augment_options(args)  # checked before OpenCV and albumentations are imported
    from yolo_spine.datasets.augment import augment_dataset

    s = augment_dataset(
        args.data,
        args.out,
        opts,
        seed=args.seed,
        workers=args.workers,
        overwrite=args.overwrite,
        anatomy=args.anatomy,
    )
    inst = s["instances"]
    dropped = ", ".join(f"{k} {v}" for k, v in inst["dropped"].items() if v) or "none"
    say(
        f"augmented into {s['out']}: {s['copies']} copies ({s['copies_per_s']} copies/s); train now "
        f"{s['images']['train']} images; instances written {inst['out']} of {inst['in']} "
        f"(split pieces {inst['split_pieces']}; dropped: {dropped}); see manifest.json"
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add fetch, merge, check, stats and augment."""
    p = add_command(sub, "fetch", "download a Roboflow dataset version (needs network and an API key)", _fetch)
    p.add_argument("--workspace", required=True, help="Roboflow workspace (the first part of the project URL)")
    p.add_argument("--project", required=True, help="Roboflow project (the second part of the project URL)")
    p.add_argument("--version", type=int, required=True, help="dataset version number of the project")
    p.add_argument(
        "--format", default="yolov11", choices=["yolov11", "coco-segmentation"], help="export format to download"
    )
    p.add_argument("--api-key", default=None, help="Roboflow API key (default: $ROBOFLOW_API_KEY)")
    add_out(p, "receives <project>-<version>/", required=False, default=Path("datasets/raw"), replaces="download")
    add_record_paths(p)

    p = add_command(sub, "merge", "merge Roboflow exports into one leakage-free YOLO-seg dataset", _merge)
    p.add_argument("sources", nargs="+", type=Path, metavar="SRC", help="export folders or .zip files")
    add_anatomy(p)
    add_out(p, "output dataset folder")
    p.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="NAME=CLASS",
        help="map a source class name onto a registry class (repeatable)",
    )
    p.add_argument(
        "--drop",
        action="append",
        default=[],
        metavar="NAME",
        help="drop a source class (counted in the manifest; repeatable)",
    )
    p.add_argument(
        "--split",
        nargs=3,
        type=float,
        default=None,
        metavar=("TRAIN", "VAL", "TEST"),
        help="split fractions, made per group of copies (default: 0.8 0.1 0.1)",
    )
    p.add_argument(
        "--keep-splits",
        action="store_true",
        help="keep the exports' splits (groups found in several splits are moved into one)",
    )
    p.add_argument("--seed", type=int, default=None, help="random seed of the split (same seed, same output)")
    p.add_argument(
        "--workers", type=int, default=None, help="processes hashing, verifying and writing images (0: every core)"
    )
    add_config(p, "merge")
    add_record_paths(p)

    p = add_command(sub, "check", "validate a dataset as training will read it (non-zero exit on problems)", _check)
    p.add_argument("data", type=Path, metavar="DATA_YAML", help="the dataset's data.yaml")

    p = add_command(sub, "stats", "images and instances per split and class, and a class histogram", _stats)
    p.add_argument("data", type=Path, metavar="DATA_YAML", help="the dataset's data.yaml")
    p.add_argument(
        "--out", type=Path, default=None, help="histogram PNG (default: class_histogram.png beside data.yaml)"
    )

    p = add_command(
        sub,
        "augment",
        "offline augmentation of the training split: polygon-exact, anatomy order kept, left/right classes swapped",
        _augment,
    )
    p.add_argument("data", type=Path, metavar="DATA_YAML", help="the dataset's data.yaml")
    add_out(p, "output dataset folder (val/test copied untouched, train = originals + copies)")
    p.add_argument("--copies", type=int, default=None, help="copies per training image (default: the config's)")
    add_config(p, "augment", default="xray-spine", preset_alias=True)
    p.add_argument(
        "--allow-order-breaking",
        action="store_true",
        help="allow the preset's vertical flips and 90-degree turns (they break the top-to-bottom vertebra order)",
    )
    add_anatomy(p, default=None)
    add_seed(p)
    add_workers(p)
    add_record_paths(p)
