"""Options of ``yolo_spine augment`` and ``merge`` (the schemas of ``configs/augment`` and ``configs/merge``).

Every field's meaning, with its default, is commented in the stage's ``default.yaml``; the loader is
:mod:`yolo_spine.options`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from yolo_spine.errors import UserError
from yolo_spine.options import StageOptions, spec

log = logging.getLogger("yolo_spine")

#: Transforms that break the top-to-bottom order of vertebrae (and upper/lower teeth).
ORDER_BREAKING = ("vflip", "rot90")

_P = (0, 1)


def _rotation(value: float | tuple[float, float]) -> str | None:
    """A symmetric range ``+/- value`` (0–180 degrees) or an explicit ``[low, high]`` with low <= high."""
    ok = value[0] <= value[1] if isinstance(value, tuple) else 0 <= value <= 180
    return None if ok else "a number in [0, 180] (+/- degrees) or a [low, high] pair with low <= high"


@dataclass(frozen=True)
class AffineOptions:
    """One random rotation + scale + shift about the image centre."""

    p: float = spec(range=_P)
    rotate: float | tuple[float, float] = spec(check=_rotation)
    scale: tuple[float, float] = spec(range=(0.01, None), ordered=True)
    translate: float = spec(range=(0, 1))


@dataclass(frozen=True)
class BrightnessContrastOptions:
    """Linear brightness / contrast change."""

    p: float = spec(range=_P)
    brightness: float = spec(range=(0, 1))
    contrast: float = spec(range=(0, 1))


@dataclass(frozen=True)
class ClaheOptions:
    """Contrast-limited adaptive histogram equalisation."""

    p: float = spec(range=_P)
    clip_limit: tuple[float, float] = spec(range=(1, None), ordered=True)
    tile_grid: int = spec(range=(1, None))


@dataclass(frozen=True)
class GammaOptions:
    """Gamma curve; ``limit`` in percent (100 = identity)."""

    p: float = spec(range=_P)
    limit: tuple[float, float] = spec(range=(1, None), ordered=True)


@dataclass(frozen=True)
class NoiseOptions:
    """Additive Gaussian noise; ``std`` as a fraction of the value range."""

    p: float = spec(range=_P)
    std: tuple[float, float] = spec(range=(0, None), ordered=True)
    scale: float = spec(range=(0.01, 1))


@dataclass(frozen=True)
class BlurOptions:
    """Box blur; ``kernel`` size range in pixels."""

    p: float = spec(range=_P)
    kernel: tuple[int, int] = spec(range=(3, None), ordered=True)


@dataclass(frozen=True)
class ElasticOptions:
    """Elastic warp: a random displacement field smoothed by ``sigma`` pixels, scaled by ``alpha``."""

    p: float = spec(range=_P)
    alpha: float = spec(range=(0, None))
    sigma: float = spec(range=(0.1, None))


@dataclass(frozen=True)
class RangeOptions:
    """A transform with a probability and one ``[low, high]`` range."""

    p: float = spec(range=_P)
    range: tuple[float, float] = spec(range=(0, None), ordered=True)


@dataclass(frozen=True)
class ContrastCurveOptions:
    """One of four contrast curves: linear, gamma (``gamma`` range), log, sigmoid (``gain`` range)."""

    p: float = spec(range=_P)
    gamma: tuple[float, float] = spec(range=(0.05, None), ordered=True)
    gain: tuple[float, float] = spec(range=(0.1, None), ordered=True)


@dataclass(frozen=True)
class BoxesOptions:
    """Rectangles written over the image (not the labels): ``holes`` count range, ``size`` side range (fraction)."""

    p: float = spec(range=_P)
    holes: tuple[int, int] = spec(range=(1, None), ordered=True)
    size: tuple[float, float] = spec(range=(0.001, 1), ordered=True)


@dataclass(frozen=True)
class AugmentOptions(StageOptions):
    """``configs/augment/default.yaml`` ← ``--config`` (default ``xray-spine``) ← ``--set`` ← flags.

    Raises:
        UserError: (when built) vertical flips or 90-degree turns without ``allow_order_breaking``.
    """

    stage = "augment"
    default_config = "xray-spine"

    copies: int = spec(range=(1, None))
    min_area_px: float = spec(range=(0, None))
    epsilon_px: float = spec(range=(0, None))
    jpeg_quality: int = spec(range=(1, 100))
    allow_order_breaking: bool
    hflip: float = spec(range=_P)
    vflip: float = spec(range=_P)
    rot90: float = spec(range=_P)
    affine: AffineOptions
    elastic: ElasticOptions
    brightness_contrast: BrightnessContrastOptions
    clahe: ClaheOptions
    gamma: GammaOptions
    noise: NoiseOptions
    blur: BlurOptions
    invert: float = spec(range=_P)
    multiply: RangeOptions
    contrast_curve: ContrastCurveOptions
    salt_pepper: RangeOptions
    gaussian_blur: RangeOptions
    sharpen: RangeOptions
    emboss: RangeOptions
    downscale: RangeOptions
    dropout: RangeOptions
    coarse_dropout: BoxesOptions
    noisy_boxes: BoxesOptions

    def __post_init__(self) -> None:
        used = [k for k in ORDER_BREAKING if getattr(self, k) > 0]
        if self.downscale.p > 0 and self.downscale.range[0] < 1:
            raise UserError("downscale range must be factors of at least 1 (e.g. [2, 4] for 2-4x down-sampling)")
        if self.dropout.p > 0 and self.dropout.range[1] >= 1:
            raise UserError("dropout range must be fractions of pixels below 1 (e.g. [0.01, 0.1])")
        if used and not self.allow_order_breaking:
            verb = "break" if len(used) > 1 else "breaks"
            raise UserError(
                f"{' and '.join(used)} {verb} the top-to-bottom order that names vertebrae (and upper/lower teeth); "
                "pass --allow-order-breaking (or set allow_order_breaking: true) to use them anyway"
            )
        if used:
            log.warning(
                "augment: %s enabled: copies may show the spine upside down or sideways, which teaches a model to "
                "confuse neighbouring levels",
                " and ".join(used),
            )


def _fractions(value: tuple[float, float, float]) -> str | None:
    return None if sum(value) > 0 else "three fractions (train val test) that are not all 0"


@dataclass(frozen=True)
class MergeOptions(StageOptions):
    """``configs/merge/default.yaml`` ← ``--config`` ← ``--set`` ← flags.

    What to merge (the exports, the output, the anatomy, ``--map`` and ``--drop``) are arguments of
    :func:`yolo_spine.datasets.merge.merge_exports`, not options.
    """

    stage = "merge"

    split: tuple[float, float, float] = spec(range=(0, None), check=_fractions)
    seed: int
    keep_splits: bool
    workers: int = spec(range=(0, None))
