"""Benchmark real-time prediction on the CPU: frames per second of plain Ultralytics against ``yolo_spine predict``.

One synthetic X-ray-like video (square frames of ``--imgsz`` pixels), one YOLO11n-seg built from its YAML
(random weights: speed does not depend on what the weights learned), every backend in the same run, each run in
its own process, runs alternating so drifting load hits all of them:

* **plain** — Ultralytics' defaults as a user would call them: ``YOLO(pt).predict(source=video, stream=True,
  save=True)`` (annotated video written, like ours), Ultralytics' own thread count;
* **ours (PyTorch)** — ``yolo_spine predict`` with the same ``.pt`` (jsonl + annotated video, FPS drawn);
* **ours (ONNX Runtime)**, **ours (OpenVINO FP32)** and, with ``--int8``, **ours (OpenVINO INT8)** — the same
  command on models written by ``yolo_spine export``.

Each tool loads its model and runs it once on a blank frame before the clock starts. Two rates: **steady** —
frames after the first ``WARMUP_FRAMES`` (10) over their time, what a live stream settles at, the figure the
target is about; **whole run** — all frames from the first read to the last written. Medians over ``--repeat``
runs; ratios against plain on the steady rate.

    python scripts/bench_predict.py                              # 640 px, 150 frames, 3 runs, with INT8
    python scripts/bench_predict.py --imgsz 320 --frames 20 --repeat 1 --no-write   # quick check
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scripts._bench import command_line, git_rev, machine, write_section
from yolo_spine.predict.run import WARMUP_FRAMES
from yolo_spine.ultra import configure_environment

#: What this section measures (scripts/check_benchmarks.py).
MEASURES = ["scripts/bench_predict.py", "yolo_spine/predict/", "yolo_spine/ultra.py", "configs/predict/"]

PLAIN = """
import sys, time
import numpy as np
from ultralytics import YOLO
model = YOLO(sys.argv[1])
size, warm = int(sys.argv[3]), int(sys.argv[5])
model.predict(np.zeros((size, size, 3), np.uint8), imgsz=size, verbose=False)  # load + warm up, like ours
n, t0, t_warm = 0, time.perf_counter(), None
for _ in model.predict(source=sys.argv[2], imgsz=size, stream=True, save=True, verbose=False,
                       project=sys.argv[4], name="plain", exist_ok=True):
    n += 1
    if n == warm:
        t_warm = time.perf_counter()
t1 = time.perf_counter()
print(n / (t1 - t0), (n - warm) / (t1 - t_warm))
"""


def make_video(path: Path, size: int, frames: int) -> Path:
    """A drifting spine-like phantom (bright blocks on a dark, noisy background), MJPG in AVI."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    wr = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (size, size))
    base = rng.normal(40, 12, (size, size)).clip(0, 255).astype(np.uint8)
    for k in range(frames):
        img = base.copy()
        for j in range(8):
            y = int((j + 0.5) * size / 8 + 3 * np.sin(k / 5))
            cv2.ellipse(img, (size // 2 + k % 7, y), (size // 10, size // 22), 0, 0, 360, 200, -1)
        wr.write(cv2.cvtColor(img, cv2.COLOR_GRAY2BGR))
    wr.release()
    return path


def run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise SystemExit(f"{' '.join(map(str, cmd[:5]))} failed:\n{proc.stderr[-3000:]}")
    return proc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--int8", action=argparse.BooleanOptionalAction, default=True, help="include OpenVINO INT8")
    ap.add_argument("--no-write", action="store_true", help="print the table, leave BENCHMARKS.md alone")
    args = ap.parse_args()

    config_dir = configure_environment()
    env = {**os.environ, "YOLO_OFFLINE": "1", "YOLO_CONFIG_DIR": str(config_dir)}
    env.pop("OMP_NUM_THREADS", None)  # each tool chooses its threads, as from a user's shell
    py = sys.executable
    with tempfile.TemporaryDirectory(prefix="bench_predict_") as tmp_str:
        tmp = Path(tmp_str)
        pt = tmp / "yolo11n-seg.pt"
        run(
            [py, "-c", f"from yolo_spine.ultra import import_ultralytics; import_ultralytics(); "
             f"from ultralytics import YOLO; YOLO('yolo11n-seg.yaml').save({str(pt)!r})"],
            env,
        )  # fmt: skip
        video = make_video(tmp / "xray.avi", args.imgsz, args.frames)
        models = {"ours (PyTorch)": pt}
        size = str(args.imgsz)
        for fmt, label in (("onnx", "ours (ONNX Runtime)"), ("openvino", "ours (OpenVINO FP32)")):
            out = tmp / f"model_{fmt}" / ("m.onnx" if fmt == "onnx" else "m_openvino_model")
            run([py, "-m", "yolo_spine", "-q", "export", "--weights", pt, "--format", fmt, "--imgsz", size,
                 "--out", out], env)  # fmt: skip
            models[label] = out
        if args.int8:
            from yolo_spine.synth import make_xray_dataset

            data = make_xray_dataset(tmp / "calib", "spine", n_train=4, n_val=16, n_test=0, imgsz=args.imgsz)
            out = tmp / "model_int8" / "m_int8_openvino_model"
            run([py, "-m", "yolo_spine", "-q", "export", "--weights", pt, "--format", "openvino", "--int8",
                 "--data", data, "--imgsz", size, "--out", out], env)  # fmt: skip
            models["ours (OpenVINO INT8)"] = out

        plain_label = "plain Ultralytics (PyTorch)"
        fps: dict[str, list[float]] = {plain_label: [], **{k: [] for k in models}}
        steady: dict[str, list[float]] = {k: [] for k in fps}
        for r in range(args.repeat):
            proc = run([py, "-c", PLAIN, pt, video, size, tmp / f"plain{r}", str(WARMUP_FRAMES)], env)
            whole, settled = (float(x) for x in proc.stdout.strip().splitlines()[-1].split())
            fps[plain_label].append(whole)
            steady[plain_label].append(settled)
            for label, model in models.items():
                out = tmp / f"ours{r}_{label.split('(')[1][:-1].replace(' ', '_')}"
                run([py, "-m", "yolo_spine", "-q", "predict", "--weights", model, "--source", video, "--out", out,
                     "--imgsz", size, "--conf", "0.25"], env)  # fmt: skip
                manifest = json.loads((out / "run.json").read_text())
                fps[label].append(manifest["fps"])
                steady[label].append(manifest["fps_steady"])
            print(f"run {r + 1}/{args.repeat}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in steady.items()))

    plain = statistics.median(steady[plain_label])
    rows = []
    for k, v in steady.items():
        med = statistics.median(v)
        rows.append(
            f"| {k} | {med:.1f} | {med / plain:.2f}× | {statistics.median(fps[k]):.1f} | "
            f"{', '.join(f'{x:.1f}' for x in v)} |"
        )
    body = "\n".join(
        [
            "## predict: frames per second on the CPU (YOLO11n-seg)",
            "",
            f"{args.frames} frames of {args.imgsz}×{args.imgsz} px (synthetic X-ray video), "
            f"inference at {args.imgsz} px, "
            f"median of {args.repeat} runs; annotated video written by every backend. Machine: {machine()}; "
            f"commit {git_rev(MEASURES)}.",
            "",
            "| backend | FPS steady (median) | vs plain | FPS whole run (median) | steady, each run |",
            "|---|---|---|---|---|",
            *rows,
            "",
            f"Command: `{command_line()}`",
        ]
    )
    print(body)
    if not args.no_write:
        write_section("predict" if args.imgsz == 640 else f"predict-{args.imgsz}", body, MEASURES)


if __name__ == "__main__":
    main()
