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
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from types import ModuleType

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
