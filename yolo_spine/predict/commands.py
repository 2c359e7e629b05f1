"""Subcommands of the ``predict`` stage (argparse only; library code is imported when a command runs)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from yolo_spine._cli_common import (
    MODEL_ANATOMY_HELP,
    add_anatomy,
    add_command,
    add_config,
    add_inference,
    add_out,
    add_record_paths,
    add_weights,
    say,
    stage_options,
)

if TYPE_CHECKING:
    from yolo_spine.predict.options import ExportOptions, PredictOptions


def _predict_options(args: argparse.Namespace) -> PredictOptions:
    from yolo_spine.predict.options import PredictOptions

    same = ("conf", "iou", "imgsz", "max_det", "device", "threads", "anatomy", "watch_timeout")
    on = ("order_fix", "save_txt", "dicom_seg", "show", "watch")
    return stage_options(PredictOptions, args, same=same, on=on, save_annotated=False if args.no_annotated else None)


def _predict(args: argparse.Namespace) -> int:
    opts = _predict_options(args)  # checked before the heavy imports
    from yolo_spine.predict.run import predict

    m = predict(args.weights, args.source, args.out, opts, review=args.review, overwrite=args.overwrite)
    c = m["counts"]
    dropped = m["dropped"]["count"]
    parts = [f"{c['frames']} frame(s), {c['instances']} instance(s) at confidence {m['conf']['value']:.3f}"]
    if m["options"]["order_fix"]:
        parts.append(f"{c['order_changed']} label(s) changed by the order fix")
    if dropped:
        parts.append(f"{dropped} input(s) unreadable (see run.json)")
    if m["options"].get("dicom_seg"):
        skipped = sum(c.get("dicom_seg_skipped", {}).values())
        parts.append(f"{c.get('dicom_seg', 0)} DICOM SEG(s) written, {skipped} input(s) without one (see run.json)")
    if c.get("skipped_live"):
        parts.append(f"{c['skipped_live']} live frame(s) skipped while the model was busy")
    say(f"{', '.join(parts)}; {m['fps'] or 0:.1f} FPS; outputs: {args.out}")
    return 0


def _export_options(args: argparse.Namespace) -> ExportOptions:
    from yolo_spine.predict.options import ExportOptions

    same = ("format", "imgsz", "max_drop", "eval_split", "accuracy_aware")
    return stage_options(ExportOptions, args, same=same, on=("int8", "dynamic"))


def _export(args: argparse.Namespace) -> int:
    opts = _export_options(args)
    from yolo_spine.predict.export import export_model

    path = export_model(args.weights, opts, out=args.out, data=args.data, overwrite=args.overwrite)
    if opts.int8:
        import json

        from yolo_spine.predict.export import Int8Check

        say(Int8Check(**json.loads(Path(f"{path}.json").read_text(encoding="utf-8"))["int8_check"]).sentence())
    say(f"exported: {path}")
    return 0


def _imgsz(text: str) -> int | list[int]:
    parts = [int(p) for p in text.replace("x", ",").split(",") if p.strip()]
    if len(parts) not in (1, 2) or min(parts) <= 0:
        raise argparse.ArgumentTypeError(f"expected a size such as 640 or 384,640 (height,width), not {text!r}")
    return parts[0] if len(parts) == 1 else parts


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``predict`` and ``export``."""
    p = add_command(
        sub,
        "predict",
        "segment a webcam, video, stream, image or folder of X-rays (16-bit PNG/TIFF, DICOM) with FPS on screen",
        _predict,
        description="Predict with a YOLO segmentation model (.pt, .onnx or OpenVINO folder). Writes "
        "predictions.jsonl, annotated images/video, optional YOLO-seg label files with confidences, and run.json. "
        "Defaults: configs/predict/default.yaml.",
    )
    add_weights(p)
    p.add_argument(
        "--source",
        required=True,
        help="webcam index (0), video file, stream URL, image, folder, or a .streams/.txt file of sources",
    )
    add_out(p, "output folder")
    add_inference(p, conf_help="confidence threshold or 'auto' (best F1 of the review; default 0.25)")
    p.add_argument("--review", type=Path, default=None, help="review metrics.json or folder for --conf auto")
    add_config(p, "predict")
    p.add_argument("--iou", type=float, default=None, help="NMS IoU threshold")
    p.add_argument("--imgsz", type=int, default=None, help="inference size (default: the model's)")
    p.add_argument("--max-det", type=int, default=None, help="most instances per frame")
    add_anatomy(p, default=None, help=MODEL_ANATOMY_HELP)
    p.add_argument(
        "--order-fix", action="store_true", help="relabel so levels increase along the anatomy without duplicates"
    )
    p.add_argument("--save-txt", action="store_true", help="write labels/<stem>.txt (YOLO-seg + confidence)")
    p.add_argument(
        "--dicom-seg",
        action="store_true",
        help="write dicom_seg/<stem>.dcm, a DICOM Segmentation of each single-frame DICOM input (not for clinical use)",
    )
    p.add_argument("--no-annotated", action="store_true", help="do not write annotated images/video")
    p.add_argument("--show", action="store_true", help="show the annotated frames in a window (when a display exists)")
    p.add_argument("--watch", action="store_true", help="keep processing new images as they appear in the folder")
    p.add_argument("--watch-timeout", type=float, default=None, help="stop watching after this many idle seconds")
    add_record_paths(p)

    e = add_command(
        sub,
        "export",
        "export a .pt segmentation model to ONNX or OpenVINO (optionally INT8) for CPU real time",
        _export,
        description="Export for CPU real time; predict and val accept the result. Needs the export extra: "
        "pip install -e .[export].",
    )
    e.add_argument("--weights", type=Path, required=True, help=".pt checkpoint")
    e.add_argument("--format", default=None, choices=["onnx", "openvino"], help="target runtime (default: onnx)")
    add_out(e, "exported file or folder (default: beside the weights, named as Ultralytics does)", required=False)
    e.add_argument("--imgsz", type=_imgsz, default=None, help="input size: 640 or height,width (default: training)")
    e.add_argument(
        "--int8",
        action="store_true",
        help="OpenVINO INT8 quantisation (needs --data); refused when its mask mAP50-95 falls more than --max-drop "
        "below FP32",
    )
    e.add_argument(
        "--data",
        type=Path,
        default=None,
        metavar="DATA_YAML",
        help="dataset for --int8: calibration images (train split by default) and the split the drop is measured on",
    )
    e.add_argument(
        "--max-drop",
        type=float,
        default=None,
        metavar="POINTS",
        help="--int8: largest accepted drop of mask mAP50-95 against FP32, points of 100 (default 1)",
    )
    e.add_argument(
        "--eval-split",
        default=None,
        choices=["train", "val", "test"],
        help="--int8: split on which INT8 is compared with FP32 (default val; calibration never uses test)",
    )
    e.add_argument(
        "--accuracy-aware",
        default=None,
        choices=["auto", "always", "never"],
        help="--int8: NNCF accuracy-aware quantisation (sensitive layers kept in FP32, tuned on val; minutes) when "
        "plain INT8 misses --max-drop (auto, the default), instead of it (always), or never",
    )
    e.add_argument("--dynamic", action="store_true", help="dynamic input shapes (rectangular frames)")
    add_record_paths(e)
    add_config(e, "export")
