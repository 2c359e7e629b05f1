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
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from yolo_spine import __version__
from yolo_spine.datasets.roboflow import Export, SourceImage, read_export, roboflow_group
from yolo_spine.errors import DataError, UserError
from yolo_spine.geometry import clip_polygon_to_rect, polygon_area
from yolo_spine.identifiers import input_record
from yolo_spine.io.atomic import atomic_output, ensure_can_write, write_json_atomic
from yolo_spine.io.labels import SegInstance, format_labels, write_data_yaml
from yolo_spine.io.xray import DICOM_SUFFIXES, read_xray, write_png
from yolo_spine.layout import SPLITS
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
class MergeOptions:
    """Options of :func:`merge_exports`.

    Attributes:
        sources: Export folders or zip files.
        out: Output dataset folder.
        anatomy: Registry name or YAML path.
        maps: Source class name → registry class (``--map cervical-8=T1``); keys match like aliases.
        drops: Source class names to drop (``--drop NAME``), counted as ``unmapped``.
        split: Train/val/test fractions (re-made by group) unless ``keep_splits``.
        seed: Seed of the split.
        keep_splits: Keep the exports' own splits (leaky groups are still moved into one split).
        overwrite: Replace an existing ``out``.
        workers: Processes that hash and verify images (1: this process).
    """

    sources: list[Path]
    out: Path
    anatomy: str = "spine"
    maps: dict[str, str] = field(default_factory=dict)
    drops: list[str] = field(default_factory=list)
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0
    keep_splits: bool = False
    overwrite: bool = False
    workers: int = 0


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
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        return ImageCheck(digest, False, f"not a readable image ({type(exc).__name__})")
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


def merge_exports(options: MergeOptions) -> dict:
    """Merge Roboflow exports into one YOLO-seg dataset (see the module docstring for the guarantees).

    Args:
        options: What to merge and how.

    Returns:
        The summary part of the manifest: images and instances per split, dropped counts, output path.

    Raises:
        UserError: Unknown class names, bad options, unreadable sources, or an existing output without overwrite.
    """
    out = ensure_can_write(options.out, options.overwrite)
    reg = load_registry(options.anatomy)
    if not options.sources:
        raise UserError("give at least one export folder or zip")
    if not options.keep_splits and (len(options.split) != 3 or min(options.split) < 0 or sum(options.split) <= 0):
        raise UserError(f"--split needs three non-negative fractions (train val test), got {options.split}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.sources.", dir=out.parent) as scratch:
        tags = _unique_tags(options.sources)
        exports = []
        for src, tag in zip(options.sources, tags, strict=True):
            log.info("reading source %s", tag)  # the tag, not the path: folders may carry identifiers
            exports.append(read_export(Path(src), tag, Path(scratch)))
        resolved = _resolve_names(exports, reg, options.maps, options.drops)
        return _write_dataset(exports, resolved, reg, options, out)


def _write_dataset(
    exports: list[Export], resolved: dict[str, str | None], reg: AnatomyRegistry, options: MergeOptions, out: Path
) -> dict:

    records = [(ex, im) for ex in exports for im in ex.images]
    checks = _inspect_many([im.path for _, im in records], options.workers)

    # Groups: Roboflow stem per dataset, linked across datasets by identical bytes.
    uf = _UnionFind()
    first_by_hash: dict[str, int] = {}
    status: list[str] = []
    for i, ((ex, im), chk) in enumerate(zip(records, checks, strict=True)):
        gid = f"{ex.tag}:{roboflow_group(im.path.name)}"
        uf.find(gid)
        if not chk.readable:
            status.append("unreadable")
        elif chk.sha256 in first_by_hash:
            status.append("duplicate")
            fex, fim = records[first_by_hash[chk.sha256]]
            uf.union(gid, f"{fex.tag}:{roboflow_group(fim.path.name)}")
        else:
            first_by_hash[chk.sha256] = i
            status.append("kept")
    groups = [uf.find(f"{ex.tag}:{roboflow_group(im.path.name)}") for ex, im in records]
    kept_idx = [i for i, s in enumerate(status) if s == "kept"]

    leak_groups = leak_images = 0
    if options.keep_splits:
        votes: dict[str, Counter] = defaultdict(Counter)
        for i in kept_idx:
            votes[groups[i]][records[i][1].split] += 1
        split_of = {}
        for g, v in votes.items():
            best = max(v.values())
            split_of[g] = next(s for s in SPLITS if v.get(s) == best)  # ties → train first
            if len(v) > 1:
                leak_groups += 1
                leak_images += sum(n for s, n in v.items() if s != split_of[g])
    else:
        sizes = Counter(groups[i] for i in kept_idx)
        split_of = assign_splits(dict(sizes), tuple(options.split), options.seed)

    tally = _Tally()
    per_split_images: Counter = Counter()
    class_counts: dict[str, Counter] = {s: Counter() for s in SPLITS}
    manifest_images = []
    out_name: dict[int, str] = {}
    for ex in exports:
        for rel, rows in ex.orphan_labels:
            tally.dropped["orphan_label"] += rows
            manifest_images.append(
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
            manifest_images.append(
                {"file": None, "split": None, "group": None, "source": f"{ex.tag}/{rel}", "status": "unlisted"}
            )

    with atomic_output(out, overwrite=options.overwrite) as tmp:
        for s in SPLITS:
            (tmp / "images" / s).mkdir(parents=True)
            (tmp / "labels" / s).mkdir(parents=True)
        # Names and splits are decided here; cleaning polygons and writing files runs in worker processes.
        jobs: list[_WriteJob] = []
        for i in kept_idx:
            ex, im = records[i]
            split = split_of[groups[i]]
            name = f"{ex.tag}__{im.path.stem}.png" if checks[i].high_bit else f"{ex.tag}__{im.path.name}"
            out_name[i] = f"images/{split}/{name}"
            jobs.append(
                _WriteJob(
                    i,
                    im,
                    checks[i].high_bit,
                    tmp / "images" / split / name,
                    tmp / "labels" / split / f"{Path(name).stem}.txt",
                )
            )
        results = _run_write_jobs(jobs, resolved, reg, options.workers)

        for i, (ex, im) in enumerate(records):
            chk = checks[i]
            entry = {
                "source": f"{ex.tag}/{im.rel}",
                "group": groups[i],
                "sha256": chk.sha256 or None,
                "instances_in": len(im.instances),
            }
            if status[i] == "unreadable":
                tally.dropped["unreadable_image"] += len(im.instances)
                manifest_images.append(
                    {**entry, "file": None, "split": None, "status": "unreadable", "reason": chk.reason}
                )
                continue
            if status[i] == "duplicate":
                tally.dropped["duplicate_image"] += len(im.instances)
                first = first_by_hash[chk.sha256]
                manifest_images.append(
                    {
                        **entry,
                        "file": None,
                        "split": split_of[groups[first]],
                        "status": "duplicate",
                        "duplicate_of": out_name.get(first),
                    }
                )
                continue
            split = split_of[groups[i]]
            classes, part = results[i]
            tally.merge(part)
            per_split_images[split] += 1
            class_counts[split].update(reg.names[c] for c in classes)
            manifest_images.append(
                {
                    **entry,
                    "file": out_name[i],
                    "split": split,
                    "status": "kept",
                    "instances_kept": len(classes),
                    **({"converted": "windowed to 8-bit PNG"} if chk.high_bit else {}),
                }
            )

        instances_in = sum(len(im.instances) for _, im in records) + sum(
            rows for ex in exports for _, rows in ex.orphan_labels
        )
        summary = {
            "images": {s: per_split_images[s] for s in SPLITS},
            "images_in": len(records) + sum(len(ex.unlisted_images) for ex in exports),
            "orphan_label_files": sum(len(ex.orphan_labels) for ex in exports),
            "image_status": dict(Counter(e["status"] for e in manifest_images)),
            "instances": {
                "in": instances_in,
                "kept": tally.kept,
                "clipped": tally.clipped,
                "remapped": dict(sorted(tally.remapped.items())),
                "dropped": {r: tally.dropped.get(r, 0) for r in DROP_REASONS},
            },
            "class_counts": {s: {n: class_counts[s][n] for n in reg.names if class_counts[s][n]} for s in SPLITS},
            "leakage_fixed": {"groups": leak_groups, "images_moved": leak_images},
            "groups": {s: len({groups[i] for i in kept_idx if split_of[groups[i]] == s}) for s in SPLITS},
        }
        if tally.kept + sum(tally.dropped.values()) != instances_in:  # the accounting must close
            raise DataError("internal accounting error: kept + dropped instances != input instances")
        write_data_yaml(tmp, out, reg.names_dict, reg.name)
        sources = [
            {
                **input_record(ex.path),  # name and sha256 (a folder: <folder>); the path with --record-paths
                "tag": ex.tag,
                "format": ex.format,
                "names": ex.names,
                "images": len(ex.images),
            }
            for ex in exports
        ]
        options_dict = {**vars(options), "sources": [Path(s) for s in options.sources]}
        manifest = run_manifest(
            "merge",
            options_dict,
            extra={
                "anatomy": reg.name,
                "created_by": f"yolo_spine merge {__version__}",
                "class_map": {k: v for k, v in sorted(resolved.items())},
                "sources": sources,
                "summary": summary,
                "instances": summary["instances"],
                "images": manifest_images,
            },
        )
        write_json_atomic(tmp / "manifest.json", manifest, indent=1)
    summary["out"] = str(out)
    return summary
