#!/usr/bin/env python
r"""Pretrain YOLO11n-seg on anatomical phantoms: a starting checkpoint that never saw a real scan.

Pipeline (each step resumable; a session may be killed at any moment and ``--resume`` picks up):

1. **Phantoms** — ``N`` torso CTs from :func:`yolo_spine.synth.anatomy.anatomical_phantom` (seed ``S + i``),
   written as NIfTI and converted by ``ct2yolo`` (the product's own loading code): sagittal and coronal slices
   (the planes the demo uses) and AP/lateral DRRs with random poses, each phantom with its own window,
   source-detector distance and pose ranges. One folder per phantom in ``OUT/studies/``; a phantom whose
   ``phantom.json`` exists is done. The volumes are deleted afterwards (``--keep-volumes`` keeps them): the
   seed rebuilds any of them bit for bit.
2. **Dataset** — ``OUT/dataset/``: the phantoms' images hard-linked into one YOLO-seg dataset (every
   ``--val-every``-th phantom to ``val``, never split inside a phantom), names in the spine registry's order.
3. **Training** — ``yolo_spine train`` (YOLO11n-seg from its YAML, the spine registry's 26 classes so the head
   matches the demo's) in ``OUT/train``; ``--resume`` continues from its ``last.pt``.
4. **Checkpoint** — after every epoch the best weights so far are stripped to a small ``.pt`` in ``weights/``
   with a model card (``.md``) and a JSON card (data, recipe, epochs, commit, SHA-256, what it is not for).

It runs with ONE torch/OpenMP thread, ``OMP_WAIT_POLICY=PASSIVE``, no dataloader workers and a raised nice
level by default, so it can train in the background while other work uses the machine. ``--background``
detaches it (log in ``OUT/pretrain.log``, process id in ``OUT/pretrain.pid``).

Never: the example CT (LIDC-IDRI-0001) or anything measured on it; nothing here imports ``yolo_spine.data``.

Examples::

    # a few seconds: proves the pipeline end to end (2 phantoms, 1 epoch, 64 px)
    python scripts/pretrain_phantoms.py --out runs/pretrain_tiny --phantoms 2 --epochs 1 --imgsz 64 \\
        --weights-out runs/pretrain_tiny/tiny.pt
    # a long background run; continue it in the next session with the same command plus --resume
    python scripts/pretrain_phantoms.py --out runs/pretrain --background
    python scripts/pretrain_phantoms.py --out runs/pretrain --resume --background
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

#: Options stored in ``OUT/pretrain.json`` at the first run and reused by ``--resume`` (flags still override).
DEFAULTS: dict[str, Any] = {
    "phantoms": 400,
    "seed": 1000,
    "val_every": 10,
    "step": 5,
    "poses": 5,
    "drr_size": 320,
    "epochs": 30,
    "imgsz": 256,
    "batch": 16,
    "lr0": 0.002,
    "nbs": 16,
    "warmup_epochs": 3.0,
    "close_mosaic": 10,
    "init_weights": None,
    "optimizer": "AdamW",
    "patience": 100,
    "device": "cpu",
    "weights_out": "yolo_spine/weights/yolo11n-seg-spine-phantoms.pt",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (stdlib only: nothing heavy is imported before the thread settings)."""
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", type=Path, required=True, help="work folder (phantom studies, dataset, training run)")
    p.add_argument(
        "--phantoms", type=int, help=f"number of phantoms (default {DEFAULTS['phantoms']}; may grow on --resume)"
    )
    p.add_argument(
        "--seed", type=int, help=f"seed of the first phantom (default {DEFAULTS['seed']}); phantom i uses seed+i"
    )
    p.add_argument("--val-every", type=int, help="every K-th phantom goes to validation (default 10)")
    p.add_argument("--step", type=int, help="keep every K-th slice of each plane (default 5)")
    p.add_argument("--poses", type=int, help="random DRR poses per view and phantom (default 5)")
    p.add_argument("--drr-size", type=int, help="DRR detector size in pixels (default 320)")
    p.add_argument("--epochs", type=int, help="training epochs (default 30)")
    p.add_argument("--imgsz", type=int, help="training image size (default 256, the demo's)")
    p.add_argument("--batch", type=int, help="batch size (default 16)")
    p.add_argument("--lr0", type=float, help="initial learning rate (default 0.002, AdamW as the demo)")
    p.add_argument("--optimizer", help="optimizer (default AdamW)")
    p.add_argument(
        "--nbs", type=int, help="nominal batch: one optimizer step per round(nbs / batch) batches (default 16 = batch)"
    )
    p.add_argument(
        "--warmup-epochs", type=float, help="learning-rate warm-up epochs (default 3; 1 is enough when continuing)"
    )
    p.add_argument("--close-mosaic", type=int, help="mosaic off for the last N epochs (default 10)")
    p.add_argument(
        "--init-weights",
        type=Path,
        help="continue from an earlier phantom checkpoint (its card, <name>.json beside it, is chained into the new "
        "card); default: from the architecture YAML",
    )
    p.add_argument("--patience", type=int, help="early-stopping patience in epochs (default 100)")
    p.add_argument("--device", help="cpu, 0 (GPU) … (default cpu)")
    p.add_argument(
        "--threads", type=int, default=1, help="torch/OpenMP/OpenCV threads (default 1: leave the rest free)"
    )
    p.add_argument("--workers", type=int, default=0, help="dataloader worker processes (default 0)")
    p.add_argument("--jobs", type=int, default=1, help="phantoms made in parallel processes (default 1)")
    p.add_argument("--nice", type=int, default=10, help="raise the nice level by this much (default 10; 0 = unchanged)")
    p.add_argument(
        "--weights-out",
        type=Path,
        help="checkpoint to write (default yolo_spine/weights/yolo11n-seg-spine-phantoms.pt, the packaged one)",
    )
    p.add_argument("--keep-volumes", action="store_true", help="keep each phantom's NIfTI volumes in OUT/volumes")
    p.add_argument("--prepare-only", action="store_true", help="generate and convert phantoms, build the dataset, stop")
    p.add_argument(
        "--export-only",
        action="store_true",
        help="write the checkpoint and its card from a stopped run's best weights so far (no training)",
    )
    p.add_argument("--resume", action="store_true", help="continue OUT: missing phantoms, then training from last.pt")
    p.add_argument("--overwrite", action="store_true", help="start OUT afresh (deletes its phantoms and training)")
    p.add_argument("--background", action="store_true", help="detach; log to OUT/pretrain.log, pid in OUT/pretrain.pid")
    return p.parse_args(argv)


def limit_threads(threads: int, nice: int) -> None:
    """One thread per library and passive OpenMP waiting, set before numpy/torch/OpenCV are imported."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        os.environ[var] = str(threads)
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"  # idle OpenMP threads sleep instead of spinning on a shared CPU
    os.environ.setdefault("YOLO_OFFLINE", "1")
    if nice > 0 and hasattr(os, "nice"):
        os.nice(nice)


def resolve(args: argparse.Namespace, stored: dict[str, Any] | None) -> dict[str, Any]:
    """Defaults ← the run's stored options (on --resume) ← flags given now."""
    opts = dict(DEFAULTS)
    if stored:
        opts.update({k: v for k, v in stored.items() if k in DEFAULTS})
    for key in DEFAULTS:
        val = getattr(args, key, None)
        if val is not None:
            opts[key] = str(val) if isinstance(val, Path) else val
    return opts


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse, limit threads, then run the pipeline (heavy imports happen after the limits)."""
    args = parse_args(argv)
    if args.background:
        return detach(argv if argv is not None else sys.argv[1:], args.out)
    limit_threads(args.threads, args.nice)
    sys.path.insert(0, str(ROOT))  # the checkout this script belongs to, whatever is installed

    import logging

    from yolo_spine._cli_common import say
    from yolo_spine.errors import UserError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    try:
        summary = run(args)
    except UserError as exc:
        say(f"error: {exc}")
        return 2
    say(summary)
    return 0


def detach(argv: list[str], out: Path) -> int:
    """Start this script again without ``--background`` in its own session; its output goes to a log."""
    import subprocess

    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "pretrain.log"
    cmd = [sys.executable, str(Path(__file__).resolve()), *[a for a in argv if a != "--background"]]
    with open(log_path, "a", encoding="utf-8") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    (out / "pretrain.pid").write_text(f"{proc.pid}\n", encoding="utf-8")
    print(f"pretraining in the background: pid {proc.pid}, log {log_path}")
    return 0


def run(args: argparse.Namespace) -> str:
    """Phantoms → dataset → training → checkpoint; returns a one-line summary."""
    import json
    import shutil

    from yolo_spine.errors import OutputExistsError, UserError
    from yolo_spine.io.atomic import write_json_atomic
    from yolo_spine.synth.pretrain import (
        PretrainPlan,
        build_dataset,
        export_checkpoint,
        make_studies,
        session_record,
        stopped_run,
        train_model,
    )

    out = args.out.resolve()
    config = out / "pretrain.json"
    stored = None
    started = out.exists() and any(p.name not in ("pretrain.log", "pretrain.pid") for p in out.iterdir())
    if started:
        if args.resume:
            stored = json.loads(config.read_text(encoding="utf-8")) if config.is_file() else None
        elif args.overwrite:
            for p in out.iterdir():  # keep a --background run's own log and pid file
                if p.name not in ("pretrain.log", "pretrain.pid"):
                    shutil.rmtree(p) if p.is_dir() else p.unlink()
        else:
            raise OutputExistsError(f"{out} already exists; pass --resume to continue it or --overwrite to restart")
    elif args.resume:
        raise UserError(f"nothing to resume in {out}")
    opts = resolve(args, stored)
    if opts["phantoms"] < 2:
        raise UserError("--phantoms must be at least 2 (one for training, one for validation)")
    out.mkdir(parents=True, exist_ok=True)
    # every session that trained this run (a run spans sessions: --resume), for the model card
    sessions = list((stored or {}).get("sessions") or [])
    write_json_atomic(config, {**opts, "sessions": sessions})
    plan = PretrainPlan(
        out=out,
        phantoms=int(opts["phantoms"]),
        seed=int(opts["seed"]),
        val_every=int(opts["val_every"]),
        step=int(opts["step"]),
        poses=int(opts["poses"]),
        drr_size=int(opts["drr_size"]),
        threads=args.threads,
        keep_volumes=args.keep_volumes,
    )
    timing = make_studies(plan, jobs=args.jobs)
    data_yaml, counts = build_dataset(plan)
    if args.prepare_only:
        return f"prepared {plan.phantoms} phantoms into {data_yaml}: images {counts}; {timing}"
    weights_out = Path(opts["weights_out"])
    weights_out = weights_out if weights_out.is_absolute() else (Path.cwd() / weights_out)
    if args.export_only:
        card = export_checkpoint(plan, stopped_run(plan), {**opts, "sessions": sessions}, weights_out)
        return f"exported {weights_out} ({card['epochs_completed']} epoch(s), sha256 {card['sha256'][:12]}…)"
    if not (out / "train" / "run.json").is_file():  # a finished run trains nothing more: no session to record
        sessions.append(session_record(plan, resume=args.resume))
    opts_card = {**opts, "sessions": sessions}
    write_json_atomic(config, opts_card)
    result = train_model(plan, data_yaml, opts_card, resume=args.resume, workers=args.workers, weights_out=weights_out)
    card = export_checkpoint(plan, result, opts_card, weights_out)
    return (
        f"pretrained on {plan.phantoms} phantoms ({counts['train']} train / {counts['val']} val images): "
        f"{card['epochs_completed']} epoch(s), {card['train_images_per_second']} images/s; "
        f"checkpoint {weights_out} (sha256 {card['sha256'][:12]}…), card {weights_out.with_suffix('.md')}; {timing}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
