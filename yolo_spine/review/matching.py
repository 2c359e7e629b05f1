"""Mask-level matching of predictions to ground truth at one confidence: confusion matrix, errors, neighbours.

Ultralytics draws its confusion matrix at a fixed confidence (0.25, or whatever ``val`` ran with, 0.001 for
the curves), which says little about the model a clinician will run. Here matching happens at the best-F1
confidence: predictions with ``score >= conf`` are matched one-to-one to ground-truth instances by mask IoU
(≥ 0.5, greedy by IoU, class-agnostic as in Ultralytics' matrix); a matched pair with different classes is a
confusion (C3 predicted as C4), an unmatched prediction a false positive against background, an unmatched
ground truth a miss.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from yolo_spine.registry import AnatomyRegistry


@dataclass
class ImageInstances:
    """Masks of one image at its original size.

    Attributes:
        stem: Image file stem (the image id).
        classes: ``(N,)`` class ids.
        masks: ``(N, H, W)`` boolean masks.
        scores: ``(N,)`` confidences (predictions) or ``None`` (ground truth).
    """

    stem: str
    classes: np.ndarray
    masks: np.ndarray
    scores: np.ndarray | None = None


@dataclass
class MatchResult:
    """Matching of one split at one confidence.

    Attributes:
        matrix: ``(nc + 1, nc + 1)`` counts, rows = ground truth class, columns = predicted class; the last row
            and column are background (missed ground truth / false positive prediction).
        errors: ``{image stem: number of errors}`` (false positives + misses + wrong classes).
        pairs: Counter of ``(gt class, predicted class)`` for matched pairs with different classes.
    """

    matrix: np.ndarray
    errors: dict[str, int] = field(default_factory=dict)
    pairs: Counter = field(default_factory=Counter)


def mask_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix between two stacks of boolean masks ``(N, H, W)`` and ``(M, H, W)`` → ``(N, M)``."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    fa = a.reshape(len(a), -1).astype(np.float32)
    fb = b.reshape(len(b), -1).astype(np.float32)
    inter = fa @ fb.T
    union = fa.sum(1)[:, None] + fb.sum(1)[None, :] - inter
    return inter / np.maximum(union, 1.0)


def match_image(
    gt: ImageInstances, pred: ImageInstances, conf: float, iou_thr: float = 0.5
) -> list[tuple[int | None, int | None]]:
    """Return ``(gt class or None, predicted class or None)`` for every instance of one image.

    Predictions below ``conf`` are ignored; pairs are formed greedily by decreasing IoU (≥ ``iou_thr``).
    """
    keep = pred.scores >= conf if pred.scores is not None else np.ones(len(pred.classes), bool)
    p_cls, p_masks = pred.classes[keep], pred.masks[keep]
    iou = mask_iou(gt.masks, p_masks)
    pairs: list[tuple[int | None, int | None]] = []
    used_g, used_p = set(), set()
    if iou.size:
        order = np.dstack(np.unravel_index(np.argsort(-iou, axis=None), iou.shape))[0]
        for gi, pi in order:
            if iou[gi, pi] < iou_thr:
                break
            if gi in used_g or pi in used_p:
                continue
            used_g.add(int(gi))
            used_p.add(int(pi))
            pairs.append((int(gt.classes[gi]), int(p_cls[pi])))
    pairs += [(int(gt.classes[g]), None) for g in range(len(gt.classes)) if g not in used_g]
    pairs += [(None, int(p_cls[p])) for p in range(len(p_cls)) if p not in used_p]
    return pairs


def match_split(
    gts: dict[str, ImageInstances], preds: dict[str, ImageInstances], nc: int, conf: float, iou_thr: float = 0.5
) -> MatchResult:
    """Match every image of a split and accumulate the confusion matrix and per-image error counts."""
    res = MatchResult(np.zeros((nc + 1, nc + 1), dtype=np.int64))
    for stem, gt in gts.items():
        pred = preds.get(stem) or ImageInstances(
            stem, np.zeros(0, int), np.zeros((0, *gt.masks.shape[1:]), bool), np.zeros(0)
        )
        errors = 0
        for g, p in match_image(gt, pred, conf, iou_thr):
            res.matrix[nc if g is None else g, nc if p is None else p] += 1
            if g != p:
                errors += 1
                if g is not None and p is not None:
                    res.pairs[(g, p)] += 1
        res.errors[stem] = errors
    return res


def neighbour_confusions(pairs: Counter, reg: AnatomyRegistry, max_distance: int = 2) -> list[dict]:
    """Confusions between classes close in the registry's anatomical order (C3 predicted as C4), most frequent first.

    Args:
        pairs: ``(gt class, predicted class)`` counts of matched pairs with different classes.
        reg: The registry (its ``order`` sequences define neighbours).
        max_distance: Largest distance along a sequence that counts as a neighbour.

    Returns:
        ``[{"true", "predicted", "count", "distance"}]``; empty for registries without an order.
    """
    if reg.order is None:
        return []
    where = {name: (s, k) for s, seq in enumerate(reg.order.sequences) for k, name in enumerate(seq)}
    out = []
    for (g, p), n in pairs.items():
        a, b = where.get(reg.names[g]), where.get(reg.names[p])
        if a and b and a[0] == b[0] and 0 < abs(a[1] - b[1]) <= max_distance:
            out.append({"true": reg.names[g], "predicted": reg.names[p], "count": int(n), "distance": b[1] - a[1]})
    return sorted(out, key=lambda d: (-d["count"], abs(d["distance"]), d["true"]))
