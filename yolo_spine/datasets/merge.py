"""Merge Roboflow exports into one clean, leakage-free YOLO-seg dataset in anatomical class order.

What ``merge`` guarantees:

* **Registry order.** Class names of every source are mapped onto the anatomy registry (aliases, ``--map``,
  ``--drop``); an unmapped name stops the merge before anything is written, listing every unknown name.
* **No leakage.** Images are grouped by source image (Roboflow's ``<stem>_<ext>.rf.<hash>`` copies share a
  group, per dataset), byte-identical images link their groups across datasets, and splits are made per
  group, so no copy of a training image can land in val or test. ``--keep-splits`` keeps the exports' splits
  but moves any group found in several splits wholly into one (its majority split, ties to train).
* **Stored once, never re-encoded.** Byte-identical images are stored once; images are hard-linked (or
  copied). Only images with more than 8 bits (16-bit PNG/TIFF, DICOM) are windowed to 8-bit PNG by
  :func:`yolo_spine.io.xray.read_xray`, because Ultralytics would keep just their high byte.
* **Nothing lost silently.** Polygons are clipped to the image; rows that are boxes, degenerate, outside
  the image, malformed, duplicated, or of a dropped class are removed and counted in ``manifest.json``,
  which accounts for every input image and instance.
* **Atomic.** The dataset is written to a temporary folder beside ``--out`` and moved into place at the end.
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import os
import shutil
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict, cast

import numpy as np

from yolo_spine import __version__
from yolo_spine.datasets.manifest import ImageEntry, MergeManifest, MergeSummary, SourceRecord
from yolo_spine.datasets.options import MergeOptions
from yolo_spine.datasets.roboflow import Export, SourceImage, read_export, roboflow_group
from yolo_spine.errors import DataError, UserError
from yolo_spine.geometry import clip_polygon_to_rect, polygon_area
from yolo_spine.identifiers import input_record
from yolo_spine.io.atomic import atomic_output, ensure_can_write, write_json_atomic
from yolo_spine.io.labels import SegInstance, format_labels, write_data_yaml
from yolo_spine.io.xray import DICOM_SUFFIXES, read_xray, write_png
from yolo_spine.layout import SPLITS
from yolo_spine.options import resolve_options
from yolo_spine.parallel import LocalExecutor, available_cpus
from yolo_spine.provenance import run_manifest
from yolo_spine.registry import AnatomyRegistry, load_registry, normalize_name

log = logging.getLogger("yolo_spine")

#: Image formats Ultralytics trains on (PIL format names).
TRAINABLE_FORMATS = {"BMP", "DNG", "JPEG", "JPEG2000", "MPO", "PNG", "TIFF", "WEBP", "PFM", "HEIF", "AVIF"}
DROP_REASONS = (
    "box_row",
    "degenerate",
    "out_of_image",
    "malformed",
    "unmapped",
    "unknown_class_id",
    "duplicate_row",
    "duplicate_image",
    "unreadable_image",
    "orphan_label",
)


@dataclass
class ImageCheck:
    """Facts about one image file read once from disk (hash, readability, bit depth)."""

    sha256: str
    readable: bool
    reason: str = ""
    high_bit: bool = False


def inspect_image(path: Path) -> ImageCheck:
    """Hash an image and check it the way Ultralytics will (PIL header verify, size ≥ 10 px, known format).

    Images with more than 8 bits per sample are flagged so they can be windowed on the way in.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        data = path.read_bytes()
    except OSError as exc:
        return ImageCheck("", False, f"cannot read: {exc.strerror}")
    digest = hashlib.sha256(data).hexdigest()
    if path.suffix.lower() in DICOM_SUFFIXES:
        try:
            read_xray(path)
        except UserError as exc:
            return ImageCheck(digest, False, str(exc))
        return ImageCheck(digest, True, high_bit=True)
    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt, mode, size = im.format, im.mode, im.size
            im.verify()
    # ImportError: once Ultralytics is imported in this process it patches PIL's Image.open to retry an
    # unreadable file through pi-heif, which raises ModuleNotFoundError where pi-heif is not installed.
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, ImportError) as exc:
        name = "UnidentifiedImageError" if isinstance(exc, ImportError) else type(exc).__name__
        return ImageCheck(digest, False, f"not a readable image ({name})")
    if min(size) < 10:
        return ImageCheck(digest, False, f"image size {size[0]}x{size[1]} is below 10 pixels")
    if fmt not in TRAINABLE_FORMATS:
        return ImageCheck(digest, False, f"format {fmt} is not one Ultralytics trains on")
    if fmt == "JPEG" and not data.rstrip(b"\0").endswith(b"\xff\xd9"):
        return ImageCheck(digest, False, "truncated JPEG (no end-of-image marker)")
    return ImageCheck(digest, True, high_bit=mode in {"I;16", "I;16B", "I;16L", "I;16N", "I", "F"})


def _executor(workers: int, n_items: int, min_items: int) -> LocalExecutor:
    """Worker processes (one thread each: the work is reading, hashing and writing files); few items run here."""
    n = workers if workers > 0 else available_cpus()
    return LocalExecutor(1 if n <= 1 or n_items < min_items else n, task_cpus=1)


def _inspect_many(paths: list[Path], workers: int) -> list[ImageCheck]:
    with _executor(workers, len(paths), 64) as ex:
        chunk = max(16, len(paths) // (8 * ex.workers))
        return [o.get() for o in ex.map(inspect_image, paths, chunksize=chunk, progress=False)]


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, a: str) -> str:
        self.parent.setdefault(a, a)
        root = a
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[a] != root:  # path compression
            self.parent[a], a = root, self.parent[a]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)  # deterministic root


def assign_splits(group_sizes: dict[str, int], fractions: tuple[float, float, float], seed: int) -> dict[str, str]:
    """Assign whole groups to train/val/test so image counts come as close to ``fractions`` as groups allow.

    Groups are visited in a seeded random order; each goes to the split furthest below its target.

    Args:
        group_sizes: Images per group.
        fractions: Train, val, test fractions (normalised here).
        seed: Random seed; same seed and groups → same assignment.

    Returns:
        ``{group: split}``.
    """
    rng = np.random.default_rng(seed)
    keys = sorted(group_sizes)
    order = rng.permutation(len(keys))
    total = float(sum(group_sizes.values()))
    fr = np.asarray(fractions, dtype=np.float64)
    targets = fr / fr.sum() * total
    counts = np.zeros(3)
    out = {}
    for i in order:
        g = keys[i]
        deficit = np.where(fr > 0, targets - counts, -np.inf)
        k = int(np.argmax(deficit))
        out[g] = SPLITS[k]
        counts[k] += group_sizes[g]
    return out


def _resolve_names(
    exports: list[Export], reg: AnatomyRegistry, maps: dict[str, str], drops: list[str]
) -> dict[str, str | None]:
    """Map every source class name to a registry class (``None`` = dropped); stop on unknown names."""
    map_keys = {normalize_name(k): v for k, v in maps.items()}
    drop_keys = {normalize_name(d) for d in drops}
    for target in map_keys.values():
        if reg.resolve(target) is None:
            hint = reg.suggest(target)
            raise UserError(
                f"--map target '{target}' is not a class of '{reg.name}'"
                + (f" (did you mean {', '.join(hint)}?)" if hint else "")
            )
    used: Counter[str] = Counter()
    for ex in exports:
        for im in ex.images:
            for inst in im.instances:
                if inst.name is not None:
                    used[inst.name] += 1
    resolved: dict[str, str | None] = {}
    unknown: list[str] = []
    for name in sorted(used):
        key = normalize_name(name)
        if key in drop_keys:
            resolved[name] = None
        elif key in map_keys:
            resolved[name] = reg.resolve(map_keys[key])
        elif (canonical := reg.resolve(name)) is not None:
            resolved[name] = canonical
        else:
            unknown.append(name)
    if unknown:
        parts = []
        for n in unknown:
            hint = reg.suggest(n)
            parts.append(f"'{n}' ({used[n]} instances" + (f"; close: {', '.join(hint)})" if hint else ")"))
        example = (reg.suggest(unknown[0]) or [reg.names[0]])[0]
        raise UserError(
            f"{len(unknown)} class name(s) are not in the '{reg.name}' registry: {'; '.join(parts)}. "
            f"Map them with --map NAME=CLASS (e.g. --map '{unknown[0]}={example}') or drop them with --drop NAME"
        )
    return resolved


@dataclass
class _Tally:
    kept: int = 0
    clipped: int = 0
    remapped: Counter = field(default_factory=Counter)
    dropped: Counter = field(default_factory=Counter)

    def merge(self, other: _Tally) -> None:
        self.kept += other.kept
        self.clipped += other.clipped
        self.remapped.update(other.remapped)
        self.dropped.update(other.dropped)


@dataclass
class _WriteJob:
    """One kept image: where it comes from and where its image and label file go."""

    index: int
    image: SourceImage
    high_bit: bool
    image_dst: Path
    label_dst: Path


def _write_one(job: _WriteJob, resolved: dict[str, str | None], registry: str) -> tuple[list[int], _Tally]:
    """Clean the instances of one job's image and write its image and label file (runs in a worker)."""
    reg = load_registry(registry)  # cached per process
    tally = _Tally()
    instances = _clean_instances(job.image, resolved, reg, tally)
    if job.high_bit:
        write_png(job.image_dst, read_xray(job.image.path).pixels)
    else:
        _link_or_copy(job.image.path, job.image_dst)
    job.label_dst.write_text(format_labels(instances), encoding="utf-8")
    return [x.cls for x in instances], tally


def _run_write_jobs(
    jobs: list[_WriteJob], resolved: dict[str, str | None], reg: AnatomyRegistry, workers: int
) -> dict[int, tuple[list[int], _Tally]]:
    registry = str(reg.path) if reg.path else reg.name
    write = functools.partial(_write_one, resolved=resolved, registry=registry)
    with _executor(workers, len(jobs), 256) as ex:
        chunk = max(64, len(jobs) // (ex.workers * 8))
        outcomes = ex.map(write, jobs, chunksize=chunk, desc="merge", unit="img")
        return {o.item.index: o.get() for o in outcomes}


def _clean_instances(
    im: SourceImage, resolved: dict[str, str | None], reg: AnatomyRegistry, tally: _Tally
) -> list[SegInstance]:
    """Map, clip and filter one image's instances, counting every removal in ``tally``."""
    out: list[SegInstance] = []
    seen: set[bytes] = set()
    for inst in im.instances:
        if inst.kind == "box":
            tally.dropped["box_row"] += 1
            continue
        if inst.kind == "malformed":
            tally.dropped["malformed"] += 1
            continue
        if inst.name is None:
            tally.dropped["unknown_class_id"] += 1
            continue
        canonical = resolved.get(inst.name)
        if canonical is None:
            tally.dropped["unmapped"] += 1
            continue
        poly = inst.polygon_xy_norm
        if poly is None or len(poly) < 3:
            tally.dropped["degenerate"] += 1
            continue
        if poly.min() < 0.0 or poly.max() > 1.0:
            clipped = clip_polygon_to_rect(poly)
            if len(clipped) < 3:
                tally.dropped["out_of_image"] += 1
                continue
            tally.clipped += 1
            poly = clipped
        if polygon_area(poly) <= 0.0:
            tally.dropped["degenerate"] += 1
            continue
        cls = reg.index(canonical)
        key = np.float32(poly).tobytes() + bytes([cls % 256, cls // 256])
        if key in seen:  # Ultralytics would silently drop the copy; count it here instead
            tally.dropped["duplicate_row"] += 1
            continue
        seen.add(key)
        if canonical != inst.name:
            tally.remapped[f"{inst.name}->{canonical}"] += 1
        tally.kept += 1
        out.append(SegInstance(cls, poly))
    return out


def _unique_tags(paths: Iterable[Path]) -> list[str]:
    tags: list[str] = []
    for p in paths:
        base = "".join(c if c.isalnum() or c in "-_." else "_" for c in (p.stem if p.is_file() else p.name)) or "src"
        tag, k = base, 2
        while tag in tags:
            tag, k = f"{base}-{k}", k + 1
        tags.append(tag)
    return tags


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # other filesystem, or links not allowed
        shutil.copyfile(src, dst)


def merge_exports(
    sources: Sequence[str | Path],
    out: str | Path,
    options: MergeOptions | None = None,
    *,
    anatomy: str | Path = "spine",
    maps: Mapping[str, str] | None = None,
    drops: Sequence[str] = (),
    overwrite: bool = False,
    **option_values: Any,
) -> MergeSummary:
    """Merge Roboflow exports into one YOLO-seg dataset (see the module docstring for the guarantees).

    Args:
        sources: Export folders or zip files.
        out: Output dataset folder.
        options: Split, seed, ``keep_splits`` and workers (``MergeOptions.load(config, ...)``); ``None``:
            ``configs/merge/default.yaml``.
        anatomy: Registry name or YAML path.
        maps: Source class name → registry class (``--map cervical-8=T1``); keys match like aliases.
        drops: Source class names to drop (``--drop NAME``), counted as ``unmapped``.
        overwrite: Replace an existing ``out``.
        **option_values: Option values replacing those of ``options`` (``split=(0.7, 0.2, 0.1)``, ``seed=1``,
            ``keep_splits=True``, ``workers=1``); ``None`` values are ignored.

    Returns:
        The summary part of the manifest: images and instances per split, dropped counts, output path.

    Raises:
        UserError: Unknown class names, bad options, unreadable sources, or an existing output without overwrite.
    """
    opts = resolve_options(MergeOptions, options, option_values)
    out = ensure_can_write(out, overwrite)
    request = _Request([Path(s) for s in sources], out, anatomy, dict(maps or {}), list(drops))
    reg = load_registry(anatomy)
    if not request.sources:
        raise UserError("give at least one export folder or zip")
    request.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{request.out.name}.sources.", dir=request.out.parent) as scratch:
        tags = _unique_tags(request.sources)
        exports = []
        for src, tag in zip(request.sources, tags, strict=True):
            log.info("reading source %s", tag)  # the tag, not the path: folders may carry identifiers
            exports.append(read_export(src, tag, Path(scratch)))
        resolved = _resolve_names(exports, reg, request.maps, request.drops)
        return _write_dataset(exports, resolved, reg, opts, request, overwrite)


@dataclass
class _Request:
    """What :func:`merge_exports` was asked to merge, and where to (the inputs beside the options)."""

    sources: list[Path]
    out: Path
    anatomy: str | Path
    maps: dict[str, str]
    drops: list[str]


@dataclass
class _Inventory:
    """Every listed image of every export, checked once, with its group and fate.

    Attributes:
        records: ``(export, image)`` in reading order; the other lists are parallel to it.
        checks: Hash and readability of each image.
        status: ``kept``, ``duplicate`` (same bytes as an earlier image) or ``unreadable``.
        groups: The group of each image (Roboflow copies of one source, linked across exports by identical bytes).
        first_by_hash: Index of the first image with each content hash.
    """

    records: list[tuple[Export, SourceImage]]
    checks: list[ImageCheck]
    status: list[str]
    groups: list[str]
    first_by_hash: dict[str, int]

    @property
    def kept(self) -> list[int]:
        """Indices of the images written to the dataset."""
        return [i for i, s in enumerate(self.status) if s == "kept"]


def _take_inventory(exports: list[Export], workers: int) -> _Inventory:
    """Hash and check every image (in worker processes), mark duplicates and unreadable ones, and group them."""
    records = [(ex, im) for ex in exports for im in ex.images]
    checks = _inspect_many([im.path for _, im in records], workers)

    def group_id(ex: Export, im: SourceImage) -> str:
        return f"{ex.tag}:{roboflow_group(im.path.name)}"

    # Groups: Roboflow stem per dataset, linked across datasets by identical bytes.
    uf = _UnionFind()
    first_by_hash: dict[str, int] = {}
    status: list[str] = []
    for i, ((ex, im), chk) in enumerate(zip(records, checks, strict=True)):
        gid = group_id(ex, im)
        uf.find(gid)
        if not chk.readable:
            status.append("unreadable")
        elif chk.sha256 in first_by_hash:
            status.append("duplicate")
            uf.union(gid, group_id(*records[first_by_hash[chk.sha256]]))
        else:
            first_by_hash[chk.sha256] = i
            status.append("kept")
    groups = [uf.find(group_id(ex, im)) for ex, im in records]
    return _Inventory(records, checks, status, groups, first_by_hash)


@dataclass
class _Splits:
    """The split of every group, and what keeping the exports' splits had to move."""

    of_group: dict[str, str]
    leak_groups: int = 0
    leak_images: int = 0


def _decide_splits(inv: _Inventory, opts: MergeOptions) -> _Splits:
    """Assign each group of kept images to one split: re-made by group, or the exports' own without leakage."""
    kept = inv.kept
    if not opts.keep_splits:
        sizes = Counter(inv.groups[i] for i in kept)
        return _Splits(assign_splits(dict(sizes), opts.split, opts.seed))
    votes: dict[str, Counter] = defaultdict(Counter)
    for i in kept:
        votes[inv.groups[i]][inv.records[i][1].split] += 1
    splits = _Splits({})
    for g, v in votes.items():
        best = max(v.values())
        splits.of_group[g] = next(s for s in SPLITS if v.get(s) == best)  # ties → train first
        if len(v) > 1:
            splits.leak_groups += 1
            splits.leak_images += sum(n for s, n in v.items() if s != splits.of_group[g])
    return splits


def _unlisted_entries(exports: list[Export], tally: _Tally) -> list[ImageEntry]:
    """Manifest entries of label files without an image (their rows counted as dropped) and unlisted images."""
    entries: list[ImageEntry] = []
    for ex in exports:
        for rel, rows in ex.orphan_labels:
            tally.dropped["orphan_label"] += rows
            entries.append(
                {
                    "file": None,
                    "split": None,
                    "group": None,
                    "source": f"{ex.tag}/{rel}",
                    "status": "orphan_label",
                    "instances_in": rows,
                }
            )
        for rel in ex.unlisted_images:
            entries.append(
                {"file": None, "split": None, "group": None, "source": f"{ex.tag}/{rel}", "status": "unlisted"}
            )
    return entries


def _plan_writes(inv: _Inventory, splits: _Splits, tmp: Path) -> tuple[list[_WriteJob], dict[int, str]]:
    """Name every kept image in its split (``<tag>__<name>``; windowed ones as PNG) and make the split folders.

    Returns:
        The write jobs and each kept image's dataset-relative path, by index.
    """
    for s in SPLITS:
        (tmp / "images" / s).mkdir(parents=True)
        (tmp / "labels" / s).mkdir(parents=True)
    jobs: list[_WriteJob] = []
    out_name: dict[int, str] = {}
    for i in inv.kept:
        ex, im = inv.records[i]
        split = splits.of_group[inv.groups[i]]
        high_bit = inv.checks[i].high_bit
        name = f"{ex.tag}__{im.path.stem}.png" if high_bit else f"{ex.tag}__{im.path.name}"
        out_name[i] = f"images/{split}/{name}"
        label = tmp / "labels" / split / f"{Path(name).stem}.txt"
        jobs.append(_WriteJob(i, im, high_bit, tmp / "images" / split / name, label))
    return jobs, out_name


@dataclass
class _Counts:
    """What the written dataset holds: instance tally, images per split, instances per split and class."""

    tally: _Tally = field(default_factory=_Tally)
    images: Counter = field(default_factory=Counter)
    classes: dict[str, Counter] = field(default_factory=lambda: {s: Counter() for s in SPLITS})


class _Listed(TypedDict):
    """The keys every listed image's manifest entry starts with, whatever its fate."""

    source: str
    group: str
    sha256: str | None
    instances_in: int


def _image_entries(
    inv: _Inventory,
    splits: _Splits,
    results: dict[int, tuple[list[int], _Tally]],
    out_name: dict[int, str],
    reg: AnatomyRegistry,
    counts: _Counts,
) -> list[ImageEntry]:
    """One manifest entry per listed image (kept, duplicate or unreadable), adding its instances to ``counts``."""
    entries: list[ImageEntry] = []
    for i, (ex, im) in enumerate(inv.records):
        chk = inv.checks[i]
        entry: _Listed = {
            "source": f"{ex.tag}/{im.rel}",
            "group": inv.groups[i],
            "sha256": chk.sha256 or None,
            "instances_in": len(im.instances),
        }
        if inv.status[i] == "unreadable":
            counts.tally.dropped["unreadable_image"] += len(im.instances)
            entries.append({**entry, "file": None, "split": None, "status": "unreadable", "reason": chk.reason})
            continue
        if inv.status[i] == "duplicate":
            counts.tally.dropped["duplicate_image"] += len(im.instances)
            first = inv.first_by_hash[chk.sha256]
            split_of_first = splits.of_group[inv.groups[first]]
            entries.append(
                {
                    **entry,
                    "file": None,
                    "split": split_of_first,
                    "status": "duplicate",
                    "duplicate_of": out_name.get(first),
                }
            )
            continue
        split = splits.of_group[inv.groups[i]]
        classes, part = results[i]
        counts.tally.merge(part)
        counts.images[split] += 1
        counts.classes[split].update(reg.names[c] for c in classes)
        kept: ImageEntry = {
            **entry,
            "file": out_name[i],
            "split": split,
            "status": "kept",
            "instances_kept": len(classes),
        }
        if chk.high_bit:
            kept["converted"] = "windowed to 8-bit PNG"
        entries.append(kept)
    return entries


def _summary(
    exports: list[Export],
    inv: _Inventory,
    splits: _Splits,
    counts: _Counts,
    entries: list[ImageEntry],
    reg: AnatomyRegistry,
) -> MergeSummary:
    """The merge's summary; checks that kept + dropped instances account for every input instance.

    Raises:
        DataError: When the accounting does not close (a bug: nothing may be lost silently).
    """
    tally = counts.tally
    instances_in = sum(len(im.instances) for _, im in inv.records) + sum(
        rows for ex in exports for _, rows in ex.orphan_labels
    )
    if tally.kept + sum(tally.dropped.values()) != instances_in:  # the accounting must close
        raise DataError("internal accounting error: kept + dropped instances != input instances")
    kept = inv.kept
    return {
        "images": {s: counts.images[s] for s in SPLITS},
        "images_in": len(inv.records) + sum(len(ex.unlisted_images) for ex in exports),
        "orphan_label_files": sum(len(ex.orphan_labels) for ex in exports),
        "image_status": dict(Counter(e["status"] for e in entries)),
        "instances": {
            "in": instances_in,
            "kept": tally.kept,
            "clipped": tally.clipped,
            "remapped": dict(sorted(tally.remapped.items())),
            "dropped": {r: tally.dropped.get(r, 0) for r in DROP_REASONS},
        },
        "class_counts": {s: {n: counts.classes[s][n] for n in reg.names if counts.classes[s][n]} for s in SPLITS},
        "leakage_fixed": {"groups": splits.leak_groups, "images_moved": splits.leak_images},
        "groups": {s: len({inv.groups[i] for i in kept if splits.of_group[inv.groups[i]] == s}) for s in SPLITS},
    }


def _merge_record(
    exports: list[Export],
    resolved: dict[str, str | None],
    reg: AnatomyRegistry,
    opts: MergeOptions,
    request: _Request,
    overwrite: bool,
    summary: MergeSummary,
    entries: list[ImageEntry],
) -> MergeManifest:
    """The dataset's ``manifest.json``: the run record, the class map, the sources and every image's fate."""
    sources: list[SourceRecord] = [
        {
            **input_record(ex.path),  # name and sha256 (a folder: <folder>); the path with --record-paths
            "tag": ex.tag,
            "format": ex.format,
            "names": ex.names,
            "images": len(ex.images),
        }
        for ex in exports
    ]
    given = {
        "sources": request.sources,
        "out": request.out,
        "anatomy": request.anatomy,
        "maps": request.maps,
        "drops": request.drops,
        "overwrite": overwrite,
    }
    manifest = run_manifest(
        "merge",
        {**given, **opts.record()},
        extra={
            "anatomy": reg.name,
            "created_by": f"yolo_spine merge {__version__}",
            "class_map": {k: v for k, v in sorted(resolved.items())},
            "sources": sources,
            "summary": summary,
            "instances": summary["instances"],
            "images": entries,
        },
    )
    return cast(MergeManifest, manifest)  # run_manifest adds `extra` to its own keys


def _write_dataset(
    exports: list[Export],
    resolved: dict[str, str | None],
    reg: AnatomyRegistry,
    opts: MergeOptions,
    request: _Request,
    overwrite: bool,
) -> MergeSummary:
    """Check, group and split the images, write the dataset atomically into ``request.out``; return the summary.

    Steps: inventory (hash, check and group every image), splits (per group), per-image writing (cleaning the
    polygons and writing images and labels in worker processes), the manifest entries of every input, and the
    run record (``manifest.json``) beside ``data.yaml``.
    """
    inv = _take_inventory(exports, opts.workers)
    splits = _decide_splits(inv, opts)
    counts = _Counts()
    entries = _unlisted_entries(exports, counts.tally)
    with atomic_output(request.out, overwrite=overwrite) as tmp:
        # Names and splits are decided here; cleaning polygons and writing files runs in worker processes.
        jobs, out_name = _plan_writes(inv, splits, tmp)
        results = _run_write_jobs(jobs, resolved, reg, opts.workers)
        entries += _image_entries(inv, splits, results, out_name, reg, counts)
        summary = _summary(exports, inv, splits, counts, entries, reg)
        write_data_yaml(tmp, reg.names_dict, reg.name)
        manifest = _merge_record(exports, resolved, reg, opts, request, overwrite, summary, entries)
        write_json_atomic(tmp / "manifest.json", manifest, indent=1)
    summary["out"] = str(request.out)
    return summary
