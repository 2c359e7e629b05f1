"""``lift``: YOLO-seg instances on CT slices and DRRs back into the study's 3D geometry.

Slices → one label map per plane (:mod:`~yolo_spine.lift.slices`) → multi-planar fusion
(:mod:`~yolo_spine.lift.fuse`) → optional clean-up (:mod:`~yolo_spine.lift.cleanup`) → a NIfTI label map
(class id + 1, 0 = background) in the original volume's size, spacing, origin and direction. DRRs → per-class
3D centroid and box (:mod:`~yolo_spine.lift.drr`) in ``<out>.centroids.json`` beside the label map, and optionally a
visual-hull label map. A run manifest ``<out>.json`` records inputs, options, counts and classes found. Every file
is named after ``--out``, so several lifts can share a folder.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from yolo_spine.ct.sidecar import VolumeGeometry
from yolo_spine.errors import UserError
from yolo_spine.layout import PLANES
from yolo_spine.lift.io import LiftInputs, read_lift_inputs
from yolo_spine.registry import AnatomyRegistry, load_registry

log = logging.getLogger("yolo_spine")

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".mha", ".nrrd")


@dataclass
class LiftResult:
    """What ``lift`` wrote and found.

    Attributes:
        labels: The label map written (``None`` when there were no slices and no hull).
        manifest: The run manifest ``<out>.json``.
        centroids: ``<out>.centroids.json`` (DRR inputs only).
        classes_found: Class names present in the label map (or triangulated), registry order.
        counts: Input and clean-up accounting.
        seconds: Wall time.
    """

    labels: Path | None
    manifest: Path
    centroids: Path | None
    classes_found: list[str] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def output_paths(out: str | Path) -> dict[str, Path]:
    """The label map, manifest and centroid paths for ``--out`` (which must name a volume file).

    ``A/seg.nii.gz`` → ``A/seg.nii.gz``, ``A/seg.json``, ``A/seg.centroids.json``: all named after the output, so
    lifts with different output names never collide in one folder.
    """
    out = Path(out)
    name = out.name
    suffix = next((s for s in VOLUME_SUFFIXES if name.lower().endswith(s)), None)
    if suffix is None:
        raise UserError(f"--out must name a label-map file ending in {', '.join(VOLUME_SUFFIXES)}, not {name}")
    base = name[: -len(suffix)]
    return {
        "labels": out,
        "manifest": out.with_name(base + ".json"),
        "centroids": out.with_name(base + ".centroids.json"),
    }


def lift_slice_inputs(
    inputs: LiftInputs,
    registry: AnatomyRegistry,
    fusion: str = "vote",
    background_weight: float = 0.5,
    max_gap: int | None = None,
    largest_cc: bool = False,
    order_fix: bool = False,
    order_move_penalty: float | None = None,
    order_skip_cost: float | None = None,
    progress: bool = False,
) -> tuple[np.ndarray, VolumeGeometry, dict[str, Any]]:
    """Lift and fuse the slice items of ``inputs`` (no files written).

    Returns:
        ``(labels_zyx, geometry, info)``: the fused label map (class id + 1), its grid, and per-plane counts,
        voxels removed by the clean-up and relabelled classes.
    """
    from yolo_spine.lift.cleanup import largest_component_per_class
    from yolo_spine.lift.cleanup import order_fix as run_order_fix
    from yolo_spine.lift.fuse import fuse_planes, mirror_lut_for
    from yolo_spine.lift.slices import lift_plane

    geometry = VolumeGeometry.from_json(inputs.slices[0].sidecar["volume"])
    by_plane: dict[str, list] = {}
    for it in inputs.slices:
        by_plane.setdefault(str(it.sidecar["plane"]), []).append(it)
    order = sorted(by_plane, key=lambda p: PLANES.index(p) if p in PLANES else len(PLANES))
    maps = [lift_plane(by_plane[p], geometry, registry.nc, max_gap=max_gap, progress=progress) for p in order]
    mirror = mirror_lut_for(registry.mirror_index_map())
    labels = fuse_planes(maps, fusion, mirror, background_weight)
    info: dict[str, Any] = {
        "planes": {m.plane: {**m.counts, "lr_blind": m.lr_blind} for m in maps},
        "largest_cc_removed_voxels": {},
        "order_fix_relabelled": {},
    }
    del maps
    if largest_cc:
        removed = largest_component_per_class(labels)
        info["largest_cc_removed_voxels"] = {registry.names[v - 1]: n for v, n in removed.items()}
    if order_fix:
        info["order_fix_relabelled"] = run_order_fix(
            labels, geometry, registry, move_penalty=order_move_penalty, skip_cost=order_skip_cost
        )
    return labels, geometry, info


def _write_volume(labels_zyx: np.ndarray, geometry: VolumeGeometry, path: Path, overwrite: bool) -> None:
    import SimpleITK as sitk

    from yolo_spine.io.atomic import atomic_output

    image = sitk.GetImageFromArray(labels_zyx)
    image.SetSpacing(geometry.spacing_xyz)
    image.SetOrigin(geometry.origin_xyz)
    image.SetDirection(geometry.direction)
    with atomic_output(path, overwrite=overwrite, is_dir=False) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=True)


def _present(labels_zyx: np.ndarray, names: tuple[str, ...]) -> dict[str, int]:
    counts = np.bincount(labels_zyx.ravel(), minlength=len(names) + 1)
    return {names[v - 1]: int(counts[v]) for v in range(1, len(names) + 1) if counts[v]}


def registry_for_sidecars(recorded: str, given: str | Path | None) -> AnatomyRegistry:
    """The registry the sidecars were made with: the recorded shipped name, or the user's YAML of that name.

    ``ct2yolo --anatomy FILE`` records only the registry's ``name``, so a custom registry must be given again.

    Raises:
        UserError: If the recorded name is no shipped registry and no file is given, or the file is another anatomy.
    """
    if given is None:
        try:
            return load_registry(recorded)
        except UserError:
            raise UserError(
                f"the sidecars were made for the anatomy '{recorded}', which is not a shipped registry; "
                "pass its YAML file with --anatomy"
            ) from None
    registry = load_registry(given)
    if registry.name != recorded:
        raise UserError(f"--anatomy {given} is '{registry.name}', but the sidecars were made for '{recorded}'")
    return registry


def lift(
    labels_dir: str | Path,
    out: str | Path,
    *,
    sidecars: str | Path | None = None,
    split: str | None = None,
    study: str | None = None,
    config: str | Path | None = None,
    planes: list[str] | tuple[str, ...] | None = None,
    fusion: str | None = None,
    largest_cc: bool | None = None,
    order_fix: bool | None = None,
    hull: bool | None = None,
    max_gap: int | None = None,
    anatomy: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> LiftResult:
    """Lift 2D instances (ground truth or predictions) of one CT study back into 3D and write the results.

    Args:
        labels_dir: A ``ct2yolo`` dataset root, or a ``predict --save-txt`` folder (with ``labels/``).
        out: Label-map path (``.nii.gz``, ``.nii``, ``.mha``, ``.nrrd``); ``<out>.json`` and, for DRRs,
            ``<out>.centroids.json`` are written beside it (``<out>`` = the name without its suffix).
        sidecars: The ``ct2yolo`` root when ``labels_dir`` holds no sidecars.
        split: Only this split.
        study: The study to lift when the sidecars hold several.
        config: Preset name or YAML path (``configs/lift``).
        planes: Slice planes to use (default: all).
        fusion: ``vote`` or ``weighted``.
        largest_cc: Keep each class's largest connected component.
        order_fix: Enforce the registry's anatomical order along the body axis.
        hull: Write the DRR visual hull as the label map when there are no slices.
        max_gap: Interpolate across gaps of at most this many slices.
        anatomy: Registry YAML, needed when ``ct2yolo`` was given its own file (its ``name`` must be the recorded one).
        overwrite: Replace existing outputs.
        progress: Progress bars.

    Returns:
        The paths written and what was found.

    Raises:
        UserError: Bad options, missing or ambiguous inputs, existing outputs without ``overwrite``.
    """
    from yolo_spine.config import load_options
    from yolo_spine.io.atomic import ensure_can_write, write_json_atomic
    from yolo_spine.provenance import run_manifest

    t0 = time.perf_counter()
    opts = load_options(
        "lift",
        config,
        {
            "planes": list(planes) if planes else None,
            "fusion": fusion,
            "largest_cc": largest_cc,
            "order_fix": order_fix,
            "hull": hull,
            "max_gap": max_gap,
        },
    )
    paths = output_paths(out)
    inputs = read_lift_inputs(
        labels_dir, sidecars, split=split, study=study, planes=tuple(opts["planes"]) if opts["planes"] else None
    )
    writes_volume = bool(inputs.slices) or (bool(inputs.drrs) and bool(opts["hull"]))
    for key in ("manifest", *(("labels",) if writes_volume else ()), *(("centroids",) if inputs.drrs else ())):
        ensure_can_write(paths[key], overwrite)
    registry = registry_for_sidecars(inputs.anatomy, anatomy)
    info: dict[str, Any] = {}
    classes: dict[str, int] = {}
    labels_path = centroids_path = None
    if inputs.slices:
        labels, geometry, info = lift_slice_inputs(
            inputs,
            registry,
            fusion=opts["fusion"],
            background_weight=float(opts["background_weight"]),
            max_gap=opts["max_gap"],
            largest_cc=bool(opts["largest_cc"]),
            order_fix=bool(opts["order_fix"]),
            order_move_penalty=opts["order_move_penalty"],
            order_skip_cost=opts["order_skip_cost"],
            progress=progress,
        )
        classes = _present(labels, registry.names)
        _write_volume(labels, geometry, paths["labels"], overwrite)
        labels_path = paths["labels"]
    if inputs.drrs:
        from yolo_spine.lift.drr import centroids_json, triangulate_classes, visual_hull

        tris = triangulate_classes(inputs.drrs, registry.names, float(opts["centroid_weight_power"]))
        centroids_path = write_json_atomic(paths["centroids"], centroids_json(tris, inputs.study, registry.name))
        info["drr"] = {
            "views": sorted({str(it.sidecar.get("view", it.stem)) for it in inputs.drrs}),
            "triangulated": sum(t.centroid_lps_mm is not None for t in tris),
            "single_view": [t.name for t in tris if t.centroid_lps_mm is None],
        }
        if not classes:
            classes = {t.name: 0 for t in tris}
        if opts["hull"] and not inputs.slices:
            geometry = VolumeGeometry.from_json(inputs.drrs[0].sidecar["volume"])
            boxes = {registry.index(t.name): t.box_lps_mm for t in tris}
            hull_labels = visual_hull(inputs.drrs, geometry, registry.names, boxes)
            classes = _present(hull_labels, registry.names) or classes
            _write_volume(hull_labels, geometry, paths["labels"], overwrite)
            labels_path = paths["labels"]
        elif opts["hull"]:
            log.warning("--hull is ignored: slices were lifted into %s", paths["labels"])
    seconds = time.perf_counter() - t0
    manifest = run_manifest(
        "lift",
        {
            **opts,
            "labels_dir": str(labels_dir),
            "sidecars": str(sidecars) if sidecars else None,
            "split": split,
            "study": inputs.study,
            "out": str(out),
        },
        extra={
            "anatomy": registry.name,
            "study": inputs.study,
            "label_values": "class id + 1 (0 = background), registry order",
            "outputs": {"labels": labels_path, "centroids": centroids_path},
            "counts": inputs.counts,
            "labels_without_sidecar_examples": inputs.unmatched_labels,
            "lift": info,
            "classes_found": list(classes),
            "voxels_per_class": classes,
            "seconds": round(seconds, 3),
        },
    )
    write_json_atomic(paths["manifest"], manifest)
    return LiftResult(labels_path, paths["manifest"], centroids_path, list(classes), inputs.counts, seconds)
