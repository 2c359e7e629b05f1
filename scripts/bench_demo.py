"""Benchmark what each step of the demo's training recipe buys: test mask mAP50 against training time (issue 13).

Every approach trains YOLO11n-seg on the demo's own dataset (``ct2yolo`` of the example CT with the ``demo`` ct
preset: 116 training images at 256 px) and is scored on the demo's held-out **test** split, never changed:
checkpoints saved every ``--every`` epochs are each validated on the test split (mask and box mAP50), so one
training gives one curve. Training seconds come from Ultralytics' ``results.csv`` (cumulative, training only);
the 1-minute load average at the end of each run is recorded, because the seconds of a run on a busy machine
are not comparable with a quiet one (the epochs are).

Approaches (``--approach NAME``, repeatable; default all):

* ``today`` — the demo's recipe before issue 13: from scratch, batch 8 with Ultralytics' nominal batch 64
  (one optimizer step per 8 batches), default online augmentation (mosaic), AdamW 0.002, 30 epochs;
* ``nbs`` — the same with ``nbs = batch`` (a step per batch);
* ``noaug`` — ``nbs`` plus light augmentation (mosaic off, scale ±10 %, translate 5 %);
* ``phantom`` — ``nbs`` from the packaged phantom checkpoint (synthetic phantoms only, never this CT);
* ``recipe256`` — phantom checkpoint, ``nbs``, light augmentation, cached images, no loader processes, 256 px;
* ``recipe`` — ``configs/train/demo.yaml`` (the same at 320 px), 60 epochs;
* ``budget`` — the same for 240 epochs (run with ``--every 20``): the budget at which each test target is
  reached, in epochs and in minutes at the demo's own quiet rate (its runs' ``results.csv``).

    python scripts/bench_demo.py                       # every approach (about 35 min on 2 quiet cores)
    python scripts/bench_demo.py --approach recipe     # one approach; earlier results are kept
    python scripts/bench_demo.py --report-only         # rewrite the section and the picture from the results
    python scripts/bench_demo.py --demo-runs 3         # `yolo_spine demo` itself, 3 times (about 12 min each)
    python scripts/bench_demo.py --demo-runs 1 --demo-train-set repeat_threshold=0   # the demo without one step
    python scripts/bench_demo.py --demo-runs 1 --demo-set train_budget=20m           # a longer training budget

``--demo-runs N`` runs the product's own ``yolo_spine demo --out WORK/demo_runs/runK`` N times in a subprocess
(its default thread policy, its default configuration) and tabulates each run's summary beside the targets, with
how many of the N runs met each target; results in ``WORK/demo_runs.json`` (earlier runs of the same commit are
kept, so runs can be added one at a time). ``--demo-train-set KEY=VALUE`` (repeatable) runs a *variant*: the demo
with those keys of ``configs/train/demo.yaml`` changed (written to ``WORK/variants/``), tabulated apart, beside the
mean of the default runs of the same commit: what one step of the recipe buys in the demo itself.

Results go to ``--work`` (default ``~/.cache/yolo_spine/bench_demo``, one JSON per approach); the section
``demo`` of BENCHMARKS.md and ``docs/demo-curves.png`` are written from every result there.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from scripts._bench import command_line, git_rev, machine, write_section  # noqa: E402

#: What this section measures (scripts/check_benchmarks.py).
MEASURES = [
    "scripts/bench_demo.py",
    "configs/train/demo.yaml",
    "configs/demo/",
    "configs/ct/demo.yaml",
    "yolo_spine/train/",
    "yolo_spine/weights/",
]

LIGHT_AUG = {"mosaic": 0.0, "close_mosaic": 0, "scale": 0.1, "translate": 0.05}
APPROACHES: dict[str, dict[str, Any]] = {
    "today": {"weights": "none", "epochs": 30, "nbs": 64},
    "nbs": {"weights": "none", "epochs": 30, "nbs": 8},
    "noaug": {"weights": "none", "epochs": 30, "nbs": 8, **LIGHT_AUG},
    "phantom": {"weights": None, "epochs": 30, "nbs": 8},
    "recipe256": {"config": "demo", "epochs": 60, "imgsz": 256},
    "recipe": {"config": "demo", "epochs": 60},
    "budget": {"config": "demo", "epochs": 240},
}
DESCRIPTION = {
    "today": "from scratch, nbs 64 (before issue 13)",
    "nbs": "from scratch, nbs = batch",
    "noaug": "from scratch, nbs = batch, light augmentation",
    "phantom": "phantom checkpoint, nbs = batch",
    "recipe256": "phantom checkpoint, nbs = batch, light augmentation, cached images, 256 px",
    "recipe": "configs/train/demo.yaml: the same at 320 px (the demo's recipe, 60 epochs)",
    "budget": "configs/train/demo.yaml for 240 epochs (a longer budget: one schedule over all 240)",
}

#: Test targets of issue 13 that a training curve can show (the lifted Dice and identification need the demo).
CURVE_TARGETS = {"mask_map50": 0.70, "box_map50": 0.80}


def dataset(work: Path) -> Path:
    """The demo's dataset (ct2yolo of the example CT, ``demo`` preset), built once into ``work``."""
    from yolo_spine.ct.convert import ct2yolo
    from yolo_spine.ct.options import CtOptions
    from yolo_spine.data import example_ct

    ds = work / "dataset"
    if not (ds / "data.yaml").is_file():
        ex = example_ct()
        ct2yolo(ds, CtOptions.load("demo"), volume=ex.volume, labels=ex.labels, study="lidc0001", anatomy="spine")
    return ds / "data.yaml"


def run_approach(name: str, data: Path, work: Path, every: int, threads: int | None = None) -> dict[str, Any]:
    """Train one approach with a checkpoint every ``every`` epochs; score each checkpoint on the test split."""
    from yolo_spine.train.options import TrainOptions
    from yolo_spine.train.train import train

    spec = dict(APPROACHES[name])
    config = spec.pop("config", None)
    base = {"imgsz": 256, "batch": 8, "optimizer": "AdamW", "lr0": 0.002} if config is None else {}
    opts = TrainOptions.load(
        config, **base, **spec, val=False, plots=False, save_period=every, device="cpu", threads=threads
    )
    out = work / "runs" / name
    t0 = time.perf_counter()
    train(data, out, opts, overwrite=True)
    wall = time.perf_counter() - t0
    load = os.getloadavg()[0]
    with open(out / "results.csv", encoding="utf-8") as f:
        seconds = {int(r["epoch"]): float(r["time"]) for r in csv.DictReader(f)}
    points = []
    saved = sorted((out / "weights").glob("epoch*.pt"), key=lambda p: int(p.stem[5:]))
    for ckpt in [*saved, out / "weights" / "last.pt"]:
        epoch = int(ckpt.stem[5:]) + 1 if ckpt.stem.startswith("epoch") else opts.epochs  # Ultralytics counts from 0
        m = test_metrics(ckpt, data, opts.imgsz)
        points.append({"epoch": epoch, "train_seconds": seconds.get(epoch), **m})
        print(f"{name}: epoch {epoch}: {m}", flush=True)
    result = {
        "approach": name,
        "description": DESCRIPTION[name],
        "options": {
            k: v
            for k, v in opts.values().items()
            if k
            in (
                "weights",
                "epochs",
                "nbs",
                "mosaic",
                "scale",
                "translate",
                "cache",
                "workers",
                "lr0",
                "batch",
                "imgsz",
                "threads",
            )
        },
        "checkpoint_sha256": None if opts.weights == "none" else packaged_sha256(),
        "wall_seconds": round(wall, 1),
        "load_average_1min_at_end": round(load, 2),
        "commit": git_rev(MEASURES),
        "points": points,
    }
    (work / f"{name}.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    return result


def packaged_sha256() -> str:
    """SHA-256 of the packaged phantom checkpoint (what ``weights: null`` starts from)."""
    from yolo_spine.provenance import sha256_file

    return sha256_file(ROOT / "yolo_spine" / "weights" / "yolo11n-seg-spine-phantoms.pt")


def checkpoint_lines(results: list[dict[str, Any]]) -> list[str]:
    """Which phantom checkpoint each approach started from, against the one packaged now."""
    now = packaged_sha256()
    used: dict[str, list[str]] = {}
    for r in results:
        if r.get("checkpoint_sha256"):
            used.setdefault(r["checkpoint_sha256"], []).append(r["description"])
    if not used:
        return []
    parts = [
        f"{'the packaged one' if sha == now else 'an earlier packaged one'} (SHA-256 `{sha[:12]}…`): "
        + "; ".join(names)
        for sha, names in used.items()
    ]
    return [
        f"Phantom checkpoints the approaches started from (packaged now: `{now[:12]}…`): " + " | ".join(parts) + ".",
        "",
    ]


def test_metrics(weights: Path, data: Path, imgsz: int) -> dict[str, float]:
    """Mask and box mAP50 (and mask mAP50-95) of a checkpoint on the test split, at the training size."""
    from yolo_spine.ultra import import_ultralytics

    import_ultralytics()
    from ultralytics import YOLO

    m = YOLO(str(weights)).val(
        data=str(data), split="test", imgsz=imgsz, batch=8, plots=False, verbose=False, device="cpu"
    )
    return {
        "mask_map50": round(float(m.seg.map50), 4),
        "box_map50": round(float(m.box.map50), 4),
        "mask_map": round(float(m.seg.map), 4),
    }


def picture(results: list[dict[str, Any]], path: Path) -> None:
    """Test mask mAP50 against training epochs, one curve per approach."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for r in results:
        pts = r["points"]
        ax.plot([p["epoch"] for p in pts], [p["mask_map50"] for p in pts], marker="o", label=r["description"])
    ax.axhline(0.70, color="gray", linestyle="--", linewidth=1)
    ax.text(1, 0.71, "target 0.70", color="gray", fontsize=8)
    ax.set_xlabel("training epochs (116 images at 256 px)")
    ax.set_ylabel("test mask mAP50")
    ax.set_ylim(0, 1)
    ax.set_title("yolo_spine demo: what each step buys (held-out test split)")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def quiet_seconds_per_epoch(work: Path) -> float | None:
    """Seconds per epoch of the demo's own training on the quiet machine (its kept runs' ``results.csv``)."""
    rates = []
    for path in sorted((work / "demo_runs").glob("run*/train/results.csv")):
        with open(path, encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        if rows:
            rates.append(float(rows[-1]["time"]) / int(rows[-1]["epoch"]))
    return sorted(rates)[len(rates) // 2] if rates else None


def budget_lines(results: list[dict[str, Any]], rate: float | None) -> list[str]:
    """For each approach: the first scored epoch at which each curve target is met, or that it never is."""
    lines = []
    for r in results:
        parts = []
        for key, target in CURVE_TARGETS.items():
            hit = next((p for p in r["points"] if p[key] >= target), None)
            label = f"{key.split('_')[0]} mAP50 ≥ {target:.2f}"
            if hit is None:
                best = max(r["points"], key=lambda p: p[key])
                parts.append(
                    f"{label}: not reached in {r['points'][-1]['epoch']} epochs (best {best[key]:.3f} at "
                    f"epoch {best['epoch']})"
                )
            else:
                minutes = "" if rate is None else f", ≈ {hit['epoch'] * rate / 60:.0f} min at the demo's rate"
                parts.append(f"{label}: epoch {hit['epoch']} ({hit[key]:.3f}{minutes})")
        lines.append(f"- {r['description']}: " + "; ".join(parts) + ".")
    return lines


APPROACHES_HEADING = "### What each step of the recipe buys"
CARRIED = "*Carried over from this section as written at commit"


def carried_approaches() -> list[str] | None:
    """The approach tables of BENCHMARKS.md's current ``demo`` section, for a run without their result files.

    The results live in ``--work`` (a cache a new machine does not have); rather than drop measured rows, a
    report from the demo runs alone keeps them as written, under a line that says from which commit.
    """
    from scripts._bench import BENCHMARKS_MD
    from scripts.check_benchmarks import MARKER_RE, SECTION_RE

    text = BENCHMARKS_MD.read_text(encoding="utf-8") if BENCHMARKS_MD.is_file() else ""
    section = next((m for m in SECTION_RE.finditer(text) if m["name"] == "demo"), None)
    if section is None or APPROACHES_HEADING not in section["body"]:
        return None
    part = section["body"].split(APPROACHES_HEADING, 1)[1].strip("\n").splitlines()
    if part and part[0].startswith(CARRIED):  # carried before: keep the first origin, not the last rewrite
        return [APPROACHES_HEADING, "", *part]
    marker = MARKER_RE.search(section["body"])
    since = marker["commit"] if marker else "an earlier commit"
    note = (
        f"{CARRIED} {since}: the approaches' result files were not in `--work` on the machine that ran the demo "
        "runs above; `--approach NAME` re-runs one.*"
    )
    return [APPROACHES_HEADING, "", note, "", *part]


def report(results: list[dict[str, Any]], runs: list[dict[str, Any]], work: Path, rate: float | None = None) -> str:
    from yolo_spine.demo.options import DemoOptions
    from yolo_spine.train.options import TrainOptions

    demo_opts = DemoOptions.load(None)
    recipe = TrainOptions.load(demo_opts.train_config)
    return "\n".join(
        [
            "## Demo training recipe: what each step buys (`scripts/bench_demo.py`)",
            "",
            f"Machine: {machine()}. Commit {git_rev(MEASURES)}. Command: `{command_line()}`.",
            "",
            "Each approach trains YOLO11n-seg on the demo's dataset (116 training images, 256 px, batch 8, AdamW "
            "0.002, CPU) and is scored on the demo's held-out test split (49 images: slabs and poses of the same "
            "study, as the demo defines it). Training seconds are Ultralytics' (training only); the load average "
            "says how busy the machine was: seconds from a busy machine are not comparable, epochs are. The "
            "phantom checkpoint never saw the example CT. The recipe before issue 13 (from scratch, nbs 64, mosaic) "
            "reached 0.005 after its 30 epochs (issue 13's measurement; `--approach today` re-runs it). The demo "
            "itself (`--demo-runs`, table below) trains `configs/train/demo.yaml` at 320 px (with repeat-factor "
            f"sampling of the rarest levels, `repeat_threshold` {recipe.repeat_threshold:g}) for a "
            f"`train_budget` of {demo_opts.train_budget} "
            "(the epochs each run trained are in the table below) from the packaged checkpoint, then reviews, "
            "predicts, lifts (filling "
            "gaps of up to 20 slices between held-out slabs) and scores. Which checkpoint each approach's row started "
            "from is said below its table; the 60-epoch 320 px row was scored at 256 px (the script now scores at "
            "the training size).",
            "",
            *demo_table([r for r in runs if not r.get("variant")]),
            *variant_table(runs),
            *lowest_classes(work, runs),
            *(approach_part(results, rate) if results else (carried_approaches() or [])),
        ]
    )


def approach_part(results: list[dict[str, Any]], rate: float | None) -> list[str]:
    """The approaches' table, the budget at which each reaches the targets, their checkpoints, the picture."""
    rows = [
        "| approach | epochs | test mask mAP50 | test box mAP50 | test mask mAP50-95 | training s (load at end) | "
        "mask mAP50 per point (epoch: value) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        last = r["points"][-1]
        curve = ", ".join(f"{p['epoch']}: {p['mask_map50']:.3f}" for p in r["points"])
        secs = last["train_seconds"]
        rows.append(
            f"| {r['description']} | {last['epoch']} | {last['mask_map50']:.3f} | {last['box_map50']:.3f} | "
            f"{last['mask_map']:.3f} | {'n/a' if secs is None else f'{secs:.0f}'} ({r['load_average_1min_at_end']}) | "
            f"{curve} |"
        )
    return [
        APPROACHES_HEADING,
        "",
        *rows,
        "",
        "Budget at which each curve reaches the test targets (scored every few epochs; a point inside a longer "
        "schedule is not the same model as a shorter run ending there, whose learning rate has decayed"
        + ("" if rate is None else f"; the demo's own training runs at {rate:.1f} s per epoch on the quiet machine")
        + "):",
        "",
        *budget_lines(results, rate),
        "",
        *checkpoint_lines(results),
        "![test mask mAP50 against epochs](docs/demo-curves.png)",
    ]


#: The demo's figures and the keys of its summary.json, in the order of its summary.md.
DEMO_FIGURES = [
    ("mask mAP50 (test)", "mask_mAP50_test"),
    ("box mAP50 (test)", "box_mAP50_test"),
    ("mean vertebra Dice", "mean_dice"),
    ("identification, slices", "identification_rate_slices"),
    ("identification, AP+lateral DRRs", "identification_rate_drr"),
]

#: Figures of each run that are not targets: what one step bought, measured on the same run.
ABLATION_FIGURES = [
    (
        "identification, DRRs from predict's views alone (no combination of weaker views)",
        "identification_rate_drr_op_views",
    ),
]


def variant_config(work: Path, sets: list[str]) -> tuple[str, Path]:
    """The demo's train preset with ``KEY=VALUE`` changes, written to ``WORK/variants/``: (its label, its path)."""
    import yaml

    base = yaml.safe_load((ROOT / "configs" / "train" / "demo.yaml").read_text(encoding="utf-8"))
    changes = {}
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--demo-train-set needs KEY=VALUE, not {item!r}")
        changes[key.strip()] = yaml.safe_load(value)
    label = ", ".join(f"{k}={v}" for k, v in changes.items())
    path = work / "variants" / ("demo-" + "-".join(f"{k}{v}" for k, v in changes.items()).replace("/", "_") + ".yaml")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({**base, **changes}, sort_keys=False), encoding="utf-8")
    return label, path


def demo_runs(
    work: Path, n: int, train_sets: list[str] | None = None, demo_sets: list[str] | None = None
) -> list[dict[str, Any]]:
    """Run ``yolo_spine demo`` ``n`` more times (a subprocess each, the product's defaults); return every run kept.

    Runs made at a commit whose measured files (:data:`MEASURES`) differ from this tree's are dropped: their
    figures belong to another recipe or checkpoint. Each run gets a folder of its own (never a kept run's).
    ``train_sets``: a variant's changes to the train preset; ``demo_sets``: to the demo's own configuration
    (``configs/demo/default.yaml``, e.g. ``train_budget=20m``). Either makes the run a variant, recorded as such.
    """
    import subprocess

    record = work / "demo_runs.json"
    commit = git_rev(MEASURES)
    runs = [r for r in (json.loads(record.read_text()) if record.is_file() else []) if _same_measured(r.get("commit"))]
    labels, extra = [], []
    if train_sets:
        label, preset = variant_config(work, train_sets)
        labels.append(label)
        extra = ["--set", f"train_config={preset}"]
    for item in demo_sets or []:
        if "=" not in item or item.startswith("="):
            raise SystemExit(f"--demo-set needs KEY=VALUE, not {item!r}")
        labels.append(f"demo {item}")
        extra += ["--set", item]
    variant = ", ".join(labels) or None
    for _ in range(n):
        used = {r.get("folder") for r in runs}
        out = work / "demo_runs" / next(f"run{k}" for k in range(1, len(runs) + 2) if f"run{k}" not in used)
        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", "yolo_spine", "demo", "--out", str(out), "--overwrite", *extra]
        subprocess.run(cmd, check=True, cwd=ROOT)
        wall = time.perf_counter() - t0
        summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
        summary["identification_rate_drr_op_views"] = drr_rate_without_combination(out)
        runs.append(
            {
                "commit": commit,
                "variant": variant,
                "folder": out.name,
                "epochs": trained_epochs(out),
                "wall_seconds": round(wall, 1),
                "load_average_1min_at_end": round(os.getloadavg()[0], 2),
                "seconds": summary.get("seconds"),
                "targets": summary["targets"],
                **{key: summary.get(key) for _, key in DEMO_FIGURES + ABLATION_FIGURES},
            }
        )
        record.write_text(json.dumps(runs, indent=1), encoding="utf-8")
        print(f"demo run {len(runs)}: {wall:.0f} s, " + ", ".join(f"{k} {runs[-1][k]}" for _, k in DEMO_FIGURES))
    return runs


def drr_rate_without_combination(out: Path) -> float | None:
    """The DRR identification rate of a demo run as lift had it before ``--conf``: predict's views alone.

    Lifts the run's ``predict/`` labels (only instances at the operating confidence, each class's union per view)
    into a scratch folder inside the run and scores them as the demo does: what combining weaker views bought.
    """
    from yolo_spine.data import example_ct
    from yolo_spine.evaluate.eval3d import run_eval3d
    from yolo_spine.lift.lift import lift

    scratch = out / "ablation_drr_op_views"
    lifted = lift(out / "predict", scratch / "seg.nii.gz", sidecars=out / "dataset", split="test", overwrite=True)
    if lifted.centroids is None:
        return None
    ex = example_ct()
    result, _ = run_eval3d(
        lifted.centroids, ex.labels, "spine", scratch / "drr.csv", gt_scheme=ex.label_scheme, overwrite=True
    )
    return None if result.landmarks is None else float(result.landmarks.rate)


def trained_epochs(out: Path) -> int | None:
    """Epochs a demo run trained: the rows of its ``train/results.csv`` (``None`` when the folder is gone)."""
    from yolo_spine.train.train import read_results_csv

    path = out / "train" / "results.csv"
    return len(read_results_csv(path)) if path.is_file() else None


def _same_measured(commit: str | None) -> bool:
    """Whether the demo's files are the same at ``commit`` as in this tree (committed, not dirty)."""
    import subprocess

    if not commit or commit.endswith("-dirty") or git_rev(MEASURES).endswith("-dirty"):
        return False
    product = [m for m in MEASURES if m != "scripts/bench_demo.py"]  # this script only runs and tabulates the demo
    diff = subprocess.run(["git", "diff", "--quiet", commit, "HEAD", "--", *product], cwd=ROOT, capture_output=True)
    return diff.returncode == 0


def demo_table(runs: list[dict[str, Any]]) -> list[str]:
    """The demo's own runs: each figure per run, mean and range, target, how many runs met it."""
    if not runs:
        return []
    head = " | ".join(f"run {i + 1}" for i in range(len(runs)))
    rows = [
        f"### `yolo_spine demo` itself ({len(runs)} run(s), quiet machine)",
        "",
        f"| figure | {head} | mean (min–max) | target | runs that met it |",
        "|---|" + "---|" * len(runs) + "---|---|---|",
    ]
    for label, key in DEMO_FIGURES:
        vals = [float(r[key]) if r.get(key) is not None else float("nan") for r in runs]
        target = float(runs[0]["targets"][key])
        met = sum(v >= target for v in vals)
        cells = " | ".join(f"{v:.3f}" for v in vals)
        rows.append(
            f"| {label} | {cells} | {sum(vals) / len(vals):.3f} ({min(vals):.3f}–{max(vals):.3f}) | ≥ {target:.2f} | "
            f"{met} of {len(runs)} |"
        )
    for label, key in ABLATION_FIGURES:
        vals = [r.get(key) for r in runs]
        if any(v is not None for v in vals):
            cells = " | ".join("n/a" if v is None else f"{v:.3f}" for v in vals)
            rows.append(f"| {label} | {cells} | | | |")
    epochs = " | ".join(str(r.get("epochs") or "n/a") for r in runs)
    commits = " | ".join(str(r["commit"]) for r in runs)
    walls = " | ".join(f"{r['wall_seconds'] / 60:.1f}" for r in runs)
    loads = " | ".join(
        "n/a" if r["load_average_1min_at_end"] is None else f"{r['load_average_1min_at_end']}" for r in runs
    )
    rates = " | ".join(
        f"{r['seconds']['train'] / r['epochs']:.1f}" if r.get("seconds") and r.get("epochs") else "n/a" for r in runs
    )
    rows += [
        f"| epochs trained | {epochs} | | | |",
        f"| training seconds per epoch (how fast this machine was) | {rates} | | | |",
        f"| minutes end to end (limit 15) | {walls} | | | |",
        f"| load average at end | {loads} | | | |",
        f"| commit (same measured files) | {commits} | | | |",
        "",
    ]
    return rows


def _median_area_px(labels: Path, cls: int, imgsz: int) -> tuple[int, float]:
    """Instances of ``cls`` in a label folder and their median polygon area in pixels at ``imgsz`` (long side)."""
    import statistics

    from yolo_spine.geometry import polygon_area
    from yolo_spine.io.labels import read_yolo_labels

    areas = [
        polygon_area(inst.polygon_xy(imgsz, imgsz))
        for f in sorted(labels.glob("*.txt"))
        for inst in read_yolo_labels(f).instances
        if inst.cls == cls
    ]
    return len(areas), statistics.median(areas) if areas else float("nan")


def lowest_classes(work: Path, runs: list[dict[str, Any]], n: int = 4) -> list[str]:
    """Where box mAP50 is lost: the classes with the lowest test AP50 (mean over the default runs).

    Also the mean without the class cut to a sliver by the scan's upper edge (C5), with its size in the test
    images, read from each run's review (``metrics.json``) and dataset.
    """
    per_class: dict[str, list[float]] = {}
    folders = [work / "demo_runs" / r["folder"] for r in runs if not r.get("variant")]
    folders = [f for f in folders if (f / "review" / "metrics.json").is_file()]
    for folder in folders:
        metrics = json.loads((folder / "review" / "metrics.json").read_text(encoding="utf-8"))
        for name, row in metrics["box"]["per_class"].items():
            per_class.setdefault(name, []).append(float(row["mAP50"]))
    if not per_class or "C5" not in per_class:
        return []
    mean = {k: sum(v) / len(v) for k, v in per_class.items()}
    low = sorted(mean, key=lambda k: mean[k])[:n]
    others = [mean[k] for k in mean if k not in low]
    rest = [v for k, v in mean.items() if k != "C5"]
    names = metrics["names"]
    count, area = _median_area_px(folders[0] / "dataset" / "labels" / "test", names.index("C5"), metrics["imgsz"])
    return [
        "Where box mAP50 is lost (test AP50 per vertebra, mean of the default runs): "
        + ", ".join(f"{k} {mean[k]:.2f}" for k in low)
        + f"; the other {len(others)} average {sum(others) / len(others):.2f}. C5 is cut by the scan's upper edge: "
        f"its {count} test instances have a median area of {area:.0f} px² at {metrics['imgsz']} px, and its AP50 "
        f"is {' / '.join(f'{v:.2f}' for v in per_class['C5'])} in these runs. Without C5 the mean over the other "
        f"{len(rest)} vertebrae would be {sum(rest) / len(rest):.3f}; the target is judged on all of them, C5 "
        "included, as the test split defines it.",
        "",
    ]


def variant_table(runs: list[dict[str, Any]]) -> list[str]:
    """Variants of the demo's recipe (``--demo-train-set``) beside the default runs of the same commit."""
    variants = sorted({r["variant"] for r in runs if r.get("variant")})
    if not variants:
        return []
    rows = [
        "### One change at a time, in the demo itself (`--demo-train-set`, `--demo-set`)",
        "",
        "Each variant is the demo with one change to `configs/train/demo.yaml` or (`demo KEY=VALUE`) to the "
        "demo's own configuration, run on the same quiet machine with the same measured files as the default runs "
        "above (same checkpoint; the same budget unless the variant changes it); each cell lists the runs' values.",
        "",
        "| recipe | runs | epochs | minutes end to end | " + " | ".join(label for label, _ in DEMO_FIGURES) + " |",
        "|---|---|---|---|" + "---|" * len(DEMO_FIGURES),
    ]
    groups = [("the default (`configs/train/demo.yaml`)", [r for r in runs if not r.get("variant")])]
    groups += [(f"`{v}`", [r for r in runs if r.get("variant") == v]) for v in variants]
    for label, group in groups:
        if not group:
            continue
        cells = []
        for _, key in DEMO_FIGURES:
            vals = [float(r[key]) for r in group if r.get(key) is not None]
            cells.append(" / ".join(f"{v:.3f}" for v in vals) if vals else "n/a")
        epochs = " / ".join(str(r.get("epochs") or "n/a") for r in group)
        minutes = " / ".join(f"{r['wall_seconds'] / 60:.1f}" if r.get("wall_seconds") else "n/a" for r in group)
        rows.append(f"| {label} | {len(group)} | {epochs} | {minutes} | " + " | ".join(cells) + " |")
    return [*rows, "", *demo_budget_lines(runs)]


def demo_budget_lines(runs: list[dict[str, Any]]) -> list[str]:
    """Per target, at which training budget the demo's runs met it: the default runs and ``train_budget`` variants.

    Only variants that change nothing but the budget (and the epochs cap, so the budget is what stops them) count.
    """
    import re

    import yaml

    from yolo_spine.train.plan import parse_budget

    default = yaml.safe_load((ROOT / "configs" / "demo" / "default.yaml").read_text(encoding="utf-8"))["train_budget"]
    budgets: dict[str, list[dict[str, Any]]] = {str(default): [r for r in runs if not r.get("variant")]}
    for r in runs:
        parts = [p.strip() for p in str(r.get("variant") or "").split(",")]
        found = [re.fullmatch(r"demo train_budget=(\S+)", p) for p in parts]
        rest = [p for p, m in zip(parts, found, strict=True) if not m and not p.startswith("demo epochs=")]
        if any(found) and not rest:
            budgets.setdefault(next(m.group(1) for m in found if m), []).append(r)
    if len(budgets) < 2:
        return []

    order = sorted(budgets, key=parse_budget)
    lines = [
        "Training budget at which each target is met (runs that met it at each budget; the demo's own default is "
        f"{default}, sized so the whole demo ends within 15 minutes):",
        "",
    ]
    for label, key in DEMO_FIGURES:
        cells = []
        for b in order:
            group = [r for r in budgets[b] if r.get(key) is not None]
            if group:
                met = sum(float(r[key]) >= float(r["targets"][key]) for r in group)
                cells.append(f"{b}: {met} of {len(group)}")
        lines.append(f"- {label}: " + ", ".join(cells))
    return [*lines, ""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--approach", action="append", choices=list(APPROACHES), help="approach to run (repeatable)")
    ap.add_argument("--every", type=int, default=5, help="save and score a checkpoint every N epochs (default 5)")
    ap.add_argument("--work", type=Path, default=Path.home() / ".cache" / "yolo_spine" / "bench_demo")
    ap.add_argument("--report-only", action="store_true", help="write the section from the results in --work")
    ap.add_argument("--no-write", action="store_true", help="print the section instead of writing it")
    ap.add_argument("--demo-runs", type=int, default=0, help="run `yolo_spine demo` itself N more times")
    ap.add_argument(
        "--demo-train-set",
        action="append",
        metavar="KEY=VALUE",
        help="with --demo-runs: a variant, the demo's train preset with this key changed (repeatable)",
    )
    ap.add_argument(
        "--demo-set",
        action="append",
        metavar="KEY=VALUE",
        help="with --demo-runs: a variant, the demo's own configuration with this key changed, e.g. "
        "train_budget=20m (repeatable)",
    )
    ap.add_argument("--threads", type=int, help="torch threads of the approaches' trainings (default: the product's)")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.demo_runs:
        demo_runs(args.work, args.demo_runs, args.demo_train_set, args.demo_set)
    elif not args.report_only:
        data = dataset(args.work)
        for name in args.approach or list(APPROACHES):
            run_approach(name, data, args.work, args.every, args.threads)
    results = [
        json.loads((args.work / f"{n}.json").read_text()) for n in APPROACHES if (args.work / f"{n}.json").is_file()
    ]
    record = args.work / "demo_runs.json"
    runs = [r for r in (json.loads(record.read_text()) if record.is_file() else []) if _same_measured(r.get("commit"))]
    if not results and not (runs and carried_approaches()):
        raise SystemExit(f"no results in {args.work}")
    for r in runs:  # records made before runs kept these: read them from the run's folder
        r.setdefault("epochs", trained_epochs(args.work / "demo_runs" / r["folder"]))
        if r.get("identification_rate_drr_op_views") is None and (args.work / "demo_runs" / r["folder"]).is_dir():
            r["identification_rate_drr_op_views"] = drr_rate_without_combination(args.work / "demo_runs" / r["folder"])
    body = report(results, runs, args.work, quiet_seconds_per_epoch(args.work))
    if args.no_write:
        print(body)
        return
    if results:
        picture(results, ROOT / "docs" / "demo-curves.png")
    print(f"wrote {write_section('demo', body, MEASURES)}" + (" and docs/demo-curves.png" if results else ""))


if __name__ == "__main__":
    main()
