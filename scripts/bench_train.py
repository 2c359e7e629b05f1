"""Benchmark CPU training throughput: ``yolo_spine train`` against plain ``yolo segment train``.

Same generated spine dataset, same model (YOLO11n-seg from its YAML), same size, batch, epochs and
augmentation, both offline with the same Ultralytics config folder; the runs alternate (plain, ours, plain,
ours …) so drifting load hits both. Throughput = training images × epochs / the ``time`` column Ultralytics writes
to ``results.csv`` for the last epoch, for both tools alike. That span is not training alone: Ultralytics validates
after the final epoch even with ``val=False`` (``final_epoch`` forces it), and the clock is read after that
validation, so it includes one pass over the validation images (and the checkpoints of the earlier epochs).

    python scripts/bench_train.py            # 96 images at 320 px, 2 epochs, 3 runs each
    python scripts/bench_train.py --quick    # 32 images at 160 px, 1 epoch, 1 run each
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scripts._bench import command_line, git_rev, machine, write_section
from yolo_spine.synth import make_xray_dataset
from yolo_spine.ultra import configure_environment

#: What this section measures (scripts/check_benchmarks.py).
MEASURES = ["scripts/bench_train.py", "yolo_spine/train/", "yolo_spine/ultra.py", "configs/train/", "yolo_spine/synth/"]


def train_seconds(run_dir: Path) -> float:
    """Training time from Ultralytics' results.csv (last row's cumulative ``time``)."""
    with open(run_dir / "results.csv") as f:
        rows = list(csv.DictReader(f))
    key = next(k for k in rows[-1] if k.strip() == "time")
    return float(rows[-1][key])


def run(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd[:4])} failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeat", type=int, default=None)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    n, imgsz, epochs, batch = (32, 160, 1, 8) if args.quick else (96, 320, 2, 8)
    repeat = args.repeat or (1 if args.quick else 3)
    n_val = 4
    config_dir = configure_environment()  # offline settings + local fonts, shared by both tools
    env = {**os.environ, "YOLO_OFFLINE": "1", "YOLO_CONFIG_DIR": str(config_dir)}
    env.pop("OMP_NUM_THREADS", None)  # let each tool choose its threads, as a user's shell would
    yolo_cli = str(Path(sys.executable).with_name("yolo"))
    same = [
        f"epochs={epochs}",
        f"imgsz={imgsz}",
        f"batch={batch}",
        "device=cpu",
        "val=False",
        "plots=False",
        "hsv_h=0.0",
        "hsv_s=0.0",
        "seed=0",
    ]
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmpd:
        tmp = Path(tmpd)
        data = make_xray_dataset(tmp / "ds", "spine", n_train=n, n_val=n_val, n_test=0, imgsz=imgsz, seed=0)
        ours, plain, ours_wall, plain_wall = [], [], [], []
        for k in range(repeat):
            d = tmp / f"plain{k}"
            plain_wall.append(
                run(
                    [
                        yolo_cli,
                        "segment",
                        "train",
                        "model=yolo11n-seg.yaml",
                        f"data={data}",
                        *same,
                        f"project={tmp}",
                        f"name=plain{k}",
                        "exist_ok=True",
                    ],
                    env,
                )
            )
            plain.append(n * epochs / train_seconds(d))
            o = tmp / f"ours{k}"
            ours_wall.append(
                run(
                    [
                        sys.executable,
                        "-m",
                        "yolo_spine",
                        "-q",
                        "train",
                        "--data",
                        str(data),
                        "--out",
                        str(o),
                        "--epochs",
                        str(epochs),
                        "--imgsz",
                        str(imgsz),
                        "--batch",
                        str(batch),
                        "--device",
                        "cpu",
                        "--weights",
                        "none",  # from the YAML like plain (the default would start from the packaged checkpoint)
                        "--config",
                        str(_bench_preset(tmp)),
                    ],
                    env,
                )
            )
            ours.append(n * epochs / train_seconds(o))
            print(
                f"run {k + 1}: plain {plain[-1]:.2f} img/s ({plain_wall[-1]:.0f} s), "
                f"yolo_spine {ours[-1]:.2f} img/s ({ours_wall[-1]:.0f} s)"
            )
    mo, mp = statistics.median(ours), statistics.median(plain)
    text = "\n".join(
        [
            f"Machine: {machine()}; commit {git_rev(MEASURES)}; {time.strftime('%Y-%m-%d')}.",
            f"Command: `{command_line()}`",
            "",
            f"Generated spine dataset, {n} training images at {imgsz} px; YOLO11n-seg from its YAML; batch {batch}, "
            f"{epochs} epoch(s), per-epoch validation (`val=False`) and plots off, the same augmentation; {repeat} "
            "alternating runs each.",
            "",
            "| tool | training images/s (median) | runs | wall time per run (s) |",
            "|---|---|---|---|",
            f"| `yolo segment train` (Ultralytics {_ul_version()}, its defaults: 1 torch thread on this machine) | "
            f"{mp:.2f} | {', '.join(f'{v:.2f}' for v in plain)} | {statistics.median(plain_wall):.0f} |",
            f"| `yolo_spine train` (every core) | {mo:.2f} | {', '.join(f'{v:.2f}' for v in ours)} | "
            f"{statistics.median(ours_wall):.0f} |",
            "",
            f"**Speed-up: {mo / mp:.2f}×** (target ≥ 1.4×: {'met' if mo / mp >= 1.4 else 'MISSED'}). Throughput = "
            f"{n} × {epochs} images / the `time` column of each run's results.csv at the last epoch. That timed span "
            "is the same for both tools and is not training alone: it includes the validation pass Ultralytics runs "
            f"after the final epoch even with `val=False` ({n_val} validation images) and the checkpoints of the "
            "earlier epochs. The difference is the thread count: Ultralytics sets `OMP_NUM_THREADS=1` on import and "
            "`torch.set_num_threads(min(8, cpu_count - 1))`, one thread on 2 cores; yolo_spine sets every core.",
        ]
    )
    print(text)
    if not args.no_write:
        write_section("train", text, MEASURES)


def _bench_preset(tmp: Path) -> Path:
    """A preset matching the plain run's settings (validation and plots off)."""
    p = tmp / "bench.yaml"
    p.write_text("val: false\nplots: false\nhsv_h: 0.0\nhsv_s: 0.0\nseed: 0\n")
    return p


def _ul_version() -> str:
    import importlib.metadata

    return importlib.metadata.version("ultralytics")


if __name__ == "__main__":
    main()
