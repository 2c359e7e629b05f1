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
   it): NNCF's accuracy-aware quantisation (``nncf.quantize_with_accuracy_control``, offline, in the installed
   NNCF), which quantises like step 1 and then returns the layers whose quantisation costs most to FP32 until the
   validation metric is within ``--max-drop``. Calibration on the calibration split, the metric (mask mAP50-95 by
   Ultralytics' validator) on val, layers ranked by how far their INT8 outputs move from FP32 on val images: the
   test split is used only for the final figures. Both INT8 models are reported.

    python scripts/bench_int8.py --data DEMO/dataset/data.yaml --weights DEMO/train/weights/best.pt
    python scripts/bench_int8.py --data DS/data.yaml \
        --weights yolo_spine/weights/yolo11n-seg-spine-phantoms.pt --no-write
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scripts._bench import ROOT, command_line, git_rev, machine, write_section

#: What this section measures (scripts/check_benchmarks.py).
MEASURES = ["scripts/bench_int8.py", "yolo_spine/predict/export.py", "configs/export/"]


def run(cmd: list[Any], env: dict[str, str]) -> None:
    """Run a command; on failure stop with the end of its error output."""
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env)
    if proc.returncode:
        raise SystemExit(f"{' '.join(map(str, cmd[:6]))} failed:\n{proc.stderr[-3000:]}")


def split_images(data: Path, split: str) -> list[Path]:
    """The images of one split of a dataset, sorted."""
    from yolo_spine.io.labels import read_data_yaml
    from yolo_spine.io.xray import XRAY_SUFFIXES

    folder = read_data_yaml(data).image_dirs.get(split)
    if not folder or not folder.is_dir():
        raise SystemExit(f"{data} has no '{split}' split")
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in XRAY_SUFFIXES)
    if not images:
        raise SystemExit(f"{data}: the '{split}' split has no images")
    return images


def preprocess(path: Path, size: int) -> Any:
    """An image as the exported network takes it: letterboxed like the validator's, RGB, float32 in 0..1.

    Returns:
        ``(1, 3, size, size)`` array.
    """
    import cv2
    import numpy as np
    from ultralytics.data.augment import LetterBox

    img = LetterBox(new_shape=(size, size), scaleup=False)(image=cv2.imread(str(path), cv2.IMREAD_COLOR))
    return np.ascontiguousarray(img[..., ::-1].transpose(2, 0, 1))[None].astype(np.float32) / 255.0


@contextlib.contextmanager
def compiled_model_as(compiled: Any) -> Iterator[None]:
    """While inside, every ``openvino.Core.compile_model`` returns ``compiled``.

    Ultralytics' validator then runs a model NNCF holds in memory through its usual OpenVINO backend (reading the
    FP32 folder for class names and input size).
    """
    import openvino as ov

    original = ov.Core.compile_model
    ov.Core.compile_model = lambda self, *a, **k: compiled  # type: ignore[method-assign]
    try:
        yield
    finally:
        ov.Core.compile_model = original  # type: ignore[method-assign]


def head_ignored_scope(ov_model: Any) -> Any:
    """Ultralytics' INT8 recipe keeps the detection head's box decoding (its DFL and sigmoids) in FP32."""
    import nncf

    ops = ov_model.get_ordered_ops()
    sigmoids = [op.get_friendly_name() for op in ops if op.get_type_name() == "Sigmoid"]
    head = sigmoids[-1].split("/", 1)[0]
    names = [
        op.get_friendly_name()
        for op in ops
        if op.get_type_name() == "Sigmoid" or op.get_friendly_name().startswith((f"{head}/", f"{head}.dfl"))
    ]
    return nncf.IgnoredScope(names=names, validate=False)


def accuracy_aware_int8(
    fp32: Path, data: Path, calibration_split: str, size: int, max_drop: float, out: Path, scratch: Path
) -> dict[str, Any]:
    """Quantise the FP32 OpenVINO export with NNCF's accuracy control; write it to ``out``; return its record."""
    import nncf
    import openvino as ov
    import yaml
    from nncf.openvino.engine import OVCompiledModelEngine

    from yolo_spine.io.labels import read_data_yaml
    from yolo_spine.predict.export import mask_map
    from yolo_spine.ultra import quiet_loggers

    names = dict(enumerate(read_data_yaml(data).names))
    calib = split_images(data, calibration_split)
    val = split_images(data, "val")
    calls = {"n": 0}
    val_metrics: list[float] = []

    def validate(compiled: Any, items: Any) -> tuple[float, list[list[Any]]]:
        # The metric over the given val images (Ultralytics' validator on a list file); the per-image outputs
        # of the network let NNCF rank layers by output change instead of re-validating image by image.
        paths = [Path(p) for p in items]
        calls["n"] += 1
        listing = scratch / f"val_{calls['n']}.txt"
        listing.write_text("\n".join(str(p) for p in paths) + "\n")
        doc = {"path": str(scratch), "train": str(listing), "val": str(listing), "names": names}
        yaml_path = scratch / f"val_{calls['n']}.yaml"
        yaml_path.write_text(yaml.safe_dump(doc, sort_keys=False))
        with compiled_model_as(compiled):
            metric, _ = mask_map(fp32, yaml_path, "val", size, scratch)
        if len(paths) == len(val):  # the whole val split: NNCF's initial, quantised and each restored model
            val_metrics.append(metric)
        engine = OVCompiledModelEngine(compiled, stateful=False)  # NNCF's own engine: its outputs, its order
        outputs = [list(engine.infer(preprocess(p, size)).values()) for p in paths]
        return metric, outputs

    core = ov.Core()
    model = core.read_model(str(next(fp32.glob("*.xml"))))
    t0 = time.perf_counter()
    with quiet_loggers("nncf"):  # one INFO line per operation it leaves unquantised; the figures are kept below
        quantized = nncf.quantize_with_accuracy_control(
            model,
            calibration_dataset=nncf.Dataset(calib, lambda p: preprocess(Path(p), size)),
            validation_dataset=nncf.Dataset([str(p) for p in val], lambda p: preprocess(Path(p), size)),
            validation_fn=validate,
            max_drop=max_drop / 100.0,
            drop_type=nncf.DropType.ABSOLUTE,
            preset=nncf.QuantizationPreset.MIXED,
            subset_size=len(calib),
            ignored_scope=head_ignored_scope(model),
        )
    seconds = time.perf_counter() - t0
    out.mkdir(parents=True)
    ov.save_model(quantized, str(out / f"{out.name}.xml"), compress_to_fp16=False)
    shutil.copy(fp32 / "metadata.yaml", out / "metadata.yaml")
    fq = sum(1 for op in quantized.get_ordered_ops() if op.get_type_name() == "FakeQuantize")
    return {"seconds": seconds, "validations": calls["n"], "fake_quantize": fq, "val_metrics": val_metrics}


def fake_quantize_ops(folder: Path) -> int:
    """FakeQuantize operations in an OpenVINO model (0: not quantised)."""
    return next(folder.glob("*.xml")).read_text().count('type="FakeQuantize"')


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
        run([*common, "--int8", "--data", data, "--set", f"calibration_split={args.calibration_split}",
             "--max-drop", "100", "--out", int8], env)  # fmt: skip
        ptq_s = time.perf_counter() - t0
        guard = json.loads(Path(f"{int8}.json").read_text())["int8_check"]
        for name, model in (("pt", pt), ("fp32", fp32), ("int8", int8)):
            rows[name] = mask_map(model, data, args.split, size, tmp / "val")
            print(name, rows[name], flush=True)
        drop = 100 * (rows["fp32"][0] - rows["int8"][0])
        aaq: dict[str, Any] | None = None
        if args.accuracy_aware == "always" or (args.accuracy_aware == "auto" and drop > args.max_drop):
            aaq_dir = tmp / "int8_aaq_openvino_model"
            (tmp / "aaq").mkdir()
            aaq = accuracy_aware_int8(fp32, data, args.calibration_split, size, args.max_drop, aaq_dir, tmp / "aaq")
            rows["int8_aaq"] = mask_map(aaq_dir, data, args.split, size, tmp / "val")
            print("int8_aaq", rows["int8_aaq"], aaq, flush=True)
        fq = {"int8": fake_quantize_ops(int8), **({"int8_aaq": aaq["fake_quantize"]} if aaq else {})}
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
        lines.append(
            f"Accuracy-aware INT8: {aaq['seconds']:.0f} s, {aaq['validations']} validations on val "
            f"(`nncf.quantize_with_accuracy_control`, max_drop {args.max_drop / 100:g} absolute); val mask "
            f"mAP50-95 (%) at each whole-split validation (FP32, INT8, then each model with layers restored): "
            f"{', '.join(f'{100 * m:.2f}' for m in aaq['val_metrics'])}."
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
