"""Benchmark real-time prediction on the CPU: frames per second of plain Ultralytics against ``yolo_spine predict``.

One synthetic X-ray-like video (square frames of ``--imgsz`` pixels), one YOLO11n-seg built from its YAML
(random weights: speed does not depend on what the weights learned), every backend in the same run, each run in
its own process, runs alternating so drifting load hits all of them:

* **plain** — Ultralytics' defaults as a user would call them: ``YOLO(pt).predict(source=video, stream=True,
  save=True)`` (annotated video written, like ours), Ultralytics' own thread count;
* **ours (PyTorch)** — ``yolo_spine predict`` with the same ``.pt`` (jsonl + annotated video, FPS drawn);
* **ours (ONNX Runtime)**, **ours (OpenVINO FP32)** and, with ``--int8``, **ours (OpenVINO INT8)** — the same
  command on models written by ``yolo_spine export``.

FPS = frames / time from the first frame read to the last frame written (model loading excluded, warm-up
included, the same for all). Medians over ``--repeat`` runs; ratio against plain.

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
from yolo_spine.ultra import configure_environment

PLAIN = """
import sys, time
from ultralytics import YOLO
model = YOLO(sys.argv[1])
n, t0 = 0, time.perf_counter()
for _ in model.predict(source=sys.argv[2], imgsz=int(sys.argv[3]), stream=True, save=True, verbose=False,
                       project=sys.argv[4], name="plain", exist_ok=True):
    n += 1
print(n / (time.perf_counter() - t0))
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

        fps: dict[str, list[float]] = {"plain Ultralytics (PyTorch)": [], **{k: [] for k in models}}
        for r in range(args.repeat):
            proc = run([py, "-c", PLAIN, pt, video, size, tmp / f"plain{r}"], env)
            fps["plain Ultralytics (PyTorch)"].append(float(proc.stdout.strip().splitlines()[-1]))
            for label, model in models.items():
                out = tmp / f"ours{r}_{label.split('(')[1][:-1].replace(' ', '_')}"
                run([py, "-m", "yolo_spine", "-q", "predict", "--weights", model, "--source", video, "--out", out,
                     "--imgsz", size, "--conf", "0.25"], env)  # fmt: skip
                fps[label].append(json.loads((out / "run.json").read_text())["fps"])
            print(f"run {r + 1}/{args.repeat}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in fps.items()))

    plain = statistics.median(fps["plain Ultralytics (PyTorch)"])
    rows = []
    for k, v in fps.items():
        med = statistics.median(v)
        rows.append(f"| {k} | {med:.1f} | {med / plain:.2f}× | {', '.join(f'{x:.1f}' for x in v)} |")
    body = "\n".join(
        [
            "## predict: frames per second on the CPU (YOLO11n-seg)",
            "",
            f"{args.frames} frames of {args.imgsz}×{args.imgsz} px (synthetic X-ray video), "
            f"inference at {args.imgsz} px, "
            f"median of {args.repeat} runs; annotated video written by every backend. Machine: {machine()}; "
            f"commit {git_rev()}.",
            "",
            "| backend | FPS (median) | vs plain | runs |",
            "|---|---|---|---|",
            *rows,
            "",
            f"Command: `{command_line()}`",
        ]
    )
    print(body)
    if not args.no_write:
        write_section("predict", body)


if __name__ == "__main__":
    main()
