"""``yolo_spine plan``: a training plan from the dataset's fingerprint, the machine and a time budget.

Like nnU-Net's experiment planning, the plan is derived, not looked up: every choice is a rule applied to
measured inputs, and the plan says which inputs drove it in one line of reasoning per choice.

* **Fingerprint** (:func:`dataset_fingerprint`): image sizes and bit depth from the image headers (nothing is
  decoded), instances per image, instance sizes (short side of each polygon's box as a fraction of the image's
  long side) and class balance from the label files.
* **Machine** (:func:`machine_profile`): cores this process may use, memory available, GPU memory when torch
  sees a GPU.
* **Throughput** (:func:`probe_throughput`): images per second of the model on this machine, timed on a few
  synthetic batches (forward + backward + optimizer step; forward only for validation), scaled to other sizes
  by pixel count and multiplied by :data:`PIPELINE_FACTOR` (measured: loss, assignment and mosaic loading on
  top of the network).
* **Plan** (:func:`make_plan`): ``imgsz``, ``batch``, ``epochs``, the learning-rate schedule, augmentation
  strength, workers, cache and validation, written as a commented YAML (:func:`write_plan`).

With a budget, ``train --plan``/``--budget`` also fits the schedule to the clock while it runs
(:mod:`yolo_spine.train.budget`): warm-up, mosaic-off and the learning-rate decay end where the budget ends
instead of being cut off by it.
"""

from __future__ import annotations

import logging
import math
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np

from yolo_spine.errors import DataError, UserError

log = logging.getLogger("yolo_spine")

#: Smallest instance short side, in pixels at the training size, that YOLO's finest (stride-8) level still sees.
MIN_OBJECT_PX = 8
#: Largest training size a plan picks (YOLO11 models are trained at 640; larger costs memory for little).
MAX_IMGSZ = 1280
#: Fewest epochs a budgeted plan shrinks the image size for (fewer rarely converge, even from a checkpoint).
MIN_EPOCHS = 30
#: Most epochs a plan asks for; a larger budget ends early (returns beyond this are small for these datasets).
MAX_EPOCHS = 300
#: Real training time per image over the probe's network-only time (loss, target assignment, mosaic loading).
#: Measured on this project's 2-core machine: a 64-px budgeted run of the 8-image spine fixture (see
#: docs/architecture.md); the running budget controller corrects any error after the first epoch.
PIPELINE_FACTOR = 2.0
#: Seconds from the train command's start to its first epoch (Python and Ultralytics imports, model build,
#: dataset scan, dataloaders): 8-10 s measured on this project's shared 2-core machine; the running controller
#: measures the real figure (``run.json``: ``plan.budget.setup_s``).
SETUP_S = 10.0
#: Ultralytics' nominal batch size: gradients are accumulated to this many images per optimizer step.
NBS = 64


# ----------------------------------------------------------------------------------------------- fingerprint
@dataclass(frozen=True)
class Fingerprint:
    """What a dataset looks like to a planner (sizes in pixels of the stored images).

    Attributes:
        n_train: Training images.
        n_val: Validation images.
        nc: Classes.
        image_long_side_px: Median long side of the training images.
        image_wh_px: Median (width, height) of the training images.
        bit_depth: Bits per sample of the training images (8 or 16; the most common).
        channels: Channels per pixel (1 gray, 3 colour; the most common).
        instances_per_image: Median instances per training image.
        empty_fraction: Share of training images without any instance.
        instance_short_side_p10: 10th percentile of the instances' short side (box of the polygon) as a fraction
            of the image's long side: what the smallest common instances shrink to at a given training size.
        instance_short_side_median: The same, median.
        class_counts: Training instances per class name (dataset order).
        class_imbalance: Most over fewest instances among classes present.
        unread_images: Training images whose header could not be read (not counted above).
    """

    n_train: int
    n_val: int
    nc: int
    image_long_side_px: int
    image_wh_px: tuple[int, int]
    bit_depth: int
    channels: int
    instances_per_image: float
    empty_fraction: float
    instance_short_side_p10: float
    instance_short_side_median: float
    class_counts: dict[str, int]
    class_imbalance: float
    unread_images: int = 0


_MODE_BITS = {"1": (1, 1), "L": (8, 1), "P": (8, 1), "LA": (8, 1), "I;16": (16, 1), "I;16B": (16, 1), "I": (32, 1)}


def _image_header(path: Path) -> tuple[int, int, int, int] | None:
    """``(width, height, bits, channels)`` from an image header (PIL reads the header only), or ``None``."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            bits, ch = _MODE_BITS.get(im.mode, (8, len(im.getbands())))
            return im.size[0], im.size[1], bits, ch
    except (OSError, UnidentifiedImageError, ImportError):  # ImportError: Ultralytics' pi-heif retry of PIL
        return None


def _images(folder: Path) -> list[Path]:
    from yolo_spine.io.xray import RASTER_SUFFIXES, list_images

    return list_images(folder, RASTER_SUFFIXES)


def dataset_fingerprint(data_yaml: str | Path) -> Fingerprint:
    """Read a dataset's fingerprint from its ``data.yaml``, image headers and label files.

    Raises:
        DataError: No readable training image.
    """
    from yolo_spine.io.labels import read_data_yaml, read_yolo_labels

    lay = read_data_yaml(data_yaml)
    train = _images(lay.image_dirs["train"])
    val = _images(lay.image_dirs["val"]) if "val" in lay.image_dirs else []
    sizes, bits, chans, per_image, short, unread = [], [], [], [], [], 0
    counts = dict.fromkeys(lay.names, 0)
    for img in train:
        head = _image_header(img)
        if head is None:
            unread += 1
            continue
        w, h, b, c = head
        sizes.append((w, h))
        bits.append(b)
        chans.append(c)
        lf = read_yolo_labels(lay.label_dirs["train"] / f"{img.stem}.txt")
        per_image.append(len(lf.instances))
        for inst in lf.instances:
            if inst.cls < len(lay.names):
                counts[lay.names[inst.cls]] += 1
            xy = inst.polygon_xy(w, h)
            extent = xy.max(0) - xy.min(0)
            short.append(float(extent.min()) / max(w, h))
    if not sizes:
        raise DataError(f"{data_yaml}: no readable training image to plan from")
    present = [n for n in counts.values() if n]
    return Fingerprint(
        n_train=len(sizes),
        n_val=len(val),
        nc=len(lay.names),
        image_long_side_px=int(median(max(s) for s in sizes)),
        image_wh_px=(int(median(s[0] for s in sizes)), int(median(s[1] for s in sizes))),
        bit_depth=max(set(bits), key=bits.count),
        channels=max(set(chans), key=chans.count),
        instances_per_image=float(median(per_image)),
        empty_fraction=round(sum(1 for n in per_image if n == 0) / len(per_image), 4),
        instance_short_side_p10=round(float(np.percentile(short, 10)), 5) if short else 1.0,
        instance_short_side_median=round(float(np.median(short)), 5) if short else 1.0,
        class_counts=counts,
        class_imbalance=round(max(present) / min(present), 2) if present else 1.0,
        unread_images=unread,
    )


# --------------------------------------------------------------------------------------------------- machine
@dataclass(frozen=True)
class Machine:
    """The hardware a plan is for.

    Attributes:
        device: ``cpu`` or a CUDA device string (``0``).
        cpus: Cores this process may use.
        memory_bytes: Memory available to new work (``None``: unknown).
        gpu_name: The GPU's name (``None`` on the CPU).
        gpu_memory_bytes: The GPU's total memory (``None`` on the CPU).
    """

    device: str
    cpus: int
    memory_bytes: int | None
    gpu_name: str | None = None
    gpu_memory_bytes: int | None = None

    @property
    def gpu(self) -> bool:
        """Whether the plan is for a GPU."""
        return self.device not in ("cpu", "mps")


def machine_profile(device: str | None = None) -> Machine:
    """Describe this machine for ``device`` (``None``: GPU 0 when torch sees one, else the CPU)."""
    from yolo_spine.parallel import available_cpus, available_memory

    cpus, mem = available_cpus(), available_memory()
    if device in ("cpu", "mps"):
        return Machine(device, cpus, mem)
    import torch

    if not torch.cuda.is_available():
        if device is not None:
            raise UserError(f"--device {device}: torch sees no CUDA GPU on this machine (use --device cpu)")
        return Machine("cpu", cpus, mem)
    device = device or "0"
    if "," in device:
        raise UserError("plan one GPU (--device 0); a budgeted run does not support several GPUs (DDP) yet")
    props = torch.cuda.get_device_properties(int(device))
    return Machine(device, cpus, mem, props.name, int(props.total_memory))


# ------------------------------------------------------------------------------------------------ throughput
@dataclass(frozen=True)
class Throughput:
    """Images per second of one model on one machine at one image size, with what it came from.

    Attributes:
        imgsz: The size it was measured at.
        train_ips: Training images per second (the network only; :data:`PIPELINE_FACTOR` is applied by
            :meth:`at`).
        val_ips: Validation images per second (forward only).
        source: How it was measured.
    """

    imgsz: int
    train_ips: float
    val_ips: float
    source: str

    def at(self, imgsz: int) -> tuple[float, float]:
        """``(train, val)`` images per second at ``imgsz``: cost scales with pixel count (a convolutional net)."""
        scale = (self.imgsz / imgsz) ** 2
        return self.train_ips * scale / PIPELINE_FACTOR, self.val_ips * scale


def _tensors(out: Any) -> list[Any]:
    import torch

    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, list | tuple):
        return [t for o in out for t in _tensors(o)]
    return []


def probe_throughput(
    machine: Machine,
    imgsz: int,
    *,
    model: str = "yolo11n-seg",
    nc: int = 1,
    channels: int = 3,
    batch: int = 2,
    steps: int = 3,
) -> Throughput:
    """Time a few synthetic training and validation batches of ``model`` on ``machine``.

    The network is built from its architecture YAML (random weights cost the same as trained ones). One batch
    warms up, ``steps`` are timed.

    Args:
        machine: Where to run (its ``device``).
        imgsz: Square input size.
        model: Architecture name or YAML.
        nc: Classes of the head.
        channels: Input channels.
        batch: Images per batch.
        steps: Timed batches.
    """
    from yolo_spine.ultra import import_ultralytics

    import_ultralytics()
    import torch
    from ultralytics.nn.tasks import SegmentationModel

    cfg = model if str(model).endswith(".yaml") else f"{Path(str(model)).name.removesuffix('.pt')}.yaml"
    dev = torch.device("cpu" if not machine.gpu else f"cuda:{machine.device}")
    net = SegmentationModel(cfg, ch=channels, nc=nc, verbose=False).to(dev)
    opt = torch.optim.SGD(net.parameters(), lr=1e-4)
    x = torch.rand(batch, channels, imgsz, imgsz, device=dev)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    net.train()
    for k in range(steps + 1):
        if k == 1:
            sync()
            t0 = time.perf_counter()
        loss = sum(t.float().mean() for t in _tensors(net(x)))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    sync()
    train_ips = batch * steps / (time.perf_counter() - t0)
    net.eval()
    with torch.no_grad():
        net(x)
        sync()
        t0 = time.perf_counter()
        for _ in range(steps):
            net(x)
        sync()
        val_ips = batch * steps / (time.perf_counter() - t0)
    where = machine.gpu_name or f"cpu, {torch.get_num_threads()} threads"
    return Throughput(
        imgsz, round(train_ips, 3), round(val_ips, 3), f"probe: {steps} batches of {batch} at {imgsz} px ({where})"
    )


# ------------------------------------------------------------------------------------------------------ plan
@dataclass
class Plan:
    """A training plan: options for ``train`` and the schedule a budgeted run fits to the clock.

    Attributes:
        train: Keys of ``configs/train/default.yaml`` and their planned values.
        schedule: ``budget_s`` (``None``: no budget), ``warmup_epochs``, ``lrf``, ``reserve_s`` (seconds kept for
            the final validation) and the predicted ``epoch_s``.
        reasons: One sentence per planned key (``train`` and ``schedule``).
        fingerprint: The dataset's fingerprint.
        machine: The machine.
        throughput: The throughput it assumed.
    """

    train: dict[str, Any]
    schedule: dict[str, Any]
    reasons: dict[str, str]
    fingerprint: dict[str, Any]
    machine: dict[str, Any]
    throughput: dict[str, Any]
    data: str = ""
    created_utc: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    def record(self) -> dict[str, Any]:
        """The plan as a plain dictionary (for ``run.json``)."""
        return asdict(self)


def parse_budget(text: str | float | int) -> float:
    """Seconds of a budget written ``90s``, ``15m``, ``1.5h`` or a plain number of seconds.

    Raises:
        UserError: Anything else, or a budget that is not positive.
    """
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([smh]?)\s*", str(text).lower())
    if not m:
        raise UserError(f"budget '{text}' is not a duration such as 90s, 15m or 1.5h")
    seconds = float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]
    if seconds <= 0:
        raise UserError(f"budget '{text}' must be longer than zero")
    return seconds


def _ceil32(x: float) -> int:
    return int(32 * math.ceil(x / 32))


def _epoch_seconds(fp: Fingerprint, tp: Throughput, imgsz: int, val: bool) -> tuple[float, float]:
    """``(seconds per epoch, seconds of one validation pass)`` at ``imgsz``."""
    train_ips, val_ips = tp.at(imgsz)
    val_s = fp.n_val / val_ips if fp.n_val else 0.0
    return fp.n_train / train_ips + (val_s if val else 0.0), val_s


def _affordable_epochs(fp: Fingerprint, tp: Throughput, imgsz: int, budget_s: float) -> int:
    epoch_s, val_s = _epoch_seconds(fp, tp, imgsz, True)
    return int((budget_s - SETUP_S - val_s) // epoch_s)


def _plan_imgsz(fp: Fingerprint, tp: Throughput, budget_s: float | None) -> tuple[int, str]:
    native = min(MAX_IMGSZ, _ceil32(fp.image_long_side_px))
    need = min(native, max(64, _ceil32(MIN_OBJECT_PX / max(fp.instance_short_side_p10, 1e-6))))
    small = f"the smallest instances (10th percentile {fp.instance_short_side_p10:.3f} of the long side)"
    if budget_s is None:
        return (
            native,
            f"the images' median long side is {fp.image_long_side_px} px (never upsampled, capped at {MAX_IMGSZ})",
        )
    for size in range(native, need - 1, -32):
        epochs = _affordable_epochs(fp, tp, size, budget_s)
        if epochs >= MIN_EPOCHS:
            if size == native:
                return size, (
                    f"the images' median long side is {fp.image_long_side_px} px and the budget affords {epochs} "
                    f"epochs at full size (at least {MIN_EPOCHS} wanted)"
                )
            return size, (
                f"{native} px (full size) affords only {_affordable_epochs(fp, tp, native, budget_s)} epochs in the "
                f"budget; {size} px affords {epochs} (at least {MIN_EPOCHS} wanted) and keeps {small} at "
                f"{fp.instance_short_side_p10 * size:.0f} px (≥ {MIN_OBJECT_PX})"
            )
    return need, (
        f"even the smallest size that keeps {small} at ≥ {MIN_OBJECT_PX} px affords only "
        f"{max(0, _affordable_epochs(fp, tp, need, budget_s))} epochs (at least {MIN_EPOCHS} wanted): the budget "
        "is short for this dataset on this machine"
    )


def _plan_batch(fp: Fingerprint, machine: Machine, imgsz: int) -> tuple[int, str]:
    # Ultralytics' recipe (batch 16 at 640 px) fits 8 GiB: keep a batch's pixels there, scaled by GPU memory.
    gib = (machine.gpu_memory_bytes or 0) / 2**30
    scale = max(1.0, gib / 8) if machine.gpu else 1.0
    raw = 16 * scale * (640 / imgsz) ** 2
    batch = int(2 ** math.floor(math.log2(max(2.0, min(64.0, raw, fp.n_train / 2)))))
    where = f"{gib:.0f} GiB of GPU memory" if machine.gpu else "CPU memory"
    return batch, (
        f"as many pixels per batch as Ultralytics' 16 × 640² for {where} gives {raw:.0f} images of {imgsz} px; "
        f"at most half the {fp.n_train} training images, rounded down to a power of two"
    )


def make_plan(
    fp: Fingerprint,
    machine: Machine,
    tp: Throughput,
    budget_s: float | None = None,
    *,
    defaults: dict[str, Any] | None = None,
    data: str | Path = "",
) -> Plan:
    """Plan a training from a fingerprint, a machine, a throughput and an optional budget (seconds).

    Args:
        fp: The dataset's fingerprint.
        machine: The machine.
        tp: The model's measured throughput on it.
        budget_s: Wall-clock seconds for the whole ``train`` command; ``None``: no budget (epochs from the
            defaults).
        defaults: ``configs/train/default.yaml`` values (epochs, patience, mosaic, scale, plots) for unbudgeted
            plans.
        data: The dataset's ``data.yaml`` (recorded).
    """
    defaults = defaults or {"epochs": 250, "patience": 50, "scale": 0.5, "plots": True}
    t: dict[str, Any] = {}  # train-option values
    s: dict[str, Any] = {}  # schedule values
    why: dict[str, str] = {}
    t["imgsz"], why["imgsz"] = _plan_imgsz(fp, tp, budget_s)
    imgsz = t["imgsz"]
    t["batch"], why["batch"] = _plan_batch(fp, machine, imgsz)
    epoch_s, val_s = _epoch_seconds(fp, tp, imgsz, True)
    train_ips, _ = tp.at(imgsz)
    t["val"] = bool(fp.n_val) and val_s <= 0.25 * epoch_s
    why["val"] = (
        f"one validation pass ({val_s:.1f} s) is {100 * val_s / epoch_s:.0f} % of an epoch ({epoch_s:.1f} s): "
        + ("validate every epoch (best.pt by validation fitness)" if t["val"] else "validate at the end only (> 25 %)")
    )
    epoch_s, _ = _epoch_seconds(fp, tp, imgsz, t["val"])
    if budget_s is None:
        t["epochs"] = int(defaults["epochs"])
        why["epochs"] = (
            f"no budget: the default recipe's {t['epochs']} (about {t['epochs'] * epoch_s / 60:.0f} min here)"
        )
        t["patience"] = int(defaults["patience"])
        why["patience"] = "no budget: the default recipe's early stopping"
    else:
        usable = budget_s - SETUP_S - val_s
        fit = int(usable // epoch_s)
        t["epochs"] = max(1, min(MAX_EPOCHS, fit))
        why["epochs"] = (
            f"({budget_s:.0f} s budget − {SETUP_S:.0f} s setup − {val_s:.1f} s final validation) / {epoch_s:.2f} s "
            f"per epoch ({fp.n_train} images at {train_ips:.1f} images/s"
            + (" + validation" if t["val"] else "")
            + f") = {fit}"
            + (f", capped at {MAX_EPOCHS}: the run ends before its budget" if fit > MAX_EPOCHS else "")
            + (
                f"; at least 1, so the run will overrun its budget (one epoch takes about {epoch_s:.0f} s here)"
                if fit < 1
                else ""
            )
            + "; refitted to the measured epoch time after every epoch"
        )
        if fit < 1:
            log.warning(
                "plan: one epoch (about %.0f s on %s) does not fit the %.0f s budget; the run will overrun it "
                "(give a longer --budget or a faster device)",
                epoch_s,
                machine.gpu_name or "the CPU",
                budget_s,
            )
        t["patience"] = 0
        why["patience"] = "0 = off: early stopping would cut the budget-fitted learning-rate decay short"
    epochs = t["epochs"]
    iterations = math.ceil(fp.n_train / max(t["batch"], NBS)) * epochs
    t["optimizer"] = "auto"
    why["optimizer"] = (
        f"Ultralytics' rule for {iterations} optimizer steps (≤ 10,000): AdamW at lr0 "
        f"{round(0.002 * 5 / (4 + fp.nc), 6)} for {fp.nc} classes"
        if iterations <= 10000
        else f"Ultralytics' rule for {iterations} optimizer steps (> 10,000): MuSGD at lr0 0.01"
    )
    t["cos_lr"] = False
    why["cos_lr"] = "linear decay to lrf: it is re-fitted to the remaining epochs without a jump, cosine is not"
    s["lrf"] = 0.01
    why["lrf"] = "the learning rate ends at 1 % of lr0 on the last epoch the budget allows (Ultralytics' default)"
    s["warmup_epochs"] = round(min(3.0, 0.1 * epochs), 2)
    why["warmup_epochs"] = (
        f"10 % of the {epochs} epochs, at most Ultralytics' 3, so warm-up ends well before the decay does"
    )
    if epochs < 4:
        t["mosaic"], t["close_mosaic"] = 0.0, 0
        why["mosaic"] = f"only {epochs} epoch(s): no room to train on mosaics and then settle without them"
        why["close_mosaic"] = "mosaic is off"
    else:
        t["mosaic"] = 1.0 if fp.n_train < 1000 else 0.5
        why["mosaic"] = f"{fp.n_train} training images: " + (
            "few, full mosaic multiplies their layouts"
            if t["mosaic"] == 1.0
            else "many bring their own variety; half the batches are mosaics"
        )
        t["close_mosaic"] = max(1, math.ceil(0.15 * epochs))
        why["close_mosaic"] = (
            f"the last 15 % of the {epochs} epochs train on whole images, counted from the refitted epoch total"
        )
    small_px = fp.instance_short_side_p10 * imgsz
    t["scale"] = float(defaults["scale"]) if small_px >= 2 * MIN_OBJECT_PX else 0.25
    why["scale"] = f"the smallest instances are {small_px:.0f} px at {imgsz} px: " + (
        "a ±50 % scale keeps them ≥ 8 px"
        if t["scale"] >= 0.5
        else "±25 % only, so shrinking never drops them below 8 px"
    )
    cores = machine.cpus
    t["workers"] = min(8, max(1, cores - 1)) if machine.gpu else max(0, min(2, cores // 4))
    why["workers"] = (
        f"{cores} cores: one for the training loop, the rest load and augment while the GPU computes"
        if machine.gpu
        else f"{cores} cores: on the CPU the network needs every core; a loader process takes one only from 4 cores"
    )
    cache_bytes = fp.n_train * imgsz * imgsz * 3  # Ultralytics caches 3-channel BGR, also for gray X-rays
    mem = machine.memory_bytes
    t["cache"] = "ram" if mem is not None and cache_bytes <= 0.25 * mem else False
    why["cache"] = f"the decoded training images at {imgsz} px take {cache_bytes / 2**30:.2f} GiB, " + (
        f"≤ 25 % of the {mem / 2**30:.1f} GiB available: decode once"
        if t["cache"] and mem is not None
        else "more than 25 % of the memory available: decode per batch"
        if mem is not None
        else "memory unknown: decode per batch"
    )
    short_budget = budget_s is not None and budget_s < 600
    t["plots"] = False if short_budget else bool(defaults["plots"])
    why["plots"] = "plots cost seconds at the end of a budget under 10 min" if short_budget else "default"
    s["budget_s"] = budget_s
    s["epoch_s"] = round(epoch_s, 3)
    s["reserve_s"] = round(val_s + 1.0, 2)
    why["reserve_s"] = "kept at the end of the budget for the final validation of best.pt and the run record"
    t["device"] = machine.device
    why["device"] = machine.gpu_name or f"the CPU ({cores} cores)"
    return Plan(
        train=t,
        schedule=s,
        reasons=why,
        fingerprint=asdict(fp),
        machine=asdict(machine),
        throughput=asdict(tp),
        data=str(data),
    )


def plan_training(
    data: str | Path,
    budget_s: float | None = None,
    device: str | None = None,
    *,
    model: str = "yolo11n-seg",
    throughput: Throughput | None = None,
) -> Plan:
    """Fingerprint ``data``, profile the machine, probe the model's throughput and plan.

    Args:
        data: The dataset's ``data.yaml``.
        budget_s: Seconds for the whole training command (``None``: no budget).
        device: ``cpu``, ``0`` … (``None``: GPU 0 when present, else the CPU).
        model: Architecture to probe.
        throughput: A measured throughput instead of the probe.
    """
    from yolo_spine.train.options import TrainOptions

    fp = dataset_fingerprint(data)
    machine = machine_profile(device)
    if throughput is None:
        probe_size = min(640, _ceil32(fp.image_long_side_px))
        throughput = probe_throughput(machine, probe_size, model=model, nc=fp.nc, channels=3)
        log.info(
            "plan: %s → %.1f train / %.1f val images/s", throughput.source, throughput.train_ips, throughput.val_ips
        )
    from yolo_spine.identifiers import sanitize

    shown = sanitize(Path(data))  # a base name unless --record-paths: folder names may identify a study
    return make_plan(fp, machine, throughput, budget_s, defaults=TrainOptions.load().values(), data=shown)


def _yaml_scalar(key: str, value: Any) -> str:
    import yaml

    return yaml.safe_dump({key: value}, default_flow_style=False, width=10**6).strip()


def plan_yaml(plan: Plan) -> str:
    """The plan as a commented YAML: each planned key with its reasoning on the same line."""
    import yaml

    budget = plan.schedule.get("budget_s")
    lines = [
        "# yolo_spine plan — written by `yolo_spine plan`; use it with `yolo_spine train --plan THIS.yaml`.",
        f"# dataset: {Path(plan.data).name or '?'}; budget: "
        + (f"{budget:.0f} s" if budget else "none")
        + f"; machine: {plan.reasons.get('device', '')}; throughput: {plan.throughput['source']}.",
        "# Each line's comment is the reason for the choice; train flags given on the command line override it.",
        "train:",
    ]
    for key, value in plan.train.items():
        lines.append(f"  {_yaml_scalar(key, value):<24} # {plan.reasons.get(key, '')}".rstrip())
    lines.append("schedule:                  # fitted to the clock while training (yolo_spine.train.budget)")
    for key, value in plan.schedule.items():
        reason = plan.reasons.get(key, "")
        lines.append(f"  {_yaml_scalar(key, value):<24}" + (f" # {reason}" if reason else ""))
    rest = {k: v for k, v in plan.record().items() if k not in ("train", "schedule")}
    rest["fingerprint"]["image_wh_px"] = list(rest["fingerprint"]["image_wh_px"])
    lines.append(yaml.safe_dump(rest, sort_keys=False, allow_unicode=True, width=120).rstrip())
    return "\n".join(lines) + "\n"


def write_plan(plan: Plan, out: str | Path, overwrite: bool = False) -> Path:
    """Write the commented plan YAML atomically (refused over an existing file without ``overwrite``)."""
    from yolo_spine.io.atomic import ensure_can_write, write_text_atomic

    out = ensure_can_write(out, overwrite)
    return write_text_atomic(out, plan_yaml(plan))


def read_plan(path: str | Path) -> Plan:
    """Read a plan YAML written by :func:`write_plan`.

    Raises:
        UserError: A missing file, or one that is not a plan.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise UserError(f"plan not found: {path} (write one with `yolo_spine plan`)")
    try:
        d = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError:
        raise UserError(f"{path} is not valid YAML") from None
    if not isinstance(d, dict) or not isinstance(d.get("train"), dict) or not isinstance(d.get("schedule"), dict):
        raise UserError(f"{path} is not a yolo_spine plan (no 'train' and 'schedule' sections)")
    return Plan(
        train=d["train"],
        schedule=d["schedule"],
        reasons=d.get("reasons") or {},
        fingerprint=d.get("fingerprint") or {},
        machine=d.get("machine") or {},
        throughput=d.get("throughput") or {},
        data=str(d.get("data", "")),
        created_utc=str(d.get("created_utc", "")),
    )


def planned_training(
    data: str | Path,
    options: Any,
    *,
    plan_path: str | Path | None = None,
    budget: str | float | None = None,
    start: float | None = None,
) -> tuple[Any, Plan, Any]:
    """Turn ``train --plan``/``--budget`` into train options and the budget's callbacks.

    The plan sits above ``default.yaml`` and ``--config``: a value given by a flag or ``--set`` wins over it.

    Args:
        data: The dataset's ``data.yaml``.
        options: The ``TrainOptions`` of the command line.
        plan_path: A plan written by ``yolo_spine plan``; ``None``: plan now (the probe runs inside the budget).
        budget: A budget (``15m``) for a plan made now, or replacing the plan's own.
        start: ``time.monotonic()`` when the command started (the budget counts from there).

    Returns:
        ``(options with the plan applied, the plan, a BudgetFit or None when the plan has no budget)``.
    """
    from yolo_spine.train.budget import BudgetFit

    budget_s = parse_budget(budget) if budget is not None else None
    origins = options.origins()
    given = {k for k, o in origins.items() if o in ("flag", "--set")}
    if plan_path is not None:
        plan = read_plan(plan_path)
        if budget_s is not None:
            plan.schedule["budget_s"] = budget_s
    else:
        now = time.monotonic()
        left = None if budget_s is None else budget_s - (now - (now if start is None else start))
        plan = plan_training(data, left, options.device if "device" in given else None, model=options.model)
        if budget_s is not None:
            plan.schedule["budget_s"] = budget_s
    unknown = set(plan.train) - set(options.values())
    if unknown:
        raise UserError(f"{plan_path}: unknown train key(s) {', '.join(sorted(unknown))} in the plan")
    options = options.replace(**{k: v for k, v in plan.train.items() if k not in given})
    device = str(options.device or "")
    fit = None
    if plan.schedule.get("budget_s"):
        if "," in device:
            raise UserError(
                "a time budget needs one device (its callbacks do not run under DDP); give --epochs instead"
            )
        fit = BudgetFit(
            budget_s=float(plan.schedule["budget_s"]),
            start=time.monotonic() if start is None else start,
            warmup_epochs=float(plan.schedule.get("warmup_epochs", 3.0)),
            lrf=float(plan.schedule.get("lrf", 0.01)),
            reserve_s=float(plan.schedule.get("reserve_s", 1.0)),
            max_epochs=options.epochs if "epochs" in given else MAX_EPOCHS,
            close_mosaic_fraction=(options.close_mosaic or 0) / max(1, options.epochs),
        )
    return options, plan, fit


def record_plan(run_json: str | Path, plan: Plan, fit: Any, wall_s: float) -> dict[str, Any]:
    """Add the plan (and what its budget did) to a finished run's ``run.json``; return the added block."""
    from yolo_spine.io.atomic import write_json_atomic
    from yolo_spine.train.train import read_run_record

    run_json = Path(run_json)
    manifest = read_run_record(run_json)
    block = plan.record()
    if fit is not None:
        block["budget"] = fit.record(wall_s)
    manifest["plan"] = block
    write_json_atomic(run_json, manifest)
    return block
