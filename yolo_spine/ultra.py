"""Import Ultralytics safely for offline clinical machines: no downloads, no telemetry, every CPU core.

Ultralytics reads its environment at import time, so everything here must happen *before* the first
``import ultralytics``; :func:`import_ultralytics` does it and is the only way yolo_spine imports it.

* ``YOLO_OFFLINE=1``: no online checks, no hub, no pip auto-installs.
* ``YOLO_CONFIG_DIR``: a per-user cache folder (``~/.cache/yolo_spine/ultralytics``) instead of a settings file
  in the user's home that other tools share; settings ``sync`` and every logger integration are switched off.
* Fonts: Ultralytics downloads ``Arial.ttf`` to draw labels; we place matplotlib's bundled DejaVu Sans under
  those names in the config folder, so plots and annotated images never reach for the network.
* Threads: Ultralytics sets ``OMP_NUM_THREADS=1`` and trains on ``min(8, cpu_count - 1)`` threads (one thread
  on a 2-core machine); :func:`set_torch_threads` sets torch and Ultralytics to the requested count (default:
  every core this process may use), and that count stays until a caller asks for another.
* Sharing the machine: idle OpenMP threads sleep instead of spinning
  (:func:`yolo_spine.parallel.configure_thread_policy`), so a second job on the same cores does not collapse.

Every change yolo_spine makes to Ultralytics' own behaviour lives here too, each applied by a function the stage
calls when it needs it (nothing is patched at import):

* :func:`load_segmentation_model`: ``.pt``/ONNX/OpenVINO loaded offline, refused unless it segments;
* :func:`skip_requirement_checks`: the validator and exporter would pip-install packages (faster-coco-eval,
  onnx tools) at run time, which fails offline; yolo_spine declares what it needs in its extras;
* :func:`install_offline_amp_check`: the GPU AMP self-check would download ``yolo26n.pt``;
* :func:`drop_upload_callbacks`: the trainer's Platform/hub upload and usage-event callbacks;
* :func:`quiet_loggers`: Ultralytics' (and NNCF's) INFO lines while a step works in a temporary folder whose
  paths they would print.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from yolo_spine.errors import UserError
from yolo_spine.parallel import available_cpus, configure_thread_policy

log = logging.getLogger("yolo_spine")

#: Torch threads chosen in this process (``None`` until :func:`set_torch_threads` runs).
_torch_threads: int | None = None


def cache_dir() -> Path:
    """Return the per-user cache folder (``$YOLO_SPINE_CACHE`` or ``$XDG_CACHE_HOME/yolo_spine``)."""
    env = os.environ.get("YOLO_SPINE_CACHE")
    if env:
        return Path(env).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "yolo_spine"


def _install_offline_fonts(config_dir: Path) -> None:
    """Provide the fonts Ultralytics would download, from matplotlib's own files (same on every OS)."""
    targets = [config_dir / "Arial.ttf", config_dir / "Arial.Unicode.ttf"]
    if all(t.exists() for t in targets):
        return
    import matplotlib

    dejavu = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    if not dejavu.is_file():  # pragma: no cover - matplotlib always ships it
        log.warning("matplotlib's DejaVuSans.ttf is missing; Ultralytics may try to download a font")
        return
    for t in targets:
        if not t.exists():
            shutil.copyfile(dejavu, t)


def configure_environment(threads: int | None = None) -> Path:
    """Set the environment Ultralytics and torch read at import time; safe to call more than once.

    Args:
        threads: CPU threads for torch/OpenMP; ``None`` means every core this process may use.

    Returns:
        The Ultralytics config folder in use.
    """
    config_dir = Path(os.environ.get("YOLO_CONFIG_DIR") or cache_dir() / "ultralytics")
    config_dir.mkdir(parents=True, exist_ok=True)
    os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
    os.environ.setdefault("YOLO_OFFLINE", "1")
    configure_thread_policy()
    n = threads or available_cpus()
    os.environ.setdefault("OMP_NUM_THREADS", str(n))  # before Ultralytics would pin it to 1
    _install_offline_fonts(config_dir)
    return config_dir


def set_torch_threads(threads: int | None = None) -> int:
    """Make torch and Ultralytics use ``threads`` CPU threads; return the number.

    ``None`` keeps the count an earlier call chose in this process (every core this process may use if none
    did), so a helper that imports Ultralytics without a thread count never undoes the user's ``--threads``.

    Ultralytics' ``select_device`` calls ``torch.set_num_threads(NUM_THREADS)`` with
    ``NUM_THREADS = min(8, cpu_count - 1)``, which is 1 on a 2-core machine; patching the module constant
    makes its own call set the value we want.
    """
    global _torch_threads
    import torch
    import ultralytics.utils as uu
    import ultralytics.utils.torch_utils as tu

    n = threads or _torch_threads or available_cpus()
    uu.NUM_THREADS = n
    tu.NUM_THREADS = n
    torch.set_num_threads(n)
    _torch_threads = n
    return n


def import_ultralytics(threads: int | None = None) -> ModuleType:
    """Configure the offline environment, import Ultralytics and switch its network features off.

    Args:
        threads: CPU threads; ``None`` keeps this process's earlier choice (every core if there was none).

    Returns:
        The ``ultralytics`` module.
    """
    configure_environment(threads)
    import ultralytics
    from ultralytics.utils import SETTINGS

    wanted = {
        "sync": False,
        "hub": False,
        "clearml": False,
        "comet": False,
        "dvc": False,
        "mlflow": False,
        "neptune": False,
        "raytune": False,
        "tensorboard": False,
        "wandb": False,
        "vscode_msg": False,
        "openvino_msg": False,
    }
    changes = {k: v for k, v in wanted.items() if k in SETTINGS and SETTINGS[k] != v}
    if changes:
        SETTINGS.update(changes)
    set_torch_threads(threads)
    return ultralytics


def load_segmentation_model(weights: str | Path, threads: int | None = None) -> Any:
    """Load a YOLO segmentation model (``.pt``, ``.onnx`` or an OpenVINO folder) offline.

    Args:
        weights: The model file or folder.
        threads: CPU threads for torch; ``None`` keeps the count this process already chose (``predict
            --threads``), or every core if none was chosen.

    Returns:
        The Ultralytics ``YOLO`` model.

    Raises:
        UserError: If the file is missing, unreadable, or not a segmentation model.
    """
    import_ultralytics(threads)
    from ultralytics import YOLO

    w = Path(weights)
    if not w.exists():
        raise UserError(f"weights not found: {w}")
    try:
        model = YOLO(str(w), task="segment" if w.suffix != ".pt" else None)
    except Exception as exc:  # torch/onnx loaders raise many types for a bad file
        raise UserError(f"cannot load {w} as a YOLO model ({type(exc).__name__}: {exc})") from None
    if model.task != "segment":
        raise UserError(f"{w} is a '{model.task}' model, not a segmentation model")
    return model


#: Ultralytics modules whose ``check_requirements`` would pip-install at run time (what each one wants).
_REQUIREMENT_CHECKERS = {
    "validator": "ultralytics.models.yolo.segment.val",  # faster-coco-eval, for COCO files never read here
    "exporter": "ultralytics.engine.exporter",  # onnx/openvino tools the export extra already provides
}


def skip_requirement_checks(*which: str) -> None:
    """Keep Ultralytics' validator and/or exporter from trying to pip-install packages (offline that fails).

    Args:
        which: ``"validator"`` and/or ``"exporter"``.
    """
    import importlib

    import_ultralytics()  # the environment first; keeps this process's thread count
    for name in which:
        module = importlib.import_module(_REQUIREMENT_CHECKERS[name])
        module.check_requirements = lambda *a, **k: True  # type: ignore[attr-defined]


def offline_check_amp(model: Any) -> bool:
    """Ultralytics' AMP check on GPUs loads yolo26n.pt and downloads it when missing; never download it.

    Without the file AMP stays on, as Ultralytics itself does when it cannot download (its own warning text).
    On the CPU (and MPS) AMP is always off, as in Ultralytics' own check: CPU autocast runs in bfloat16, which
    CPUs without native bf16 execute several times slower than float32 (measured: 0.8 → 4+ images/s).
    """
    import ultralytics.engine.trainer as ul_trainer
    from ultralytics.utils import LOGGER, WEIGHTS_DIR

    device = next(model.parameters()).device
    if device.type in {"cpu", "mps"}:
        return False
    if not (WEIGHTS_DIR / "yolo26n.pt").is_file():
        LOGGER.warning(
            "AMP: skipping Ultralytics' AMP self-check (it needs yolo26n.pt, which yolo_spine never "
            "downloads); training with amp=True. Disable it with --config and amp: false if losses turn NaN."
        )
        return True
    return getattr(ul_trainer, "_yolo_spine_original_check_amp", ul_trainer.check_amp)(model)


def install_offline_amp_check() -> None:
    """Make Ultralytics' trainer use :func:`offline_check_amp` (idempotent)."""
    import ultralytics.engine.trainer as ul_trainer

    if ul_trainer.check_amp is not offline_check_amp:
        ul_trainer._yolo_spine_original_check_amp = ul_trainer.check_amp  # type: ignore[attr-defined]
        ul_trainer.check_amp = offline_check_amp


#: Callback modules that send data off the machine (Platform uploads, usage events, hub).
_UPLOAD_CALLBACK_MODULES = (
    "ultralytics.utils.callbacks.platform",
    "ultralytics.utils.callbacks.events",
    "ultralytics.utils.callbacks.hub",
)


def drop_upload_callbacks(callbacks: dict[str, list[Any]]) -> None:
    """Remove, in place, every callback that could upload data or send usage events.

    Args:
        callbacks: A trainer's or validator's ``callbacks`` (event name → functions).
    """
    for event, funcs in callbacks.items():
        callbacks[event] = [f for f in funcs if not getattr(f, "__module__", "").startswith(_UPLOAD_CALLBACK_MODULES)]


@contextmanager
def quiet_loggers(*names: str, level: int = logging.WARNING) -> Iterator[None]:
    """Raise the level of Ultralytics' logger (and the other ``names``) for the duration of a block.

    For steps whose INFO lines would mislead: an export in a temporary folder prints that folder's paths and
    suggests commands for files about to move, and NNCF's INFO flood buries the one line that matters. Warnings
    and errors still show.

    Args:
        names: Further loggers to quieten (``"nncf"``).
        level: The level they get inside the block.
    """
    loggers = [logging.getLogger(n) for n in ("ultralytics", *names)]
    saved = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(level)
    try:
        yield
    finally:
        for lg, lv in zip(loggers, saved, strict=True):
            lg.setLevel(lv)
