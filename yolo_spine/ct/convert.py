"""``ct2yolo``: CT/CBCT studies (volume + label map) → one Ultralytics YOLO-seg dataset of slices and DRRs.

Each study is converted on its own (its split, file names and pose seeds depend only on the study's name and
the options), so a long study list can be cut into pieces and run anywhere. Output layout (like ``merge``)::

    OUT/data.yaml                         names in registry order, anatomy key
    OUT/images|labels|sidecars/<split>/   <study>_<plane>_<index:04d> and <study>_drr_<view>_p<pose:03d>
    OUT/studies/<study>.json              per-study report: structures, unmapped label ids, drops, notes
    OUT/manifest.json                     run manifest and per-study accounting

**Study ids.** A name given with ``--study`` or in the CSV's ``study`` column is used as given. Otherwise the
study is *not* named after its file or DICOM folder (often the patient's name): its id is a pseudonym,
``s-<10 hex>``, hashed from the volume's content identity (:func:`yolo_spine.io.volume.volume_identity`) and the
``study_id_salt`` option, so every node, shard and re-run derives the same id, split and pose seeds wherever the
data is mounted. ``--study-map FILE`` writes the pseudonym → original name table (the re-identification key;
kept outside the dataset). Reports and the manifest record such a study's inputs by SHA-256 only.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import hashlib
import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import numpy as np

from yolo_spine import __version__
from yolo_spine.batch import BatchOptions, failure_reasons, finish, produced_by, read_study_rows, summary_record
from yolo_spine.ct.batch import assemble, convert_batch, spec_inputs
from yolo_spine.ct.manifest import (
    Ct2YoloManifest,
    Ct2YoloResult,
    PlaneStats,
    StudyEntry,
    StudyHead,
    StudyInputs,
    StudyReport,
    ViewStats,
)
from yolo_spine.ct.options import CtOptions, SplitOptions
from yolo_spine.ct.sidecar import SCHEMA, VolumeGeometry
from yolo_spine.errors import DataError, OutputExistsError, UserError
from yolo_spine.identifiers import FOLDER, input_record, path_name, pseudonym, records_paths
from yolo_spine.io.atomic import atomic_output, write_json_atomic
from yolo_spine.io.labels import SegInstance, write_data_yaml
from yolo_spine.layout import SPLITS
from yolo_spine.ledger import options_hash
from yolo_spine.options import read_yaml, resolve_options
from yolo_spine.provenance import run_manifest, sha256_file
from yolo_spine.registry import AnatomyRegistry, detect_label_scheme, load_registry

log = logging.getLogger("yolo_spine")


@dataclass(frozen=True)
class StudySpec:
    """One study to convert: CT, label map, optional transform file, and its name.

    Attributes:
        volume: CT file or DICOM series folder.
        labels: Label map file.
        name: Study id used in file names, sidecars and reports (``""``: not named yet, see :func:`name_studies`).
        transform: ITK transform file (label frame → image frame), if any.
        original: For a pseudonymous id, the name the study's path would have given (for ``--study-map`` only).
        inputs: How the study's report records its input files (see :func:`study_inputs`).
    """

    volume: Path
    labels: Path
    name: str
    transform: Path | None = None
    original: str | None = None
    inputs: StudyInputs = field(default_factory=dict)


def study_name_from(path: Path) -> str:
    """A file-name-safe study name from a volume path (``case_01.nii.gz`` → ``case_01``)."""
    name = path.name
    for ext in (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr"):
        if name.lower().endswith(ext):
            name = name[: -len(ext)]
            break
    return _safe(name)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "study"


def read_study_list(csv_path: Path) -> list[StudySpec]:
    """Read a CSV with columns ``volume,labels[,transform][,study]`` (paths relative to the CSV's folder).

    A row without a ``study`` gets the name ``""``; :func:`name_studies` gives it a pseudonymous id.

    Raises:
        UserError: Missing columns or no rows.
    """
    rows = read_study_rows(
        csv_path, ("volume", "labels"), ("transform", "study"), paths=("volume", "labels", "transform")
    )
    return [
        StudySpec(
            volume=row["volume"],
            labels=row["labels"],
            name=_safe(row["study"]) if row["study"] else "",
            transform=row["transform"],
        )
        for row in rows
    ]


def name_studies(specs: list[StudySpec], salt: str, record_paths: bool | None = None) -> list[StudySpec]:
    """Give each unnamed study its pseudonymous id and each study the records of its inputs; check uniqueness.

    Args:
        specs: Studies; ``name == ""`` marks one whose id comes from its input (see the module docstring).
        salt: The ``study_id_salt`` option.
        record_paths: Keep full input paths in the reports (``None``: as ``--record-paths`` says).

    Returns:
        The studies with names and input records.

    Raises:
        UserError: A missing input, or two studies with one id (the same volume listed twice, or a clash).
    """
    from yolo_spine.io.volume import volume_identity

    out = []
    for k, s in enumerate(specs, 1):
        for p, what in ((s.volume, "volume"), (s.labels, "label map")):
            if not p.exists():
                raise UserError(f"{what} {p} of study {s.name or k} does not exist")
        vol_sha = sha256_file(s.volume) if s.volume.is_file() else None
        if s.name:
            out.append(replace(s, inputs=study_inputs(s, False, record_paths, vol_sha)))
            continue
        named = replace(s, name=pseudonym(volume_identity(s.volume, vol_sha), salt), original=study_name_from(s.volume))
        out.append(replace(named, inputs=study_inputs(named, True, record_paths, vol_sha)))
    seen: dict[str, int] = {}
    for k, s in enumerate(out, 1):
        if s.name in seen:
            same = "hold the same volume" if s.original and out[seen[s.name] - 1].original else "have one name"
            raise UserError(
                f"studies {seen[s.name]} and {k} of the list {same} (study id {s.name}); list each study once, "
                "or name them in a 'study' column"
            )
        seen[s.name] = k
    return out


def study_inputs(
    spec: StudySpec, pseudonymous: bool, record_paths: bool | None = None, volume_sha256: str | None = None
) -> StudyInputs:
    """The input files of a study as its report and the manifest record them (``{name, sha256[, path]}`` each).

    A study with a pseudonymous id records no file or folder names (they are what the pseudonym hides), only
    SHA-256s, unless full paths are recorded (``--record-paths``).
    """
    keep = records_paths() if record_paths is None else bool(record_paths)
    files = {"volume": spec.volume, "labels": spec.labels, "transform": spec.transform}
    out: StudyInputs = {}
    for key, path in files.items():
        if path is None:
            out[key] = None
            continue
        rec = input_record(path, record_paths=keep, sha256=volume_sha256 if key == "volume" else None)
        if pseudonymous and not keep:
            rec["name"] = None
        out[key] = rec
    return out


def read_label_map(path: Path, reg: AnatomyRegistry) -> dict[int, str]:
    """Read ``--label-map``: YAML/JSON ``{id: name}`` or CSV with an ``id`` column and ``name``/``structure``.

    Names may be any alias the registry knows (``vertebrae_C6``, ``c6`` …). Names that are not classes of this
    anatomy (organs in a TotalSegmentator list) stay unmapped: their ids are then listed in each study's report.

    Raises:
        UserError: Unreadable file, non-integer ids, or no name that is a class of this anatomy.
    """
    if not path.is_file():
        raise UserError(f"label map file {path} does not exist")
    raw: dict[Any, Any]
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
        col = next((c for c in ("name", "structure", "class") if rows and c in rows[0]), None)
        if not rows or "id" not in rows[0] or col is None:
            raise UserError(f"label map {path} needs an 'id' column and a 'name' or 'structure' column")
        raw = {r["id"]: r[col] for r in rows}
    else:
        raw = read_yaml(path)  # YAML or JSON mapping; one-sentence errors for bad syntax or shape
    out: dict[int, str] = {}
    unknown: list[str] = []
    for key, name in raw.items():
        try:
            sid = int(key)
        except (TypeError, ValueError):
            raise UserError(f"label map {path}: {key!r} is not an integer label id") from None
        canonical = reg.resolve(str(name))
        if canonical is None:
            hint = reg.suggest(str(name), n=1)
            unknown.append(f"{name}" + (f" (did you mean {hint[0]}?)" if hint else ""))
        else:
            out[sid] = canonical
    if not out:
        raise UserError(f"label map {path} names no {reg.name} class (e.g. {', '.join(unknown[:3])})")
    if unknown:
        # A TotalSegmentator-style list names every structure; the others stay unmapped and are reported.
        log.info("label map %s: %d name(s) are not %s classes and stay unmapped", path.name, len(unknown), reg.name)
        log.debug("not %s classes: %s", reg.name, "; ".join(unknown))
    return out


def _check_drr_device(options: CtOptions) -> None:
    """One clear sentence when the nanodrr device is malformed or not on this machine (imports torch if not cpu)."""
    device = options.drr.device
    if device == "cpu":
        return
    import torch

    try:
        dev = torch.device(device)
    except RuntimeError:
        raise UserError(f"--drr-device {device!r} is not a torch device (e.g. cpu, cuda:0, mps)") from None
    usable = {
        "cuda": lambda: torch.cuda.is_available() and (dev.index or 0) < torch.cuda.device_count(),
        "mps": lambda: torch.backends.mps.is_available(),
    }.get(dev.type, lambda: dev.type == "cpu")
    if not usable():
        raise UserError(f"--drr-device {device!r} is not available on this machine")


def _unit_hash(*parts: object) -> float:
    """A number in [0, 1) from a stable hash of ``parts`` (same on every machine and Python version)."""
    h = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2.0**64


def _pick(fractions: Mapping[str, float], u: float) -> str:
    fr = np.array([max(float(fractions.get(s, 0.0)), 0.0) for s in SPLITS])
    cum = np.cumsum(fr / fr.sum())
    return SPLITS[int(np.searchsorted(cum, u, side="right").clip(0, 2))]


def split_of_study(study: str, split: SplitOptions) -> str:
    """The split of a whole study: a pure function of its id, the fractions and the seed (``split`` options).

    No other study, list order, shard or machine enters, so any shard of a study list converted on any node puts
    each study where the whole list would.
    """
    return _pick(dataclasses.asdict(split.fractions), _unit_hash(study, split.seed))


def slab_splits(n: int, fractions: Mapping[str, float]) -> list[str]:
    """Assign ``n`` consecutive slabs to splits, interleaved so each split samples the whole extent.

    Each slab goes to the split furthest below its target share so far (deterministic error diffusion); this
    keeps every vertebra level in training while test slabs are never the training slabs themselves.
    """
    fr = np.array([max(float(fractions.get(s, 0.0)), 0.0) for s in SPLITS])
    fr = fr / fr.sum()
    counts = np.zeros(3)
    out = []
    for i in range(n):
        k = int(np.argmax(np.where(fr > 0, fr * (i + 1) - counts, -np.inf)))
        counts[k] += 1
        out.append(SPLITS[k])
    return out


def _write_item(
    root: Path, split: str, stem: str, pixels: np.ndarray, instances: list[SegInstance], sidecar: dict[str, Any]
) -> None:
    from yolo_spine.io.labels import write_yolo_labels
    from yolo_spine.io.xray import write_png

    write_png(root / "images" / split / f"{stem}.png", pixels)
    write_yolo_labels(root / "labels" / split / f"{stem}.txt", instances)
    sidecar = {"schema": SCHEMA, **sidecar, "image": f"{stem}.png", "split": split}
    (root / "sidecars" / split / f"{stem}.json").write_text(json.dumps(sidecar, indent=1), encoding="utf-8")


# ----------------------------------------------------------------------------------------------- one study


@dataclass(frozen=True)
class _StudyVolume:
    """A study's arrays on the volume grid: HU image, source label ids, and registry class ids (-1: none)."""

    geometry: VolumeGeometry
    image_kji: np.ndarray
    labels_kji: np.ndarray
    classes_kji: np.ndarray
    lut: np.ndarray
    notes: list[str]
    unmapped: dict[int, int]
    voxels: dict[str, int]
    scheme_detected: str | None


@dataclass
class _StudyWriter:
    """Writes one study's images, labels and sidecars into the dataset and keeps the study's accounting.

    Attributes:
        root: Dataset folder being written.
        registry: The anatomy (class names for the accounting).
        structures: Per class name: voxels, slice and DRR instances written, components dropped as too small.
        per_split: Images written per split.
    """

    root: Path
    registry: AnatomyRegistry
    structures: dict[str, dict[str, int]]
    per_split: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SPLITS, 0))

    def write(
        self,
        split: str,
        stem: str,
        pixels: np.ndarray,
        instances: list[SegInstance],
        dropped: Mapping[int, int],
        sidecar: dict[str, Any],
        kind: str,
    ) -> None:
        """Write one image with its label file and sidecar; count its instances under ``kind`` (``slice``/``drr``)."""
        _write_item(self.root, split, stem, pixels, instances, sidecar)
        for inst in instances:
            self.structures[self.registry.names[inst.cls]][f"{kind}_instances"] += 1
        for c, n in dropped.items():
            self.structures[self.registry.names[c]]["dropped_small"] += n
        self.per_split[split] += 1


def convert_study(
    spec: StudySpec,
    root: Path,
    options: CtOptions,
    registry: AnatomyRegistry,
    class_of_id: Mapping[int, str] | None,
    resample_labels: bool = False,
    progress: bool = True,
) -> StudyReport:
    """Convert one study into ``root`` (slices and DRRs of every requested plane/view); return its report.

    Steps: read the study onto one grid and map its label ids to classes, cut the slices of each plane, render
    the DRRs of each view and pose, write the report.

    Args:
        spec: The study.
        root: Dataset folder being written (split sub-folders are created as needed).
        options: The ``ct`` options.
        registry: The anatomy.
        class_of_id: Source label id → class name; ``None``: recognise the label map's scheme from its ids
            (:func:`yolo_spine.registry.detect_label_scheme`, as ``eval3d`` does).
        resample_labels: Resample disagreeing labels onto the volume grid.
        progress: Show a progress bar.

    Returns:
        The study report (also written to ``root/studies/<study>.json``).
    """
    for sub in ("images", "labels", "sidecars"):
        for s in SPLITS:
            (root / sub / s).mkdir(parents=True, exist_ok=True)
    vol = _read_study_volume(spec, options, registry, class_of_id, resample_labels)
    structures = {
        n: {"voxels": v, "slice_instances": 0, "drr_instances": 0, "dropped_small": 0} for n, v in vol.voxels.items()
    }
    writer = _StudyWriter(root, registry, structures)
    head: StudyHead = {
        "study": spec.name,
        "study_id": "pseudonym" if spec.original is not None else "given",
        "inputs": spec.inputs or study_inputs(spec, spec.original is not None),
        "notes": vol.notes,
        "geometry": vol.geometry.to_json(),
        "unmapped_label_ids": vol.unmapped,
    }
    if vol.scheme_detected:
        head["label_scheme_detected"] = vol.scheme_detected
    split = options.split
    study_split = split_of_study(spec.name, split)
    base = {"study": spec.name, "anatomy": registry.name, "volume": vol.geometry.to_json()}
    planes: dict[str, PlaneStats] = {
        plane: _convert_plane(spec.name, plane, vol, options, base, study_split, writer, progress)
        for plane in options.planes
    }
    views = _convert_drrs(spec.name, vol, options, base, study_split, writer, progress) if options.views else {}
    report: StudyReport = {
        **head,
        "planes": planes,
        "views": views,
        "structures": structures,
        "images_per_split": writer.per_split,
        "split": study_split if split.mode == "study" else "slab",
    }
    write_json_atomic(root / "studies" / f"{spec.name}.json", report)
    return report


def _read_study_volume(
    spec: StudySpec,
    options: CtOptions,
    registry: AnatomyRegistry,
    class_of_id: Mapping[int, str] | None,
    resample_labels: bool,
) -> _StudyVolume:
    """Read a study's CT and label map onto one grid and map its label ids to registry classes.

    Raises:
        DataError: No label id maps to a class of the anatomy, or the ids' scheme cannot be recognised.
    """
    import SimpleITK as sitk

    from yolo_spine.ct import slices as sl
    from yolo_spine.io.volume import load_study

    study = load_study(
        spec.volume,
        spec.labels,
        spec.name,
        transform=spec.transform,
        resample_labels=resample_labels,
        max_memory_fraction=options.max_memory_fraction,
    )
    image = sitk.GetArrayFromImage(study.image)
    labels = sitk.GetArrayFromImage(study.labels)
    scheme = None
    if class_of_id is None:
        scheme = _detect_scheme(registry, labels, spec)
        class_of_id = registry.label_id_map(scheme)
    class_ids = {sid: registry.index(name) for sid, name in class_of_id.items()}
    lut = sl.class_lut(class_ids, int(labels.max()))
    counts = np.bincount(labels.ravel().astype(np.int64), minlength=len(lut))
    unmapped = {int(i): int(c) for i, c in enumerate(counts) if i > 0 and c > 0 and lut[i] < 0}
    if unmapped:
        log.info(
            "study %s: %d label id(s) map to no %s class (listed in studies/%s.json)",
            spec.name,
            len(unmapped),
            registry.name,
            spec.name,
        )
    classes_kji = lut[labels]
    if not (classes_kji >= 0).any():
        raise DataError(
            f"study {spec.name}: none of the label ids in {spec.labels.name} maps to a {registry.name} class; "
            "check --anatomy, the preset's label_scheme or pass --label-map"
        )
    mapped = lut >= 0
    per_class = np.bincount(lut[mapped], weights=counts[mapped], minlength=registry.nc)
    return _StudyVolume(
        geometry=VolumeGeometry.from_image(study.image),
        image_kji=image,
        labels_kji=labels,
        classes_kji=classes_kji,
        lut=lut,
        notes=study.notes,
        unmapped=unmapped,
        voxels={registry.names[c]: int(v) for c, v in enumerate(per_class) if v > 0},
        scheme_detected=scheme,
    )


def _convert_plane(
    study: str,
    plane: str,
    vol: _StudyVolume,
    options: CtOptions,
    base: Mapping[str, Any],
    study_split: str,
    writer: _StudyWriter,
    progress: bool,
) -> PlaneStats:
    """Write every ``step``-th slice of one plane; return the plane's accounting."""
    from tqdm import tqdm

    from yolo_spine.ct import slices as sl

    geom, step, split = vol.geometry, options.step, options.split
    layout = sl.plane_layout(geom, plane)
    todo = list(range(0, layout.n_slices, step))
    if split.mode == "slab":
        per_slab = max(1, round(split.slab_mm / geom.spacing_xyz[layout.normal_axis]))
        slab_of = slab_splits(layout.n_slices // per_slab + 1, dataclasses.asdict(split.fractions))
        split_of = {i: slab_of[i // per_slab] for i in todo}
    else:
        split_of = dict.fromkeys(todo, study_split)
    stats: PlaneStats = {"slices": len(todo), "written": 0, "empty_skipped": 0, "instances": 0, "dropped_small": 0}
    window = (options.window.center, options.window.width)
    items = sl.iter_slices(
        vol.image_kji, vol.labels_kji, geom, layout, vol.lut, window, step=step, min_area_px=options.slice.min_area_px
    )
    for res in tqdm(items, total=len(todo), desc=f"{study} {plane}", disable=not progress, leave=False):
        if not res.classes_present and options.slice.skip_empty:
            stats["empty_skipped"] += 1
            continue
        sidecar = {"kind": "slice", **base, **layout.sidecar_fields(geom, res.index, step)}
        stem = f"{study}_{plane}_{res.index:04d}"
        writer.write(split_of[res.index], stem, res.pixels, res.instances, res.dropped_small, sidecar, "slice")
        stats["written"] += 1
        stats["instances"] += len(res.instances)
        stats["dropped_small"] += sum(res.dropped_small.values())
    return stats


def _pose_split(k: int, n_poses: int, split: SplitOptions, study_split: str) -> str:
    """Split of DRR pose ``k`` (0 = the canonical view).

    By study, or in slab mode: the canonical view to test and random poses interleaved over the splits.
    """
    if split.mode != "slab":
        return study_split
    if k == 0:
        return "test"
    return slab_splits(n_poses, dataclasses.asdict(split.fractions))[k - 1]


def _convert_drrs(
    study: str,
    vol: _StudyVolume,
    options: CtOptions,
    base: Mapping[str, Any],
    study_split: str,
    writer: _StudyWriter,
    progress: bool,
) -> dict[str, ViewStats]:
    """Render and write the DRRs of every view: the canonical pose, then ``poses`` random ones around it.

    Returns:
        Per view: images, instances, components dropped as too small (and, with realism, structures clipped or
        dropped where collimation or a marker hides them) and the classes no view shows.
    """
    from tqdm import tqdm

    from yolo_spine.ct import drr as drr_mod
    from yolo_spine.ct import realism as realism_mod

    d, geom = options.drr, vol.geometry
    preset = realism_mod.load_preset(options.realism.preset)
    # thresholds are fixed per preset: the materials are split once per study (per view axis, from the CT)
    mat_split = (preset.values["air_max_hu"], preset.values["bone_min_hu"]) if preset.enabled else None
    det = drr_mod.DrrGeometry(
        size=d.size, sdd_mm=d.sdd_mm, sod_mm=d.sdd_mm * d.sod_fraction, orthographic=d.orthographic, margin=d.margin
    )
    renderer = drr_mod.Renderer(
        vol.image_kji,
        vol.classes_kji,
        geom,
        n_samples=d.n_samples,
        bone_hu=d.bone_hu,
        threads=d.threads,
        backend=d.backend,
        device=d.device,
        material_split=mat_split,
    )
    center_ijk = (np.asarray(geom.size_xyz, float) - 1.0) / 2.0
    iso = (geom.ijk_to_world() @ np.r_[center_ijk, 1.0])[:3]
    views: dict[str, ViewStats] = {}
    canonical = {view: drr_mod.make_camera(geom, det, view, iso) for view in options.views}
    if preset.enabled:  # the views' material slab sums in one pass over the CT (poses keep their view's axis)
        renderer.prepare_materials(canonical.values())
    jobs = [(v, k) for v in options.views for k in range(options.poses + 1)]
    for view, k in tqdm(jobs, desc=f"{study} DRR", disable=not progress, leave=False):
        if view not in views:
            views[view] = {"images": 0, "instances": 0, "dropped_small": 0, "classes_missing": []}
            if preset.enabled:
                views[view] |= {"clipped_hidden": 0, "dropped_hidden": 0}
        stats = views[view]
        pose = {"rot_deg": [0.0, 0.0, 0.0], "trans_mm": [0.0, 0.0, 0.0]}
        if k == 0:
            cam = canonical[view]
        else:
            rot, trans = _random_pose(study, view, k, options)
            pose = {"rot_deg": rot.tolist(), "trans_mm": trans.tolist()}
            cam = drr_mod.make_camera(
                geom, det, view, iso, drr_mod.rotation_xyz_deg(rot), trans, intrinsics_from=canonical[view]
            )
        stem = f"{study}_drr_{view}_p{k:03d}"
        pixels, masks, extra = _render_view(renderer, preset, options, cam, det, view, stem, stats)
        instances, dropped = _drr_instances(masks, d.size, d.min_area_px)
        if k == 0:
            stats["classes_missing"] = [writer.registry.names[c] for c in renderer.classes if c not in masks]
        sidecar = {
            "kind": "drr",
            **base,
            "view": view,
            "pose": k,
            "pose_offset": pose,
            "image_size_wh": [d.size, d.size],
            "camera": cam.to_json(),
            **extra,
        }
        split = _pose_split(k, options.poses, options.split, study_split)
        writer.write(split, stem, pixels, instances, dropped, sidecar, "drr")
        stats["images"] += 1
        stats["instances"] += len(instances)
        stats["dropped_small"] += sum(dropped.values())
    return views


def _render_view(
    renderer: Any,
    preset: Any,
    options: CtOptions,
    cam: Any,
    det: Any,
    view: str,
    stem: str,
    stats: ViewStats,
) -> tuple[np.ndarray, dict[int, np.ndarray], dict[str, Any]]:
    """One view's 8-bit radiograph, its label masks and the sidecar's extra keys (``realism``, when enabled).

    Clean DRRs are the line integrals through the ``drr.display_percentiles`` window; with realism, the image
    goes through the physics chain and masks are cut to what collimation and markers leave visible (counted
    in ``stats``).
    """
    from yolo_spine.ct import drr as drr_mod

    size = options.drr.size
    masks = renderer.render_masks(cam, size)
    if not preset.enabled:
        pixels = drr_mod.display_radiograph(renderer.render_image(cam, size), options.drr.display_percentiles)
        return pixels, masks, {}
    look = _realistic(renderer, preset, options, cam, det, size, view, stem)
    masks, hidden = _clip_hidden(masks, look.visible, options.drr.min_area_px)
    stats["clipped_hidden"] += hidden["clipped"]
    stats["dropped_hidden"] += hidden["dropped"]
    return look.pixels, masks, {"realism": look.record}


def _realistic(
    renderer: Any, preset: Any, options: CtOptions, cam: Any, det: Any, size: int, view: str, stem: str
) -> Any:
    """One view through the realism chain (``ct.realism``), seeded by ``realism.seed`` and the image's stem."""
    from yolo_spine.ct import realism as realism_mod

    rng = realism_mod.image_rng(options.realism.seed, stem)
    params = realism_mod.draw_parameters(preset, rng)
    pixel_mm = 1.0 / float(cam.K[0, 0]) * (1.0 if det.orthographic else det.sdd_mm)
    magnification = 1.0 if det.orthographic else det.sdd_mm / det.sod_mm
    look = realism_mod.apply_realism(
        renderer.render_materials(cam, size),
        params,
        pixel_mm,
        magnification,
        "R" if view == "ap" else "L",
        rng,
        source_sigma_mm=realism_mod.ct_footprint_sigma_mm(renderer.geom.spacing_xyz, magnification),
        sdd_mm=None if det.orthographic else det.sdd_mm,
    )
    look.record = {"preset": preset.name, "seed": options.realism.seed, **look.record}
    return look


def _clip_hidden(
    masks: Mapping[int, np.ndarray], visible: np.ndarray, min_area_px: float
) -> tuple[dict[int, np.ndarray], dict[str, int]]:
    """Cut the label masks to the pixels that still show anatomy (collimation and markers hide the rest).

    A structure losing any pixel counts as ``clipped``; one left with fewer than ``min_area_px`` pixels is
    dropped and counted as ``dropped`` (as ``augment`` counts pieces a transform pushes out of view).
    """
    out: dict[int, np.ndarray] = {}
    counts = {"clipped": 0, "dropped": 0}
    for cls, mask in masks.items():
        kept = mask & visible
        n = int(kept.sum())
        if n == int(mask.sum()):
            out[cls] = mask
        elif n < max(min_area_px, 1.0):
            counts["dropped"] += 1
        else:
            counts["clipped"] += 1
            out[cls] = kept
    return out, counts


def _random_pose(study: str, view: str, k: int, options: CtOptions) -> tuple[np.ndarray, np.ndarray]:
    """Rotation (degrees about L-R, A-P, S-I) and isocentre shift (mm) of random pose ``k`` of a view.

    Seeded by the study, view, pose and split seed alone, so every machine draws the same pose.
    """
    rng = np.random.default_rng(int(_unit_hash(study, view, k, options.split.seed) * 2**63))
    rot = rng.uniform(-1.0, 1.0, 3) * np.asarray(options.drr.pose_rot_deg, float)
    trans = rng.uniform(-1.0, 1.0, 3) * np.asarray(options.drr.pose_trans_mm, float)
    return rot, trans


def _drr_instances(
    masks: Mapping[int, np.ndarray], size: int, min_area_px: float
) -> tuple[list[SegInstance], dict[int, int]]:
    """Polygons of each class's projected mask (normalised to the detector), and components dropped per class."""
    from yolo_spine.geometry import mask_to_polygons

    scale = np.array([size, size], dtype=np.float64)
    instances: list[SegInstance] = []
    dropped: dict[int, int] = {}
    for cls, mask in masks.items():
        polys, small = mask_to_polygons(mask, min_area_px=min_area_px)
        if small:
            dropped[cls] = len(small)
        instances += [SegInstance(cls=cls, polygon_xy_norm=p / scale) for p in polys]
    return instances, dropped


def _detect_scheme(reg: AnatomyRegistry, labels: np.ndarray, spec: StudySpec) -> str:
    """The label-id scheme of a study's label map, recognised from its ids (no ``label_scheme`` configured)."""
    found = detect_label_scheme(reg, np.flatnonzero(np.bincount(labels.ravel().astype(np.int64))))
    if found.scheme is None:
        fits = f"the schemes {', '.join(found.candidates)} alike" if found.candidates else "no scheme"
        raise DataError(
            f"study {spec.name}: the label ids of {spec.labels.name} fit {fits} of anatomy {reg.name}; set "
            f"label_scheme in the preset (one of {', '.join(reg.schemes)}) or pass --label-map"
        )
    log.info("study %s: label ids recognised as the %s scheme", spec.name, found.scheme)
    return found.scheme


# ------------------------------------------------------------------------------------------------- the run


def ct2yolo(
    out: str | Path,
    options: CtOptions | None = None,
    *,
    volume: str | Path | None = None,
    labels: str | Path | None = None,
    study_list: str | Path | None = None,
    study: str | None = None,
    anatomy: str | Path | AnatomyRegistry = "spine",
    transform: str | Path | None = None,
    resample_labels: bool = False,
    label_map: str | Path | None = None,
    study_map: str | Path | None = None,
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    redo: bool = False,
    **option_values: Any,
) -> Ct2YoloResult:
    """Convert one study (``volume`` + ``labels``) or a CSV list of studies into a YOLO-seg dataset.

    Steps: resolve the options and the anatomy once, list and name the studies, convert each study not done yet
    through the study ledger (:mod:`yolo_spine.ct.batch`, on any executor), assemble the dataset with
    ``data.yaml`` and the run manifest in a temporary folder, move it into place.

    Args:
        out: Output dataset folder (written to a temporary folder, moved into place at the end).
        options: The ``ct`` options (:class:`~yolo_spine.ct.options.CtOptions`); ``None``: ``default.yaml`` ←
            the anatomy's preset ``configs/ct/<anatomy>.yaml`` when it exists.
        volume: CT file or DICOM folder (with ``labels``).
        labels: Label map for ``volume``.
        study_list: CSV with ``volume,labels[,transform][,study]`` instead of one study.
        study: Name of the single study (default: a pseudonym from the volume's content; see the module docstring).
        anatomy: Registry (``spine``, ``teeth``, ``brain``, a YAML path, or a loaded registry).
        transform: ITK transform file for the single study.
        resample_labels: Resample labels onto the volume grid when the geometry disagrees.
        label_map: File mapping label ids to class names (overrides the registry's scheme).
        study_map: CSV to write the pseudonymous ids with the names they replace (``study,original_name,volume,
            labels``); refused if it exists (without ``overwrite``) or lies inside ``out``.
        workers: Studies converted at once (the option ``batch.workers``).
        overwrite: Replace an existing ``out``.
        progress: Progress bars.
        redo: Convert every study again, even those the ledger has as done. How studies run (executor, Ray
            address, workers, CPUs and memory per study, retries, ``skip_failed``) is the options' ``batch``
            section (``batch={"executor": "ray", "workers": 8}``); none of it changes a byte of the dataset.
        **option_values: Options by key, applied over ``options`` (``planes=["axial"]``, ``views=[]``,
            ``drr={"size": 256}``, ``**{"split.mode": "slab"}``).

    Returns:
        The manifest written to ``out/manifest.json``, plus ``ledger``: this run's done/skipped/failed studies
        (not written: it differs between a first run and a resumed one).

    Raises:
        UserError: Bad options or inputs, two studies with one id, an existing output or study map, a study that
            failed every attempt (without the option ``batch.skip_failed``).
    """
    registry = anatomy if isinstance(anatomy, AnatomyRegistry) else load_registry(anatomy)
    if workers is not None:
        option_values["batch.workers"] = workers
    if options is None:
        opts = CtOptions.for_anatomy(anatomy, flags=option_values)
    else:
        opts = resolve_options(CtOptions, options, option_values)
    _check_drr_device(opts)
    final = Path(out).resolve()
    map_path = _check_study_map(study_map, final, overwrite) if study_map is not None else None
    specs = _study_specs(volume, labels, study_list, study, transform)
    class_of_id, scheme = _class_of_id(registry, opts, label_map)
    specs = name_studies(specs, opts.study_id_salt)
    batch = BatchOptions.from_settings(opts.batch, redo=redo)
    write = functools.partial(
        _write_study,
        options=opts,
        registry=registry,
        class_of_id=class_of_id,
        resample_labels=resample_labels,
        progress=progress and batch.executor == "local" and batch.workers == 1,
    )
    digest = _options_digest(opts, registry, class_of_id, resample_labels)
    ledger, summary, done = convert_batch(specs, final, write, digest, batch, overwrite=overwrite, progress=progress)
    with atomic_output(final, overwrite) as tmp:
        reports = assemble(ledger, done, tmp, SPLITS)
        write_data_yaml(tmp, registry.names_dict, registry.name)
        run = {**produced_by(opts.record()), "anatomy": registry.name, "label_scheme": scheme, "study_map": map_path}
        manifest = _manifest(
            reports,
            specs,
            registry,
            scheme,
            run,
            failure_reasons(summary, {s.name: spec_inputs(s) for s in specs}) if summary.failed else None,
        )
        write_json_atomic(tmp / "manifest.json", manifest)
        if map_path is not None:  # inside the block: no key file for a dataset that was never written
            _write_study_map(map_path, specs, overwrite)
    finish(ledger)
    return {**manifest, "ledger": summary_record(summary)}


def _options_digest(
    options: CtOptions, registry: AnatomyRegistry, class_of_id: dict[int, str] | None, resample_labels: bool
) -> str:
    """Hash of everything that shapes a study's outputs: the ledger redoes a study when it changes."""
    return options_hash(
        {
            "options": produced_by(options.values()),
            "anatomy": registry.name,
            "classes": list(registry.names),
            "class_of_id": class_of_id,
            "resample_labels": resample_labels,
            "yolo_spine": __version__,
        }
    )


def _study_specs(
    volume: str | Path | None,
    labels: str | Path | None,
    study_list: str | Path | None,
    study: str | None,
    transform: str | Path | None,
) -> list[StudySpec]:
    """The studies to convert: the CSV's rows, or the single ``volume`` + ``labels`` (not named yet).

    Raises:
        UserError: Both a single study and a list, or neither.
    """
    if study_list is not None:
        if volume is not None or labels is not None:
            raise UserError("give either --volume/--labels or --csv, not both")
        return read_study_list(Path(study_list))
    if volume is None or labels is None:
        raise UserError("give --volume and --labels (or --csv with a list of studies)")
    return [
        StudySpec(
            volume=Path(volume),
            labels=Path(labels),
            name=_safe(study) if study else "",
            transform=Path(transform) if transform else None,
        )
    ]


def _class_of_id(
    registry: AnatomyRegistry, options: CtOptions, label_map: str | Path | None
) -> tuple[dict[int, str] | None, str | None]:
    """Source label id → class name (``None``: recognised per study) and the scheme's name for the records."""
    if label_map is not None:
        return read_label_map(Path(label_map), registry), f"file:{Path(label_map).name}"
    scheme = options.label_scheme  # None: recognised per study from its label ids
    return (registry.label_id_map(scheme) if scheme else None), scheme


def _manifest(
    reports: list[StudyReport],
    specs: list[StudySpec],
    registry: AnatomyRegistry,
    scheme: str | None,
    record: dict[str, Any],
    failed: dict[str, str] | None = None,
) -> Ct2YoloManifest:
    """The run manifest: options, per-study accounting (inputs by SHA-256 for pseudonymous studies), totals.

    ``failed``: the studies ``--skip-failed`` left out, with their reasons (listed: a dataset never drops a study
    silently); ``None`` when every study is in.
    """
    totals = dict.fromkeys(SPLITS, 0)
    for r in reports:
        for s in SPLITS:
            totals[s] += r["images_per_split"][s]
    studies: list[StudyEntry] = [
        {
            "study": r["study"],
            "study_id": r["study_id"],
            "inputs": r["inputs"],
            "split": r["split"],
            "images_per_split": r["images_per_split"],
            "label_scheme": r.get("label_scheme_detected", scheme),
            "unmapped_label_ids": r["unmapped_label_ids"],
            "structures": r["structures"],
        }
        for r in reports
    ]
    manifest = run_manifest(
        "ct2yolo",
        record,
        hidden_names=_hidden_names(specs),
        extra={
            "anatomy": registry.name,
            "created_by": f"yolo_spine ct2yolo {__version__}",
            "kind": "ct2yolo",
            "studies": studies,
            "images_per_split": totals,
            **({"failed_studies": failed} if failed is not None else {}),
        },
    )
    return cast(Ct2YoloManifest, manifest)  # run_manifest adds `extra` to its own keys


def _write_study(spec: StudySpec, root: Path, **kwargs: Any) -> None:
    """Ledger entry point: convert one study into ``root`` (module level, so worker processes and Ray can run it)."""
    convert_study(spec, root, **kwargs)


def _hidden_names(specs: list[StudySpec]) -> set[str]:
    """Base names of the inputs of pseudonymous studies: the manifest's command line must not show them."""
    paths = [p for s in specs if s.original is not None for p in (s.volume, s.labels, s.transform) if p is not None]
    return {path_name(p) for p in paths} - {FOLDER}


def _check_study_map(study_map: str | Path, out: Path, overwrite: bool) -> Path:
    """Refuse a study map that exists (without ``overwrite``) or would land inside the dataset."""
    path = Path(study_map).resolve()
    if path == out or out in path.parents:
        raise UserError("--study-map must lie outside --out: it is the key that re-identifies the studies")
    if path.is_dir():
        raise UserError(f"--study-map {path} is a folder; give a file name such as study_map.csv")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} already exists; pass --overwrite to replace it")
    return path


def _write_study_map(path: Path, specs: list[StudySpec], overwrite: bool) -> None:
    """Write ``study,original_name,volume,labels`` for each pseudonymous study, atomically and owner-only (0600)."""
    rows = [[s.name, s.original, str(s.volume), str(s.labels)] for s in specs if s.original is not None]
    with (
        atomic_output(path, overwrite=overwrite, is_dir=False) as tmp,
        open(tmp, "w", newline="", encoding="utf-8") as f,
    ):
        # the one file that re-identifies patients: owner-only, unlike every other output (which follows the umask)
        os.chmod(tmp, 0o600)
        csv.writer(f).writerows([["study", "original_name", "volume", "labels"], *rows])
    log.info("study map: %d pseudonymous stud%s listed in %s", len(rows), "y" if len(rows) == 1 else "ies", path.name)
