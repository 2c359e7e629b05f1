"""Pretraining on anatomical phantoms: phantom studies → one YOLO-seg dataset → training → checkpoint + card.

The steps behind ``scripts/pretrain_phantoms.py`` as plain functions. Every step can be cut off and run again:
a phantom is done when ``studies/<name>/phantom.json`` exists, the dataset is rebuilt from the finished
phantoms (hard links, seconds), training resumes from the run's ``last.pt``, and the checkpoint in ``weights/``
is refreshed after every epoch, so a session that is killed still leaves a usable checkpoint behind.

Nothing here reads real data: the phantoms come from :mod:`yolo_spine.synth.anatomy` only.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from yolo_spine.ct.options import CtOptions
from yolo_spine.errors import UserError
from yolo_spine.io.atomic import atomic_output, partial_path, write_json_atomic
from yolo_spine.parallel import LocalExecutor
from yolo_spine.provenance import run_manifest, sha256_file
from yolo_spine.registry import load_registry

if TYPE_CHECKING:
    from yolo_spine.train.train import TrainRunRecord

log = logging.getLogger("yolo_spine")

#: What every card says the checkpoint is not for.
NOT_FOR = (
    "Not a clinical model and not validated on patients: it has seen only synthetic phantoms "
    "(yolo_spine.synth.anatomy), never a real CT or radiograph, and in particular never the example CT "
    "LIDC-IDRI-0001 nor anything measured on it. It is a starting point for fine-tuning (yolo_spine train "
    "--weights …) on real, labelled images; its phantom-validation figures say nothing about accuracy on "
    "real images. Not for diagnosis, treatment planning or any decision about a person."
)


@dataclass(frozen=True)
class PretrainPlan:
    """Where and what to generate.

    Attributes:
        out: Work folder (``studies/``, ``volumes/``, ``dataset/``, ``train/``).
        phantoms: Number of phantoms; phantom ``i`` uses seed ``seed + i``.
        seed: Seed of phantom 0.
        val_every: Every ``val_every``-th phantom goes to validation (at least one does).
        step: Keep every K-th slice of each plane.
        poses: Random DRR poses per view and phantom.
        drr_size: DRR detector size (pixels).
        threads: Threads for DRR rendering.
        keep_volumes: Keep the NIfTI volumes after conversion.
    """

    out: Path
    phantoms: int
    seed: int
    val_every: int = 10
    step: int = 5
    poses: int = 5
    drr_size: int = 320
    threads: int = 1
    keep_volumes: bool = False

    def name(self, i: int) -> str:
        """Study name of phantom ``i`` (its seed, so a name says how to rebuild it)."""
        return f"phantom_{self.seed + i:06d}"

    def split(self, i: int) -> str:
        """``val`` for every ``val_every``-th phantom (the last one when there are fewer), else ``train``."""
        k = max(int(self.val_every), 2)
        if i % k == k - 1 or (self.phantoms < k and i == self.phantoms - 1):
            return "val"
        return "train"


def study_options(plan: PretrainPlan, i: int) -> CtOptions:
    """``ct2yolo`` options of phantom ``i``: the demo's planes and views, with its own window and DRR set-up.

    Windows: mostly bone windows of varying centre and width, sometimes a soft-tissue window (vertebrae then
    show saturated, as on a soft-tissue reconstruction). DRRs: source-detector distance of a spine radiograph
    (1000 mm) to a chest radiograph (1800 mm), random pose ranges and display percentiles.
    """
    rng = np.random.default_rng([plan.seed + i, 7])
    if rng.random() < 0.15:
        window = {"center": float(rng.uniform(30.0, 90.0)), "width": float(rng.uniform(350.0, 800.0))}
    else:
        window = {"center": float(rng.uniform(250.0, 600.0)), "width": float(rng.uniform(1200.0, 2600.0))}
    values = {
        "planes": ["sagittal", "coronal"],
        "step": int(plan.step),
        "views": ["ap", "lat"],
        "poses": int(plan.poses),
        "window": window,
        "slice": {"min_area_px": 8},
        "drr": {
            "size": int(plan.drr_size),
            "sdd_mm": float(rng.uniform(1000.0, 1800.0)),
            "n_samples": 96,
            "min_area_px": 8,
            "threads": int(plan.threads),
            "pose_rot_deg": [float(rng.uniform(5, 15)), float(rng.uniform(5, 15)), float(rng.uniform(3, 8))],
            "pose_trans_mm": [10.0, 10.0, 20.0],
            "display_percentiles": [float(rng.uniform(0.2, 2.0)), float(rng.uniform(98.5, 99.9))],
        },
        # every image of a phantom stays together; the dataset step decides the phantom's split
        "split": {"mode": "study", "fractions": {"train": 1.0, "val": 0.0, "test": 0.0}},
    }
    return CtOptions.for_anatomy("spine", flags=values)


def make_study(plan: PretrainPlan, i: int) -> dict[str, Any]:
    """Generate phantom ``i``, write it as NIfTI, convert it with ``ct2yolo``; return its record.

    The record (``studies/<name>/phantom.json``) is written last: it marks the phantom as done.
    """
    from yolo_spine.ct.convert import ct2yolo
    from yolo_spine.synth.anatomy import anatomical_phantom, write_anatomical_phantom

    name = plan.name(i)
    folder = plan.out / "studies" / name
    if folder.exists():  # an interrupted conversion: start this phantom again
        shutil.rmtree(folder)
    # wall and CPU seconds: on a shared machine the CPU time is what the step costs
    t0, c0 = time.perf_counter(), time.process_time()
    ph = anatomical_phantom(plan.seed + i)
    t1, c1 = time.perf_counter(), time.process_time()
    vol, lab = write_anatomical_phantom(ph, plan.out / "volumes", name)
    t2, c2 = time.perf_counter(), time.process_time()
    options = study_options(plan, i)
    manifest = ct2yolo(folder, options, volume=vol, labels=lab, study=name, anatomy="spine", progress=False)
    t3, c3 = time.perf_counter(), time.process_time()
    if not plan.keep_volumes:
        vol.unlink(missing_ok=True)
        lab.unlink(missing_ok=True)
    record = {
        "study": name,
        "index": i,
        "split": plan.split(i),
        "phantom": ph.info,
        "ct2yolo": options.values(),
        "images": int(sum(manifest["images_per_split"].values())),
        "seconds": {"generate": round(t1 - t0, 3), "write": round(t2 - t1, 3), "ct2yolo": round(t3 - t2, 3)},
        "cpu_seconds": {"generate": round(c1 - c0, 3), "write": round(c2 - c1, 3), "ct2yolo": round(c3 - c2, 3)},
    }
    write_json_atomic(folder / "phantom.json", record)
    return record


def make_studies(plan: PretrainPlan, jobs: int = 1) -> str:
    """Make every phantom not done yet (``jobs`` processes); return a summary of the seconds per phantom.

    Phantom ``i`` depends only on its seed, so the result is the same whatever ``jobs`` is. Each process needs
    roughly 0.5 GB for a 300-voxel-wide volume.
    """
    todo = [i for i in range(plan.phantoms) if not (plan.out / "studies" / plan.name(i) / "phantom.json").is_file()]
    done = plan.phantoms - len(todo)
    made: list[dict[str, Any]] = []
    with LocalExecutor(max(1, jobs), n_items=len(todo)) as ex:  # each process gets its share of the cores
        outcomes = ex.map(functools.partial(make_study, plan), todo, desc="phantoms", unit="phantom", progress=False)
        for i, outcome in zip(todo, outcomes, strict=True):
            rec = outcome.get()
            made.append(rec)
            _log_study(plan, i, rec)
    if not made:
        return f"{done} phantoms already made"

    def mean(key: str, part: str) -> float:
        return float(np.mean([r[key][part] for r in made]))

    return (
        f"made {len(made)} phantoms ({done} already there), {np.mean([r['images'] for r in made]):.0f} images each; "
        "per phantom wall/CPU s: "
        + ", ".join(
            f"{p} {mean('seconds', p):.1f}/{mean('cpu_seconds', p):.1f}" for p in ("generate", "write", "ct2yolo")
        )
    )


def _log_study(plan: PretrainPlan, i: int, rec: dict[str, Any]) -> None:
    """One log line per finished phantom (wall and CPU seconds of each step)."""
    s, c = rec["seconds"], rec["cpu_seconds"]
    log.info(
        "phantom %d/%d %s (%s, %s voxels, %d images): wall/CPU s generate %.1f/%.1f, write %.1f/%.1f, "
        "ct2yolo %.1f/%.1f",
        i + 1,
        plan.phantoms,
        rec["study"],
        rec["phantom"]["fov"],
        "×".join(map(str, rec["phantom"]["size_xyz"])),
        rec["images"],
        s["generate"],
        c["generate"],
        s["write"],
        c["write"],
        s["ct2yolo"],
        c["ct2yolo"],
    )


def _link(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another filesystem, or no hard links: copy
        shutil.copy2(src, dst)


def build_dataset(plan: PretrainPlan) -> tuple[Path, dict[str, int]]:
    """(Re)build ``OUT/dataset`` from the finished phantoms: hard links, phantom-level split, manifest.

    Returns:
        The dataset's ``data.yaml`` and the number of images per split.
    """
    from yolo_spine.io.labels import write_data_yaml

    reg = load_registry("spine")
    final = plan.out / "dataset"
    counts = {"train": 0, "val": 0}
    studies = []
    instances = np.zeros(reg.nc, np.int64)
    with atomic_output(final, overwrite=True) as tmp:
        for split in counts:
            (tmp / "images" / split).mkdir(parents=True)
            (tmp / "labels" / split).mkdir(parents=True)
        for i in range(plan.phantoms):
            folder = plan.out / "studies" / plan.name(i)
            rec_path = folder / "phantom.json"
            if not rec_path.is_file():
                continue
            split = plan.split(i)
            n = 0
            for img in sorted((folder / "images" / "train").glob("*.png")):
                _link(img, tmp / "images" / split / img.name)
                lab = folder / "labels" / "train" / f"{img.stem}.txt"
                if lab.is_file():
                    _link(lab, tmp / "labels" / split / lab.name)
                    for line in lab.read_text(encoding="utf-8").splitlines():
                        if line.strip():
                            instances[int(line.split()[0])] += 1
                n += 1
            counts[split] += n
            rec = json.loads(rec_path.read_text(encoding="utf-8"))
            studies.append({"study": rec["study"], "split": split, "images": n, "fov": rec["phantom"]["fov"]})
        if counts["val"] == 0 or counts["train"] == 0:
            from yolo_spine.errors import DataError

            raise DataError(f"the finished phantoms give no {'validation' if not counts['val'] else 'training'} images")
        write_data_yaml(tmp, reg.names_dict, reg.name, splits=("train", "val"))
        manifest = run_manifest(
            "pretrain-dataset",
            {"phantoms": plan.phantoms, "seed": plan.seed, "val_every": plan.val_every},
            extra={
                "anatomy": reg.name,
                "kind": "phantoms",
                "generator": generator_fingerprint(),
                "images_per_split": counts,
                "instances_per_class": dict(zip(reg.names, instances.tolist(), strict=True)),
                "studies": studies,
            },
        )
        write_json_atomic(tmp / "manifest.json", manifest)
    return final / "data.yaml", counts


def generator_fingerprint() -> dict[str, str]:
    """SHA-256 of the generator's source, so a card pins the exact phantoms it was trained on."""
    from yolo_spine.synth import anatomy

    return {"module": "yolo_spine.synth.anatomy", "source_sha256": sha256_file(anatomy.__file__)}


def git_commit(root: Path | None = None) -> dict[str, Any]:
    """The checkout's commit and whether it had uncommitted changes (``None`` outside a git checkout)."""
    root = root or Path(__file__).resolve().parent.parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": head.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def session_record(plan: PretrainPlan, *, resume: bool) -> dict[str, Any]:
    """One session of training: when it started, at which commit, from which epoch and with how many threads."""
    done = _results_rows(plan)
    return {
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **git_commit(),
        "from_epoch": int(done[-1]["epoch"]) if resume and done else 0,
        "threads": plan.threads,
    }


def _results_rows(plan: PretrainPlan) -> list[dict[str, float]]:
    """Ultralytics' ``results.csv`` rows of the run (finished or still in its partial folder); ``[]`` if none."""
    from yolo_spine.train.train import read_results_csv

    run_dir = plan.out / "train"
    return read_results_csv(run_dir / "results.csv") or read_results_csv(partial_path(run_dir) / "results.csv")


def stopped_run(plan: PretrainPlan) -> dict[str, Any]:
    """What :func:`export_checkpoint` needs of a stopped (or finished) run: its best epoch's phantom validation.

    The best epoch is the one Ultralytics saved as ``best.pt`` (its ``epoch`` field counts from 0); a finished
    run's ``best.pt`` no longer says, so there it is the row of the highest fitness (box + mask mAP50-95), as
    Ultralytics chose it.
    """
    from yolo_spine.train.train import checkpoint_meta
    from yolo_spine.ultra import import_ultralytics

    import_ultralytics(threads=plan.threads)  # the checkpoint pickles Ultralytics' classes
    finished = plan.out / "train"
    run_dir = next((d for d in (partial_path(finished), finished) if (d / "weights" / "best.pt").is_file()), None)
    rows = _results_rows(plan)
    if run_dir is None or not rows:
        raise UserError(f"no training with a best.pt to export in {plan.out}")
    best = run_dir / "weights" / "best.pt"
    epoch = checkpoint_meta(best)["epoch"] + 1
    if epoch < 1:  # a finished run's best.pt is stripped (epoch -1): the row of Ultralytics' best fitness
        epoch = int(max(rows, key=lambda r: r["metrics/mAP50-95(B)"] + r["metrics/mAP50-95(M)"])["epoch"])
    row = next((r for r in rows if int(r["epoch"]) == epoch), rows[-1])
    return {
        "epochs_completed": int(rows[-1]["epoch"]),
        "best_epoch": epoch,
        "final_metrics": {k: v for k, v in row.items() if k.startswith("metrics/")},
        "in_progress": run_dir != finished,
        "source": best,
    }


def train_model(
    plan: PretrainPlan,
    data_yaml: Path,
    opts: Mapping[str, Any],
    *,
    resume: bool,
    workers: int,
    weights_out: Path,
) -> TrainRunRecord:
    """Train (or resume) YOLO11n-seg on the phantom dataset; refresh the checkpoint every epoch.

    The model starts from its architecture YAML, or from ``opts["init_weights"]`` (an earlier phantom checkpoint).

    Returns:
        The run manifest (``train/run.json``) of the finished run.
    """
    from yolo_spine.train.train import read_run_record, train

    run_dir = plan.out / "train"
    last = partial_path(run_dir) / "weights" / "last.pt"
    if resume and not last.is_file() and (run_dir / "run.json").is_file():
        log.info("training in %s had finished; nothing to resume", run_dir)
        return read_run_record(run_dir / "run.json")
    no_weights = plan.out / ".no-weights"  # an empty folder: never a checkpoint found by name
    no_weights.mkdir(exist_ok=True)
    init = opts.get("init_weights")

    def on_model_save(trainer: Any) -> None:
        src = Path(trainer.best if Path(trainer.best).is_file() else trainer.last)
        metrics = {k: float(v) for k, v in (getattr(trainer, "metrics", None) or {}).items()}
        export_checkpoint(
            plan,
            {"epochs_completed": int(trainer.epoch) + 1, "final_metrics": metrics, "in_progress": True},
            opts,
            weights_out,
            source=src,
        )

    result = train(
        data_yaml,
        run_dir,
        model="yolo11n-seg",
        epochs=int(opts["epochs"]),
        imgsz=int(opts["imgsz"]),
        batch=int(opts["batch"]),
        device=opts["device"],
        workers=int(workers),
        threads=plan.threads,
        optimizer=opts["optimizer"],
        lr0=float(opts["lr0"]),
        nbs=int(opts.get("nbs") or 64),
        warmup_epochs=float(opts.get("warmup_epochs", 3.0)),
        close_mosaic=int(opts.get("close_mosaic", 10)),
        weights=str(init) if init else "none",  # from the YAML unless continuing an earlier checkpoint
        patience=int(opts["patience"]),
        plots=False,
        val=True,
        resume=resume and last.is_file(),
        overwrite=True,
        weights_dir=no_weights,
        callbacks={"on_model_save": on_model_save},
    )
    return result.manifest


def export_checkpoint(
    plan: PretrainPlan,
    run: Mapping[str, Any],
    opts: Mapping[str, Any],
    weights_out: Path,
    source: Path | None = None,
) -> dict[str, Any]:
    """Strip the run's best weights into ``weights_out`` and write its model card (``.md`` and ``.json``).

    Args:
        plan: The pretraining plan.
        run: The run manifest, or ``{"epochs_completed", "final_metrics", "in_progress"}`` during training.
        opts: Resolved pretraining options (the recipe).
        weights_out: Checkpoint path (``.pt``); the cards go beside it.
        source: Checkpoint to export (default: the finished run's ``best.pt``, else ``last.pt``).

    Returns:
        The card (also written as JSON).
    """
    from yolo_spine.ultra import import_ultralytics

    import_ultralytics(threads=plan.threads)
    from ultralytics.utils.torch_utils import strip_optimizer

    from yolo_spine.train.shareable import sanitize_checkpoint

    commit = git_commit()  # before anything is written: the checkpoint itself may live inside the checkout
    run_dir = plan.out / "train"
    source = source or run.get("source")
    if source is None:
        source = next(p for p in (run_dir / "weights" / "best.pt", run_dir / "weights" / "last.pt") if p.is_file())
    weights_out.parent.mkdir(parents=True, exist_ok=True)
    tmp = weights_out.with_name(f".{weights_out.stem}.partial.pt")
    strip_optimizer(str(source), str(tmp))
    sanitize_checkpoint(tmp)  # a shipped checkpoint names no folder of the machine that trained it
    os.replace(tmp, weights_out)
    ds_manifest = json.loads((plan.out / "dataset" / "manifest.json").read_text(encoding="utf-8"))
    epochs = run.get("epochs_completed")  # run.json counts every session of a resumed run
    card = {
        "schema": "yolo_spine/model-card@1",
        "name": weights_out.stem,
        "file": weights_out.name,
        "sha256": sha256_file(weights_out),
        "bytes": weights_out.stat().st_size,
        "architecture": "yolo11n-seg",
        "anatomy": "spine",
        "classes": list(load_registry("spine").names),
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **commit,
        "data": {
            "source": "synthetic anatomical phantoms only (yolo_spine.synth.anatomy)",
            "generator": ds_manifest.get("generator"),
            "phantoms": plan.phantoms,
            "seeds": [plan.seed, plan.seed + plan.phantoms - 1],
            "fov_counts": _fov_counts(ds_manifest),
            "images_per_split": ds_manifest.get("images_per_split"),
            "instances_per_class": ds_manifest.get("instances_per_class"),
            "views": f"sagittal and coronal slices (one in {plan.step}), AP and lateral DRRs (canonical + "
            f"{plan.poses} random poses)",
            "rebuild": f"python scripts/pretrain_phantoms.py --out DIR --phantoms {plan.phantoms} --seed {plan.seed} "
            f"--step {plan.step} --poses {plan.poses} --epochs {opts['epochs']} --nbs {opts.get('nbs') or 64}"
            + (
                " --init-weights EARLIER.pt (the checkpoint under Recipe, rebuilt first)"
                if opts.get("init_weights")
                else ""
            ),
        },
        "recipe": {
            k: opts.get(k)
            for k in (
                "epochs",
                "imgsz",
                "batch",
                "nbs",
                "warmup_epochs",
                "close_mosaic",
                "optimizer",
                "lr0",
                "patience",
                "device",
            )
        },
        "threads": (opts.get("sessions") or [{}])[-1].get("threads", plan.threads),  # the last training session's
        "started_from": _started_from(opts.get("init_weights")),
        "epochs_completed": epochs,
        "best_epoch": run.get("best_epoch"),
        "in_progress": bool(run.get("in_progress", False)),
        "sessions": list(opts.get("sessions") or []),
        "train_images_per_second": run.get("train_images_per_second"),
        "phantom_validation": {k: v for k, v in (run.get("final_metrics") or {}).items() if k.startswith("metrics/")},
        "not_for": NOT_FOR,
    }
    write_json_atomic(weights_out.with_suffix(".json"), card)
    md = weights_out.with_suffix(".md")
    tmp_md = md.with_name(f".{md.name}.partial")
    tmp_md.write_text(_card_markdown(card), encoding="utf-8")
    os.replace(tmp_md, md)
    log.info("checkpoint %s (epoch %s, sha256 %s…)", weights_out, card["epochs_completed"], card["sha256"][:12])
    return card


def _started_from(init: str | Path | None) -> dict[str, Any] | None:
    """The earlier checkpoint a run continued from, with its own card's recipe and lineage (``None``: the YAML)."""
    if not init:
        return None
    path = Path(init)
    earlier = path.with_suffix(".json")
    card = json.loads(earlier.read_text(encoding="utf-8")) if earlier.is_file() else {}
    return {
        "file": path.name,
        "sha256": sha256_file(path),
        "epochs_completed": card.get("epochs_completed"),
        "commit": card.get("commit"),
        "recipe": card.get("recipe"),
        "rebuild": (card.get("data") or {}).get("rebuild"),
        "started_from": card.get("started_from"),
    }


def _lineage(card: Mapping[str, Any]) -> str:
    prev = card.get("started_from")
    if not prev:
        return "from the architecture YAML (no pretrained weights)"
    parts = []
    while prev:
        recipe = ", ".join(f"{k} {v}" for k, v in (prev.get("recipe") or {}).items())
        parts.append(
            f"`{prev['file']}` (SHA-256 `{prev['sha256'][:12]}…`, {prev.get('epochs_completed')} epochs at commit "
            f"`{str(prev.get('commit'))[:7]}`: {recipe})"
        )
        prev = prev.get("started_from")
    return "continued from " + ", itself continued from ".join(parts) + "; the first from the architecture YAML"


def _sessions_lines(card: Mapping[str, Any]) -> list[str]:
    """One line per training session of the run (a run spans sessions), for the card."""
    out = []
    for s in card.get("sessions") or []:
        out.append(
            f"- Session from epoch {s.get('from_epoch')}: started {s.get('started_utc')} at commit "
            f"`{str(s.get('commit'))[:7]}`{' (with uncommitted changes)' if s.get('dirty') else ''}, "
            f"{s.get('threads')} thread(s)"
        )
    return out


def _fov_counts(ds_manifest: Mapping[str, Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for s in ds_manifest.get("studies", []):
        counts[s["fov"]] = counts.get(s["fov"], 0) + 1
    return counts


def _card_markdown(card: Mapping[str, Any]) -> str:
    d = card["data"]
    val = card["phantom_validation"]
    lines = [
        f"# Model card: {card['name']}",
        "",
        f"- File: `{card['file']}`, {card['bytes'] / 1e6:.1f} MB, SHA-256 `{card['sha256']}`",
        f"- Architecture: {card['architecture']}, {len(card['classes'])} classes of the `{card['anatomy']}` "
        "registry in its order (C1 … L5, S1, sacrum), so the head matches `yolo_spine demo`/`train`",
        f"- Commit: `{card['commit']}`{' (with uncommitted changes)' if card['dirty'] else ''}; "
        f"created {card['created_utc']}",
        f"- Epochs completed: {card['epochs_completed']}"
        + (
            f" of a {card['recipe']['epochs']}-epoch schedule (stopped there; `--resume` continues it from the run's "
            "work folder, which holds the optimiser state and is not shipped)"
            if card["in_progress"]
            else ""
        )
        + (f"; these weights: epoch {card['best_epoch']} (best phantom validation)" if card.get("best_epoch") else ""),
        *_sessions_lines(card),
        "",
        "## Data",
        f"{d['source']}: {d['phantoms']} phantoms, seeds {d['seeds'][0]}–{d['seeds'][1]}, fields of view "
        f"{d['fov_counts']}; {d['views']}. Images per split: {d['images_per_split']}. Generator source "
        f"SHA-256 `{(d['generator'] or {}).get('source_sha256')}`.",
        "",
        f"Rebuild: `{d['rebuild']}` (at the commit above).",
        "",
        "## Recipe",
        ", ".join(f"{k} {v}" for k, v in card["recipe"].items())
        + f"; {_lineage(card)}; {card.get('threads', 1)} torch thread(s).",
        "",
        "## Phantom validation (held-out phantoms, not real images)",
        ", ".join(f"{k.removeprefix('metrics/')} {v:.3f}" for k, v in val.items()) or "n/a",
        "",
        "## What it is not for",
        card["not_for"],
        "",
    ]
    return "\n".join(lines)
