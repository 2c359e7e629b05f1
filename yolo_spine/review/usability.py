"""Is a reviewed model usable at all? One verdict, shared by the review, its report, the demo and ``--conf auto``.

A model whose best mean mask F1 is near zero finds (almost) nothing: its best-F1 confidence is an artefact of a
handful of chance overlaps (0.012 is typical after one epoch) and, handed to ``predict``, fills a chest
radiograph with dozens of "vertebrae". The verdict is stored in the review's ``metrics.json`` (``usability``) so
that ``predict --conf auto`` and the demo read the same sentence the report shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

#: Best mean mask F1 below which a model is called unusable (``configs/review/default.yaml``: ``min_usable_f1``).
DEFAULT_MIN_USABLE_F1 = 0.1


class Usability(TypedDict):
    """The verdict on a reviewed model (``usability`` in the review's ``metrics.json``)."""

    usable: bool
    best_mask_f1: float
    best_f1_conf: float | None
    min_f1: float
    message: str | None  # one sentence when the model is not usable


def usability(best_conf: Mapping[str, Any], split: str, min_f1: float = DEFAULT_MIN_USABLE_F1) -> Usability:
    """Judge a model from its review's best-F1 table.

    Args:
        best_conf: The review's ``best_conf`` (``{"mask": {"all": {"conf", "f1", ...}}, ...}``).
        split: The reviewed split (named in the sentence).
        min_f1: Smallest best mean mask F1 of a usable model.

    Returns:
        ``{"usable", "best_mask_f1", "best_f1_conf", "min_f1", "message"}``; ``message`` is one plain sentence
        when the model is not usable, else ``None``.
    """
    best = best_conf["mask"]["all"]
    f1 = float(best.get("f1") or 0.0)
    conf = best.get("conf")
    usable = conf is not None and f1 >= min_f1
    message = None
    if not usable:
        at = f" (at confidence {conf:.3f})" if conf is not None else ""
        message = (
            f"This model is not usable: its best mask F1 on the {split} split is {f1:.3f}{at}, below "
            f"{min_f1:.2f}, so it finds almost nothing; train it longer or from a checkpoint before using its "
            "predictions or its best-F1 confidence."
        )
    return {"usable": usable, "best_mask_f1": f1, "best_f1_conf": conf, "min_f1": min_f1, "message": message}


def verdict_of(metrics: Mapping[str, Any], min_f1: float = DEFAULT_MIN_USABLE_F1) -> Usability | None:
    """Return the verdict of a review's ``metrics.json``.

    Its own ``usability``, or judged from ``best_conf`` for a review written before verdicts existed; ``None``
    when the file does not say enough (no F1) to judge.
    """
    if isinstance(metrics.get("usability"), dict):
        return metrics["usability"]
    try:
        best = metrics["best_conf"]["mask"]["all"]
    except (KeyError, TypeError):
        return None
    if "f1" not in best and best.get("conf") is not None:
        return None
    return usability(metrics["best_conf"], str(metrics.get("split", "val")), min_f1)
