"""Benchmark INT8 accuracy: mask mAP of the ``.pt``, OpenVINO FP32 and OpenVINO INT8 on a held-out test split.

The README recommends OpenVINO INT8 for real time on the CPU; this measures what it costs in accuracy, on the demo's
test split (slabs and poses of the example CT that training never saw), for the model the demo trained:

1. ``yolo_spine export --format openvino`` (FP32) and ``yolo_spine export --format openvino --int8`` (NNCF
   post-training quantisation, Ultralytics' recipe, calibrated on ``--calibration-split``: train by default, never
   test; its own guard validates on val and is given ``--max-drop 100`` here so the model is written whatever it
   finds: this script measures the drop on test instead);
2. mask mAP50-95 and mAP50 of the ``.pt``, FP32 and INT8 on ``--split`` (test), with Ultralytics' validator as
   ``export`` uses it (conf 0.001, batch 1, the export's input size); the drop is ``100 × (FP32 − INT8)`` points;
3. when the plain INT8 drop exceeds ``--max-drop`` (1 point; ``--accuracy-aware always`` forces it, ``never`` skips
   it): ``yolo_spine export --int8 --accuracy-aware always`` (:mod:`yolo_spine.predict.quantize`: NNCF's
   ``quantize_with_accuracy_control``, which quantises like step 1 and then returns the layers whose quantisation
   costs most to FP32 until the metric on val is within ``--max-drop``). Calibration on the calibration split, the
   metric (mask mAP50-95 by Ultralytics' validator) on val, layers ranked by how far their INT8 outputs move from
   FP32 on val images: the test split is used only for the final figures. Both INT8 models are reported.

    python scripts/bench_int8.py --data DEMO/dataset/data.yaml --weights DEMO/train/weights/best.pt
    python scripts/bench_int8.py --data DS/data.yaml \
        --weights yolo_spine/weights/yolo11n-seg-spine-phantoms.pt --no-write
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scripts._bench import ROOT, command_line, git_rev, machine, write_section
from yolo_spine.io.labels import split_images
from yolo_spine.predict.quantize import fake_quantize_ops

#: What this section measures (scripts/check_benchmarks.py).
MEASURES = ["scripts/bench_int8.py", "yolo_spine/predict/export.py", "configs/export/"]


def run(cmd: list[Any], env: dict[str, str]) -> None:
    """Run a command; on failure stop with the end of its error output."""
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env)
    if proc.returncode:
        raise SystemExit(f"{' '.join(map(str, cmd[:6]))} failed:\n{proc.stderr[-3000:]}")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="dataset data.yaml (the demo's dataset/data.yaml)")
    ap.add_argument("--weights", type=Path, required=True, help="trained .pt (the demo's train/weights/best.pt)")
    ap.add_argument("--split", default="test", help="split the accuracy is measured on (default: test)")
    ap.add_argument("--calibration-split", default="train", choices=["train", "val"])
    ap.add_argument("--imgsz", type=int, help="export and validation size (default: the size the model trained at)")
    ap.add_argument("--max-drop", type=float, default=1.0, help="points of mask mAP50-95 (default 1)")
    ap.add_argument(
        "--accuracy-aware",
        choices=["auto", "always", "never"],
        default="auto",
        help="NNCF accuracy-aware quantisation: when plain INT8 misses --max-drop (auto), always, never",
    )
    ap.add_argument("--threads", type=int, help="torch threads of this process (default: every core)")
    ap.add_argument("--no-write", action="store_true", help="print the section, leave BENCHMARKS.md alone")
    args = ap.parse_args()
    if args.split in ("train", "val") or args.split == args.calibration_split:
        ap.error("--split must be a held-out split (test), not one that calibrates or tunes the quantisation")
    return args


def main() -> None:
    args = parse_args()
    from yolo_spine.predict.export import mask_map
    from yolo_spine.provenance import sha256_file
    from yolo_spine.train.train import checkpoint_meta
    from yolo_spine.ultra import import_ultralytics

    import_ultralytics(threads=args.threads)
    pt, data = args.weights.resolve(), args.data.resolve()
    n_test, n_calib, n_val = (len(split_images(data, s)) for s in (args.split, args.calibration_split, "val"))
    trained = checkpoint_meta(pt)["train_args"].get("imgsz") or 640
    size = args.imgsz or int(trained if isinstance(trained, int) else max(trained))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    rows: dict[str, tuple[float, float]] = {}
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench_int8_") as tmp_str:
        tmp = Path(tmp_str)
        fp32, int8 = tmp / "fp32_openvino_model", tmp / "int8_openvino_model"
        common = [sys.executable, "-m", "yolo_spine", "-q", "export", "--weights", pt, "--format", "openvino",
                  "--imgsz", size]  # fmt: skip
        run([*common, "--out", fp32], env)
        t0 = time.perf_counter()
        calibrate = ["--int8", "--data", data, "--set", f"calibration_split={args.calibration_split}"]
        run([*common, *calibrate, "--accuracy-aware", "never", "--max-drop", "100", "--out", int8], env)
        ptq_s = time.perf_counter() - t0
        guard = json.loads(Path(f"{int8}.json").read_text())["int8_check"]
        for name, model in (("pt", pt), ("fp32", fp32), ("int8", int8)):
            rows[name] = mask_map(model, data, args.split, size, tmp / "val")
            print(name, rows[name], flush=True)
        drop = 100 * (rows["fp32"][0] - rows["int8"][0])
        aaq: dict[str, Any] | None = None
        if args.accuracy_aware == "always" or (args.accuracy_aware == "auto" and drop > args.max_drop):
            aaq_dir = tmp / "int8_aaq_openvino_model"
            t0 = time.perf_counter()
            run([*common, *calibrate, "--accuracy-aware", "always", "--max-drop", args.max_drop, "--out", aaq_dir], env)
            aaq = {
                **json.loads(Path(f"{aaq_dir}.json").read_text())["int8_check"],
                "export_s": time.perf_counter() - t0,
            }
            rows["int8_aaq"] = mask_map(aaq_dir, data, args.split, size, tmp / "val")
            print("int8_aaq", rows["int8_aaq"], aaq, flush=True)
        fq = {"int8": fake_quantize_ops(int8), **({"int8_aaq": fake_quantize_ops(aaq_dir)} if aaq else {})}
    if 100 * rows["fp32"][0] <= args.max_drop:
        notes.append(
            f"FP32 itself scores {100 * rows['fp32'][0]:.2f} ≤ {args.max_drop:g} points on {args.split}: no drop "
            "can exceed the limit, so this measurement cannot fail; re-run it on a model that segments."
        )
    body = report(args, size, sha256_file(pt), (n_test, n_calib, n_val), rows, guard, ptq_s, aaq, fq, notes)
    print(body)
    if not args.no_write:
        write_section("int8", body, MEASURES)


def report(
    args: argparse.Namespace,
    size: int,
    sha: str,
    counts: tuple[int, int, int],
    rows: dict[str, tuple[float, float]],
    guard: dict[str, Any],
    ptq_s: float,
    aaq: dict[str, Any] | None,
    fq: dict[str, int],
    notes: list[str],
) -> str:
    """The BENCHMARKS.md section."""
    n_test, n_calib, n_val = counts
    fp32 = rows["fp32"][0]
    labels = {
        "pt": "PyTorch `.pt`",
        "fp32": "OpenVINO FP32",
        "int8": f"OpenVINO INT8, post-training ({fq['int8']} FakeQuantize)",
        "int8_aaq": f"OpenVINO INT8, accuracy-aware ({fq.get('int8_aaq', 0)} FakeQuantize)",
    }
    table = []
    for key, (m, m50) in rows.items():
        drop = "–" if key in ("pt", "fp32") else f"{100 * (fp32 - m):.2f}"
        verdict = "" if key in ("pt", "fp32") else (" (met)" if 100 * (fp32 - m) <= args.max_drop else " (**MISSED**)")
        table.append(f"| {labels[key]} | {100 * m:.2f} | {100 * m50:.2f} | {drop}{verdict} |")
    lines = [
        "## INT8 accuracy (OpenVINO, NNCF) on a held-out split",
        "",
        f"Model `{args.weights.name}` (SHA-256 {sha[:12]}) at {size} px; dataset `{args.data.parent.name}/"
        f"{args.data.name}`: accuracy on **{args.split}** ({n_test} images), calibration on {args.calibration_split} "
        f"({n_calib} images), accuracy-aware tuning on val ({n_val} images). Ultralytics' validator, conf 0.001, "
        f"batch 1. Target: INT8 mask mAP50-95 within {args.max_drop:g} point of FP32. Machine: {machine()}; commit "
        f"{git_rev(MEASURES)}.",
        "",
        "| model | mask mAP50-95 (%) | mask mAP50 (%) | drop vs FP32 (points) |",
        "|---|---|---|---|",
        *table,
        "",
        f"Post-training INT8 export: {ptq_s:.0f} s (FP32 reference export and the guard's validation on "
        f"{guard['eval_split']} included); the guard's own figure on {guard['eval_split']}: drop "
        f"{guard['drop_points']:.2f} points.",
    ]
    if aaq:
        aa = aaq["accuracy_aware"]
        lines.append(
            f"Accuracy-aware INT8 (`yolo_spine export --int8 --accuracy-aware always`): {aaq['export_s']:.0f} s in "
            f"all, of which NNCF's `quantize_with_accuracy_control` {aa['seconds']:.0f} s, {aa['validations']} "
            f"validations on {aa['tuning_split']} (max_drop {args.max_drop / 100:g} absolute); {aa['tuning_split']} "
            "mask mAP50-95 (%) at each whole-split validation (FP32, INT8, then each model with layers restored): "
            f"{', '.join(f'{100 * m:.2f}' for m in aa['split_metrics'])}; the export's guard on "
            f"{aaq['eval_split']}: drop {aaq['drop_points']:.2f} points."
        )
    else:
        lines.append(
            "Accuracy-aware quantisation not run: "
            + ("`--accuracy-aware never`." if args.accuracy_aware == "never" else "plain post-training INT8 met it.")
        )
    lines += [*notes, "", f"Command: `{command_line()}`"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
