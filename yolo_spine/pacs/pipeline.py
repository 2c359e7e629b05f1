"""The two pipelines ``pacs`` runs on a downloaded series, through the package's own stages (no subprocesses).

* A radiograph (CR, DX): ``predict`` on the DICOM file, its polygons rasterised into one mask per instance
  (:func:`yolo_spine.io.dicom_seg.masks_from_polygons`, the rule ``lift`` uses).
* A CT series: the volume cut into slices with the sidecars ``ct2yolo`` writes (the anatomy's preset window and
  planes, so the model sees what it was trained on), ``predict --save-txt`` on the slices, and ``lift``'s
  slice lifting and multi-planar fusion into a label map on the CT's grid (class id + 1, ``(z, y, x)``).

Everything is written under a work folder the caller owns (a private temporary folder): file names are counters
and plane indices, never UIDs.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from yolo_spine.errors import DataError
from yolo_spine.pacs.options import PacsOptions

if TYPE_CHECKING:
    import SimpleITK as sitk

    from yolo_spine.predict.run import PredictRunRecord
    from yolo_spine.registry import AnatomyRegistry

log = logging.getLogger("yolo_spine")

#: Study id written into the work folder's sidecars (the folder is private and removed; no UID goes there).
WORK_STUDY = "pacs"


@dataclass
class RadiographResult:
    """What the model found on one radiograph.

    Attributes:
        masks: ``(N, H, W)`` bool, one mask per instance, on the image's pixel grid (rows, columns).
        class_ids: ``(N,)`` registry class ids.
        confidences: ``(N,)`` detection confidences.
        predict_record: ``predict``'s run manifest (counts, confidence, model).
    """

    masks: np.ndarray
    class_ids: np.ndarray
    confidences: np.ndarray
    predict_record: PredictRunRecord


@dataclass
class CtResult:
    """What the model found in one CT series.

    Attributes:
        labels_zyx: Label map (class id + 1, 0 = background) on the series' voxel grid, ``(z, y, x)``.
        slices: Slices predicted per plane.
        instances: 2D instances found over every slice.
        lift_info: ``lift``'s per-plane accounting.
    """

    labels_zyx: np.ndarray
    slices: dict[str, int]
    instances: int
    lift_info: dict[str, Any]


def _predict_options(options: PacsOptions, anatomy: AnatomyRegistry, save_txt: bool) -> Any:
    from yolo_spine.predict.options import PredictOptions

    return PredictOptions.load(
        conf=options.conf,
        iou=options.iou,
        imgsz=options.imgsz,
        max_det=options.max_det,
        device=options.device,
        anatomy=str(anatomy.path) if anatomy.path is not None else anatomy.name,
        save_annotated=False,
        save_txt=save_txt,
    )


def segment_radiograph(
    weights: Path, image: Path, work: Path, options: PacsOptions, anatomy: AnatomyRegistry
) -> RadiographResult:
    """Predict one radiograph (a DICOM file) and rasterise each instance's polygon into its own mask."""
    from yolo_spine.io.dicom_seg import masks_from_polygons
    from yolo_spine.predict.run import predict

    out = work / "predict"
    record = predict(weights, image, out, _predict_options(options, anatomy, save_txt=False))
    lines = (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    if len(lines) != 1:
        raise DataError(f"a radiograph series instance gave {len(lines)} frames; one frame per radiograph expected")
    frame = json.loads(lines[0])
    h, w = int(frame["height"]), int(frame["width"])
    instances = frame["instances"]
    masks = masks_from_polygons([np.asarray(i["polygon_xy"], dtype=np.float64) for i in instances], h, w)
    keep = [k for k in range(len(instances)) if masks[k].any()]  # a polygon too thin to cover a pixel centre
    return RadiographResult(
        masks=masks[keep],
        class_ids=np.asarray([instances[k]["class_id"] for k in keep], dtype=np.int64),
        confidences=np.asarray([instances[k]["conf"] for k in keep], dtype=np.float64),
        predict_record=record,
    )


def ct_slice_settings(options: PacsOptions, anatomy: AnatomyRegistry) -> tuple[tuple[str, ...], tuple[float, float]]:
    """The planes and HU window of the slices: the options', else those ``ct2yolo`` uses for this anatomy."""
    from yolo_spine.ct.options import CtOptions

    preset = CtOptions.for_anatomy(anatomy)
    planes = tuple(options.planes) if options.planes else tuple(preset.planes)
    if not planes:
        planes = ("axial",)  # a DRR-only preset: the model still reads axial slices best of the three
    window = options.window_hu or (preset.window.center, preset.window.width)
    return planes, (float(window[0]), float(window[1]))


def write_slices(
    image: sitk.Image,
    root: Path,
    anatomy: AnatomyRegistry,
    planes: tuple[str, ...],
    window: tuple[float, float],
    step: int,
) -> dict[str, int]:
    """Cut an unlabelled CT into ``root/images/<stem>.png`` with ``root/sidecars/<stem>.json`` as ``ct2yolo`` does.

    The slicing, resampling and ``pixel_to_world`` affine are :mod:`yolo_spine.ct.slices`'; the sidecars hold
    the fields ``lift`` reads (:func:`yolo_spine.ct.sidecar.read_sidecar`).

    Returns:
        Slices written per plane.
    """
    import SimpleITK as sitk

    from yolo_spine.ct import slices as sl
    from yolo_spine.ct.sidecar import SCHEMA, VolumeGeometry
    from yolo_spine.io.xray import write_png

    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "sidecars").mkdir(parents=True, exist_ok=True)
    geom = VolumeGeometry.from_image(image)
    hu_kji = sitk.GetArrayFromImage(image).astype(np.float32)
    no_labels = np.zeros(hu_kji.shape, np.uint8)
    no_class = np.full(1, -1, np.int16)  # every voxel is background: slices carry no instances
    base = {"schema": SCHEMA, "kind": "slice", "study": WORK_STUDY, "anatomy": anatomy.name, "volume": geom.to_json()}
    written = {}
    for plane in planes:
        layout = sl.plane_layout(geom, plane)
        n = 0
        for res in sl.iter_slices(hu_kji, no_labels, geom, layout, no_class, window, step=step):
            stem = f"{WORK_STUDY}_{plane}_{res.index:04d}"
            write_png(root / "images" / f"{stem}.png", res.pixels)
            sidecar = {**base, **layout.sidecar_fields(geom, res.index, step), "image": f"{stem}.png", "split": "test"}
            (root / "sidecars" / f"{stem}.json").write_text(json.dumps(sidecar), encoding="utf-8")
            n += 1
        written[plane] = n
    return written


def segment_ct(
    weights: Path, image: sitk.Image, work: Path, options: PacsOptions, anatomy: AnatomyRegistry
) -> CtResult:
    """Slices → ``predict --save-txt`` → ``lift`` (slice lifting and fusion) for one CT volume (HU)."""
    from yolo_spine.lift.io import read_lift_inputs
    from yolo_spine.lift.lift import lift_slice_inputs
    from yolo_spine.predict.run import predict

    planes, window = ct_slice_settings(options, anatomy)
    slices = work / "slices"
    written = write_slices(image, slices, anatomy, planes, window, options.step)
    pred = work / "predict"
    record = predict(weights, slices / "images", pred, _predict_options(options, anatomy, save_txt=True))
    n_instances = int(record["counts"]["instances"])
    if n_instances == 0:
        return CtResult(np.zeros(image.GetSize()[::-1], np.uint8), written, 0, {})
    inputs = read_lift_inputs(pred, slices)
    labels, _geometry, info = lift_slice_inputs(inputs, anatomy, fusion=options.fusion, largest_cc=options.largest_cc)
    return CtResult(labels, written, n_instances, info)
