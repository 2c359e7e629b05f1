"""Benchmark two jobs on one machine: training and prediction alone, side by side, and two trainings at once.

Issue 13 §4: two CPU jobs that each put torch on every core slowed each other 10-15x, because idle OpenMP
threads spin on their core after every parallel region. Policies measured in one run with the same commands
(see ``--policies``):

* ``spin`` (before issue 13): every core, libgomp's default spinning (``GOMP_SPINCOUNT=300000``, the spin count
  libgomp uses when ``OMP_WAIT_POLICY`` is unset; an explicit ``GOMP_SPINCOUNT`` overrides the policy's);
* ``active`` / ``passive`` / ``spinN``: every core, ``OMP_WAIT_POLICY=ACTIVE`` / ``PASSIVE`` (the previous
  release's default) / ``GOMP_SPINCOUNT=N``;
* ``governed`` (now): yolo_spine's default — spinning as libgomp does by default, and torch's threads sized to
  the cores other processes leave free (:class:`yolo_spine.parallel.ThreadGovernor`).

For each policy: training alone, prediction alone, training + prediction started together, and two trainings
started together. Training speed is ``train_images_per_second`` from ``run.json`` (training time only,
validation off); prediction speed is ``fps`` from ``run.json`` (whole run, after a warm-up frame). While a
training runs, prediction is repeated back to back, and only the prediction runs that finished while the
training was still running count, so the side-by-side figures are fully overlapped. Every command is the user's
command line (``python -m yolo_spine …``). Targets: beside another job, each keeps >= 40 % of its solo speed
with the default; alone, the default is at least as fast as ``spin``.

    python scripts/bench_two_jobs.py             # 64 images at 256 px, 3 epochs, 120 frames, 3 repeats
    python scripts/bench_two_jobs.py --tiny      # a smoke run of the script (seconds of work; not written)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scripts._bench import command_line, git_rev, machine, write_section
from yolo_spine.parallel import available_cpus
from yolo_spine.synth import make_xray_dataset
from yolo_spine.ultra import configure_environment

#: Each policy: (environment added to a user's environment without thread or wait-policy variables, fixed
#: ``--threads``?). ``governed`` is yolo_spine's default: libgomp's own spinning, threads sized to free cores.
#: What this section measures (scripts/check_benchmarks.py).
MEASURES = ["scripts/bench_two_jobs.py", "yolo_spine/parallel.py", "yolo_spine/train/", "yolo_spine/predict/"]

POLICIES: dict[str, tuple[dict[str, str], bool]] = {
    "spin": ({"GOMP_SPINCOUNT": "300000"}, True),
    "active": ({"OMP_WAIT_POLICY": "ACTIVE"}, True),
    "passive": ({"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0"}, True),
    "governed": ({}, False),
}


def policy(name: str) -> tuple[dict[str, str], bool]:
    """A policy by name: one of :data:`POLICIES`, or ``spinN`` (``GOMP_SPINCOUNT=N``, every core fixed)."""
    if name in POLICIES:
        return POLICIES[name]
    if name.startswith("spin") and name[4:].isdigit():
        return {"GOMP_SPINCOUNT": name[4:]}, True
    raise SystemExit(f"unknown policy {name!r}: use {', '.join(POLICIES)} or spinN (e.g. spin10000)")


CLEARED = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME", "MKL_NUM_THREADS")


@dataclass
class Sizes:
    """How big the benchmark is."""

    images: int
    imgsz: int
    epochs: int
    batch: int
    frames: int
    repeat: int


def base_env() -> dict[str, str]:
    config_dir = configure_environment()  # offline settings + local fonts (does not touch this script's torch)
    env = {**os.environ, "YOLO_OFFLINE": "1", "YOLO_CONFIG_DIR": str(config_dir)}
    for var in CLEARED:
        env.pop(var, None)
    return env


def yolo_spine(*args: object) -> list[str]:
    return [sys.executable, "-m", "yolo_spine", "-q", *[str(a) for a in args]]


def start(cmd: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> None:
    _, err = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"{' '.join(proc.args[3:6])} failed:\n{err[-3000:]}")


class Jobs:
    """Builds the commands of one benchmark on its own dataset, model and frames."""

    def __init__(self, tmp: Path, sizes: Sizes, env: dict[str, str]) -> None:
        self.tmp, self.sizes, self.env = tmp, sizes, env
        self.data = make_xray_dataset(tmp / "ds", "spine", n_train=sizes.images, n_val=2, n_test=0, imgsz=sizes.imgsz)
        self.config = tmp / "train.yaml"
        self.config.write_text(
            f"epochs: {sizes.epochs}\nimgsz: {sizes.imgsz}\nbatch: {sizes.batch}\nworkers: 0\n"
            "val: false\nplots: false\ndevice: cpu\nseed: 0\n"
        )
        self.frames = tmp / "frames"
        self.frames.mkdir()
        images = sorted((self.data.parent / "images" / "train").glob("*.png"))
        for k in range(sizes.frames):
            (self.frames / f"f{k:05d}.png").write_bytes(images[k % len(images)].read_bytes())
        self.weights = self._model()
        self.count = 0
        self.fixed = False  # the policy being measured passes --threads (every core) to each job

    def _model(self) -> Path:
        out = self.tmp / "model"
        proc = start(yolo_spine("train", "--data", self.data, "--out", out, "--config", self.config), self.env)
        finish(proc)
        return out / "weights" / "last.pt"

    def _out(self, kind: str) -> Path:
        self.count += 1
        return self.tmp / f"{kind}{self.count:04d}"

    def train(self, env: dict[str, str]) -> tuple[subprocess.Popen, Path]:
        """Start a training; return the process and its run folder."""
        out = self._out("train")
        return start(
            yolo_spine("train", "--data", self.data, "--out", out, "--config", self.config, *self._threads()), env
        ), out

    def _threads(self) -> list[str]:
        return ["--threads", str(available_cpus())] if self.fixed else []

    def predict(self, env: dict[str, str]) -> tuple[subprocess.Popen, Path]:
        """Start a prediction over the frames; return the process and its output folder."""
        out = self._out("predict")
        cmd = yolo_spine(
            "predict",
            "--weights",
            self.weights,
            "--source",
            self.frames,
            "--out",
            out,
            "--imgsz",
            self.sizes.imgsz,
            *self._threads(),
        )
        return start(cmd, env), out


def train_speed(out: Path) -> float:
    return float(json.loads((out / "run.json").read_text())["train_images_per_second"])


def predict_speed(out: Path) -> float:
    return float(json.loads((out / "run.json").read_text())["fps"])


def solo_train(jobs: Jobs, env: dict[str, str]) -> float:
    proc, out = jobs.train(env)
    finish(proc)
    return train_speed(out)


def solo_predict(jobs: Jobs, env: dict[str, str]) -> float:
    proc, out = jobs.predict(env)
    finish(proc)
    return predict_speed(out)


def train_beside_predict(jobs: Jobs, env: dict[str, str]) -> tuple[float, list[float]]:
    """Training with prediction running back to back beside it; FPS of the predictions that overlapped fully."""
    trainer, train_out = jobs.train(env)
    fps = []
    while trainer.poll() is None:
        proc, out = jobs.predict(env)
        finish(proc)
        if trainer.poll() is None:  # this prediction ran wholly beside the training
            fps.append(predict_speed(out))
    finish(trainer)
    return train_speed(train_out), fps


def two_trainings(jobs: Jobs, env: dict[str, str]) -> list[float]:
    started = [jobs.train(env) for _ in range(2)]
    for proc, _ in started:
        finish(proc)
    return [train_speed(out) for _, out in started]


def spread(values: list[float]) -> str:
    if not values:
        return "n/a"
    med = statistics.median(values)
    return f"{med:.2f} ({min(values):.2f}–{max(values):.2f}, n={len(values)})"


def measure(jobs: Jobs, repeat: int, policies: list[str]) -> dict[str, dict[str, list[float]]]:
    """Alternate the policies run by run, so drifting load hits both alike."""
    env0 = jobs.env
    keys = ("train_solo", "predict_solo", "train_beside_predict", "predict_beside_train", "two_trainings")
    res: dict[str, dict[str, list[float]]] = {p: {key: [] for key in keys} for p in policies}
    for k in range(repeat):
        for name in policies:
            extra, jobs.fixed = policy(name)
            env = {**env0, **extra}
            r = res[name]
            r["train_solo"].append(solo_train(jobs, env))
            r["predict_solo"].append(solo_predict(jobs, env))
            tr, fps = train_beside_predict(jobs, env)
            r["train_beside_predict"].append(tr)
            r["predict_beside_train"] += fps
            r["two_trainings"] += two_trainings(jobs, env)
            line = ", ".join(f"{key} {spread(v)}" for key, v in r.items())
            print(f"run {k + 1}/{repeat} {name}: {line}", flush=True)
    return res


def ratio(a: list[float], b: list[float]) -> float | None:
    return statistics.median(a) / statistics.median(b) if a and b else None


def report(res: dict[str, dict[str, list[float]]], sizes: Sizes, seconds: float, default: str) -> str:
    def fmt(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.2f}"

    rows = [
        "| policy | train alone (img/s) | predict alone (FPS) | train beside predict | predict beside train | "
        "each of two trainings |",
        "|---|---|---|---|---|---|",
    ]
    kept = []
    for p, r in res.items():
        rows.append(
            f"| {p} | {spread(r['train_solo'])} | {spread(r['predict_solo'])} | {spread(r['train_beside_predict'])} "
            f"| {spread(r['predict_beside_train'])} | {spread(r['two_trainings'])} |"
        )
        kept.append(
            f"| {p} | {fmt(ratio(r['train_beside_predict'], r['train_solo']))} "
            f"| {fmt(ratio(r['predict_beside_train'], r['predict_solo']))} "
            f"| {fmt(ratio(r['two_trainings'], r['train_solo']))} |"
        )
    dflt, spin = res[default], res["spin"]
    keep = [
        ratio(dflt["train_beside_predict"], dflt["train_solo"]),
        ratio(dflt["predict_beside_train"], dflt["predict_solo"]),
        ratio(dflt["two_trainings"], dflt["train_solo"]),
    ]
    met_shared = "met" if all(x is not None and x >= 0.40 for x in keep) else "missed"
    solo = [ratio(dflt["train_solo"], spin["train_solo"]), ratio(dflt["predict_solo"], spin["predict_solo"])]
    return "\n".join(
        [
            "## Two jobs on one machine (`scripts/bench_two_jobs.py`)",
            "",
            f"Machine: {machine()}. Commit {git_rev(MEASURES)}. Command: `{command_line()}`.",
            "",
            f"Dataset: generated spine, {sizes.images} training images at {sizes.imgsz} px; training "
            f"{sizes.epochs} epochs, batch {sizes.batch}, validation off, YOLO11n-seg from its YAML; prediction on "
            f"{sizes.frames} frames at {sizes.imgsz} px with the model of a short training (annotated images written, "
            "as by default). `spin`, `active`, `passive`, `spinN`: every job runs `--threads` = every core with "
            "libgomp's default spinning (`GOMP_SPINCOUNT=300000`, the spin count of an unset `OMP_WAIT_POLICY`: "
            "how yolo_spine ran before issue 13), `OMP_WAIT_POLICY=ACTIVE`, `OMP_WAIT_POLICY=PASSIVE` (the default "
            "of the previous release) or `GOMP_SPINCOUNT=N`; `governed` = yolo_spine's default now: no `--threads`, "
            "libgomp's default spinning, and torch's threads sized every 2 s to the cores other processes leave "
            f"free (`yolo_spine.parallel.ThreadGovernor`). Default judged: `{default}`. Median (min–max, n). "
            f"{seconds / 60:.0f} minutes in all.",
            "",
            *rows,
            "",
            "Share of the solo speed kept beside the other job (medians; target >= 0.40):",
            "",
            "| policy | training beside prediction | prediction beside training | each of two trainings |",
            "|---|---|---|---|",
            *kept,
            "",
            f"Beside another job, target >= 40 % of solo speed with the default: **{met_shared}** "
            f"({', '.join(fmt(x) for x in keep)}). Alone, `{default}`/`spin` speed: training {fmt(solo[0])}, "
            f"prediction {fmt(solo[1])} (target >= 1.0 within the spread above: "
            f"**{'met' if all(x is not None and x >= 1.0 for x in solo) else 'see spread'}**).",
        ]
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="smoke-run the script at a tiny size (never written)")
    ap.add_argument("--repeat", type=int, default=None)
    ap.add_argument(
        "--policies",
        default="spin,passive,governed",
        help="comma-separated: spin, active, passive or spinN (GOMP_SPINCOUNT=N)",
    )
    ap.add_argument("--default", default="governed", help="the policy yolo_spine sets by default (judged on targets)")
    ap.add_argument("--no-write", action="store_true", help="print the section instead of writing BENCHMARKS.md")
    args = ap.parse_args()
    if args.tiny:
        sizes = Sizes(images=4, imgsz=64, epochs=1, batch=4, frames=6, repeat=1)
    else:
        sizes = Sizes(images=64, imgsz=256, epochs=3, batch=8, frames=120, repeat=3)
    sizes.repeat = args.repeat or sizes.repeat
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_two_jobs_") as tmpd:
        jobs = Jobs(Path(tmpd), sizes, base_env())
        res = measure(jobs, sizes.repeat, args.policies.split(","))
    body = report(res, sizes, time.perf_counter() - t0, args.default)
    if args.tiny or args.no_write:
        print(body)
    else:
        print(f"wrote {write_section('two_jobs', body, MEASURES)}")


if __name__ == "__main__":
    main()
