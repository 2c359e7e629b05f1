"""Score a 3D prediction against ground truth: label maps or landmark files in, per-class metrics out.

Label ids: each label map is read in one of the anatomy's schemes (``class_id+1``: voxel value ``k`` is registry
class ``k − 1``, 0 = background, what ``lift`` writes; or a ``source_ids`` scheme such as ``totalsegmentator_v2``).
The scheme is the one given (``gt_scheme`` / ``pred_scheme``); else ``class_id+1`` for a map that ``lift`` wrote
(its run record ``<name>.json`` sits beside it); else the one its ids are recognised as by
:func:`yolo_spine.registry.detect_label_scheme`, the function ``ct2yolo`` uses too. A map whose ids fit several
readings, or none, is refused: it is never scored under a guess. Ids that name no class (other organs of a
TotalSegmentator map) are background for scoring and are counted per id in the result (``unmapped_labels``).

Anatomy: the one given, else the one ``lift`` recorded for the prediction (or the ground truth); one of the two is
needed, and a given anatomy that contradicts lift's record is refused.

Geometry: the ground-truth grid is the reference. A prediction on another grid (size, spacing, origin or
direction) is resampled onto it with nearest-neighbour interpolation, and the result says so
(``geometry.pred_resampled``) with each class's predicted volume before and after. Grids that do not overlap
in space are an error. Landmarks are computed in world coordinates (SimpleITK physical points: LPS mm) from
each map on its own grid, so resampling does not move them.

Landmark files (``.json``) hold ``{"centroids_lps_mm": {"C5": [x, y, z], ...}}`` (or the bare mapping);
class names may be any registry alias.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from yolo_spine.batch import produced_by
from yolo_spine.errors import DataError, UserError
from yolo_spine.evaluate.metrics import (
    HD_PERCENTILE,
    Eval3dResult,
    identification_rate,
    label_map_metrics,
    mean_metrics,
)
from yolo_spine.evaluate.options import Eval3dOptions
from yolo_spine.options import resolve_options
from yolo_spine.registry import CLASS_ID_SCHEME, AnatomyRegistry, detect_label_scheme, load_registry

if TYPE_CHECKING:
    import SimpleITK as sitk

log = logging.getLogger("yolo_spine")

#: Unmapped label ids already reported in this process: (what, path, scheme, ids and voxel counts).
_SAID_UNMAPPED: set[tuple[str, str, str, tuple[tuple[int, int], ...]]] = set()
_RESAMPLE_METHOD = "nearest neighbour onto the ground-truth grid (SimpleITK Resample, identity transform)"


# ----------------------------------------------------------------------------------------------- reading inputs


def _import_sitk():
    try:
        import SimpleITK as sitk
    except ImportError as exc:  # a runtime dependency; only a broken install lands here
        from yolo_spine.errors import MissingDependencyError

        raise MissingDependencyError("SimpleITK is needed to read label maps: pip install SimpleITK") from exc
    return sitk


def is_centroid_file(path: str | Path) -> bool:
    """Whether ``path`` names a landmark (centroid) JSON file rather than a label map."""
    return str(path).lower().endswith(".json")


def read_label_map(path: str | Path, what: str = "label map") -> sitk.Image:
    """Read a 3D scalar label map (NIfTI, MHA/MHD, NRRD) with SimpleITK.

    Raises:
        DataError: If the file is missing, unreadable, not 3D or not scalar.
    """
    sitk = _import_sitk()
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} not found: {path}")
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        reason = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "unknown reason")
        raise DataError(f"cannot read {what} {path} (NIfTI, MHA/MHD or NRRD expected): {reason[:200]}") from None
    if image.GetDimension() != 3:
        raise DataError(f"{what} {path} has {image.GetDimension()} dimensions; a 3D label map is needed")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise DataError(
            f"{what} {path} has {image.GetNumberOfComponentsPerPixel()} components per voxel; "
            "a scalar label map is needed"
        )
    return image


def class_lookup(reg: AnatomyRegistry, scheme: str | None) -> dict[int, int]:
    """Return ``{label id: class id}`` for a label map written in ``scheme`` (``None``: ``class_id+1``)."""
    return {sid: reg.index(name) for sid, name in reg.label_id_map(scheme or CLASS_ID_SCHEME).items()}


def _integer_labels(image: sitk.Image, what: str) -> np.ndarray:
    """The image's voxels as whole numbers (a view when already integer)."""
    sitk = _import_sitk()
    arr = sitk.GetArrayViewFromImage(image)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.array_equal(arr, np.round(arr)):
            raise DataError(f"{what} holds non-integer values; a label map of whole-number ids is needed")
        arr = arr.astype(np.int64)
    return arr


def label_ids_present(image: sitk.Image, what: str = "label map") -> list[int]:
    """Return the distinct voxel values of a label map, ascending (0 included when present).

    Raises:
        DataError: If voxel values are not whole numbers.
    """
    arr = _integer_labels(image, what)
    lo, hi = int(arr.min()), int(arr.max())
    if hi - lo <= (1 << 24):
        counts = np.bincount((arr if lo == 0 else np.subtract(arr, lo, dtype=np.int64)).ravel())
        return [lo + int(i) for i in np.flatnonzero(counts)]
    return [int(i) for i in np.unique(arr)]


def lift_record(path: str | Path) -> dict[str, Any] | None:
    """The record ``lift`` left for a label map or centroid file it wrote, or ``None`` for any other file.

    A label map's record is lift's run manifest beside it (``seg.nii.gz`` → ``seg.json``, naming the map as its
    output); a centroid file (``seg.centroids.json``) is its own record. Both name the ``anatomy``.
    """
    from yolo_spine.lift.drr import CENTROIDS_SCHEMA
    from yolo_spine.lift.lift import output_paths

    path = Path(path)
    if is_centroid_file(path):
        doc = _read_json_or_none(path)
        return doc if isinstance(doc, dict) and doc.get("schema") == CENTROIDS_SCHEMA else None
    try:
        manifest_path = output_paths(path)["manifest"]
    except UserError:  # not a volume suffix lift writes
        return None
    doc = _read_json_or_none(manifest_path)
    if not (isinstance(doc, dict) and doc.get("command") == "lift" and isinstance(doc.get("outputs"), dict)):
        return None
    written = doc["outputs"].get("labels")
    return doc if written and Path(str(written)).name == path.name and doc.get("anatomy") else None


def _read_json_or_none(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def resolve_anatomy(
    anatomy: str | Path | AnatomyRegistry | None, pred: str | Path, gt: str | Path
) -> tuple[AnatomyRegistry, str]:
    """Decide the anatomy: the one given, else the one ``lift`` recorded for the prediction (or ground truth).

    Returns:
        ``(registry, source)`` with ``source`` ``"option"`` or ``"lift record"``.

    Raises:
        UserError: No anatomy given and none recorded, or a given anatomy that contradicts lift's record.
    """
    recorded = [(p, r["anatomy"]) for p in (pred, gt) if (r := lift_record(p)) is not None]
    if anatomy is None:
        if not recorded:
            raise UserError(
                "give --anatomy (spine, teeth, brain or a registry YAML): neither input has a lift record naming it"
            )
        return load_registry(recorded[0][1]), "lift record"
    reg = anatomy if isinstance(anatomy, AnatomyRegistry) else load_registry(anatomy)
    for path, name in recorded:
        if name != reg.name:
            raise UserError(f"{Path(path).name} was lifted as anatomy '{name}', not '{reg.name}'; fix --anatomy")
    return reg, "option"


def to_class_labels(
    image: sitk.Image, lookup: Mapping[int, int], what: str = "label map"
) -> tuple[np.ndarray, dict[int, int]]:
    """Map a label map's ids onto ``class id + 1`` (0 = background or no class).

    Args:
        image: The label map.
        lookup: ``{label id: class id}`` (see :func:`class_lookup`).
        what: Name of the input for messages.

    Returns:
        ``(labels_zyx, unmapped)``: a uint16 (z, y, x) array of class id + 1, and ``{label id: voxels}`` for
        non-zero ids that name no class (scored as background).

    Raises:
        DataError: If voxel values are not whole numbers.
    """
    arr = _integer_labels(image, what)
    lo, hi = int(arr.min()), int(arr.max())
    if hi - lo <= (1 << 24):  # dense lookup table: one pass, no sort
        shifted = arr if lo == 0 else np.subtract(arr, lo, dtype=np.int64)
        counts = np.bincount(shifted.ravel(), minlength=hi - lo + 1)
        lut = np.zeros(hi - lo + 1, np.uint16)
        for sid, cid in lookup.items():
            if lo <= sid <= hi:
                lut[sid - lo] = cid + 1
        labels = lut[shifted]
        present = {lo + i: int(c) for i, c in enumerate(counts) if c}
    else:  # a sparse id range (rare): sort once
        ids, inverse, counts = np.unique(arr, return_inverse=True, return_counts=True)
        lut = np.array([lookup[int(i)] + 1 if int(i) in lookup else 0 for i in ids], np.uint16)
        labels = lut[inverse.reshape(arr.shape)]
        present = {int(i): int(c) for i, c in zip(ids, counts, strict=True)}
    unmapped = {sid: n for sid, n in present.items() if sid != 0 and sid not in lookup}
    return np.ascontiguousarray(labels), unmapped


def grid_of(image: sitk.Image) -> dict[str, list[float] | list[int]]:
    """Return an image's grid: ``size_xyz``, ``spacing_xyz``, ``origin_xyz`` (LPS mm), ``direction`` (row-major 3×3)."""
    return {
        "size_xyz": list(image.GetSize()),
        "spacing_xyz": [float(v) for v in image.GetSpacing()],
        "origin_xyz": [float(v) for v in image.GetOrigin()],
        "direction": [float(v) for v in image.GetDirection()],
    }


def same_grid(a: sitk.Image, b: sitk.Image) -> bool:
    """Whether two images share size, spacing, origin and direction (to NIfTI's float32 precision)."""
    return (
        a.GetSize() == b.GetSize()
        and np.allclose(a.GetSpacing(), b.GetSpacing(), rtol=1e-5, atol=1e-6)
        and np.allclose(a.GetOrigin(), b.GetOrigin(), rtol=0, atol=1e-3)
        and np.allclose(a.GetDirection(), b.GetDirection(), rtol=0, atol=1e-5)
    )


def _index_box_in(reference: sitk.Image, image: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """Bounding box, in the reference's continuous index space, of the image's extent (voxel edges)."""
    size = np.array(image.GetSize(), float)
    corners = []
    for cx in (-0.5, size[0] - 0.5):
        for cy in (-0.5, size[1] - 0.5):
            for cz in (-0.5, size[2] - 0.5):
                world = image.TransformContinuousIndexToPhysicalPoint((cx, cy, cz))
                corners.append(reference.TransformPhysicalPointToContinuousIndex(world))
    pts = np.array(corners)
    return pts.min(axis=0), pts.max(axis=0)


def resample_onto(image: sitk.Image, reference: sitk.Image, what: str = "prediction") -> sitk.Image:
    """Resample a label image onto the reference grid (nearest neighbour, outside = 0).

    Raises:
        DataError: If the two grids do not overlap in space (no reference voxel centre inside the image).
    """
    sitk = _import_sitk()
    lo, hi = _index_box_in(reference, image)
    size = np.array(reference.GetSize())
    first = np.maximum(np.ceil(lo), 0)
    last = np.minimum(np.floor(hi), size - 1)
    if np.any(first > last):
        raise DataError(
            f"the {what} and the ground truth do not overlap in space (the {what} covers LPS "
            f"{_fmt_box(image)} mm, the ground truth {_fmt_box(reference)} mm); are they of the same study?"
        )
    return sitk.Resample(image, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, image.GetPixelID())


def _fmt_box(image: sitk.Image) -> str:
    size = np.array(image.GetSize(), float)
    pts = np.array(
        [
            image.TransformContinuousIndexToPhysicalPoint((x, y, z))
            for x in (-0.5, size[0] - 0.5)
            for y in (-0.5, size[1] - 0.5)
            for z in (-0.5, size[2] - 0.5)
        ]
    )
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    return "[" + ", ".join(f"{round(a)}..{round(b)}" for a, b in zip(lo, hi, strict=True)) + "]"


def label_centroids_lps_mm(labels_image: sitk.Image, names: Mapping[int, str]) -> dict[str, list[float]]:
    """Return each label's centroid in world coordinates (SimpleITK physical point, LPS mm).

    Args:
        labels_image: Integer label image (here: class id + 1).
        names: Label value → class name; other labels are ignored.

    Returns:
        ``{name: [x, y, z]}`` in label-value order.
    """
    sitk = _import_sitk()
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.ComputeFeretDiameterOff()
    stats.ComputePerimeterOff()
    stats.ComputeOrientedBoundingBoxOff()
    stats.Execute(labels_image)
    return {names[v]: [float(c) for c in stats.GetCentroid(v)] for v in sorted(stats.GetLabels()) if v in names}


def read_centroids_json(path: str | Path, reg: AnatomyRegistry, what: str = "landmark file") -> dict[str, list[float]]:
    """Read ``{"centroids_lps_mm": {name: [x, y, z]}}`` (or the bare mapping); names may be registry aliases.

    Raises:
        DataError: If the file is missing, not JSON, not of that shape, or names an unknown class.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{what} {path} is not valid JSON ({exc})") from None
    explicit = isinstance(data, dict) and "centroids_lps_mm" in data
    if explicit:
        data = data["centroids_lps_mm"]
    # An explicit empty mapping is a prediction that found nothing (identification rate 0), not a bad file.
    if not isinstance(data, dict) or (not data and not explicit):
        raise DataError(f"{what} {path} must map class names to [x, y, z] in LPS mm (under 'centroids_lps_mm')")
    out: dict[str, list[float]] = {}
    for key, xyz in data.items():
        name = reg.resolve(str(key))
        if name is None:
            close = reg.suggest(str(key))
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise DataError(f"{what} {path}: '{key}' is not a class of anatomy '{reg.name}'{hint}")
        try:
            vec = [float(v) for v in xyz]
        except (TypeError, ValueError):
            vec = []
        if len(vec) != 3 or not all(math.isfinite(v) for v in vec):
            raise DataError(f"{what} {path}: '{key}' must be three finite numbers [x, y, z] in LPS mm")
        if name in out:
            raise DataError(f"{what} {path}: class {name} appears twice")
        out[name] = vec
    return dict(sorted(out.items(), key=lambda kv: reg.index(kv[0])))


# --------------------------------------------------------------------------------------------------- evaluation


def label_scheme_of(
    path: str | Path, image: sitk.Image, reg: AnatomyRegistry, scheme: str | None, what: str, flag: str
) -> tuple[str, str]:
    """Decide the label-id scheme a map is read in (see the module docstring).

    Args:
        path: The map's file (its lift record, if any, sits beside it).
        image: The map.
        reg: The anatomy.
        scheme: The scheme the user gave, or ``None``.
        what: ``"ground truth"`` or ``"prediction"``, for messages.
        flag: The option that names the scheme (``--gt-scheme``), for messages.

    Returns:
        ``(scheme, source)`` with ``source`` ``"option"``, ``"lift record"`` or ``"recognised from its ids"``.

    Raises:
        UserError: An unknown scheme name.
        DataError: Ids that fit several schemes' readings, or none (one sentence naming ``flag``).
    """
    if scheme is not None:
        reg.label_id_map(scheme)  # an unknown name is an error before any work
        return scheme, "option"
    if lift_record(path) is not None:
        return CLASS_ID_SCHEME, "lift record"
    found = detect_label_scheme(reg, label_ids_present(image, what))
    if found.scheme is not None:
        log.info("%s %s: label ids recognised as %s", what, Path(path).name, found.scheme)
        return found.scheme, "recognised from its ids"
    fits = (
        f"fit the schemes {_and(found.candidates)} of anatomy '{reg.name}' alike"
        if found.candidates
        else f"fit no label-id scheme of anatomy '{reg.name}' (check --anatomy)"
    )
    raise DataError(
        f"cannot tell how to read the {what} {path}: its label ids {fits}; pass {flag} ({', '.join(reg.schemes)})"
    )


def _and(words: tuple[str, ...]) -> str:
    return ", ".join(words[:-1]) + f" and {words[-1]}" if len(words) > 1 else "".join(words)


def _load_classes(
    path: str | Path, reg: AnatomyRegistry, scheme: str | None, what: str, flag: str
) -> tuple[sitk.Image, np.ndarray, dict[int, int], str, str]:
    """Read a label map as class id + 1 in the scheme :func:`label_scheme_of` decides; also return it and why."""
    sitk = _import_sitk()
    image = read_label_map(path, what)
    scheme, source = label_scheme_of(path, image, reg, scheme, what, flag)
    labels_zyx, unmapped = to_class_labels(image, class_lookup(reg, scheme), what)
    said = (what, str(Path(path).resolve()), scheme, tuple(unmapped.items()))
    if unmapped and said not in _SAID_UNMAPPED:  # once per map: the demo scores the same ground truth twice
        _SAID_UNMAPPED.add(said)
        shown = ", ".join(f"{k}" for k in list(unmapped)[:12]) + (" …" if len(unmapped) > 12 else "")
        log.info(
            "%s: %d label id(s) name no %s class under the %s scheme and count as background: %s",
            what,
            len(unmapped),
            reg.name,
            scheme,
            shown,
        )
    class_image = sitk.GetImageFromArray(labels_zyx)
    class_image.CopyInformation(image)
    return class_image, labels_zyx, unmapped, scheme, source


def evaluate_volumes(
    pred_path: str | Path,
    gt_path: str | Path,
    anatomy: str | Path | AnatomyRegistry | None,
    options: Eval3dOptions | None = None,
    *,
    progress: bool = False,
    **option_values: Any,
) -> Eval3dResult:
    """Score a predicted label map against a ground-truth label map, class by class.

    Args:
        pred_path: Predicted label map (NIfTI, MHA/MHD, NRRD).
        gt_path: Ground-truth label map; its grid is the reference.
        anatomy: Registry name, YAML path or loaded registry (rows follow its class order); ``None``: the one
            lift recorded.
        options: The ``eval3d`` options (:class:`~yolo_spine.evaluate.options.Eval3dOptions`: ``tolerance_mm``,
            ``gt_scheme``, ``pred_scheme``, ``landmarks``, ``max_dist_mm``); ``None``: ``configs/eval3d/default.yaml``.
        progress: Show a progress bar over classes.
        **option_values: Options by key, applied over ``options`` (``tolerance_mm=1.0``, ``gt_scheme="verse"``).

    Returns:
        The result; rows are the registry classes present in either map.

    Raises:
        DataError: Unreadable maps, label ids whose scheme is unclear, no class of the anatomy in the ground
            truth, or grids that do not overlap.
        UserError: No or a contradicted anatomy, an unknown scheme, a bad option.
    """
    opts = resolve_options(Eval3dOptions, options, option_values)
    reg, anatomy_source = resolve_anatomy(anatomy, pred_path, gt_path)
    return _score_volumes(pred_path, gt_path, reg, anatomy_source, opts, progress)


def _score_volumes(
    pred_path: str | Path,
    gt_path: str | Path,
    reg: AnatomyRegistry,
    anatomy_source: str,
    opts: Eval3dOptions,
    progress: bool,
) -> Eval3dResult:
    """:func:`evaluate_volumes` once the anatomy is decided: read both maps, align the grids, score, locate."""
    t0 = time.perf_counter()
    gt_img, gt_zyx, gt_unmapped, gt_scheme, gt_source = _load_classes(
        gt_path, reg, opts.gt_scheme, "ground truth", "--gt-scheme"
    )
    if not gt_zyx.any():
        raise DataError(
            f"the ground truth {gt_path} holds no class of anatomy '{reg.name}'"
            + (f" (all ids unmapped under {gt_scheme}; pass --gt-scheme)" if gt_unmapped else "")
        )
    pred_img, pred_zyx, pred_unmapped, pred_scheme, pred_source = _load_classes(
        pred_path, reg, opts.pred_scheme, "prediction", "--pred-scheme"
    )
    if pred_unmapped and not pred_zyx.any():
        log.warning("no prediction label id names a class of '%s'; is --pred-scheme right?", reg.name)
    pred_on_gt, geometry = _pred_on_gt_grid(pred_img, pred_zyx, gt_img, reg)
    spacing_zyx = tuple(reversed(gt_img.GetSpacing()))
    scored = label_map_metrics(
        pred_on_gt, gt_zyx, spacing_zyx, range(1, reg.nc + 1), opts.tolerance_mm, HD_PERCENTILE, progress=progress
    )
    per_class = {reg.names[v - 1]: m for v, m in sorted(scored.items())}
    result = Eval3dResult(
        anatomy=reg.name,
        mode="segmentation",
        classes=list(per_class),
        per_class=per_class,
        mean=mean_metrics(per_class.values()),
        geometry=geometry,
        unmapped_labels={"gt": gt_unmapped, "pred": pred_unmapped},
        options=_options(
            opts.tolerance_mm,
            {"anatomy": anatomy_source, "gt_scheme": gt_source, "pred_scheme": pred_source},
            gt_scheme,
            pred_scheme,
            opts.landmarks,
            opts.max_dist_mm,
        ),
        inputs={"pred": str(pred_path), "gt": str(gt_path)},
    )
    if opts.landmarks:
        names = {c + 1: n for c, n in enumerate(reg.names)}
        gt_ctd = label_centroids_lps_mm(gt_img, names)
        pred_ctd = label_centroids_lps_mm(pred_img, names)  # on its own grid: world points need no resampling
        result.centroids_lps_mm = {"gt": gt_ctd, "pred": pred_ctd}
        result.landmarks = identification_rate(pred_ctd, gt_ctd, opts.max_dist_mm)
    result.seconds = time.perf_counter() - t0
    return result


def _pred_on_gt_grid(
    pred_img: sitk.Image, pred_zyx: np.ndarray, gt_img: sitk.Image, reg: AnatomyRegistry
) -> tuple[np.ndarray, dict[str, Any]]:
    """The prediction on the ground-truth grid (resampled if the grids differ) and the result's geometry record."""
    geometry: dict[str, Any] = {"gt_grid": grid_of(gt_img), "pred_grid": grid_of(pred_img), "pred_resampled": False}
    if same_grid(pred_img, gt_img):
        return pred_zyx, geometry
    sitk = _import_sitk()
    log.info("prediction grid differs from the ground truth: resampling it, %s", _RESAMPLE_METHOD)
    voxel_ml = float(np.prod(tuple(reversed(gt_img.GetSpacing())))) / 1000.0  # z·y·x, as before: same last bit
    before = np.bincount(pred_zyx.ravel(), minlength=reg.nc + 1)
    pred_on_gt = sitk.GetArrayFromImage(resample_onto(pred_img, gt_img))
    after = np.bincount(pred_on_gt.ravel(), minlength=reg.nc + 1)
    pred_voxel_ml = float(np.prod(pred_img.GetSpacing())) / 1000.0
    geometry.update(
        pred_resampled=True,
        resampling=_RESAMPLE_METHOD,
        pred_volume_ml_before_resampling={
            reg.names[c]: float(before[c + 1] * pred_voxel_ml) for c in range(reg.nc) if before[c + 1]
        },
        pred_volume_ml_after_resampling={
            reg.names[c]: float(after[c + 1] * voxel_ml) for c in range(reg.nc) if before[c + 1] or after[c + 1]
        },
    )
    return pred_on_gt, geometry


def evaluate_landmarks(
    pred_path: str | Path,
    gt_path: str | Path,
    anatomy: str | Path | AnatomyRegistry | None,
    options: Eval3dOptions | None = None,
    **option_values: Any,
) -> Eval3dResult:
    """Score landmarks only: each input is a centroid JSON file or a label map (centroids computed from it).

    Args:
        pred_path: Predicted centroids (``.json``) or label map.
        gt_path: Ground-truth centroids (``.json``) or label map.
        anatomy: Registry name, YAML path or loaded registry; ``None``: the one lift recorded.
        options: The ``eval3d`` options (``gt_scheme``, ``pred_scheme`` and ``max_dist_mm`` are used);
            ``None``: ``configs/eval3d/default.yaml``.
        **option_values: Options by key, applied over ``options``.

    Returns:
        A result in ``"landmarks"`` mode (no segmentation rows).
    """
    opts = resolve_options(Eval3dOptions, options, option_values)
    reg, anatomy_source = resolve_anatomy(anatomy, pred_path, gt_path)
    return _score_landmarks(pred_path, gt_path, reg, anatomy_source, opts)


def _score_landmarks(
    pred_path: str | Path, gt_path: str | Path, reg: AnatomyRegistry, anatomy_source: str, opts: Eval3dOptions
) -> Eval3dResult:
    """:func:`evaluate_landmarks` once the anatomy is decided."""
    t0 = time.perf_counter()
    names = {c + 1: n for c, n in enumerate(reg.names)}
    unmapped: dict[str, dict[int, int]] = {}
    schemes: dict[str, str | None] = {"gt": None, "pred": None}
    sources: dict[str, str] = {"anatomy": anatomy_source}

    def centroids(path: str | Path, scheme: str | None, what: str, key: str) -> dict[str, list[float]]:
        if is_centroid_file(path):
            return read_centroids_json(path, reg, what)
        image, _, unmapped[key], schemes[key], sources[f"{key}_scheme"] = _load_classes(
            path, reg, scheme, what, f"--{key}-scheme"
        )
        return label_centroids_lps_mm(image, names)

    gt_ctd = centroids(gt_path, opts.gt_scheme, "ground truth", "gt")
    if not gt_ctd:
        raise DataError(f"the ground truth {gt_path} holds no landmark of anatomy '{reg.name}'")
    pred_ctd = centroids(pred_path, opts.pred_scheme, "prediction", "pred")
    present = set(gt_ctd) | set(pred_ctd)
    return Eval3dResult(
        anatomy=reg.name,
        mode="landmarks",
        classes=[n for n in reg.names if n in present],
        landmarks=identification_rate(pred_ctd, gt_ctd, opts.max_dist_mm),
        centroids_lps_mm={"gt": gt_ctd, "pred": pred_ctd},
        unmapped_labels=unmapped,
        options=_options(None, sources, schemes["gt"], schemes["pred"], True, opts.max_dist_mm),
        inputs={"pred": str(pred_path), "gt": str(gt_path)},
        seconds=time.perf_counter() - t0,
    )


def _options(
    tolerance_mm: float | None,
    sources: Mapping[str, str],
    gt_scheme: str | None,
    pred_scheme: str | None,
    landmarks: bool,
    max_dist_mm: float,
) -> dict[str, Any]:
    """The options a result was computed with; ``sources`` says where anatomy and schemes came from."""
    return {
        "tolerance_mm": tolerance_mm,
        "hd_percentile": HD_PERCENTILE,
        "gt_scheme": gt_scheme,
        "pred_scheme": pred_scheme,
        "decided_by": dict(sources),
        "landmarks": landmarks,
        "max_dist_mm": max_dist_mm,
    }


def run_eval3d(
    pred: str | Path,
    gt: str | Path,
    anatomy: str | Path | AnatomyRegistry | None,
    out: str | Path,
    options: Eval3dOptions | None = None,
    *,
    overwrite: bool = False,
    progress: bool = False,
    **option_values: Any,
) -> tuple[Eval3dResult, dict[str, Path]]:
    """Evaluate and write ``metrics.csv``, ``metrics.json`` (with a run manifest) and ``metrics.md``.

    Centroid files (``.json``) for either input switch to landmark-only evaluation. The anatomy is resolved
    once here and passed down.

    Args:
        pred: Predicted label map or centroid file.
        gt: Ground-truth label map or centroid file.
        anatomy: Registry name, YAML path or loaded registry; ``None``: the one lift recorded beside the prediction.
        out: The CSV path; the JSON and Markdown files take the same name with their own suffix.
        options: The ``eval3d`` options (:class:`~yolo_spine.evaluate.options.Eval3dOptions`); ``None``:
            ``configs/eval3d/default.yaml``.
        overwrite: Replace existing outputs.
        progress: Progress bar over classes.
        **option_values: Options by key, applied over ``options`` (``tolerance_mm``, ``gt_scheme``,
            ``pred_scheme``, ``landmarks``, ``max_dist_mm``).

    Returns:
        The result and ``{"csv": ..., "json": ..., "md": ...}`` paths.
    """
    from yolo_spine.evaluate.report import output_paths, write_reports
    from yolo_spine.provenance import run_manifest

    opts = resolve_options(Eval3dOptions, options, option_values)
    paths = output_paths(out, overwrite)  # refuse existing outputs before any work
    reg, anatomy_source = resolve_anatomy(anatomy, pred, gt)
    if is_centroid_file(pred) or is_centroid_file(gt):
        result = _score_landmarks(pred, gt, reg, anatomy_source, opts)
    else:
        result = _score_volumes(pred, gt, reg, anatomy_source, opts, progress)
    manifest = run_manifest(
        "eval3d",
        {
            "anatomy": result.anatomy,
            "out": str(out),
            "overwrite": overwrite,
            **result.options,
            "config": opts.config_name(),
            "options_from": produced_by(opts.record())["options_from"],
        },
        inputs={"pred": pred, "gt": gt},
        extra={"versions_extra": _extra_versions()},
    )
    write_reports(result, paths, overwrite, manifest)
    return result, paths


def _extra_versions() -> dict[str, str | None]:
    import importlib.metadata

    out: dict[str, str | None] = {}
    for name in ("monai", "scipy"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out
