"""Options of ``yolo_spine ct2yolo`` (the schema of ``configs/ct/*.yaml``; loaded by :mod:`yolo_spine.options`).

Every field's meaning, with its default, is commented in ``configs/ct/default.yaml``. Precedence:
``default.yaml`` ← the anatomy's preset ``configs/ct/<anatomy>.yaml`` (a shipped anatomy name, when no
``--config`` is given) or ``--config`` ← ``--set`` ← flags (or keyword arguments of
:func:`yolo_spine.ct.convert.ct2yolo`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from yolo_spine.batch import BatchSettings
from yolo_spine.errors import UserError
from yolo_spine.layout import Plane
from yolo_spine.options import StageOptions, load_options, spec
from yolo_spine.registry import AnatomyRegistry
from yolo_spine.resources import configs_dir

#: DRR views: ap (source in front of the patient), lat (source at the patient's left).
View = Literal["ap", "lat"]

_AT_LEAST_0 = (0, None)
_AT_LEAST_1 = (1, None)


def _above_zero(value: float) -> str | None:
    return None if value > 0 else "a number above 0"


def _open_unit(value: float) -> str | None:
    return None if 0 < value < 1 else "a number between 0 and 1 (both excluded)"


def _unit_fraction(value: float) -> str | None:
    return None if 0 < value <= 1 else "a number above 0 and at most 1"


@dataclass(frozen=True)
class SliceOptions:
    """Slices cut from the volume."""

    min_area_px: float = spec(range=_AT_LEAST_0)
    skip_empty: bool


@dataclass(frozen=True)
class WindowOptions:
    """Intensity window of the slices, Hounsfield units."""

    center: float
    width: float = spec(range=_AT_LEAST_1)


@dataclass(frozen=True)
class DrrOptions:
    """DRR projections: detector, source, attenuation, display, random poses and renderer."""

    size: int = spec(range=_AT_LEAST_1)
    sdd_mm: float = spec(check=_above_zero)
    sod_fraction: float = spec(check=_open_unit)
    orthographic: bool
    n_samples: int = spec(range=_AT_LEAST_1)
    margin: float = spec(range=(0, 0.5))
    min_area_px: float = spec(range=_AT_LEAST_0)
    bone_hu: float
    display_percentiles: tuple[float, float] = spec(range=(0, 100), ordered=True)
    pose_rot_deg: tuple[float, float, float] = spec(range=_AT_LEAST_0)
    pose_trans_mm: tuple[float, float, float] = spec(range=_AT_LEAST_0)
    threads: int = spec(range=_AT_LEAST_0)
    backend: Literal["planes", "nanodrr"]
    device: str


@dataclass(frozen=True)
class RealismOptions:
    """Radiograph realism of the DRRs (:mod:`yolo_spine.ct.realism`).

    Attributes:
        preset: ``off``, ``physics``, ``randomized`` or a realism YAML (YAML 1.1 reads an unquoted ``off`` as
            false: that means ``off`` too).
        seed: Seeds each image's draws and noise, with the image's file name.
    """

    preset: str | Literal[False]
    seed: int

    def __post_init__(self) -> None:
        from yolo_spine.ct.realism import load_preset

        if self.preset is False:
            object.__setattr__(self, "preset", "off")  # frozen: the one normalisation, at construction
        load_preset(self.preset)  # an unknown preset or a bad value in its file: one sentence, before any work


@dataclass(frozen=True)
class SplitFractions:
    """Target share of each split (normalised by their sum)."""

    train: float = spec(range=(0, 1))
    val: float = spec(range=(0, 1))
    test: float = spec(range=(0, 1))

    def __post_init__(self) -> None:
        if self.train + self.val + self.test <= 0:
            raise UserError("split.fractions are all 0: give at least one split a share above 0")


@dataclass(frozen=True)
class SplitOptions:
    """How images are split into train, val and test."""

    mode: Literal["study", "slab"]
    fractions: SplitFractions
    seed: int
    slab_mm: float = spec(check=_above_zero)


@dataclass(frozen=True)
class CtOptions(StageOptions):
    """``configs/ct/default.yaml`` ← the anatomy's preset or ``--config`` ← ``--set`` ← flags.

    Raises:
        UserError: (when built) neither planes nor views, or the planes backend on a device other than the CPU.
    """

    stage = "ct"

    label_scheme: str | None
    study_id_salt: str
    planes: tuple[Plane, ...]
    step: int = spec(range=_AT_LEAST_1)
    slice: SliceOptions
    window: WindowOptions
    views: tuple[View, ...]
    poses: int = spec(range=_AT_LEAST_0)
    drr: DrrOptions
    realism: RealismOptions
    split: SplitOptions
    max_memory_fraction: float = spec(check=_unit_fraction)
    batch: BatchSettings

    def __post_init__(self) -> None:
        if not self.planes and not self.views:
            raise UserError("nothing to do: no planes and no DRR views requested")
        if self.drr.backend == "planes" and self.drr.device != "cpu":
            raise UserError("the planes DRR backend runs on the CPU; use --drr-backend nanodrr to render on a GPU")

    @classmethod
    def for_anatomy(
        cls,
        anatomy: str | Path | AnatomyRegistry,
        config: str | Path | None = None,
        sets: tuple[str, ...] | list[str] = (),
        flags: dict[str, Any] | None = None,
        *,
        flags_from: str = "argument",
    ) -> CtOptions:
        """Load the options of a conversion of ``anatomy``: its shipped preset applies when ``config`` is ``None``.

        Args:
            anatomy: The anatomy converted (a name, a registry YAML path, or the loaded registry).
            config: ``--config``: a preset name or YAML path; given, the anatomy's preset is not read.
            sets: ``--set KEY=VALUE`` strings.
            flags: Values of flags or keyword arguments by (dotted) key; ``None`` values are ignored.
            flags_from: Origin recorded for ``flags`` (``flag`` or ``argument``).

        Raises:
            UserError: An unknown key, a value of the wrong type or out of range, a missing preset.
        """
        if config is None:
            config = anatomy_preset(anatomy)
        return load_options(cls, config, sets, flags, flags_from=flags_from)


def anatomy_preset(anatomy: str | Path | AnatomyRegistry) -> str | None:
    """The CT preset of an anatomy: ``configs/ct/<name>.yaml`` when the anatomy is a shipped name that has one.

    A registry file of the user's own is never a CT preset (its keys are a registry's), even if its name is one
    of the shipped names; a loaded registry counts as shipped when it was read from ``configs/anatomy``.
    """
    if isinstance(anatomy, AnatomyRegistry):
        shipped = anatomy.path is not None and anatomy.path.parent.resolve() == (configs_dir() / "anatomy").resolve()
        name = anatomy.name if shipped else None
    else:
        name = None if Path(str(anatomy)).suffix in {".yaml", ".yml"} else str(anatomy)
    if name is None or not (configs_dir() / "ct" / f"{name}.yaml").is_file():
        return None
    return name
