"""``yolo_spine predict``: stream frames through a segmentation model, draw them, and write what was found.

Frames come one at a time from :mod:`yolo_spine.predict.sources` and leave one at a time: each frame's
results are written (a line of ``predictions.jsonl``, an annotated image or video frame, optionally a label
file) before the next frame is predicted, so a webcam or stream runs for hours in constant memory. A reader
thread decodes up to two frames ahead and a writer thread encodes annotated video behind
(:mod:`yolo_spine.predict.overlap`), so decoding and encoding overlap inference. Webcams and stream URLs keep
producing while the model works: with ``live_latest`` (the default) the model always gets the newest frame and
the frames skipped meanwhile are counted (``run.json`` → ``counts.skipped_live``), so the view never lags.

Outputs in ``OUT`` (written under a temporary name and moved into place when the run ends; Ctrl-C ends a live
run cleanly and keeps what was predicted):

* ``predictions.jsonl`` — one line per image or frame: ``source`` (file name only), ``frame``, ``width``,
  ``height``, ``instances`` (``class``, ``class_id``, ``conf``, ``box_xyxy``, ``polygon_xy`` in pixels,
  ``order_changed_from``: the predicted class when ``--order-fix`` relabelled it, else ``null``) and ``ms``
  (``pre``, ``infer``, ``post``: Ultralytics' letterbox, network, NMS + mask assembly; ``polygons``: mask
  outlines traced into instance records and the order fix; ``draw``: drawing, handing the frame to the writer,
  label files and DICOM SEGs);
* ``annotated/<stem>.png`` for images (``<stem>_<frame:06d>.png`` for further frames of a multi-frame DICOM),
  ``annotated/<stem>.mp4`` for videos, webcams and streams: masks, class names, confidences and the measured
  FPS drawn with OpenCV's built-in fonts;
* with ``save_txt``: ``labels/<stem>.txt`` (videos: ``<stem>_<frame:06d>.txt``), YOLO-seg rows with the
  confidence appended, the format ``lift`` reads;
* with ``dicom_seg``: ``dicom_seg/<stem>.dcm`` for each single-frame DICOM input with instances, a DICOM
  Segmentation (one segment per instance, polygons rasterised as ``lift`` rasterises them) that references the
  input and carries its patient/study module, as DICOM requires (:func:`yolo_spine.io.dicom_seg.write_radiograph_seg`);
  inputs without one are counted in ``counts.dicom_seg_skipped`` by reason;
* ``run.json`` — the run manifest: options, the confidence and where it came from, counts (frames, instances,
  labels changed by the order fix, live frames skipped, inputs dropped and why), measured FPS (``fps`` over the
  run, ``fps_steady`` after the warm-up frames). No patient identifiers anywhere.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any, NotRequired, TypedDict, cast

import numpy as np

from yolo_spine.errors import UserError
from yolo_spine.parallel import ThreadGovernor, available_cpus
from yolo_spine.predict.options import PredictOptions
from yolo_spine.predict.overlap import BackgroundWriter, ReadAhead
from yolo_spine.provenance import RunManifest

log = logging.getLogger("yolo_spine")

#: Smoothing of the FPS drawn on frames (exponential moving average weight of the newest frame).
FPS_SMOOTHING = 0.1
#: Frames decoded ahead of the one being predicted (a background thread).
READ_AHEAD = 2
#: Sources that keep producing frames whether or not they are read (``live_latest`` applies to them).
LIVE_KINDS = frozenset({"webcam", "stream"})
#: Frames counted as warm-up (first inference, allocator and cache warm-up) and left out of ``fps_steady``.
WARMUP_FRAMES = 10


def class_colors(n: int) -> list[tuple[int, int, int]]:
    """Return ``n`` distinct BGR colours (golden-ratio hues, so neighbouring class ids differ clearly)."""
    import colorsys

    out = []
    for i in range(n):
        r, g, b = colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, 0.85, 1.0)
        out.append((int(b * 255), int(g * 255), int(r * 255)))
    return out


def display_available() -> bool:
    """Whether a window can be opened (a display server and an OpenCV build with GUI support)."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    import cv2

    try:
        cv2.namedWindow("yolo_spine", cv2.WINDOW_NORMAL)
    except cv2.error:
        return False
    return True


def draw_frame(
    image_bgr: np.ndarray,
    instances: list[dict],
    colors: list[tuple[int, int, int]],
    fps: float | None = None,
    alpha: float = 0.4,
    line_width: int | None = None,
) -> np.ndarray:
    """Draw instance masks (filled polygons), outlines, labels and the FPS on a copy of a frame.

    Args:
        image_bgr: ``(H, W, 3)`` ``uint8`` frame.
        instances: Records as written to ``predictions.jsonl`` (``class``, ``class_id``, ``conf``, ``box_xyxy``,
            ``polygon_xy``).
        colors: BGR colour per class id.
        fps: Measured frames per second to print in the corner (``None``: none).
        alpha: Opacity of the mask fill.
        line_width: Outline width in pixels (default: from the image size).

    Returns:
        The annotated ``uint8`` BGR image.
    """
    import cv2

    h, w = image_bgr.shape[:2]
    lw = line_width or max(1, round((h + w) / 2 * 0.002))
    scale = max(0.35, lw / 3)
    out = image_bgr.copy()
    polys = [np.round(np.asarray(i["polygon_xy"], dtype=np.float64)).astype(np.int32) for i in instances]
    if instances:
        fill = out.copy()
        for inst, poly in zip(instances, polys, strict=True):
            if len(poly) >= 3:
                cv2.fillPoly(fill, [poly], colors[inst["class_id"] % len(colors)])
        cv2.addWeighted(fill, alpha, out, 1.0 - alpha, 0.0, dst=out)
    for inst, poly in zip(instances, polys, strict=True):
        color = colors[inst["class_id"] % len(colors)]
        if len(poly) >= 2:
            cv2.polylines(out, [poly], True, color, lw, cv2.LINE_AA)
        x1, y1 = int(inst["box_xyxy"][0]), int(inst["box_xyxy"][1])
        text = f"{inst['class']} {inst['conf']:.2f}" + ("*" if inst.get("order_changed_from") else "")
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        y_text = max(y1, th + base + 1)
        cv2.rectangle(out, (x1, y_text - th - base - 1), (x1 + tw + 2, y_text), color, -1)
        cv2.putText(out, text, (x1 + 1, y_text - base), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    if fps is not None:
        text = f"FPS {fps:.1f}"
        fscale = max(0.5, scale * 1.3)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, fscale, 2)
        cv2.rectangle(out, (0, 0), (tw + 8, th + base + 8), (0, 0, 0), -1)
        cv2.putText(out, text, (4, th + 4), cv2.FONT_HERSHEY_SIMPLEX, fscale, (0, 255, 0), 2, cv2.LINE_AA)
    return out


def result_instances(result: Any, names: list[str]) -> list[dict]:
    """Turn one Ultralytics ``Results`` into ``predictions.jsonl`` instance records (pixels, image frame)."""
    boxes = result.boxes
    if boxes is None or len(boxes) == 0:
        return []
    xyxy = boxes.xyxy.cpu().numpy().astype(np.float64)
    confs = boxes.conf.cpu().numpy().astype(np.float64)
    cls = boxes.cls.cpu().numpy().astype(np.int64)
    polys = result.masks.xy if result.masks is not None else [np.zeros((0, 2))] * len(cls)
    out = []
    for k in range(len(cls)):
        c = int(cls[k])
        out.append(
            {
                "class": names[c] if 0 <= c < len(names) else str(c),
                "class_id": c,
                "conf": round(float(confs[k]), 5),
                "box_xyxy": [round(float(v), 2) for v in xyxy[k]],
                "polygon_xy": np.round(np.asarray(polys[k], dtype=np.float64), 2).tolist(),
                "order_changed_from": None,
            }
        )
    return out


def apply_order_fix(instances: list[dict], chains: Any, names: list[str], move_penalty: float, skip_cost: float) -> int:
    """Relabel instances in place with :func:`~yolo_spine.order.fix_order_chains`; return the count.

    Positions are the box centres; a relabelled instance keeps its predicted class in ``order_changed_from``.
    """
    from yolo_spine.order import fix_order_chains

    if not instances or chains is None:
        return 0
    boxes = np.array([i["box_xyxy"] for i in instances], dtype=np.float64)
    centres = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], axis=1)
    ids = np.array([i["class_id"] for i in instances], dtype=np.int64)
    confs = np.array([i["conf"] for i in instances], dtype=np.float64)
    new, changed = fix_order_chains(centres, ids, confs, chains, move_penalty, skip_cost)
    for inst, c in zip(instances, new.tolist(), strict=True):
        if c != inst["class_id"]:
            inst["order_changed_from"] = inst["class"]
            inst["class_id"] = int(c)
            inst["class"] = names[c]
    return changed


def registry_for_names(names: list[str], anatomy: str | None) -> Any:
    """Return the anatomy registry of the model: ``anatomy`` if given, else the shipped one with these names.

    Raises:
        UserError: If ``anatomy`` names a registry whose classes differ from the model's.
    """
    from yolo_spine.registry import available_registries, load_registry

    if anatomy:
        reg = load_registry(anatomy)
        if list(reg.names) != names:
            raise UserError(f"the model's {len(names)} classes are not those of the '{reg.name}' registry")
        return reg
    for name in available_registries():
        reg = load_registry(name)
        if list(reg.names) == names:
            return reg
    return None


def write_frame_seg(fr: Any, instances: list[dict], registry: Any, algorithm: Any, out: Path) -> str:
    """Write one still DICOM frame's instances as a DICOM Segmentation; return ``"written"`` or why not.

    Reasons: ``not_dicom`` (a PNG, a video frame …), ``multi_frame`` (a multi-frame DICOM: one SEG per
    single-frame image only), ``other_size`` (the decoded frame is not the DICOM's pixel grid), ``no_instances``
    (nothing detected, or only empty polygons: a SEG needs a segment).
    """
    import pydicom

    from yolo_spine.io.dicom_seg import masks_from_polygons, write_radiograph_seg
    from yolo_spine.io.xray import is_dicom

    if fr.path is None or fr.is_video or not is_dicom(fr.path):
        return "not_dicom"
    if fr.n_frames != 1:
        return "multi_frame"
    ds = pydicom.dcmread(fr.path, stop_before_pixels=True)
    h, w = fr.image_bgr.shape[:2]
    if (int(ds.Rows), int(ds.Columns)) != (h, w):
        return "other_size"
    masks = masks_from_polygons([np.asarray(i["polygon_xy"], dtype=np.float64) for i in instances], h, w)
    if not masks.any():
        return "no_instances"
    out.parent.mkdir(exist_ok=True)
    write_radiograph_seg(masks, [int(i["class_id"]) for i in instances], ds, registry, out, algorithm)
    return "written"


def _governor(opts: PredictOptions, fmt: str, torch: Any) -> ThreadGovernor | None:
    """A thread governor for a PyTorch model on the CPU without ``--threads`` (else ``None``).

    ONNX Runtime and OpenVINO size their thread pools when the model loads, so only torch's can follow the load.
    """
    on_cpu = opts.device == "cpu" or (opts.device is None and not torch.cuda.is_available())
    if opts.threads is not None or fmt != "pt" or not on_cpu:
        return None
    return ThreadGovernor(available_cpus())


def _frames_with_interrupt(frames: Iterator[Any], state: dict) -> Iterator[Any]:
    """Yield from ``frames``; Ctrl-C ends the iteration (recorded in ``state``) instead of the run."""
    try:
        yield from frames
    except KeyboardInterrupt:
        state["interrupted"] = True
        log.warning("interrupted: finishing the outputs of the frames predicted so far")


def _label_instances(instances: list[dict], w: int, h: int) -> list:
    from yolo_spine.io.labels import SegInstance

    out = []
    for inst in instances:
        poly = np.asarray(inst["polygon_xy"], dtype=np.float64).reshape(-1, 2)
        if len(poly) < 3:
            continue
        out.append(SegInstance(inst["class_id"], poly / np.array([w, h], dtype=np.float64), inst["conf"]))
    return out


class PredictCounts(TypedDict):
    """What ``predict`` wrote (``counts`` in its ``run.json``); the DICOM SEG counts only with ``dicom_seg``."""

    frames: int
    instances: int
    order_changed: int  # instances relabelled by the order fix
    annotated: int
    label_files: int
    skipped_live: int  # frames a live source dropped while inference ran
    dicom_seg: NotRequired[int]
    dicom_seg_skipped: NotRequired[dict[str, int]]  # reason → frames


class PredictRunRecord(RunManifest):
    """``predict``'s ``run.json`` (also :func:`predict`'s return value)."""

    model: dict[str, Any]  # format, names, anatomy
    conf: dict[str, Any]  # value and where it came from
    source: dict[str, str]  # kind, description
    counts: PredictCounts
    dropped: dict[str, Any]  # count, inputs (file name → reason)
    interrupted: bool
    torch_threads: int
    thread_governor: dict[str, Any] | None  # threads_at_end, changes
    runtime_threads: dict[str, Any]
    wall_seconds: float
    fps: float | None
    fps_steady: float | None  # after the warm-up frames; None for short runs
    mean_ms: dict[str, float]  # pre, infer, post, polygons, draw
    outputs: dict[str, str | None]  # paths inside the output folder


def predict(
    weights: str | Path,
    source: str | Path | int,
    out: str | Path,
    options: PredictOptions | None = None,
    *,
    review: str | Path | None = None,
    overwrite: bool = False,
    **option_values: Any,
) -> PredictRunRecord:
    """Predict on a source and write ``predictions.jsonl``, annotated images/video, labels and ``run.json``.

    Args:
        weights: ``.pt``, ``.onnx`` or an OpenVINO folder.
        source: Webcam index, stream URL, image, folder, video or stream file (see :mod:`.sources`).
        out: Output folder (refused if it exists, unless ``overwrite``).
        options: Prediction options (default: ``configs/predict/default.yaml``).
        review: The review's ``metrics.json`` or folder for ``conf="auto"`` (default: beside the weights).
        overwrite: Replace an existing ``out``.
        **option_values: Option values replacing those of ``options`` (e.g. ``conf="auto"``, ``save_txt=True``).

    Returns:
        The run manifest (also written to ``OUT/run.json``).

    Raises:
        UserError: Bad options, a source or model that cannot be used, an existing output.
    """
    from yolo_spine.io.atomic import atomic_output, ensure_can_write, write_json_atomic
    from yolo_spine.options import resolve_options
    from yolo_spine.order import OrderChains
    from yolo_spine.predict.model import class_names, load_model, model_format, resolve_conf, runtime_threads
    from yolo_spine.predict.sources import open_source
    from yolo_spine.provenance import run_manifest

    opts = resolve_options(PredictOptions, options, option_values)
    out = ensure_can_write(out, overwrite)
    conf_value, conf_record = resolve_conf(opts.conf, weights, review, opts.fallback_conf)
    src = open_source(source, watch=opts.watch, watch_timeout=opts.watch_timeout, poll_s=opts.poll_s)
    fmt = model_format(weights)
    model = load_model(weights, threads=opts.threads)
    names = class_names(model)
    chains = None
    reg = registry_for_names(names, opts.anatomy)
    seg_algorithm = None
    if opts.dicom_seg:
        if reg is None:
            raise UserError("--dicom-seg needs the model's anatomy to code its classes: give --anatomy")
        from yolo_spine.io.dicom_seg import algorithm_for, require_highdicom

        require_highdicom()
        seg_algorithm = algorithm_for(weights)
    if opts.order_fix:
        chains = OrderChains.from_registry(reg, names) if reg is not None else None
        if chains is None:
            raise UserError(
                "--order-fix needs an anatomy with an order (spine or teeth); "
                + (f"'{reg.name}' has none" if reg is not None else "give --anatomy")
            )
    import cv2
    import torch

    colors = class_colors(len(names))
    show = opts.show
    if show and not display_available():
        log.warning("--show: no display here; writing the annotated images/video only")
        show = False
    pred_args: dict[str, Any] = {
        "conf": conf_value,
        "iou": opts.iou,
        "max_det": opts.max_det,
        "verbose": False,
        "save": False,
        "retina_masks": False,
    }
    if opts.imgsz:
        pred_args["imgsz"] = opts.imgsz
    if opts.device is not None:
        pred_args["device"] = opts.device

    # Load (OpenVINO compiles here) and run once on a blank frame before the clock starts, as a live viewer does
    # before it opens the camera: the FPS then measures frames, not start-up.
    blank = opts.imgsz or 640
    try:
        model.predict(np.zeros((blank, blank, 3), np.uint8), **pred_args)
    except ValueError as exc:  # Ultralytics' select_device: a GPU that is not there
        if opts.device is None:
            raise
        raise UserError(f"--device {opts.device} cannot be used here: {str(exc).splitlines()[0]}") from None
    governor = _governor(opts, fmt, torch)
    threads_used = runtime_threads(model)
    counts: PredictCounts = {
        "frames": 0,
        "instances": 0,
        "order_changed": 0,
        "annotated": 0,
        "label_files": 0,
        "skipped_live": 0,
    }
    if opts.dicom_seg:
        counts.update({"dicom_seg": 0, "dicom_seg_skipped": {}})
    ms_sum = {"pre": 0.0, "infer": 0.0, "post": 0.0, "polygons": 0.0, "draw": 0.0}
    state: dict[str, Any] = {"interrupted": False}
    writers: dict[str, Any] = {}
    fps_ema: float | None = None
    t_start = time.perf_counter()
    t_warm: float | None = None
    with atomic_output(out, overwrite=overwrite) as tmp, ExitStack() as stack:
        annotated_dir, labels_dir = tmp / "annotated", tmp / "labels"
        if opts.save_annotated:
            annotated_dir.mkdir()
        if opts.save_txt:
            labels_dir.mkdir()
        jsonl = stack.enter_context(open(tmp / "predictions.jsonl", "w", encoding="utf-8"))

        def close_writers() -> None:
            for wr in writers.values():
                wr.release()
            writers.clear()

        stack.callback(close_writers)
        if show:
            stack.callback(cv2.destroyAllWindows)
        live = src.kind in LIVE_KINDS and opts.live_latest
        reader = ReadAhead(src.frames(), depth=1 if live else READ_AHEAD, stop_source=src.stop, latest_only=live)
        stack.callback(reader.close)
        t_prev = time.perf_counter()
        for fr in _frames_with_interrupt(iter(reader), state):
            result = model.predict(fr.image_bgr, **pred_args)[0]
            if governor is not None:
                governor.tick()
            h, w = fr.image_bgr.shape[:2]
            t_poly = time.perf_counter()
            instances = result_instances(result, names)  # polygons: Ultralytics traces them when asked (masks.xy)
            changed = (
                apply_order_fix(instances, chains, names, opts.order_move_penalty, opts.order_skip_cost)
                if chains is not None
                else 0
            )
            t_draw = time.perf_counter()
            per_frame = fr.is_video or fr.frame > 0
            name = f"{fr.stem}_{fr.frame:06d}" if per_frame else fr.stem
            # The FPS is measured before drawing, so the first frame (and a single image) shows one too: the time
            # since the last frame was done (since the start for the first), inference included.
            now = time.perf_counter()
            inst_fps = 1.0 / max(now - t_prev, 1e-6)
            fps_ema = inst_fps if fps_ema is None else (1 - FPS_SMOOTHING) * fps_ema + FPS_SMOOTHING * inst_fps
            t_prev = now
            if opts.save_annotated or show:
                img = draw_frame(fr.image_bgr, instances, colors, fps_ema, opts.mask_alpha, opts.line_width)
                if opts.save_annotated:
                    if fr.is_video:
                        wr = writers.get(fr.stem)
                        if wr is None:
                            fourcc = cv2.VideoWriter.fourcc(*opts.video_codec)
                            fps_out = fr.fps or opts.video_fps
                            wr = cv2.VideoWriter(str(annotated_dir / f"{fr.stem}.mp4"), fourcc, fps_out, (w, h))
                            if not wr.isOpened():
                                raise UserError(f"cannot write a video with codec {opts.video_codec!r}")
                            writers[fr.stem] = BackgroundWriter(wr)
                        wr.write(img)
                    else:
                        from yolo_spine.io.xray import write_png

                        write_png(annotated_dir / f"{name}.png", img)
                    counts["annotated"] += 1
                if show:
                    cv2.imshow("yolo_spine", img)
                    if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                        state["interrupted"] = True
            if opts.save_txt:
                from yolo_spine.io.labels import write_yolo_labels

                write_yolo_labels(labels_dir / f"{name}.txt", _label_instances(instances, w, h))
                counts["label_files"] += 1
            if seg_algorithm is not None and fr.frame == 0:
                status = write_frame_seg(fr, instances, reg, seg_algorithm, tmp / "dicom_seg" / f"{name}.dcm")
                if status == "written":
                    counts["dicom_seg"] += 1
                else:
                    counts["dicom_seg_skipped"][status] = counts["dicom_seg_skipped"].get(status, 0) + 1
            ms_draw = (time.perf_counter() - t_draw) * 1000.0
            speed = result.speed or {}
            ms = {
                "pre": round(float(speed.get("preprocess") or 0.0), 2),
                "infer": round(float(speed.get("inference") or 0.0), 2),
                "post": round(float(speed.get("postprocess") or 0.0), 2),
                "polygons": round((t_draw - t_poly) * 1000.0, 2),
                "draw": round(ms_draw, 2),
            }
            record = {
                "source": fr.source,
                "frame": fr.frame,
                "width": w,
                "height": h,
                "instances": instances,
                "ms": ms,
            }
            jsonl.write(json.dumps(record, separators=(",", ":")) + "\n")
            counts["frames"] += 1
            counts["instances"] += len(instances)
            counts["order_changed"] += changed
            for k in ms_sum:
                ms_sum[k] += ms[k]
            if counts["frames"] == WARMUP_FRAMES:
                t_warm = t_prev  # frame 10 was ready to draw: fps_steady counts whole periods from here
            if state["interrupted"]:
                break
        close_writers()
        jsonl.flush()
        counts["skipped_live"] = reader.skipped
        wall = time.perf_counter() - t_start
        n = max(counts["frames"], 1)
        manifest = run_manifest(
            "predict",
            {**opts.record(), "conf": conf_value, "source": str(source), "weights": Path(weights), "out": out},
            inputs={"weights": weights},
            extra={
                "model": {"format": fmt, "names": names, "anatomy": reg.name if reg is not None else None},
                "conf": {"value": conf_value, **conf_record},
                "source": {"kind": src.kind, "description": src.description},
                "counts": counts,
                "dropped": {"count": len(src.dropped), "inputs": src.dropped},
                "interrupted": state["interrupted"],
                # what inference ran on, not only what was asked (with the governor: what it started with)
                "torch_threads": governor.max_threads if governor is not None else torch.get_num_threads(),
                "thread_governor": None
                if governor is None
                else {"threads_at_end": governor.threads, "changes": governor.changes},
                "runtime_threads": threads_used,  # torch's, and ONNX Runtime's or OpenVINO's for an export
                "wall_seconds": round(wall, 3),
                "fps": round(counts["frames"] / wall, 2) if wall > 0 else None,
                # after the warm-up frames: the rate a long stream settles at (None for short runs)
                "fps_steady": (
                    round((counts["frames"] - WARMUP_FRAMES) / (t_prev - t_warm), 2)
                    if t_warm is not None and counts["frames"] >= 2 * WARMUP_FRAMES and t_prev > t_warm
                    else None
                ),
                "mean_ms": {k: round(v / n, 2) for k, v in ms_sum.items()},
                "outputs": {
                    "predictions": "predictions.jsonl",
                    "annotated": "annotated/" if opts.save_annotated else None,
                    "labels": "labels/" if opts.save_txt else None,
                    "dicom_seg": "dicom_seg/" if opts.dicom_seg else None,
                },
            },
        )
        run_record = cast(PredictRunRecord, manifest)  # run_manifest adds `extra` to its own keys
        write_json_atomic(tmp / "run.json", run_record)
    if counts["frames"] == 0 and not state["interrupted"]:
        log.warning("no frame was predicted (see run.json: dropped)")
    # The command prints the summary a user reads (predict.commands); this is for callers of the library only.
    log.debug(
        "%d frames, %d instances%s, %.1f FPS -> %s",
        counts["frames"],
        counts["instances"],
        f" ({counts['order_changed']} relabelled by the order fix)" if opts.order_fix else "",
        run_record["fps"] or 0.0,
        out,
    )
    return run_record
