"""Fit a training's schedule to a wall-clock budget while it runs (``train --plan`` / ``train --budget``).

Ultralytics' own ``time`` argument (hours) re-estimates the epoch count after every epoch as
``ceil(time / mean epoch time)``, re-fits the learning-rate decay to it, and then stops *inside* an epoch when
the clock runs out: the last epoch is cut mid-way, so the decay never reaches ``lrf``, and its clock starts after
the setup and ignores the final validation of ``best.pt``, so the command ends past its budget.

:class:`BudgetFit` does the same re-fit with Ultralytics' callbacks, but

* the deadline counts from the command's start (setup included), minus a reserve for the final validation
  (measured on the run's own validation passes);
* the epoch count is rounded down: only epochs that finish before the deadline are planned, so the last one
  runs to its end with the learning rate at ``lr0 · lrf``;
* mosaic-off follows: Ultralytics closes mosaic when ``epoch ≥ epochs − close_mosaic``, read against the
  re-fitted ``epochs`` each epoch;
* warm-up is set once from the plan (10 % of the planned epochs, :mod:`yolo_spine.train.plan`), so it ends long
  before the decay does.

Callbacks run in the training process only: a budget is refused for several GPUs (DDP).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

log = logging.getLogger("yolo_spine")


class Refit(TypedDict):
    """One re-fit of the epoch count, after an epoch (``refits`` of :class:`BudgetRecord`)."""

    epoch: int  # epochs finished
    epochs: int  # the total planned after it
    seconds_left: float


class BudgetRecord(TypedDict):
    """What a time budget did (``plan.budget`` in ``run.json``; :meth:`BudgetFit.record`)."""

    budget_s: float
    wall_s: float
    ratio: float  # wall_s / budget_s
    planned_epochs: int | None
    final_epochs: int | None
    warmup_epochs: float
    lrf: float
    mosaic_off_epoch: int | None  # first epoch (1-based) without mosaic
    setup_s: float | None
    epoch_s: list[float]
    last_validation_s: float
    refits: list[Refit]


@dataclass
class BudgetFit:
    """Ultralytics callbacks that fit ``epochs`` (and with it the decay and mosaic-off) to a deadline.

    Attributes:
        budget_s: Seconds for the whole command.
        start: ``time.monotonic()`` when the command started (:func:`process_start`).
        warmup_epochs: Warm-up length set on the trainer before it starts.
        lrf: Final learning-rate fraction.
        reserve_s: Seconds kept for the final validation (raised to the last validation pass measured).
        max_epochs: Most epochs, however much time is left.
        close_mosaic_fraction: Share of the epochs trained without mosaic at the end; ``close_mosaic`` is re-fitted
            with the epoch count until mosaic goes off (0: leave ``close_mosaic`` as it is).
        refits: ``(epoch finished, epochs planned after it, seconds left)`` per epoch (for ``run.json``).
        mosaic_off_epoch: First epoch (1-based) trained without mosaic, ``None`` if mosaic stayed on.
        planned_epochs: The epoch count the run started with.
        setup_s: Seconds from the command's start to the first epoch.
    """

    budget_s: float
    start: float
    warmup_epochs: float = 3.0
    lrf: float = 0.01
    reserve_s: float = 1.0
    max_epochs: int = 10**6
    close_mosaic_fraction: float = 0.0
    refits: list[tuple[int, int, float]] = field(default_factory=list)
    mosaic_off_epoch: int | None = None
    planned_epochs: int | None = None
    setup_s: float | None = None
    _train_start: float = 0.0
    _epoch_start: float = 0.0
    _val_start: float = 0.0
    _val_s: float = 0.0
    _epoch_s: list[float] = field(default_factory=list)
    _done: bool = False

    @property
    def deadline(self) -> float:
        """``time.monotonic()`` by which the command should have returned."""
        return self.start + self.budget_s

    def callbacks(self) -> dict[str, Any]:
        """``{event: function(trainer)}`` for ``train(callbacks=...)``."""
        return {
            "on_pretrain_routine_start": self.on_pretrain_routine_start,
            "on_train_start": self.on_train_start,
            "on_train_epoch_start": self.on_train_epoch_start,
            "on_train_epoch_end": self.on_train_epoch_end,
            "on_fit_epoch_end": self.on_fit_epoch_end,
        }

    def on_pretrain_routine_start(self, trainer: Any) -> None:
        """Set the plan's warm-up and final learning rate before the optimizer and scheduler are built."""
        trainer.args.warmup_epochs = self.warmup_epochs
        trainer.args.lrf = self.lrf
        trainer.args.time = None  # never Ultralytics' mid-epoch cut

    def on_train_start(self, trainer: Any) -> None:
        """Start the epoch clock (setup is over)."""
        self._train_start = self._epoch_start = time.monotonic()
        self.setup_s = round(self._train_start - self.start, 2)
        self.planned_epochs = int(trainer.epochs)

    def on_train_epoch_start(self, trainer: Any) -> None:
        """Note the epoch mosaic goes off: Ultralytics' own test, which runs right after this callback."""
        close = int(trainer.args.close_mosaic or 0)
        if self.mosaic_off_epoch is None and close and int(trainer.epoch) >= int(trainer.epochs) - close:
            self.mosaic_off_epoch = int(trainer.epoch) + 1

    def on_train_epoch_end(self, trainer: Any) -> None:
        """Re-fit the epoch count to the time left, before Ultralytics decides whether this epoch is the last.

        Ultralytics computes ``final_epoch`` right after this callback, then validates, saves (``last.pt`` records
        ``epochs``) and stops on the final epoch: re-fitting here keeps all of that consistent with the budget.
        """
        now = time.monotonic()
        self._val_start = now
        done = int(trainer.epoch) + 1
        # The latest full epoch predicts the next best: the first carries one-off costs (dataloader start,
        # first-call overheads) and mosaic-off changes the cost per epoch. Validation: the last one measured.
        val_s = self._val_s if self._epoch_s else self.reserve_s
        per_epoch = self._epoch_s[-1] if self._epoch_s else (now - self._epoch_start) + val_s
        left = self.deadline - now - val_s - max(self.reserve_s, val_s)  # this epoch's and the final validation
        total = min(self.max_epochs, done + max(0, math.floor(left / per_epoch)))
        # The linear decay reads trainer.epochs when the scheduler steps, and so does mosaic-off.
        trainer.epochs = trainer.args.epochs = total
        if self.close_mosaic_fraction > 0 and self.mosaic_off_epoch is None and trainer.args.close_mosaic:
            trainer.args.close_mosaic = max(1, math.ceil(self.close_mosaic_fraction * total))
        self.refits.append((done, total, round(self.deadline - now, 2)))

    def on_fit_epoch_end(self, trainer: Any) -> None:
        """Measure this epoch's validation and length; stop when the re-fitted total is reached."""
        if self._done:  # Ultralytics calls this once more after its final validation
            return
        now = time.monotonic()
        self._val_s = now - self._val_start
        self._epoch_s.append(now - self._epoch_start)
        self._epoch_start = now
        if int(trainer.epoch) + 1 >= trainer.epochs:
            trainer.stop = self._done = True

    def record(self, wall_s: float) -> BudgetRecord:
        """What the budget did, for ``run.json``."""
        final = self.refits[-1][1] if self.refits else None
        return {
            "budget_s": self.budget_s,
            "wall_s": round(wall_s, 2),
            "ratio": round(wall_s / self.budget_s, 4),
            "planned_epochs": self.planned_epochs,
            "final_epochs": final,
            "warmup_epochs": self.warmup_epochs,
            "lrf": self.lrf,
            "mosaic_off_epoch": self.mosaic_off_epoch,
            "setup_s": self.setup_s,
            "epoch_s": [round(x, 2) for x in self._epoch_s],
            "last_validation_s": round(self._val_s, 2),
            "refits": [{"epoch": e, "epochs": n, "seconds_left": s} for e, n, s in self.refits],
        }


def process_start() -> float:
    """``time.monotonic()`` of this process's start (Linux ``/proc``), else of now.

    A budget covers the whole command, Python's start-up and imports included.
    """
    import os

    try:
        ticks = int(Path("/proc/self/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()[19])
        boot_s = ticks / os.sysconf("SC_CLK_TCK")
        uptime_s = float(Path("/proc/uptime").read_text(encoding="ascii").split()[0])
        age = uptime_s - boot_s
        return time.monotonic() - age if 0 <= age < 3600 else time.monotonic()
    except (OSError, ValueError, IndexError):
        return time.monotonic()
