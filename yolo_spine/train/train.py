"""``yolo_spine train``: YOLOv11-seg training that works offline, uses every core and knows left from right.

* **Offline.** Ultralytics is imported through :func:`yolo_spine.ultra.import_ultralytics`. The model starts
  from ``--weights`` (must exist), else ``weights/<model>.pt`` when present, else the architecture YAML from
  scratch; the log and ``run.json`` say which. Nothing is ever downloaded.
* **Every core.** On the CPU torch runs on every core (Ultralytics alone pins one thread on a 2-core machine).
* **Left/right.** For registries with mirror pairs, horizontal flips swap the paired classes
  (:mod:`yolo_spine.train.trainer`).
* **Grayscale.** ``channels: 1`` builds a one-channel model; the dataset is read in grayscale.
* **Several GPUs.** ``--device 0,1`` runs Ultralytics' DDP (one process per GPU on this node; the trainer class is
  re-imported by name in each process).
* **Atomic run folder.** Training writes into ``.<RUN_DIR>.partial`` next to ``RUN_DIR`` and renames it when it
  finishes; an interrupted run stays there for ``--resume``, which continues it from its ``last.pt`` with the
  options and dataset it started with (a finished run, no run, or another dataset is refused)
  (:class:`yolo_spine.io.atomic.ResumableOutput`).
* **No folder names.** Ultralytics records full paths in ``args.yaml`` and the checkpoints; resuming needs them,
  so the work folder keeps them but is private (0700). When the run finishes they become base names and
  ``<folder>`` (:mod:`yolo_spine.train.shareable`; ``--record-paths`` keeps them) and the folder takes the
  umask's mode before it is moved into place.

``RUN_DIR/run.json`` records versions, resolved options, the dataset and a hash of its label files, device,
threads, the model's origin, wall time, and what the run did: epochs, per-epoch seconds, throughput and the best
model's validation metrics. Those come from the run's own files (Ultralytics' ``results.csv`` and the checkpoints'
metadata, :func:`run_results`), never from callbacks in this process, which do not fire under DDP: the same code
reads a CPU run, a GPU run and a DDP run.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NotRequired, TypedDict, cast

import yaml

from yolo_spine.errors import DataError, UserError
from yolo_spine.io.atomic import ResumableOutput, give_folder_default_mode, write_json_atomic, write_text_atomic
from yolo_spine.io.labels import dataset_root
from yolo_spine.options import resolve_options
from yolo_spine.parallel import ThreadGovernor, available_cpus
from yolo_spine.provenance import RunManifest, run_manifest, sha256_files
from yolo_spine.train.options import TrainOptions
from yolo_spine.train.shareable import sanitize_run_folder

log = logging.getLogger("yolo_spine")

#: Option keys passed to Ultralytics' ``model.train`` unchanged.
ULTRALYTICS_KEYS = (
    "epochs",
    "patience",
    "imgsz",
    "batch",
    "optimizer",
    "lr0",
    "lrf",
    "warmup_epochs",
    "nbs",
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
    manifest: TrainRunRecord


def resolve_model(model: str, weights: str | Path | None, weights_dir: Path, channels: int = 3) -> tuple[str, str]:
    """Decide what the model starts from: a checkpoint or the architecture YAML (never a download).

    Order: ``weights`` (a file; ``none`` means from scratch), ``<weights_dir>/<model>.pt``, the checkpoint shipped
    in the package for this architecture (three-channel models only: its first layer expects three), else the
    architecture YAML. A checkpoint whose classes differ from the dataset's keeps its backbone and neck;
    Ultralytics re-initialises the layers whose shapes differ.

    Args:
        model: Architecture name (``yolo11n-seg``) or a model YAML path.
        weights: Explicit checkpoint (must exist), or ``none`` for from scratch.
        weights_dir: Folder searched for ``<model>.pt``.
        channels: Input channels of the model to train.

    Returns:
        ``(what to give YOLO(), "checkpoint" | "packaged" | "scratch")``.

    Raises:
        UserError: For a missing ``weights`` file or an unknown architecture.
    """
    from yolo_spine.resources import packaged_checkpoint

    scratch_asked = weights is not None and str(weights).strip().lower() == "none"
    if weights and not scratch_asked:
        p = Path(weights)
        if not p.is_file():
            raise UserError(
                f"checkpoint not found: {p} (yolo_spine never downloads weights; put the file there, "
                "or --weights none to train from scratch)"
            )
        return str(p), "checkpoint"
    stem = Path(model).name.removesuffix(".yaml").removesuffix(".pt")
    local = weights_dir / f"{stem}.pt"
    if not scratch_asked and local.is_file():
        return str(local), "checkpoint"
    packaged = packaged_checkpoint(stem) if not scratch_asked and channels == 3 else None
    if packaged is not None:
        return str(packaged), "packaged"
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
    return data, dataset_root(data_yaml, data)


def read_results_csv(path: str | Path) -> list[dict[str, float]]:
    """Read Ultralytics' ``results.csv``; ``[]`` when it does not exist yet.

    One row per finished epoch: ``epoch`` (1-based), ``time`` (seconds since the session started), losses,
    validation metrics and learning rates.
    """
    import csv

    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return [{k.strip(): float(v) for k, v in row.items() if k and v not in (None, "")} for row in csv.DictReader(f)]


def checkpoint_meta(path: str | Path) -> dict[str, Any]:
    """Read an Ultralytics checkpoint's metadata (import Ultralytics first: the file pickles its classes).

    Returns:
        ``epoch`` (0-based; −1 once training finished and stripped it), ``train_args``, ``train_metrics`` and the
        model's class ``names``.
    """
    import torch

    ckpt = torch.load(Path(path), map_location="cpu", weights_only=False)
    model = ckpt.get("ema") or ckpt.get("model")
    return {
        "epoch": int(ckpt.get("epoch", -1)),
        "train_args": dict(ckpt.get("train_args") or {}),
        "train_metrics": {k: float(v) for k, v in (ckpt.get("train_metrics") or {}).items()},
        "names": dict(getattr(model, "names", None) or {}),
    }


def count_images(data: dict[str, Any], root: Path, split: str = "train") -> int | None:
    """Images of a dataset split as Ultralytics finds them (folders searched recursively, ``.txt`` lists read)."""
    from ultralytics.data.utils import IMG_FORMATS

    entries = data.get(split)
    if not entries:
        return None
    n = 0
    for entry in entries if isinstance(entries, list) else [entries]:
        p = Path(entry) if Path(entry).is_absolute() else root / entry
        if p.is_dir():
            n += sum(1 for f in p.rglob("*") if f.suffix[1:].lower() in IMG_FORMATS)
        elif p.suffix == ".txt" and p.is_file():
            n += sum(1 for line in p.read_text(encoding="utf-8").splitlines() if line.strip())
    return n or None


class RunResults(TypedDict):
    """What a run did, from its folder (:func:`run_results`); part of ``run.json``."""

    epochs_completed: int
    epochs_requested: int | None
    epochs_this_session: int
    epoch_seconds: list[float]
    train_images_per_second: float | None
    final_metrics: dict[str, float]


class TrainRunRecord(RunManifest, RunResults):
    """``train``'s ``run.json`` (``train --budget`` adds ``plan``: :func:`yolo_spine.train.plan.record_plan`)."""

    dataset: dict[str, Any]  # data_yaml, root, anatomy, names, label_files, labels_sha256
    model: dict[str, Any]  # start, source, task, channels
    device: str
    ddp: bool
    cuda_devices: list[str]
    torch_threads: int | None  # None under DDP
    thread_governor: dict[str, Any] | None  # threads_at_end, changes
    cpu_count: int | None
    mirror_aware_flip: bool
    wall_seconds: float
    resumed_from_epoch: int | None
    weights: dict[str, str]  # best, last: paths inside the run folder
    plan: NotRequired[dict[str, Any]]


def read_run_record(path: str | Path) -> TrainRunRecord:
    """A ``run.json`` as :func:`train` wrote it (not validated: the file is this package's own output)."""
    return cast(TrainRunRecord, json.loads(Path(path).read_text(encoding="utf-8")))


def run_results(run_dir: str | Path, start_epoch: int = 0, n_train: int | None = None) -> RunResults:
    """What a run did, read from its folder alone (``results.csv``, ``weights/last.pt``, ``weights/best.pt``).

    Under DDP the training runs in other processes and this process's callbacks never fire, so nothing here
    comes from callbacks; every device goes through this function.

    Args:
        run_dir: The run folder Ultralytics wrote.
        start_epoch: Epochs already done before this session (0 for a fresh run; the checkpoint's for a resume).
        n_train: Training images per epoch (for the throughput).

    Returns:
        ``epochs_completed`` (the run's last finished epoch, all sessions), ``epochs_requested``,
        ``epochs_this_session``, ``epoch_seconds`` (this session's epochs: training plus, when ``val`` is on, that
        epoch's validation; Ultralytics' clock), ``train_images_per_second`` over them and ``final_metrics``
        (validation metrics of ``weights/best.pt`` at its epoch, from its checkpoint).
    """
    run_dir = Path(run_dir)
    rows = read_results_csv(run_dir / "results.csv")
    completed = int(rows[-1]["epoch"]) if rows else 0
    # This session appended one row per epoch it ran (start_epoch + 1 … completed); earlier sessions' rows,
    # including an epoch that was logged but not checkpointed before an interruption, come before them.
    session = rows[len(rows) - max(0, completed - start_epoch) :] if completed > start_epoch else []
    times = [r["time"] for r in session]
    seconds = [round(t - prev, 3) for prev, t in itertools.pairwise([0.0, *times])]
    total = sum(seconds)
    weights = run_dir / "weights"
    last = checkpoint_meta(weights / "last.pt") if (weights / "last.pt").is_file() else {}
    best = checkpoint_meta(weights / "best.pt") if (weights / "best.pt").is_file() else {}
    return {
        "epochs_completed": completed,
        "epochs_requested": last.get("train_args", {}).get("epochs"),
        "epochs_this_session": len(session),
        "epoch_seconds": seconds,
        "train_images_per_second": round(n_train * len(session) / total, 3) if n_train and total > 0 else None,
        "final_metrics": {k: v for k, v in best.get("train_metrics", {}).items() if k != "fitness"},
    }


def _check_resumable(
    last: Path, out: Path, data: Path, data_dict: dict[str, Any], data_root: Path, derived_yaml: Path
) -> tuple[Path, int, dict[str, Any]]:
    """Check that ``last`` can be resumed with ``data``.

    Returns:
        The data.yaml to train on, the epochs already done and the checkpoint's training options.

    Raises:
        UserError: The run finished all its epochs, or it was trained on another dataset.
    """
    meta = checkpoint_meta(last)
    epochs = int(meta["train_args"].get("epochs") or 0)
    done = meta["epoch"] + 1  # the checkpoint's epoch is 0-based; −1 once the run finished
    if done <= 0 or done >= epochs:
        raise UserError(
            f"the run in {out} has finished (of {epochs} epochs asked); nothing to resume (train a new run, or "
            f"start one from --weights {out / 'weights' / 'best.pt'})"
        )
    trained_on = Path(str(meta["train_args"].get("data", ""))).resolve()
    train_yaml = data
    if trained_on == derived_yaml.resolve() and derived_yaml.is_file():  # trained on a derived copy (--channels)
        derived, derived_root = _dataset_info(derived_yaml)
        same = derived_root == data_root and derived.get("names") == data_dict.get("names")
        train_yaml = derived_yaml
    else:
        same = trained_on == data
    names = data_dict.get("names")
    names = dict(enumerate(names)) if isinstance(names, list) else {int(k): v for k, v in (names or {}).items()}
    if not same or (meta["names"] and meta["names"] != names):
        raise UserError(
            f"{out} was trained on {trained_on}, not {data}; resume it with that --data (a run cannot change datasets)"
        )
    return train_yaml, done, meta["train_args"]


def _default_device() -> str:
    import torch

    return "0" if torch.cuda.is_available() else "cpu"


@dataclass
class _RunPlan:
    """What one training session does, decided before Ultralytics builds the model.

    Attributes:
        train_yaml: The data.yaml Ultralytics reads (the user's, or a derived copy for another ``channels`` or a
            training list with repeats, ``repeat_threshold``).
        device: Ultralytics' device string.
        model_arg: What ``YOLO()`` loads: a checkpoint, an architecture YAML, or ``last.pt`` to resume.
        source: ``checkpoint``, ``scratch`` or ``resume``.
        last: The interrupted run's ``last.pt`` (``None``: a fresh run).
        start_epoch: Epochs done before this session.
        values: The effective option values (a resumed run's are its checkpoint's, as Ultralytics uses them).
        channels: Input channels of the model.
    """

    train_yaml: Path
    device: str
    model_arg: str
    source: str
    last: Path | None
    start_epoch: int
    values: dict[str, Any]
    channels: int
    governor: ThreadGovernor | None = None

    def ultralytics_args(self, work: Path) -> dict[str, Any]:
        """Keyword arguments of ``model.train`` for this session, writing into the run folder ``work``."""
        if self.last is not None:  # Ultralytics resumes with the checkpoint's options, except these
            return {
                "resume": str(self.last),
                "device": self.device,
                "workers": self.values["workers"],
                "plots": self.values["plots"],
                "data": str(self.train_yaml),
            }
        args = {k: self.values[k] for k in ULTRALYTICS_KEYS}
        args.update(data=str(self.train_yaml), device=self.device, project=str(work.parent), name=work.name)
        return {**args, "exist_ok": True}


def _plan_run(
    opts: TrainOptions,
    data: Path,
    dataset: tuple[dict[str, Any], Path],
    out: Path,
    last: Path | None,
    weights_dir: Path,
) -> _RunPlan:
    """Set up a session: the device, the data.yaml to train on, what the model starts from (Ultralytics imported)."""
    data_dict, data_root = dataset
    device = opts.device if opts.device is not None else _default_device()
    derived_yaml = out.parent / f".{out.name}.data.yaml"
    values = opts.values()
    if last is not None:
        train_yaml, start_epoch, trained = _check_resumable(last, out, data, data_dict, data_root, derived_yaml)
        # Ultralytics resumes with the checkpoint's options (only device, workers and plots are ours to change):
        # record those, not this command's defaults.
        values.update({k: trained[k] for k in ULTRALYTICS_KEYS if k in trained and k not in ("workers", "plots")})
        values["channels"] = int(_dataset_info(train_yaml)[0].get("channels", 3))
        return _RunPlan(train_yaml, device, str(last), "resume", last, start_epoch, values, values["channels"])
    train_yaml = data
    changes: dict[str, Any] = {}
    if opts.channels != int(data_dict.get("channels", 3)):
        changes["channels"] = opts.channels
    if opts.repeat_threshold > 0:
        changes["train"] = str(_repeat_list(data, out, opts.repeat_threshold, opts.seed))
    if changes:
        # A derived data.yaml beside the run folder (Ultralytics' DDP launcher empties the run folder before
        # it starts); the user's dataset stays untouched. A copy lands in the finished run folder.
        out.parent.mkdir(parents=True, exist_ok=True)
        train_yaml = derived_yaml
        derived = {**data_dict, "path": str(data_root), **changes}
        write_text_atomic(train_yaml, yaml.safe_dump(derived, sort_keys=False))
    model_arg, source = resolve_model(opts.model, opts.weights, weights_dir, opts.channels)
    return _RunPlan(train_yaml, device, model_arg, source, None, 0, values, opts.channels)


def _repeat_list(data: Path, out: Path, threshold: float, seed: int) -> Path:
    """Write the training split's list with repeat-factor sampling beside the run folder; return its path."""
    from yolo_spine.io.labels import read_data_yaml
    from yolo_spine.train.sampling import write_repeat_list

    lay = read_data_yaml(data)
    listed = out.parent / f".{out.name}.train.txt"
    plan = write_repeat_list(lay.image_dirs["train"], lay.label_dirs["train"], lay.names, threshold, seed, listed)
    log.info("%s", plan.line())
    return listed


def _fit(plan: _RunPlan, work: Path, data_dict: dict[str, Any], callbacks: dict[str, Any] | None) -> tuple[Path, float]:
    """Build the model and train it into ``work``; return Ultralytics' save folder and the wall time in seconds."""
    from ultralytics import YOLO

    from yolo_spine.train.trainer import AnatomySegmentationTrainer, mirror_map_for

    starts = {
        "checkpoint": "starting from a local checkpoint",
        "packaged": "starting from the packaged phantom-pretrained checkpoint; --weights none trains from scratch",
        "scratch": "from scratch",
        "resume": f"resuming after epoch {plan.start_epoch}",
    }
    log.info("model: %s (%s)", Path(plan.model_arg).name, starts[plan.source])
    if mirror_map_for(data_dict) is not None and plan.values["fliplr"] > 0:
        log.info("left/right classes: horizontal flips swap mirror pairs of '%s'", data_dict.get("anatomy"))

    model = YOLO(plan.model_arg)
    if getattr(model, "task", None) != "segment":
        raise UserError(f"{plan.model_arg} is a '{model.task}' model; yolo_spine trains segmentation models (*-seg)")
    for event, fn in (callbacks or {}).items():
        model.add_callback(event, fn)
    if plan.device == "cpu" and plan.values.get("threads") is None:
        # No --threads: give cores back while another job runs (two spinning jobs slow each other 10-15x).
        governor = ThreadGovernor(available_cpus())
        for event in ("on_train_batch_end", "on_val_batch_end"):
            model.add_callback(event, lambda _: governor.tick())
        plan.governor = governor
    t0 = time.perf_counter()
    model.train(trainer=AnatomySegmentationTrainer, **plan.ultralytics_args(work))
    assert model.trainer is not None  # model.train() sets it
    return Path(model.trainer.save_dir), time.perf_counter() - t0


def _run_record(
    opts: TrainOptions,
    plan: _RunPlan,
    data: Path,
    dataset: tuple[dict[str, Any], Path],
    out: Path,
    save_dir: Path,
    wall: float,
    record_paths: bool | None = None,
) -> TrainRunRecord:
    """The run manifest (``run.json``): options, dataset, model, hardware and what the run did (from its folder)."""
    import torch

    from yolo_spine.train.trainer import mirror_map_for

    data_dict, data_root = dataset
    label_files = sorted((data_root / "labels").rglob("*.txt")) if (data_root / "labels").is_dir() else []
    ddp = len([d for d in plan.device.split(",") if d.strip()]) > 1
    recorded = {**opts.record(), **plan.values}  # a resumed run records the checkpoint's values
    manifest = run_manifest(
        "train",
        {**recorded, "data": data, "out": out, "resume": plan.last is not None},
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
                "start": Path(plan.model_arg) if Path(plan.model_arg).is_file() else plan.model_arg,
                "source": plan.source,
                "task": "segment",
                "channels": plan.channels,
            },
            "device": plan.device,
            "ddp": ddp,
            "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
            "torch_threads": None if ddp else (plan.governor.max_threads if plan.governor else torch.get_num_threads()),
            "thread_governor": None
            if plan.governor is None
            else {"threads_at_end": plan.governor.threads, "changes": plan.governor.changes},
            "cpu_count": os.cpu_count(),
            "mirror_aware_flip": mirror_map_for(data_dict) is not None and plan.values["fliplr"] > 0,
            "wall_seconds": round(wall, 2),
            "resumed_from_epoch": plan.start_epoch if plan.last is not None else None,
            # images per epoch as Ultralytics read them (a list with repeats under repeat_threshold)
            **run_results(save_dir, plan.start_epoch, count_images(*_dataset_info(plan.train_yaml))),
            "weights": {"best": "weights/best.pt", "last": "weights/last.pt"},
        },
        record_paths=record_paths,
    )
    return cast(TrainRunRecord, manifest)  # run_manifest adds `extra` to its own keys


def train(
    data: str | Path,
    out: str | Path,
    options: TrainOptions | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    weights_dir: str | Path = "weights",
    callbacks: dict[str, Any] | None = None,
    record_paths: bool | None = None,
    **option_values: Any,
) -> TrainResult:
    """Train a YOLOv11-seg model on a yolo_spine dataset.

    Args:
        data: The dataset's ``data.yaml``.
        out: Run folder (receives ``weights/best.pt``, ``weights/last.pt``, Ultralytics' plots and ``run.json``).
        options: The checked options (``TrainOptions.load(config, ...)``); ``None``: ``configs/train/default.yaml``.
        resume: Continue an interrupted run in ``out`` (from its ``last.pt``).
        overwrite: Replace an existing finished run in ``out``.
        weights_dir: Folder searched for ``<model>.pt`` checkpoints.
        callbacks: Extra Ultralytics callbacks ``{event: function(trainer)}`` for the caller's own use (e.g.
            ``on_model_save`` to copy each epoch's checkpoint somewhere safe during a long run). They run in this
            process, so not under DDP; ``run.json`` never depends on them.
        record_paths: Keep full paths in ``run.json``, ``args.yaml`` and the checkpoints (``None``: as the CLI's
            ``--record-paths`` says); otherwise folders are ``<folder>`` and files their base names.
        **option_values: Option values replacing those of ``options`` (keys of ``configs/train/default.yaml``,
            e.g. ``epochs=3``); ``None`` values are ignored.

    Returns:
        The :class:`TrainResult`.

    Raises:
        UserError: Bad options, missing dataset or checkpoint, or an existing run without ``overwrite``/``resume``.
    """
    opts = resolve_options(TrainOptions, options, option_values)
    out = Path(out).resolve()
    data = Path(data).resolve()
    dataset = _dataset_info(data)
    # Trains in .<out>.partial, kept when interrupted for --resume; an interrupted run that is not ours (e.g. plain
    # Ultralytics, weights/last.pt in out itself) continues in place.
    output = ResumableOutput.start(out, overwrite=overwrite, resume=resume, resume_marker="weights/last.pt")
    last = output.work / "weights" / "last.pt" if resume else None

    from yolo_spine.ultra import import_ultralytics

    import_ultralytics(threads=opts.threads or available_cpus())  # None: every core, whatever ran before
    plan = _plan_run(opts, data, dataset, out, last, Path(weights_dir))
    save_dir, wall = _fit(plan, output.work, dataset[0], callbacks)

    manifest = _run_record(opts, plan, data, dataset, out, save_dir, wall, record_paths)
    write_json_atomic(save_dir / "run.json", manifest)
    derived = plan.train_yaml != data
    if derived:
        copy = yaml.safe_load(plan.train_yaml.read_text(encoding="utf-8"))
        if "train" in dataset[0]:  # the split itself, not the list of repeats (run.json has repeat_threshold)
            copy["train"] = dataset[0]["train"]
        write_text_atomic(save_dir / "data.yaml", yaml.safe_dump(copy, sort_keys=False))
        plan.train_yaml.unlink(missing_ok=True)
        (out.parent / f".{out.name}.train.txt").unlink(missing_ok=True)
    # Finished: the folder becomes an output, so Ultralytics' full paths go (an interrupted run needed them to
    # resume) and it leaves the private mode it trained in.
    sanitize_run_folder(save_dir, record_paths=record_paths, data_name="data.yaml" if derived else None)
    give_folder_default_mode(save_dir)
    output.commit(save_dir)  # a resumed run saves where its checkpoint says it started
    log.info("run saved to %s (%.0f s)", out, wall)
    return TrainResult(out, out / "weights" / "best.pt", out / "weights" / "last.pt", out / "run.json", manifest)
