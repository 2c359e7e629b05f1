"""``lift``: YOLO-seg instances on CT slices and DRRs back into the study's 3D geometry.

Slices → one label map per plane (:mod:`~yolo_spine.lift.slices`) → multi-planar fusion
(:mod:`~yolo_spine.lift.fuse`) → optional clean-up (:mod:`~yolo_spine.lift.cleanup`) → a NIfTI label map
(class id + 1, 0 = background) in the original volume's size, spacing, origin and direction. DRRs → per-class
3D centroid and box (:mod:`~yolo_spine.lift.drr`) in ``<out>.centroids.json`` beside the label map, and optionally a
visual-hull label map. A run manifest ``<out>.json`` records inputs, options, counts and classes found. Every file
is named after ``--out``, so several lifts can share a folder.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from yolo_spine.batch import produced_by
from yolo_spine.ct.sidecar import VolumeGeometry
from yolo_spine.errors import UserError
from yolo_spine.layout import PLANES
from yolo_spine.lift.io import LiftInputs, read_lift_inputs
from yolo_spine.lift.options import LiftOptions
from yolo_spine.options import resolve_options
from yolo_spine.provenance import RunManifest
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
        dicom_seg: The DICOM Segmentation written with ``dicom_seg``, else ``None``.
    """

    labels: Path | None
    manifest: Path
    centroids: Path | None
    classes_found: list[str] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    dicom_seg: Path | None = None


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
    options: LiftOptions | None = None,
    *,
    progress: bool = False,
    **option_values: Any,
) -> tuple[np.ndarray, VolumeGeometry, dict[str, Any]]:
    """Lift and fuse the slice items of ``inputs`` (no files written).

    Args:
        inputs: What :func:`~yolo_spine.lift.io.read_lift_inputs` read (at least one slice).
        registry: The anatomy the sidecars were made with.
        options: The ``lift`` options (``fusion``, ``background_weight``, ``max_gap``, ``largest_cc``,
            ``order_fix`` and its penalties are used); ``None``: ``configs/lift/default.yaml``.
        progress: Progress bars.
        **option_values: Options by key, applied over ``options`` (``fusion="weighted"``).

    Returns:
        ``(labels_zyx, geometry, info)``: the fused label map (class id + 1), its grid, and per-plane counts,
        voxels removed by the clean-up and relabelled classes.
    """
    from yolo_spine.lift.cleanup import largest_component_per_class
    from yolo_spine.lift.cleanup import order_fix as run_order_fix
    from yolo_spine.lift.fuse import fuse_planes, mirror_lut_for
    from yolo_spine.lift.slices import lift_plane

    opts = resolve_options(LiftOptions, options, option_values)
    geometry = VolumeGeometry.from_json(inputs.slices[0].sidecar["volume"])
    by_plane: dict[str, list] = {}
    for it in inputs.slices:
        by_plane.setdefault(str(it.sidecar["plane"]), []).append(it)
    order = sorted(by_plane, key=lambda p: PLANES.index(p) if p in PLANES else len(PLANES))
    maps = [lift_plane(by_plane[p], geometry, registry.nc, max_gap=opts.max_gap, progress=progress) for p in order]
    mirror = mirror_lut_for(registry.mirror_index_map())
    labels = fuse_planes(maps, opts.fusion, mirror, opts.background_weight)
    info: dict[str, Any] = {
        "planes": {m.plane: {**m.counts, "lr_blind": m.lr_blind} for m in maps},
        "largest_cc_removed_voxels": {},
        "order_fix_relabelled": {},
    }
    del maps
    if opts.largest_cc:
        removed = largest_component_per_class(labels)
        info["largest_cc_removed_voxels"] = {registry.names[v - 1]: n for v, n in removed.items()}
    if opts.order_fix:
        info["order_fix_relabelled"] = run_order_fix(
            labels, geometry, registry, move_penalty=opts.order_move_penalty, skip_cost=opts.order_skip_cost
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


def registry_for_sidecars(recorded: str, given: str | Path | AnatomyRegistry | None) -> AnatomyRegistry:
    """The registry the sidecars were made with: the recorded shipped name, or the user's registry of that name.

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
    registry = given if isinstance(given, AnatomyRegistry) else load_registry(given)
    if registry.name != recorded:
        raise UserError(f"--anatomy {given} is '{registry.name}', but the sidecars were made for '{recorded}'")
    return registry


@dataclass
class _Lifted:
    """What a lift produced so far: the files written, the classes found and the per-step accounting."""

    labels: Path | None = None
    centroids: Path | None = None
    dicom_seg: Path | None = None
    classes: dict[str, int] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


class LiftRunRecord(RunManifest):
    """``lift``'s run manifest (``<out>.json`` beside the label map; ``lift --csv``: ``studies/<study>.json``)."""

    anatomy: str
    study: str | None
    label_values: str  # how the label map's values read
    outputs: dict[str, str | None]  # labels, centroids, dicom_seg (base names unless --record-paths)
    counts: dict[str, int]  # label files, sidecars and those without a partner
    labels_without_sidecar_examples: list[str]
    lift: dict[str, Any]  # per-step accounting of the slice lift
    classes_found: list[str]  # registry order
    voxels_per_class: dict[str, int]
    seconds: float


def read_lift_record(path: str | Path) -> LiftRunRecord:
    """A run manifest as :func:`lift` wrote it (not validated: the file is this package's own output)."""
    return cast(LiftRunRecord, json.loads(Path(path).read_text(encoding="utf-8")))


def lift(
    labels_dir: str | Path,
    out: str | Path,
    options: LiftOptions | None = None,
    *,
    sidecars: str | Path | None = None,
    split: str | None = None,
    study: str | None = None,
    anatomy: str | Path | AnatomyRegistry | None = None,
    overwrite: bool = False,
    progress: bool = False,
    dicom_seg: str | Path | None = None,
    source_dicom: str | Path | None = None,
    study_salt: str | None = None,
    **option_values: Any,
) -> LiftResult:
    """Lift 2D instances (ground truth or predictions) of one CT study back into 3D and write the results.

    Steps: read the sidecars and labels, refuse existing outputs, lift and fuse the slices into a label map,
    triangulate the DRR views (and their visual hull), write the run manifest.

    Args:
        labels_dir: A ``ct2yolo`` dataset root, or a ``predict --save-txt`` folder (with ``labels/``).
        out: Label-map path (``.nii.gz``, ``.nii``, ``.mha``, ``.nrrd``); ``<out>.json`` and, for DRRs,
            ``<out>.centroids.json`` are written beside it (``<out>`` = the name without its suffix).
        options: The ``lift`` options (:class:`~yolo_spine.lift.options.LiftOptions`); ``None``:
            ``configs/lift/default.yaml``.
        sidecars: The ``ct2yolo`` root when ``labels_dir`` holds no sidecars.
        split: Only this split.
        study: The study to lift when the sidecars hold several.
        anatomy: Registry YAML (or loaded registry), needed when ``ct2yolo`` was given its own file (its ``name``
            must be the recorded one).
        overwrite: Replace existing outputs.
        progress: Progress bars.
        dicom_seg: Also write the label map as a DICOM Segmentation here (``.dcm``), referencing ``source_dicom``.
        source_dicom: The DICOM series folder ``ct2yolo`` read for this study; checked to be it (see
            :mod:`yolo_spine.lift.dicom`) before any work.
        study_salt: ``ct2yolo``'s ``study_id_salt`` for that check (default: the one its manifest records, else
            empty).
        **option_values: Options by key, applied over ``options`` (``planes=["axial"]``, ``fusion="weighted"``,
            ``largest_cc=True``, ``order_fix=True``, ``hull=True``, ``max_gap=2`` …).

    Returns:
        The paths written and what was found.

    Raises:
        UserError: Bad options, missing or ambiguous inputs, existing outputs without ``overwrite``.
    """
    from yolo_spine.io.atomic import write_json_atomic
    from yolo_spine.provenance import run_manifest

    t0 = time.perf_counter()
    opts = resolve_options(LiftOptions, options, option_values)
    paths = output_paths(out)
    inputs = read_lift_inputs(labels_dir, sidecars, split=split, study=study, planes=opts.planes or None)
    _drop_slice_instances_below(inputs, opts.conf)
    _refuse_existing(paths, inputs, opts.hull, overwrite)
    registry = registry_for_sidecars(inputs.anatomy, anatomy)
    dicom = _check_dicom_seg(dicom_seg, source_dicom, study_salt, inputs, labels_dir, sidecars, overwrite)
    lifted = _Lifted()
    if inputs.slices:
        labels, geometry, lifted.info = lift_slice_inputs(inputs, registry, opts, progress=progress)
        lifted.classes = _present(labels, registry.names)
        _write_volume(labels, geometry, paths["labels"], overwrite)
        lifted.labels = paths["labels"]
        if dicom is not None and dicom_seg is not None:
            from yolo_spine.lift import dicom as lift_dicom

            lifted.dicom_seg = lift_dicom.write(labels, dicom, registry, Path(dicom_seg), overwrite)
    if inputs.drrs:
        _lift_drrs(inputs, registry, opts, paths, overwrite, lifted)
    seconds = time.perf_counter() - t0
    manifest = run_manifest(
        "lift",
        {
            **produced_by(opts.record()),
            "labels_dir": str(labels_dir),
            "sidecars": str(sidecars) if sidecars else None,
            "split": split,
            "study": inputs.study,
            "out": str(out),
            "dicom_seg": str(dicom_seg) if dicom_seg else None,
            "source_dicom": str(source_dicom) if source_dicom else None,
        },
        extra={
            "anatomy": registry.name,
            "study": inputs.study,
            "label_values": "class id + 1 (0 = background), registry order",
            "outputs": {"labels": lifted.labels, "centroids": lifted.centroids, "dicom_seg": lifted.dicom_seg},
            "counts": inputs.counts,
            "labels_without_sidecar_examples": inputs.unmatched_labels,
            "lift": lifted.info,
            "classes_found": list(lifted.classes),
            "voxels_per_class": lifted.classes,
            "seconds": round(seconds, 3),
        },
    )
    write_json_atomic(paths["manifest"], cast(LiftRunRecord, manifest))  # run_manifest adds `extra` to its own keys
    return LiftResult(
        lifted.labels,
        paths["manifest"],
        lifted.centroids,
        list(lifted.classes),
        inputs.counts,
        seconds,
        lifted.dicom_seg,
    )


def _check_dicom_seg(
    dicom_seg: str | Path | None,
    source_dicom: str | Path | None,
    study_salt: str | None,
    inputs: LiftInputs,
    labels_dir: str | Path,
    sidecars: str | Path | None,
    overwrite: bool,
) -> Any:
    """With ``dicom_seg``: refuse an existing output and check the source series, before any lifting work."""
    if dicom_seg is None:
        if source_dicom is not None:
            raise UserError("--source-dicom is used only with --dicom-seg")
        return None
    from yolo_spine.io.atomic import ensure_can_write
    from yolo_spine.io.dicom_seg import require_highdicom
    from yolo_spine.lift import dicom as lift_dicom

    require_highdicom()
    if not inputs.slices:
        raise UserError("--dicom-seg needs slices to lift: DRR views alone give no label volume on the CT's grid")
    ensure_can_write(dicom_seg, overwrite)
    geometry = VolumeGeometry.from_json(inputs.slices[0].sidecar["volume"])
    root = Path(sidecars) if sidecars is not None else Path(labels_dir)
    return lift_dicom.prepare(Path(labels_dir), source_dicom, inputs.study, geometry, root, study_salt)


def _refuse_existing(paths: dict[str, Path], inputs: LiftInputs, hull: bool, overwrite: bool) -> None:
    """Refuse, before any work, every output this lift would write that exists (without ``overwrite``)."""
    from yolo_spine.io.atomic import ensure_can_write

    writes_volume = bool(inputs.slices) or (bool(inputs.drrs) and hull)
    for key in ("manifest", *(("labels",) if writes_volume else ()), *(("centroids",) if inputs.drrs else ())):
        ensure_can_write(paths[key], overwrite)


def _drop_slice_instances_below(inputs: LiftInputs, conf: float | None) -> None:
    """With ``conf``: drop slice instances below it, counted as ``slice_instances_below_conf``.

    DRR instances stay: below ``conf`` they are evidence that several views combine (:mod:`yolo_spine.lift.drr`).
    Ground truth (no confidence) is never dropped.
    """
    if conf is None:
        return
    dropped = 0
    for it in inputs.slices:
        kept = [i for i in it.instances if i.conf is None or i.conf >= conf]
        dropped += len(it.instances) - len(kept)
        it.instances = kept
    inputs.counts["slice_instances_below_conf"] = dropped


def _lift_drrs(
    inputs: LiftInputs,
    registry: AnatomyRegistry,
    options: LiftOptions,
    paths: dict[str, Path],
    overwrite: bool,
    lifted: _Lifted,
) -> None:
    """Triangulate the DRR views into per-class centroids and boxes (and the visual hull without slices)."""
    from yolo_spine.io.atomic import write_json_atomic
    from yolo_spine.lift.drr import centroids_json, observations, triangulate_observations, visual_hull

    # rasterised once: the hull below reads the very masks the triangulation used
    obs = observations(
        inputs.drrs, len(registry.names), options.centroid_weight_power, most_confident=options.conf is not None
    )
    tris = triangulate_observations(obs, registry.names, options.conf)
    lifted.centroids = write_json_atomic(paths["centroids"], centroids_json(tris, inputs.study, registry.name))
    lifted.info["drr"] = {
        "views": sorted({str(it.sidecar.get("view", it.stem)) for it in inputs.drrs}),
        "triangulated": sum(t.centroid_lps_mm is not None for t in tris),
        "single_view": [t.name for t in tris if t.single_view],
        "below_conf": [t.name for t in tris if t.below_conf],
    }
    if not lifted.classes:  # DRRs alone: the classes placed (not those seen in one view or below conf)
        lifted.classes = {t.name: 0 for t in tris if t.centroid_lps_mm is not None}
    if options.hull and not inputs.slices:
        geometry = VolumeGeometry.from_json(inputs.drrs[0].sidecar["volume"])
        boxes = {registry.index(t.name): t.box_lps_mm for t in tris}
        hull_labels = visual_hull(obs, geometry, len(registry.names), boxes)
        lifted.classes = _present(hull_labels, registry.names) or lifted.classes
        _write_volume(hull_labels, geometry, paths["labels"], overwrite)
        lifted.labels = paths["labels"]
    elif options.hull:
        log.warning("--hull is ignored: slices were lifted into %s", paths["labels"])
