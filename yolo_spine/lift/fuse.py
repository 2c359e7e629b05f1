"""Multi-planar fusion: one label per voxel from the axial, coronal and sagittal label maps.

Every plane that covers a voxel casts one vote: its label there (a class or background). The label with the
largest score wins, where

* ``vote``: score = number of planes voting for it; ties go to the larger summed confidence (ground truth
  counts 1, a background vote counts ``background_weight``);
* ``weighted``: score = summed confidence of the planes voting for it (background votes weigh
  ``background_weight`` each).

Mirrored classes: a plane whose slice normal runs left–right (sagittal) cannot tell a left structure from its
right twin, so its vote for a mirrored class counts for the pair — both the class and its mirror — and the
left/right decision comes from the other planes; among equal scores a label some left/right-aware plane voted
for wins. Only where no other plane votes either side does the blind plane's own label stand.

Only voxels some plane labels are examined (background everywhere else), so fusion costs little more than a
pass over the label maps.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from yolo_spine.errors import UserError
from yolo_spine.lift.slices import PlaneMaps

FUSIONS = ("vote", "weighted")
_TIE = 1e-3  # confidence tie-break weight in "vote" mode (conf sums stay below 1 / _TIE)
_AWARE_BONUS = 1e-6  # among equal scores, prefer a label proposed by a left/right-aware plane


def fuse_planes(
    planes: Sequence[PlaneMaps],
    fusion: str = "vote",
    mirror_lut: np.ndarray | None = None,
    background_weight: float = 0.5,
) -> np.ndarray:
    """Fuse per-plane label maps into one (z, y, x) label map (class id + 1, 0 = background).

    Args:
        planes: Lifted planes on one grid.
        fusion: ``vote`` or ``weighted``.
        mirror_lut: ``lut[label]`` = label of the mirrored class (identity for unmirrored classes and 0); ``None``
            when the anatomy has no mirror pairs.
        background_weight: Weight (confidence) of a background vote, in [0, 1].

    Returns:
        The fused label map (dtype of the inputs).

    Raises:
        UserError: On an unknown fusion mode or a background weight outside [0, 1].
    """
    if fusion not in FUSIONS:
        raise UserError(f"unknown fusion '{fusion}'; choose from {', '.join(FUSIONS)}")
    if not 0.0 <= background_weight <= 1.0:
        raise UserError(f"background_weight must lie in [0, 1], not {background_weight}")
    if not planes:
        raise UserError("no planes to fuse")
    if len(planes) == 1:
        return planes[0].labels_zyx.copy()
    shape = planes[0].labels_zyx.shape
    any_label = planes[0].labels_zyx != 0
    for p in planes[1:]:
        any_label |= p.labels_zyx != 0
    idx = np.flatnonzero(any_label)
    del any_label
    out = np.zeros(shape, planes[0].labels_zyx.dtype)
    if idx.size == 0:
        return out
    zyx = np.unravel_index(idx, shape)
    labs = np.stack([p.labels_zyx.ravel()[idx] for p in planes])  # (P, N)
    cover = np.stack([p.covered(zyx) for p in planes])
    conf = np.empty(labs.shape, np.float32)
    for k, p in enumerate(planes):
        c = p.conf_zyx.ravel()[idx].astype(np.float32) / 255.0 if p.conf_zyx is not None else 1.0
        conf[k] = np.where(labs[k] != 0, c, background_weight)
    weight = np.where(cover, conf if fusion == "weighted" else 1.0 + _TIE * conf, 0.0)
    blind = [p.lr_blind and mirror_lut is not None for p in planes]
    best_score = np.full(idx.size, -1.0)
    best_label = np.zeros(idx.size, labs.dtype)
    for q in range(len(planes)):
        cand = labs[q]
        mirror = mirror_lut[cand] if mirror_lut is not None else cand
        score = np.zeros(idx.size)
        for o in range(len(planes)):
            match = labs[o] == cand
            if blind[o]:
                match |= labs[o] == mirror
            score += np.where(match, weight[o], 0.0)
        score = np.where(cover[q], score + (0.0 if blind[q] else _AWARE_BONUS), -1.0)
        win = score > best_score
        best_score[win] = score[win]
        best_label[win] = cand[win]
    out.ravel()[idx] = best_label
    return out


def mirror_lut_for(mirror_index_map: Sequence[int]) -> np.ndarray | None:
    """Label-value lookup (class id + 1) of mirrored classes from the registry's ``mirror_index_map()``."""
    m = np.asarray(mirror_index_map, dtype=np.int64)
    if np.array_equal(m, np.arange(len(m))):
        return None
    return np.concatenate([[0], m + 1])
