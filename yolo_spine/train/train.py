"""``yolo_spine train``: YOLOv11-seg training that works offline, uses every core and knows left from right.

* **Offline.** Ultralytics is imported through :func:`yolo_spine.ultra.import_ultralytics`. The model starts
  from ``--weights`` (must exist), else ``weights/<model>.pt`` when present, else the architecture YAML from
  scratch; the log and ``run.json`` say which. Nothing is ever downloaded.
* **Every core.** On the CPU torch runs on every core (Ultralytics alone pins one thread on a 2-core machine).
* **Left/right.** For registries with mirror pairs, horizontal flips swap the paired classes
  (:mod:`yolo_spine.train.trainer`).
* **Grayscale.** ``channels: 1`` builds a one-channel model; the dataset is read in grayscale.
* **Several GPUs.** ``--device 0,1`` runs Ultralytics' DDP (one process per GPU on this node; the trainer class is
  re-imported by name in each process). ``--resume`` continues an interrupted run from its ``last.pt``.
* **Atomic run folder.** Training writes into ``.<RUN_DIR>.partial`` next to ``RUN_DIR`` and renames it when it
  finishes; an interrupted run stays there for ``--resume``.

``RUN_DIR/run.json`` records versions, resolved options, the dataset and a hash of its label files, device,
threads, the model's origin, wall time and training throughput.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from yolo_spine.config import load_options
from yolo_spine.errors import DataError, OutputExistsError, UserError
from yolo_spine.provenance import run_manifest, sha256_files, write_json_atomic

log = logging.getLogger("yolo_spine")

#: Option keys passed to Ultralytics' ``model.train`` unchanged.
ULTRALYTICS_KEYS = (
    "epochs",
    "patience",
    "imgsz",
    "batch",
    "optimizer",
    "lr0",
    "cos_lr",
    "seed",
    "deterministic",
    "workers",
    "cache",
    "amp",
    "fliplr",
    "flipud",
    "degrees",
    "translate",
    "scale",
    "shear",
    "perspective",
    "mosaic",
    "close_mosaic",
    "mixup",
    "copy_paste",
    "hsv_h",
    "hsv_s",
    "hsv_v",
    "overlap_mask",
    "mask_ratio",
    "plots",
    "save_period",
    "val",
)


@dataclass
class TrainResult:
    """Where a finished run put its files.

    Attributes:
        run_dir: The run folder.
        best: ``weights/best.pt``.
        last: ``weights/last.pt``.
        run_json: The run manifest.
        manifest: The run manifest's contents.
    """

    run_dir: Path
    best: Path
    last: Path
    run_json: Path
    manifest: dict[str, Any]


def partial_dir(out: Path) -> Path:
    """The folder a run trains in before it is renamed to ``out``."""
    return out.parent / f".{out.name}.partial"


def resolve_model(model: str, weights: str | Path | None, weights_dir: Path) -> tuple[str, str]:
    """Decide what the model starts from: a checkpoint or the architecture YAML (never a download).

    Args:
        model: Architecture name (``yolo11n-seg``) or a model YAML path.
        weights: Explicit checkpoint; must exist.
        weights_dir: Folder searched for ``<model>.pt``.

    Returns:
        ``(what to give YOLO(), "checkpoint" | "scratch")``.

    Raises:
        UserError: For a missing ``weights`` file or an unknown architecture.
    """
    if weights:
        p = Path(weights)
        if not p.is_file():
            raise UserError(f"checkpoint not found: {p} (yolo_spine never downloads weights; put the file there)")
        return str(p), "checkpoint"
    stem = Path(model).name.removesuffix(".yaml").removesuffix(".pt")
    local = weights_dir / f"{stem}.pt"
    if local.is_file():
        return str(local), "checkpoint"
    cfg = model if model.endswith(".yaml") else f"{stem}.yaml"
    from ultralytics.nn.tasks import yaml_model_load

    try:
        yaml_model_load(cfg)
    except (FileNotFoundError, OSError):
        raise UserError(
            f"unknown model architecture '{model}' (try yolo11n-seg, yolo11s-seg, … or a model YAML)"
        ) from None
    if not yaml_model_load(cfg).get("nc") or "Segment" not in str(yaml_model_load(cfg).get("head")):
        raise UserError(f"'{model}' is not a segmentation architecture (use a *-seg model)")
    return cfg, "scratch"


def _dataset_info(data_yaml: Path) -> tuple[dict[str, Any], Path]:
    if not data_yaml.is_file():
        raise DataError(f"data.yaml not found: {data_yaml}")
    try:
        data = yaml.safe_load(data_yaml.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError:
        raise DataError(f"{data_yaml} is not valid YAML") from None
    if "names" not in data or "train" not in data:
        raise DataError(f"{data_yaml} needs 'names' and 'train' (is it a dataset written by yolo_spine merge?)")
    root = Path(data.get("path") or data_yaml.parent)
    if not root.is_absolute():
        root = (data_yaml.parent / root).resolve()
    return data, root


def _default_device() -> str:
    import torch

    return "0" if torch.cuda.is_available() else "cpu"


def train(
    data: str | Path,
    out: str | Path,
    preset: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    weights_dir: str | Path = "weights",
) -> TrainResult:
    """Train a YOLOv11-seg model on a yolo_spine dataset.

    Args:
        data: The dataset's ``data.yaml``.
        out: Run folder (receives ``weights/best.pt``, ``weights/last.pt``, Ultralytics' plots and ``run.json``).
        preset: Train preset name (``configs/train/<name>.yaml``) or YAML path; ``None``: defaults only.
        overrides: Options set on the command line (keys of ``configs/train/default.yaml``; ``None`` = not set).
        resume: Continue an interrupted run in ``out`` (from its ``last.pt``).
        overwrite: Replace an existing finished run in ``out``.
        weights_dir: Folder searched for ``<model>.pt`` checkpoints.

    Returns:
        The :class:`TrainResult`.

    Raises:
        UserError: Bad options, missing dataset or checkpoint, or an existing run without ``overwrite``/``resume``.
    """
    out = Path(out).resolve()
    data = Path(data).resolve()
    opts = load_options("train", preset, overrides)
    data_dict, data_root = _dataset_info(data)
    work = partial_dir(out)
    if resume:
        last = next((p for p in (work / "weights" / "last.pt", out / "weights" / "last.pt") if p.is_file()), None)
        if last is None:
            raise UserError(f"nothing to resume: no weights/last.pt in {out} or {work}")
        if last.parent.parent == out:  # a finished run being extended: continue in place
            work = out
    elif out.exists() and not overwrite:
        raise OutputExistsError(f"{out} already exists; pass --overwrite to replace it or --resume to continue it")
    elif work.exists():
        shutil.rmtree(work)

    from yolo_spine.ultra import import_ultralytics

    import_ultralytics(threads=opts["threads"])
    import torch
    from ultralytics import YOLO

    from yolo_spine.train.trainer import AnatomySegmentationTrainer, mirror_map_for

    device = str(opts["device"]) if opts["device"] is not None else _default_device()
    train_yaml = data
    if int(opts["channels"]) != int(data_dict.get("channels", 3)):
        # A derived data.yaml beside the run folder (Ultralytics' DDP launcher empties the run folder before it
        # starts); the user's dataset stays untouched. A copy lands in the finished run folder.
        out.parent.mkdir(parents=True, exist_ok=True)
        train_yaml = out.parent / f".{out.name}.data.yaml"
        train_yaml.write_text(
            yaml.safe_dump({**data_dict, "path": str(data_root), "channels": int(opts["channels"])}, sort_keys=False),
            encoding="utf-8",
        )

    if resume:
        model_arg, source = str(last), "resume"
    else:
        model_arg, source = resolve_model(str(opts["model"]), opts["weights"], Path(weights_dir))
    log.info(
        "model: %s (%s)",
        Path(model_arg).name,
        {
            "checkpoint": "starting from a local checkpoint",
            "scratch": "from scratch: no checkpoint in --weights or weights/",
            "resume": "resuming",
        }[source],
    )
    mirror = mirror_map_for(data_dict)
    if mirror is not None and opts["fliplr"] > 0:
        log.info("left/right classes: horizontal flips swap mirror pairs of '%s'", data_dict.get("anatomy"))

    stats: dict[str, Any] = {"epoch_seconds": [], "threads": None}

    def on_train_start(trainer: Any) -> None:
        stats["threads"] = torch.get_num_threads()
        stats["n_train"] = len(trainer.train_loader.dataset)

    def on_train_epoch_start(trainer: Any) -> None:
        stats["_t"] = time.perf_counter()

    def on_train_epoch_end(trainer: Any) -> None:  # before validation: pure training time
        stats["epoch_seconds"].append(time.perf_counter() - stats.pop("_t", time.perf_counter()))

    model = YOLO(model_arg)
    if getattr(model, "task", None) != "segment":
        raise UserError(f"{model_arg} is a '{model.task}' model; yolo_spine trains segmentation models (*-seg)")
    model.add_callback("on_train_start", on_train_start)
    model.add_callback("on_train_epoch_start", on_train_epoch_start)
    model.add_callback("on_train_epoch_end", on_train_epoch_end)

    args = {k: opts[k] for k in ULTRALYTICS_KEYS}
    args.update(data=str(train_yaml), device=device, project=str(work.parent), name=work.name, exist_ok=True)
    if resume:
        args = {
            "resume": str(last),
            "device": device,
            "workers": opts["workers"],
            "plots": opts["plots"],
            "data": str(train_yaml),
        }
    t0 = time.perf_counter()
    try:
        model.train(trainer=AnatomySegmentationTrainer, **args)
    except AssertionError as exc:
        if "nothing to resume" in str(exc):
            raise UserError(
                f"{out} finished all its epochs; nothing to resume (train a new run, or start from --weights {last})"
            ) from None
        raise
    wall = time.perf_counter() - t0
    trainer = model.trainer
    save_dir = Path(trainer.save_dir)

    label_files = sorted((data_root / "labels").rglob("*.txt")) if (data_root / "labels").is_dir() else []
    epochs_done = len(stats["epoch_seconds"])
    train_time = sum(stats["epoch_seconds"])
    images_per_s = (stats.get("n_train", 0) * epochs_done / train_time) if train_time else None
    metrics = {k: float(v) for k, v in (getattr(trainer, "metrics", None) or {}).items()}
    manifest = run_manifest(
        "train",
        {**opts, "data": data, "out": out, "preset": preset, "resume": resume},
        inputs={"data_yaml": data},
        extra={
            "dataset": {
                "data_yaml": data,
                "root": data_root,
                "anatomy": data_dict.get("anatomy"),
                "names": data_dict.get("names"),
                "label_files": len(label_files),
                "labels_sha256": sha256_files(label_files, data_root) if label_files else None,
            },
            "model": {
                "start": Path(model_arg) if Path(model_arg).is_file() else model_arg,
                "source": source,
                "task": "segment",
                "channels": int(opts["channels"]),
            },
            "device": device,
            "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
            "torch_threads": stats["threads"],  # None under DDP: the callbacks run in the worker processes
            "cpu_count": os.cpu_count(),
            "mirror_aware_flip": mirror is not None and opts["fliplr"] > 0,
            "wall_seconds": round(wall, 2),
            "epochs_completed": epochs_done,
            "train_images_per_second": round(images_per_s, 3) if images_per_s else None,
            "final_metrics": metrics,
            "weights": {"best": "weights/best.pt", "last": "weights/last.pt"},
        },
    )
    write_json_atomic(save_dir / "run.json", manifest)
    if train_yaml != data:
        shutil.copyfile(train_yaml, save_dir / "data.yaml")
        train_yaml.unlink(missing_ok=True)
    if save_dir != out:
        if out.exists():
            old = out.parent / f".{out.name}.old"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
            os.replace(save_dir, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(save_dir, out)
    log.info("run saved to %s (%.0f s)", out, wall)
    return TrainResult(out, out / "weights" / "best.pt", out / "weights" / "last.pt", out / "run.json", manifest)
