"""Offline augmentation of a dataset's training split that keeps polygons exact, anatomy in order and sides right.

How one copy is made (:func:`augment_sample`, pure: arrays in, arrays out):

1. Every instance polygon is rasterised to its **own** mask (:func:`yolo_spine.geometry.polygons_to_mask`,
   the rule Ultralytics uses), and the masks are packed as bits of one ``(H, W, ceil(n / 8))`` uint8 stack,
   eight instances per channel. Overlapping instances keep their own pixels.
2. One albumentations pipeline transforms the image and that stack together; masks use nearest neighbour,
   which moves bits without mixing them, so 24 instances cost one warp of a 3-channel image.
3. Each instance's mask is turned back into polygons (:func:`yolo_spine.geometry.mask_to_polygons` on a tight
   crop). The mask is clipped by the image frame, so no vertex leaves ``[0, 1]``; a piece smaller than
   ``min_area_px`` is dropped and counted, every larger piece becomes its own instance of the same class,
   and an instance pushed wholly out of the image is dropped and counted.
4. A horizontal flip swaps mirror-pair classes with the registry's
   :meth:`~yolo_spine.registry.AnatomyRegistry.mirror_index_map` (a flipped left canine is a right canine);
   the spine has no pairs, so a flip changes no class. Vertical flips and 90° turns break the top-to-bottom
   order that names a vertebra; they run only with ``allow_order_breaking``.

:func:`augment_dataset` writes a complete dataset (``data.yaml``, val/test byte-identical, train = originals +
``<stem>_aug<k>.<ext>`` copies in the source's group, ``manifest.json`` with each copy's source and
parameters and the dropped counts) through :func:`yolo_spine.io.atomic.atomic_output`. Each copy's random
seed is derived from ``--seed``, the file name and the copy number, so ``--workers`` does not change results.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import cv2
import numpy as np

from yolo_spine import __version__
from yolo_spine.datasets.check import manifest_groups
from yolo_spine.datasets.manifest import AugmentCopy, AugmentManifest, AugmentSummary, ImageEntry
from yolo_spine.datasets.options import AugmentOptions
from yolo_spine.datasets.roboflow import roboflow_group
from yolo_spine.errors import DataError, UserError
from yolo_spine.geometry import mask_to_polygons, polygons_to_mask
from yolo_spine.io.atomic import atomic_output, ensure_can_write, write_json_atomic
from yolo_spine.io.labels import SegInstance, format_labels, read_data_yaml, read_yolo_labels, write_data_yaml
from yolo_spine.io.xray import XRAY_SUFFIXES, read_xray
from yolo_spine.layout import SPLITS
from yolo_spine.options import resolve_options
from yolo_spine.parallel import LocalExecutor
from yolo_spine.provenance import run_manifest
from yolo_spine.registry import load_registry

log = logging.getLogger("yolo_spine")

#: Why an instance (or a piece of one) of a source row is not in a copy.
DROP_REASONS = ("out_of_image", "too_small", "small_piece", "degenerate", "not_polygon", "unknown_class")
#: File types a copy keeps from its source (others, such as DICOM or 16-bit files, become PNG).
_KEEP_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


# --------------------------------------------------------------------------------------------------- options


def build_pipeline(opts: AugmentOptions) -> Any:
    """Build the albumentations pipeline for the options (transforms with ``p == 0`` are left out).

    Spatial transforms come first (image and masks, masks with nearest neighbour, outside filled with 0),
    then intensity transforms (image only). The pipeline records the parameters it applied.

    Args:
        opts: Checked options (:meth:`AugmentOptions.load` or :func:`yolo_spine.options.load_options`).

    Returns:
        An ``albumentations.Compose`` with ``save_applied_params=True``.
    """
    A = _import_albumentations()
    t: list[Any] = []
    if opts.hflip > 0:
        t.append(A.HorizontalFlip(p=opts.hflip))
    if opts.vflip > 0:
        t.append(A.VerticalFlip(p=opts.vflip))
    if opts.rot90 > 0:
        t.append(A.RandomRotate90(p=opts.rot90))
    aff = opts.affine
    if aff.p > 0:
        rotate = aff.rotate if isinstance(aff.rotate, tuple) else (-aff.rotate, aff.rotate)
        t.append(
            A.Affine(
                rotate=rotate,
                scale=aff.scale,
                translate_percent=(-aff.translate, aff.translate) if aff.translate > 0 else None,
                interpolation=cv2.INTER_LINEAR,
                mask_interpolation=cv2.INTER_NEAREST,
                border_mode=cv2.BORDER_CONSTANT,
                fill=0,
                fill_mask=0,
                p=aff.p,
            )
        )
    el = opts.elastic
    if el.p > 0:
        t.append(
            A.ElasticTransform(
                alpha=el.alpha,
                sigma=el.sigma,
                interpolation=cv2.INTER_LINEAR,
                mask_interpolation=cv2.INTER_NEAREST,
                border_mode=cv2.BORDER_CONSTANT,
                fill=0,
                fill_mask=0,
                p=el.p,
            )
        )
    bc = opts.brightness_contrast
    if bc.p > 0:
        t.append(A.RandomBrightnessContrast(brightness_limit=bc.brightness, contrast_limit=bc.contrast, p=bc.p))
    cl = opts.clahe
    if cl.p > 0:
        t.append(A.CLAHE(clip_limit=cl.clip_limit, tile_grid_size=(cl.tile_grid, cl.tile_grid), p=cl.p))
    if opts.gamma.p > 0:
        t.append(A.RandomGamma(gamma_limit=opts.gamma.limit, p=opts.gamma.p))
    nz = opts.noise
    if nz.p > 0:
        t.append(A.GaussNoise(std_range=nz.std, per_channel=False, noise_scale_factor=nz.scale, p=nz.p))
    if opts.blur.p > 0:
        t.append(A.Blur(blur_limit=opts.blur.kernel, p=opts.blur.p))
    t += _sim2real_transforms(A, opts)
    return A.Compose(t, save_applied_params=True, mask_interpolation=cv2.INTER_NEAREST)


def _sim2real_transforms(A: Any, opts: AugmentOptions) -> list[Any]:
    """The image-only transforms of SyntheX's strong randomisation (``xray-sim2real``), those with ``p > 0``.

    Dropout boxes change the image only (``fill_mask=None``): the labels keep the anatomy a box covers.
    """
    t: list[Any] = []
    if opts.invert > 0:
        t.append(A.InvertImg(p=opts.invert))
    if opts.multiply.p > 0:
        t.append(A.MultiplicativeNoise(multiplier=opts.multiply.range, per_channel=False, p=opts.multiply.p))
    cc = opts.contrast_curve
    if cc.p > 0:
        t.append(_contrast_curve(A)(gamma=cc.gamma, gain=cc.gain, p=cc.p))
    if opts.salt_pepper.p > 0:
        t.append(A.SaltAndPepper(amount=opts.salt_pepper.range, p=opts.salt_pepper.p))
    if opts.gaussian_blur.p > 0:
        t.append(A.GaussianBlur(blur_limit=0, sigma_limit=opts.gaussian_blur.range, p=opts.gaussian_blur.p))
    if opts.sharpen.p > 0:
        t.append(A.Sharpen(alpha=opts.sharpen.range, p=opts.sharpen.p))
    if opts.emboss.p > 0:
        t.append(A.Emboss(alpha=opts.emboss.range, p=opts.emboss.p))
    ds = opts.downscale
    if ds.p > 0:
        t.append(A.Downscale(scale_range=(1.0 / ds.range[1], 1.0 / ds.range[0]), p=ds.p))
    if opts.dropout.p > 0:
        lo, hi = opts.dropout.range
        t.append(A.PixelDropout(dropout_prob=(lo + hi) / 2.0, drop_value=0, mask_drop_value=None, p=opts.dropout.p))
    for box, fill in ((opts.coarse_dropout, 0), (opts.noisy_boxes, "random")):
        if box.p > 0:
            t.append(
                A.CoarseDropout(
                    num_holes_range=box.holes,
                    hole_height_range=box.size,
                    hole_width_range=box.size,
                    fill=fill,
                    fill_mask=None,
                    p=box.p,
                )
            )
    return t


@functools.cache
def _contrast_curve(A: Any) -> type:
    """An albumentations transform drawing one contrast curve: linear, gamma, log or sigmoid (SyntheX's four).

    Made on first use (albumentations is imported lazily); draws come from the transform's own seeded
    generator, so a copy's seed fixes its curve.
    """

    class ContrastCurve(A.ImageOnlyTransform):
        def __init__(self, gamma: tuple[float, float], gain: tuple[float, float], p: float = 0.5) -> None:
            super().__init__(p=p)
            self.gamma = tuple(gamma)
            self.gain = tuple(gain)

        def get_params(self) -> dict[str, Any]:
            kind = ("linear", "gamma", "log", "sigmoid")[self.py_random.randrange(4)]
            lo, hi = self.gamma if kind == "gamma" else self.gain
            return {"curve": kind, "value": self.py_random.uniform(lo, hi)}

        def apply(self, img: np.ndarray, curve: str = "linear", value: float = 1.0, **params: Any) -> np.ndarray:
            x = img.astype(np.float32) / 255.0
            if curve == "gamma":
                x = np.power(x, value)
            elif curve == "log":
                x = np.log1p(x * (np.e - 1.0))  # log curve from 0 to 1
            elif curve == "sigmoid":
                s = 1.0 / (1.0 + np.exp(-value * (x - 0.5)))
                a, b = 1.0 / (1.0 + np.exp(value / 2.0)), 1.0 / (1.0 + np.exp(-value / 2.0))
                x = (s - a) / (b - a)
            return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)

        def get_transform_init_args_names(self) -> tuple[str, ...]:
            return ("gamma", "gain")

    return ContrastCurve


def _import_albumentations() -> Any:
    """Import albumentations without its PyPI version check (a network call on import)."""
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    import albumentations

    return albumentations


def copy_seed(seed: int, name: str, k: int) -> int:
    """Return the random seed of copy ``k`` of the image ``name``: the same whatever process makes it."""
    digest = hashlib.sha256(f"{seed}\0{name}\0{k}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def seed_pipeline(pipeline: Any, seed: int) -> None:
    """Seed a pipeline so that each transform draws from its own stream.

    ``Compose.set_random_seed`` gives every transform the same seed, so their ``p`` draws would be one draw
    (all applied or none); each transform gets an independent seed spawned from ``seed`` instead.
    """
    states = np.random.SeedSequence(seed).generate_state(len(pipeline.transforms) + 1)
    pipeline.set_random_seed(int(states[0]))
    for transform, s in zip(pipeline.transforms, states[1:], strict=True):
        transform.set_random_seed(int(s))


# ------------------------------------------------------------------------------------------------ pure core


def rasterise_instances(polygons_xy: Sequence[np.ndarray], height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Rasterise each instance into its own bit of a packed mask stack.

    Args:
        polygons_xy: One ``(N, 2)`` polygon per instance, pixel index coordinates (vertex ``(u, v)`` is the
            centre of pixel ``[v, u]``).
        height: Image height.
        width: Image width.

    Returns:
        ``(packed, has_pixels)``: a ``(height, width, max(1, ceil(n / 8)))`` uint8 array whose bit ``i % 8``
        of channel ``i // 8`` is instance ``i``'s mask, and a boolean per instance (``False`` when its polygon
        covers no pixel of the image).
    """
    n = len(polygons_xy)
    packed = np.zeros((height, width, max(1, (n + 7) // 8)), dtype=np.uint8)
    has_pixels = np.zeros(n, dtype=bool)
    for i, poly in enumerate(polygons_xy):
        p = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
        if len(p) < 3:
            continue
        x0, y0 = max(int(np.floor(p[:, 0].min())), 0), max(int(np.floor(p[:, 1].min())), 0)
        x1, y1 = min(int(np.ceil(p[:, 0].max())) + 1, width), min(int(np.ceil(p[:, 1].max())) + 1, height)
        if x1 <= x0 or y1 <= y0:
            continue
        # Integer shifts keep cv2.fillPoly's fixed-point vertices, so the crop has the full image's pixels.
        crop = polygons_to_mask([p - (x0, y0)], y1 - y0, x1 - x0)
        if crop.any():
            has_pixels[i] = True
            packed[y0:y1, x0:x1, i // 8] |= crop.view(np.uint8) << np.uint8(i % 8)
    return packed, has_pixels


def masks_to_instances(
    packed: np.ndarray,
    classes: Sequence[int],
    min_area_px: float = 16.0,
    epsilon_px: float = 0.0,
) -> tuple[list[SegInstance], Counter]:
    """Turn a packed instance-mask stack back into normalised polygons, one instance per large-enough piece.

    Args:
        packed: Stack from :func:`rasterise_instances` (after a transform).
        classes: Class id of each packed instance, in packing order.
        min_area_px: Pieces with fewer pixels are dropped.
        epsilon_px: Douglas–Peucker tolerance (0: every boundary corner).

    Returns:
        ``(instances, dropped)``: instances with ``polygon_xy_norm`` in ``[0, 1]``, and counts of
        ``out_of_image`` (no pixel left), ``too_small`` (every piece too small: the instance is lost) and
        ``small_piece`` (small pieces of an instance that is kept), plus ``pieces`` (extra instances made
        by splitting).
    """
    height, width = packed.shape[:2]
    scale = np.array([width, height], dtype=np.float64)
    # Each channel is cropped to where any of its eight instances has pixels, so the per-instance work
    # (bit test, bounding box) runs on that crop rather than on the whole image.
    planes = []
    for c in range(packed.shape[2]):
        plane = np.ascontiguousarray(packed[:, :, c])
        px, py, pw, ph = cv2.boundingRect(plane)
        planes.append((plane[py : py + ph, px : px + pw], px, py))
    out: list[SegInstance] = []
    dropped: Counter = Counter()
    for i, cls in enumerate(classes):
        plane, px, py = planes[i // 8]
        m = plane & np.uint8(1 << (i % 8))
        x, y, w, h = cv2.boundingRect(m) if m.size else (0, 0, 0, 0)
        if w == 0 or h == 0:
            dropped["out_of_image"] += 1
            continue
        polys, small = mask_to_polygons(m[y : y + h, x : x + w], min_area_px=min_area_px, epsilon_px=epsilon_px)
        if not polys:
            dropped["too_small"] += 1
            continue
        dropped["small_piece"] += len(small)
        dropped["pieces"] += len(polys) - 1
        offset = np.array([x + px, y + py], dtype=np.float64)
        out.extend(SegInstance(int(cls), (p + offset) / scale) for p in polys)
    return out, dropped


@dataclass
class AugmentedSample:
    """One augmented copy.

    Attributes:
        pixels: The transformed image (same dtype and channels as the input).
        instances: Its instances (normalised polygons, classes swapped by a horizontal flip).
        params: What was applied: ``transforms`` (names in order), ``hflip``, ``vflip``, ``rot90`` (quarter
            turns), ``angle_deg``, ``seed`` and each transform's scalar parameters under ``detail``.
        dropped: Counts by reason (see :func:`masks_to_instances`; ``degenerate`` for input polygons that
            cover no pixel).
    """

    pixels: np.ndarray
    instances: list[SegInstance]
    params: dict[str, Any]
    dropped: Counter = field(default_factory=Counter)


def augment_sample(
    pixels: np.ndarray,
    instances: Sequence[SegInstance],
    pipeline: Any,
    seed: int,
    mirror_map: Sequence[int] | None = None,
    min_area_px: float = 16.0,
    epsilon_px: float = 0.0,
    packed: tuple[np.ndarray, np.ndarray] | None = None,
) -> AugmentedSample:
    """Make one augmented copy of an image and its instances.

    Args:
        pixels: ``(H, W)`` or ``(H, W, 3)`` uint8 image (OpenCV's BGR order for colour).
        instances: Ground-truth instances with normalised polygons.
        pipeline: From :func:`build_pipeline` (needs ``save_applied_params=True``).
        seed: Seed of this copy (see :func:`copy_seed`).
        mirror_map: ``m[c]`` = class after a horizontal flip (:meth:`AnatomyRegistry.mirror_index_map`);
            ``None`` keeps classes.
        min_area_px: Smallest piece kept, in pixels.
        epsilon_px: Polygon simplification tolerance (0: exact).
        packed: The result of :func:`rasterise_instances` for these instances, to reuse across copies.

    Returns:
        The :class:`AugmentedSample`.

    Raises:
        ValueError: If the pipeline does not record the parameters it applies (flips would go unnoticed).
    """
    if not getattr(pipeline, "save_applied_params", False):
        raise ValueError("the pipeline must be built with save_applied_params=True (use build_pipeline)")
    height, width = pixels.shape[:2]
    if packed is None:
        scale = np.array([width, height], dtype=np.float64)
        packed = rasterise_instances([i.polygon_xy_norm * scale for i in instances], height, width)
    stack, has_pixels = packed
    colour = pixels.ndim == 3
    image = cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB) if colour else pixels
    seed_pipeline(pipeline, seed)
    result = pipeline(image=image, mask=stack)
    applied = result.get("applied_transforms") or []
    params = _summarise_params(applied, seed)
    flip = params["hflip"] and mirror_map is not None
    keep = [k for k in range(len(instances)) if has_pixels[k]]
    classes = [
        mirror_map[instances[k].cls] if flip and mirror_map is not None else instances[k].cls
        for k in range(len(instances))
    ]
    out_stack = result["mask"]
    if out_stack.ndim == 2:
        out_stack = out_stack[:, :, None]
    # Empty source instances have no bits; decode only the packed positions that carry pixels.
    decoded, dropped = _decode(out_stack, classes, keep, min_area_px, epsilon_px)
    dropped["degenerate"] += len(instances) - len(keep)
    out_img = result["image"]
    if colour:
        out_img = cv2.cvtColor(out_img, cv2.COLOR_RGB2BGR)
    return AugmentedSample(out_img, decoded, params, dropped)


def _decode(
    stack: np.ndarray, classes: Sequence[int], keep: Sequence[int], min_area_px: float, epsilon_px: float
) -> tuple[list[SegInstance], Counter]:
    if len(keep) == len(classes):
        return masks_to_instances(stack, classes, min_area_px, epsilon_px)
    # Instances without pixels carry zero bits; decode the others at their packed positions.
    sub_classes = [-1] * len(classes)
    for k in keep:
        sub_classes[k] = classes[k]
    insts, dropped = masks_to_instances(stack, sub_classes, min_area_px, epsilon_px)
    dropped["out_of_image"] -= len(classes) - len(keep)  # they are counted as degenerate instead
    return insts, dropped


def _summarise_params(applied: Sequence[tuple[str, Mapping[str, Any]]], seed: int) -> dict[str, Any]:
    names = [name for name, _ in applied]
    detail: dict[str, dict[str, Any]] = {}
    angle = 0.0
    quarter_turns = 0
    for name, p in applied:
        d: dict[str, Any] = {}
        for key, value in p.items():
            if key in {"shape", "interpolation", "fill", "fill_mask", "output_shape", "bbox_matrix", "noise_map"}:
                continue
            if isinstance(value, (bool, np.bool_)):
                d[key] = bool(value)
            elif isinstance(value, str):
                d[key] = value
            elif isinstance(value, (int, float, np.integer, np.floating)):
                d[key] = round(float(value), 5) if isinstance(value, (float, np.floating)) else int(value)
            elif isinstance(value, Mapping):
                d[key] = {str(k): round(float(v), 5) for k, v in value.items()}
            elif key == "matrix":
                d[key] = np.round(np.asarray(value, dtype=np.float64)[:2], 5).tolist()
        if name == "Affine":
            angle = float(d.get("rotate", 0.0))
        if name == "RandomRotate90":
            quarter_turns = int(d.get("factor", 0))
        detail[name] = d
    return {
        "seed": seed,
        "transforms": names,
        "hflip": "HorizontalFlip" in names,
        "vflip": "VerticalFlip" in names,
        "rot90": quarter_turns,
        "angle_deg": round(angle, 4),
        "detail": detail,
    }


# ------------------------------------------------------------------------------------------------ dataset I/O


@dataclass
class _Job:
    """Copies of one training image: where it is, what its copies are called."""

    image: Path
    label: Path
    name: str  # the source file name (seeds are derived from it)
    out_stems: list[str]
    out_suffix: str


@dataclass
class _JobResult:
    copies: list[AugmentCopy]
    dropped: Counter
    instances_in: int
    instances_out: int


class _Worker:
    """Builds the pipeline once per process and makes the copies of one source image at a time."""

    def __init__(self, opts: AugmentOptions, mirror_map: list[int] | None, out_dir: Path, seed: int, nc: int) -> None:
        self.opts = opts
        self.pipeline = build_pipeline(opts)
        self.mirror_map = mirror_map
        self.out_dir = out_dir
        self.seed = seed
        self.nc = nc

    def run(self, job: _Job) -> _JobResult:
        pixels = read_xray(job.image).pixels
        labels = read_yolo_labels(job.label)
        insts = [i for i in labels.instances if i.cls < self.nc]
        unknown = len(labels.instances) - len(insts)  # class ids >= nc (check reports them)
        not_polygon = labels.box_rows + len(labels.malformed)
        height, width = pixels.shape[:2]
        scale = np.array([width, height], dtype=np.float64)
        packed = rasterise_instances([i.polygon_xy_norm * scale for i in insts], height, width)
        copies: list[AugmentCopy] = []
        dropped: Counter[str] = Counter()
        n_out = 0
        for k, stem in enumerate(job.out_stems, start=1):
            sample = augment_sample(
                pixels,
                insts,
                self.pipeline,
                copy_seed(self.seed, job.name, k),
                self.mirror_map,
                self.opts.min_area_px,
                self.opts.epsilon_px,
                packed=packed,
            )
            img_name = f"{stem}{job.out_suffix}"
            _write_image(self.out_dir / "images" / "train" / img_name, sample.pixels, self.opts.jpeg_quality)
            (self.out_dir / "labels" / "train" / f"{stem}.txt").write_text(
                format_labels(sample.instances), encoding="utf-8"
            )
            sample.dropped["not_polygon"] += not_polygon
            sample.dropped["unknown_class"] += unknown
            dropped.update(sample.dropped)
            n_out += len(sample.instances)
            copies.append(
                {
                    "file": f"images/train/{img_name}",
                    "source": f"images/train/{job.name}",
                    "params": sample.params,
                    "instances": len(sample.instances),
                }
            )
        return _JobResult(copies, dropped, (len(labels.instances) + not_polygon) * len(job.out_stems), n_out)


_STATE: _Worker | None = None


def _init_worker(opts: AugmentOptions, mirror_map: list[int] | None, out_dir: Path, seed: int, nc: int) -> None:
    global _STATE
    if "albumentations" not in sys.modules and "torch" not in sys.modules:
        # albumentations imports torch only for ToTensorV2, which a worker never uses; blocking it in this
        # worker process saves about 3 s of start-up per worker.
        sys.modules["torch"] = None  # type: ignore[assignment]
    _STATE = _Worker(opts, mirror_map, out_dir, seed, nc)


def _run_job(job: _Job) -> _JobResult:
    if _STATE is None:
        raise RuntimeError("augment worker used before _init_worker ran")
    return _STATE.run(job)


def _write_image(path: Path, pixels: np.ndarray, jpeg_quality: int) -> None:
    ext = path.suffix.lower()
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if ext in {".jpg", ".jpeg"} else []
    ok, buf = cv2.imencode(ext, pixels, params)
    if not ok:
        raise DataError(f"cannot encode an image for {path}")
    path.write_bytes(buf.tobytes())


def augment_dataset(
    data: str | Path,
    out: str | Path,
    options: AugmentOptions | None = None,
    *,
    seed: int = 0,
    workers: int = 1,
    overwrite: bool = False,
    anatomy: str | None = None,
    progress: bool = True,
    **option_values: Any,
) -> AugmentSummary:
    """Write a dataset whose training split holds the originals plus augmented copies.

    Args:
        data: The input ``data.yaml``.
        out: Output dataset folder (written to a temporary folder beside it, then moved into place).
        options: Augmentation options (default: the ``xray-spine`` preset, see :class:`AugmentOptions`).
        seed: Base random seed; each copy's seed comes from it, the file name and the copy number.
        workers: Processes (0 or 1: this process). Results do not depend on it.
        overwrite: Replace an existing ``out``.
        anatomy: Registry name or path; ``None`` uses the ``anatomy`` of ``data.yaml``.
        progress: Show a progress bar.
        **option_values: Option values replacing those of ``options`` (e.g. ``copies=3``; checked).

    Returns:
        The summary stored in the manifest: images per split, copies, instances in/out, dropped counts,
        seconds and copies per second, output path.

    Raises:
        UserError: On bad options, an existing ``out`` without ``overwrite``, a dataset without an anatomy,
            or class names that are not the registry's in anatomical order.
    """
    t0 = time.perf_counter()
    opts = resolve_options(AugmentOptions, options, option_values)
    data = Path(data).resolve()
    lay = read_data_yaml(data)
    anatomy = anatomy or lay.anatomy
    if not anatomy:
        raise UserError(f"{data} names no 'anatomy'; pass --anatomy (spine, teeth, brain or a registry YAML)")
    reg = load_registry(anatomy)
    if list(reg.names) != lay.names:
        raise UserError(
            f"{data}: names are not the '{reg.name}' registry's classes in anatomical order "
            "(run yolo_spine merge first, so that flips swap the right classes)"
        )
    out = ensure_can_write(out, overwrite)
    if out == lay.root or lay.root in out.parents:
        raise UserError(f"--out {out} lies inside the input dataset {lay.root}; choose a folder outside it")
    mirror_map = reg.mirror_index_map() if reg.has_mirror_pairs else None
    groups = manifest_groups(lay.root)
    n_copies = opts.copies

    split_images: dict[str, list[Path]] = {}
    for split, img_dir in lay.image_dirs.items():
        if not img_dir.is_dir():
            raise DataError(f"{split} image folder does not exist: {img_dir}")
        split_images[split] = sorted(p for p in img_dir.iterdir() if p.is_file() and p.suffix.lower() in XRAY_SUFFIXES)
    train_stems = {p.stem for p in split_images["train"]}

    jobs: list[_Job] = []
    for img in split_images["train"]:
        suffix = img.suffix if img.suffix.lower() in _KEEP_SUFFIXES else ".png"
        stems = [f"{img.stem}_aug{k}" for k in range(1, n_copies + 1)]
        clash = train_stems.intersection(stems)
        if clash:
            raise DataError(f"copy name {sorted(clash)[0]} is already a training image; rename it first")
        jobs.append(_Job(img, lay.label_dirs["train"] / f"{img.stem}.txt", img.name, stems, suffix))

    manifest_images: list[ImageEntry] = []
    all_copies: list[AugmentCopy] = []
    dropped: Counter = Counter()
    instances_in = instances_out = 0
    with atomic_output(out, overwrite=overwrite) as tmp:
        for split in split_images:
            (tmp / "images" / split).mkdir(parents=True)
            (tmp / "labels" / split).mkdir(parents=True)
        # One thread per worker process (small images: processes, not threads, use the cores); worker processes
        # fork from a server that has imported this module once.
        with LocalExecutor(
            max(1, workers),
            n_items=len(jobs),
            task_cpus=1,
            initializer=_init_worker,
            initargs=(opts, mirror_map, tmp, seed, reg.nc),
            preload=["yolo_spine.datasets.augment"],
        ) as ex:
            run = _Worker(opts, mirror_map, tmp, seed, reg.nc).run if ex.workers <= 1 else _run_job
            chunk = max(1, min(16, len(jobs) // (ex.workers * 4) or 1))
            # Started first, so worker start-up overlaps with copying the originals below.
            outcomes = ex.map(run, jobs, chunksize=chunk, desc="augment", unit="img", progress=progress)
            for split, images in split_images.items():
                for img in images:  # originals, byte-identical
                    shutil.copyfile(img, tmp / "images" / split / img.name)
                    lbl = lay.label_dirs[split] / f"{img.stem}.txt"
                    if lbl.is_file():
                        shutil.copyfile(lbl, tmp / "labels" / split / lbl.name)
                    manifest_images.append(
                        {
                            "file": f"images/{split}/{img.name}",
                            "split": split,
                            "group": groups.get(f"{img.parent.name}/{img.name}") or roboflow_group(img.name),
                            "source": f"{split}/{img.name}",
                            "status": "kept",
                        }
                    )
            group_of = {e["source"]: e["group"] for e in manifest_images if e["split"] == "train"}
            for job, outcome in zip(jobs, outcomes, strict=True):
                res = outcome.get()
                dropped.update(res.dropped)
                instances_in += res.instances_in
                instances_out += res.instances_out
                for c in res.copies:
                    all_copies.append(c)
                    manifest_images.append(
                        {
                            "file": c["file"],
                            "split": "train",
                            "group": group_of[f"train/{job.name}"],
                            "source": f"train/{job.name}",
                            "status": "augmented",
                        }
                    )

        seconds = time.perf_counter() - t0
        pieces = dropped.pop("pieces", 0)
        drop_counts = {r: int(dropped.get(r, 0)) for r in DROP_REASONS}
        kept_sources = instances_in - sum(drop_counts[r] for r in DROP_REASONS if r != "small_piece")
        if kept_sources + pieces != instances_out:  # the accounting must close
            raise DataError("internal accounting error: kept + split pieces != written instances")
        summary: AugmentSummary = {
            "images": {s: len(v) for s, v in split_images.items()},
            "copies": len(all_copies),
            "copies_per_image": n_copies,
            "instances": {
                "in": instances_in,
                "out": instances_out,
                "split_pieces": int(pieces),
                "dropped": drop_counts,
            },
            "seconds": round(seconds, 3),
            "copies_per_s": round(len(all_copies) / seconds, 2) if seconds > 0 else None,
        }
        summary["images"]["train"] += len(all_copies)
        write_data_yaml(tmp, reg.names_dict, reg.name, tuple(s for s in SPLITS if s in split_images))
        manifest = cast(
            AugmentManifest,
            run_manifest(  # run_manifest adds `extra` to its own keys
                "augment",
                {
                    "data": data,
                    "out": out,
                    "seed": seed,
                    "workers": workers,
                    "overwrite": overwrite,
                    "anatomy": reg.name,
                    **opts.record(),
                },
                inputs={"data_yaml": data},
                extra={
                    "anatomy": reg.name,
                    "created_by": f"yolo_spine augment {__version__}",
                    "summary": summary,
                    "dropped": drop_counts,
                    "copies": all_copies,
                    "images": manifest_images,
                },
            ),
        )
        write_json_atomic(tmp / "manifest.json", manifest, indent=1)
    summary["out"] = str(out)
    log.info("augment: %d copies in %.1f s (%s copies/s)", len(all_copies), seconds, summary["copies_per_s"])
    return summary


__all__ = [
    "AugmentOptions",
    "AugmentedSample",
    "augment_dataset",
    "augment_sample",
    "build_pipeline",
    "copy_seed",
    "masks_to_instances",
    "rasterise_instances",
    "seed_pipeline",
]
