"""Benchmark CPU prediction with a trained model on real frames: plain Ultralytics against ``yolo_spine predict``.

Speed depends on what the weights learned: NMS, mask assembly, polygon tracing and drawing all scale with the
instances found, so a model that detects nothing times only the network. This benchmark therefore needs a
trained segmentation model (``--weights``: the demo's ``train/weights/best.pt``) and real frames:

* **frames** — the held-out test images of the example CT (LIDC-IDRI-0001): sagittal/coronal slices and AP/lateral
  DRRs, either made here by ``ct2yolo`` with the demo's recipe (``configs/ct/demo.yaml``) or taken from
  ``--frames DIR`` (a demo output folder, a dataset folder with ``data.yaml``, or a folder of images). ``--n-frames``
  of them, evenly spaced over the sorted test images, are letterboxed onto a ``--frame-size`` square and written as
  one MJPG video (a live stream of real images);
* **RG1_UNCR** — the real chest radiograph from pydicom-data, predicted once by ``yolo_spine predict``: its
  instance count is reported, not required (the model learned vertebrae from CT slices and DRRs).

Confidence: the review's (``--conf auto``: the best-F1 mask confidence of the review's ``metrics.json``, found beside
the weights, in ``DIR/review`` of a demo folder, or given by ``--review``; a model the review calls unusable falls
back to 0.25, said in the section), the same number for every backend. Instances per frame on the example CT
frames must be above 0 at that confidence; the section says so, or marks it **MISSED**.

Backends, each run in its own process, alternating plain/ours within each runtime and runtimes within each of
``--repeat`` rounds so drifting load hits all of them:

* **plain Ultralytics** — ``YOLO(model).predict(source=video, stream=True, save=True, conf=…, imgsz=…)`` with the
  same ``.pt`` and with the same ONNX, OpenVINO FP32 and (``--int8``) INT8 exports, Ultralytics' own threads (torch
  ``min(8, cores − 1)``; ONNX Runtime and OpenVINO their defaults), the user's shell environment;
* **ours** — ``yolo_spine predict`` on the same files (jsonl + annotated video, FPS drawn), its own threads
  (every core) and thread policy.

So the ratio *ours / plain, same runtime* is what our code adds (threads, read-ahead, background encoding, our
drawing), and *vs plain PyTorch* what the runtime adds on top. Each tool loads its model and runs it once on a
blank frame before the clock starts. **Steady** FPS: frames after the first ``WARMUP_FRAMES`` (10) over their time;
**whole run**: all frames. Per-frame stages (median over steady frames, median over runs): Ultralytics' ``pre``,
``infer``, ``post`` (NMS + masks), of which **masks** (``ops.process_mask``, timed in both tools by wrapping it), and
in ours **polygons** (outlines traced into records) and **draw** (drawing + handing the frame to the encoder).

    python scripts/bench_predict.py --weights DEMO/train/weights/best.pt --frames DEMO        # the section
    python scripts/bench_predict.py --no-write --n-frames 30 --repeat 1 --no-int8             # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scripts._bench import ROOT, command_line, git_rev, machine, write_section
from yolo_spine.predict.run import WARMUP_FRAMES

#: What this section measures (scripts/check_benchmarks.py).
MEASURES = ["scripts/bench_predict.py", "yolo_spine/predict/", "yolo_spine/ultra.py", "configs/predict/"]
#: The committed checkpoint a quick check (--no-write) uses when no --weights is given.
PHANTOM_WEIGHTS = ROOT / "yolo_spine" / "weights" / "yolo11n-seg-spine-phantoms.pt"
#: Runtimes in table order: (key, label, export format, INT8).
RUNTIMES = [
    ("pt", "PyTorch", None, False),
    ("onnx", "ONNX Runtime", "onnx", False),
    ("ov", "OpenVINO FP32", "openvino", False),
    ("int8", "OpenVINO INT8", "openvino", True),
]

# Both tools get the same wrapper around Ultralytics' mask assembly (two perf_counter calls a frame).
MASK_TIMER = """
import json, sys, time
import ultralytics.utils.ops as _ops
_process_mask, MASK_S = _ops.process_mask, []
def _timed(*a, **k):
    t = time.perf_counter()
    out = _process_mask(*a, **k)
    MASK_S.append(time.perf_counter() - t)
    return out
_ops.process_mask = _timed
"""

PLAIN = (
    """
import sys
import numpy as np
from ultralytics import YOLO
"""
    + MASK_TIMER
    + """
model_path, video, size, project, warm, conf, report = sys.argv[1:8]
size, warm, conf = int(size), int(warm), float(conf)
model = YOLO(model_path, task="segment")
model.predict(np.zeros((size, size, 3), np.uint8), imgsz=size, conf=conf, verbose=False)  # load + warm up, like ours
n, t0, t_warm, counts, ms = 0, time.perf_counter(), None, [], []
for r in model.predict(source=video, imgsz=size, conf=conf, stream=True, save=True, verbose=False,
                       project=project, name="plain", exist_ok=True):
    n += 1
    counts.append(0 if r.boxes is None else len(r.boxes))
    ms.append({"pre": r.speed["preprocess"], "infer": r.speed["inference"], "post": r.speed["postprocess"]})
    if n == warm:
        t_warm = time.perf_counter()
t1 = time.perf_counter()
from yolo_spine.predict.model import runtime_threads  # reads the backend's settings; changes nothing
out = {"fps": n / (t1 - t0), "fps_steady": (n - warm) / (t1 - t_warm), "instances": counts, "ms": ms,
       "masks_ms": [1000 * s for s in MASK_S], "threads": runtime_threads(model)}
open(report, "w").write(json.dumps(out))
"""
)

OURS = (
    """
from yolo_spine.ultra import import_ultralytics
import_ultralytics()  # what `yolo_spine predict` does first (every core, offline, passive OpenMP waiting)
"""
    + MASK_TIMER
    + """
from yolo_spine.cli import main
rc = main(sys.argv[2:])
open(sys.argv[1], "w").write(json.dumps({"masks_ms": [1000 * s for s in MASK_S]}))
sys.exit(rc)
"""
)


@dataclass
class Frame:
    """One benchmark frame: its image, what it shows (``drr`` or ``slice``) and its labelled instance count."""

    image: Path
    kind: str
    labelled: int | None


@dataclass
class Runs:
    """What one backend measured over the repeats."""

    fps: list[float] = field(default_factory=list)
    steady: list[float] = field(default_factory=list)
    stages: list[dict[str, float]] = field(default_factory=list)
    instances: list[list[int]] = field(default_factory=list)
    threads: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------------ frames
def dataset_root(frames: Path | None) -> Path | None:
    """The dataset folder (with ``data.yaml``) of ``--frames``: a demo folder's ``dataset/``, or the folder itself."""
    if frames is None:
        return None
    for cand in (frames / "dataset", frames):
        if (cand / "data.yaml").is_file():
            return cand
    return None


def make_ct_frames(out: Path) -> Path:
    """Cut the example CT into the demo's dataset (``configs/ct/demo.yaml``); return the dataset folder."""
    from yolo_spine.ct.convert import ct2yolo
    from yolo_spine.ct.options import CtOptions
    from yolo_spine.data import example_ct

    ex = example_ct()
    ct2yolo(out, CtOptions.load("demo"), volume=ex.volume, labels=ex.labels, study="lidc0001", anatomy="spine",
            progress=False)  # fmt: skip
    return out


def list_frames(frames_dir: Path | None, dataset: Path | None, split: str) -> list[Frame]:
    """The test images of the dataset (or every image of a plain folder), sorted, with kind and labelled count."""
    from yolo_spine.io.xray import XRAY_SUFFIXES

    folder = dataset / "images" / split if dataset else frames_dir
    if folder is None or not folder.is_dir():
        raise SystemExit(f"no images at {folder}: give --frames a demo folder, a dataset folder or an image folder")
    out = []
    for img in sorted(p for p in folder.iterdir() if p.suffix.lower() in XRAY_SUFFIXES):
        label = dataset / "labels" / split / f"{img.stem}.txt" if dataset else None
        n = sum(1 for ln in label.read_text().splitlines() if ln.strip()) if label and label.is_file() else None
        out.append(Frame(img, "drr" if "_drr_" in img.stem else "slice", n if dataset else None))
    if not out:
        raise SystemExit(f"no images in {folder}")
    return out


def letterbox(image: Any, size: int) -> Any:
    """Scale a ``(H, W, 3)`` image to fit a ``size`` square (aspect kept) and pad it with black, centred."""
    import cv2
    import numpy as np

    h, w = image.shape[:2]
    s = size / max(h, w)
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    canvas = np.zeros((size, size, 3), np.uint8)
    top, left = (size - nh) // 2, (size - nw) // 2
    canvas[top : top + nh, left : left + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
    return canvas


def make_video(frames: list[Frame], path: Path, size: int, n: int) -> list[Frame]:
    """Write ``n`` frames evenly spaced over ``frames`` (cycled when fewer) as an MJPG video; return them in order."""
    import cv2

    if len(frames) >= n:
        picked = [frames[round(k * (len(frames) - 1) / max(n - 1, 1))] for k in range(n)]
    else:
        picked = [frames[k % len(frames)] for k in range(n)]
    wr = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 25.0, (size, size))
    for fr in picked:
        wr.write(letterbox(cv2.imread(str(fr.image), cv2.IMREAD_COLOR), size))
    wr.release()
    return picked


# ------------------------------------------------------------------------------------------------------- runs
def run(cmd: list[Any], env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run a command; on failure stop the benchmark with the end of its error output."""
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env)
    if proc.returncode:
        raise SystemExit(f"{' '.join(map(str, cmd[:6]))} failed:\n{proc.stderr[-3000:]}")
    return proc


def export_models(pt: Path, tmp: Path, imgsz: int, data: Path | None, int8: bool, env: dict[str, str]) -> dict:
    """Write the ONNX, OpenVINO FP32 and (with ``int8`` and a dataset) INT8 exports with ``yolo_spine export``."""
    models: dict[str, Path] = {"pt": pt}
    py = sys.executable
    for key, _, fmt, quant in RUNTIMES[1:]:
        if quant and not (int8 and data):
            continue
        out = tmp / f"model_{key}" / ("m.onnx" if fmt == "onnx" else f"m_{key}_openvino_model")
        extra = ["--int8", "--data", data, "--max-drop", "100"] if quant else []  # accuracy: bench_int8.py
        run([py, "-m", "yolo_spine", "-q", "export", "--weights", pt, "--format", fmt, "--imgsz", imgsz, "--out", out,
             *extra], env)  # fmt: skip
        models[key] = out
    return models


def steady_median(rows: list[dict[str, float]], key: str) -> float:
    """Median of one stage over the frames after the warm-up."""
    vals = [r[key] for r in rows[WARMUP_FRAMES:]] or [r[key] for r in rows]
    return statistics.median(vals) if vals else float("nan")


def run_plain(model: Path, video: Path, size: int, conf: float, out: Path, env: dict[str, str], res: Runs) -> None:
    """One plain Ultralytics run; append its figures to ``res``."""
    report = out / "plain.json"
    out.mkdir(parents=True)
    run([sys.executable, "-c", PLAIN, model, video, size, out, WARMUP_FRAMES, conf, report], env)
    r = json.loads(report.read_text())
    res.fps.append(r["fps"])
    res.steady.append(r["fps_steady"])
    res.instances.append(r["instances"])
    stages = {k: steady_median(r["ms"], k) for k in ("pre", "infer", "post")}
    stages["masks"] = statistics.median(r["masks_ms"]) if r["masks_ms"] else 0.0
    res.stages.append(stages)
    res.threads = r["threads"]


def run_ours(model: Path, video: Path, size: int, conf: float, out: Path, env: dict[str, str], res: Runs) -> None:
    """One ``yolo_spine predict`` run (the CLI, in its own process); append its figures to ``res``."""
    report = out.with_suffix(".masks.json")
    run([sys.executable, "-c", OURS, report, "-q", "predict", "--weights", model, "--source", video, "--out", out,
         "--imgsz", size, "--conf", conf], env)  # fmt: skip
    manifest = json.loads((out / "run.json").read_text())
    records = [json.loads(ln) for ln in (out / "predictions.jsonl").read_text().splitlines()]
    masks = json.loads(report.read_text())["masks_ms"]
    res.fps.append(manifest["fps"])
    res.steady.append(manifest["fps_steady"])
    res.instances.append([len(r["instances"]) for r in records])
    stages = {k: steady_median([r["ms"] for r in records], k) for k in ("pre", "infer", "post", "polygons", "draw")}
    stages["masks"] = statistics.median(masks) if masks else 0.0
    res.stages.append(stages)
    res.threads = manifest.get("runtime_threads") or {"torch": manifest["torch_threads"]}


def predict_radiograph(pt: Path, size: int, conf: float, out: Path, env: dict[str, str]) -> dict[str, Any]:
    """``yolo_spine predict`` on RG1_UNCR.dcm with the ``.pt``: instance count and per-stage ms."""
    from yolo_spine.data import example_radiograph

    run([sys.executable, "-m", "yolo_spine", "-q", "predict", "--weights", pt, "--source", example_radiograph(),
         "--out", out, "--imgsz", size, "--conf", conf], env)  # fmt: skip
    (rec,) = [json.loads(ln) for ln in (out / "predictions.jsonl").read_text().splitlines()]
    return {"instances": len(rec["instances"]), "width": rec["width"], "height": rec["height"], "ms": rec["ms"]}


# ----------------------------------------------------------------------------------------------------- report
def threads_text(t: dict[str, Any]) -> str:
    """``torch 1, ONNX Runtime default (0)``: the threads one backend ran on."""
    parts = [f"torch {t.get('torch')}"]
    if "onnxruntime" in t:
        n = t["onnxruntime"]
        parts.append(f"ONNX Runtime {n}" if n else "ONNX Runtime default (one per physical core)")
    if "openvino" in t:
        parts.append(f"OpenVINO {t['openvino']}")
    return ", ".join(parts)


def detection_lines(picked: list[Frame], counts: list[int], conf: float, conf_from: str, rg1: dict) -> list[str]:
    """The instances-per-frame paragraph and its verdict (> 0 on the example CT frames)."""
    lines = []
    mean_all = statistics.mean(counts)
    means = []
    for kind in ("slice", "drr"):
        idx = [i for i, f in enumerate(picked) if f.kind == kind]
        if not idx:
            continue
        got = [counts[i] for i in idx]
        means.append(statistics.mean(got))
        lab = [picked[i].labelled for i in idx if picked[i].labelled is not None]
        labelled = f"; labelled {statistics.mean(lab):.1f}" if lab else ""
        lines.append(
            f"- {kind}s ({len(idx)} frames): {statistics.mean(got):.1f} instances per frame (min {min(got)}, "
            f"max {max(got)}; {sum(1 for c in got if c == 0)} frames with none){labelled}"
        )
    lines.append(
        f"- RG1_UNCR (real chest CR, {rg1['width']}×{rg1['height']} px, not required to have detections): "
        f"{rg1['instances']} instances; ms pre {rg1['ms']['pre']:.1f}, infer {rg1['ms']['infer']:.1f}, post "
        f"{rg1['ms']['post']:.1f}, polygons {rg1['ms']['polygons']:.1f}, draw {rg1['ms']['draw']:.1f}"
    )
    verdict = (
        "met"
        if min(means) > 0
        else "**MISSED**: the model finds nothing on some kind of frame, so the table times no masks there"
    )
    head = (
        f"Instances per frame at conf {conf:.3f} — {conf_from} — `yolo_spine predict` with the `.pt`, first run: "
        f"**{mean_all:.2f}** on the example CT frames (target > 0 on slices and on DRRs: {verdict})."
    )
    return [head, "", *lines]


def speed_rows(results: dict[tuple[str, str], Runs]) -> list[str]:
    """Rows of the speed table: FPS, ratios, threads, instances per frame."""
    base = statistics.median(results[("plain", "pt")].steady)
    rows = []
    for key, label, _, _ in RUNTIMES:
        for tool in ("plain", "ours"):
            r = results.get((tool, key))
            if r is None:
                continue
            med = statistics.median(r.steady)
            same = statistics.median(results[("plain", key)].steady)
            inst = statistics.mean(r.instances[0])
            rows.append(
                f"| {'plain Ultralytics' if tool == 'plain' else 'yolo_spine predict'} | {label} | {med:.1f} | "
                f"{med / same:.2f}× | {med / base:.2f}× | {statistics.median(r.fps):.1f} | "
                f"{', '.join(f'{x:.1f}' for x in r.steady)} | {threads_text(r.threads)} | {inst:.2f} |"
            )
    return rows


def stage_rows(results: dict[tuple[str, str], Runs]) -> list[str]:
    """Rows of the per-frame stage table (ms, median over runs)."""
    rows = []
    for key, label, _, _ in RUNTIMES:
        for tool in ("plain", "ours"):
            r = results.get((tool, key))
            if r is None:
                continue

            def med(stage: str, runs: Runs = r) -> str:
                vals = [s[stage] for s in runs.stages if stage in s]
                return f"{statistics.median(vals):.1f}" if vals else "–"

            period = 1000.0 / statistics.median(r.steady)
            spent = sum(
                statistics.median([s[k] for s in r.stages]) for k in ("pre", "infer", "post", "polygons", "draw")
                if k in r.stages[0]
            )  # fmt: skip
            rows.append(
                f"| {tool} | {label} | {med('pre')} | {med('infer')} | {med('post')} | {med('masks')} | "
                f"{med('polygons')} | {med('draw')} | {period - spent:.1f} | {period:.1f} |"
            )
    return rows


def report(args: argparse.Namespace, ctx: dict[str, Any], results: dict[tuple[str, str], Runs]) -> str:
    """The BENCHMARKS.md section."""
    picked: list[Frame] = ctx["picked"]
    n_drr = sum(1 for f in picked if f.kind == "drr")
    counts = results[("ours", "pt")].instances[0]
    return "\n".join(
        [
            f"## predict: frames per second on the CPU, trained model on real frames ({ctx['size']} px)",
            "",
            f"Model: `{ctx['weights_name']}` (SHA-256 {ctx['sha'][:12]}), inference at {ctx['size']} px. Frames: "
            f"{len(picked)} frames ({len(picked) - n_drr} slices, {n_drr} DRRs) "
            f"{'evenly spaced over' if len(picked) <= ctx['n_test'] else 'cycling through'} the {ctx['n_test']} "
            f"held-out {args.split} images of the example CT ({ctx['frames_from']}), letterboxed onto "
            f"{args.frame_size}×{args.frame_size} px, one MJPG video. Median of {args.repeat} runs; annotated video "
            "written by every backend. "
            f"Machine: {machine()}; commit {git_rev(MEASURES)}. {ctx['int8_note']}",
            "",
            *detection_lines(picked, counts, ctx["conf"], ctx["conf_from"], ctx["rg1"]),
            "",
            "| tool | runtime | FPS steady (median) | vs plain, same runtime | vs plain PyTorch | FPS whole run "
            "(median) | steady, each run | threads | instances per frame |",
            "|---|---|---|---|---|---|---|---|---|",
            *speed_rows(results),
            "",
            "Per frame, ms (median over the steady frames, median over runs): Ultralytics' pre, infer, post "
            "(NMS + masks), of which masks (`ops.process_mask`, median over frames with instances); ours also "
            "polygons (outlines traced into instance records) and draw (drawing + handing the frame to the "
            "background encoder); period = 1000 / steady FPS; rest = period − the stages before it: in plain, "
            "decoding, drawing (`Results.plot`) and writing the video, which it does not time; in ours, waiting for "
            "the reader (decoding and encoding run in background threads, overlapping the stages).",
            "",
            "| tool | runtime | pre | infer | post | masks | polygons | draw | rest | period |",
            "|---|---|---|---|---|---|---|---|---|---|",
            *stage_rows(results),
            "",
            f"Command: `{command_line()}`",
        ]
    )


# ------------------------------------------------------------------------------------------------------- main
def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, help="trained .pt (the demo's train/weights/best.pt); needed to write")
    ap.add_argument("--frames", type=Path, help="demo output folder, dataset folder or image folder (default: "
                    "ct2yolo of the example CT with the demo recipe, test split)")  # fmt: skip
    ap.add_argument("--split", default="test", help="dataset split whose images are the frames (default: test)")
    ap.add_argument("--review", type=Path, help="review metrics.json or folder for --conf auto (default: found)")
    ap.add_argument("--conf", default="auto", help="confidence: auto (the review's best F1) or a number")
    ap.add_argument("--imgsz", type=int, help="inference size (default: the size the model was trained at)")
    ap.add_argument("--frame-size", type=int, default=512, help="video frame size, px (default 512: the CT's)")
    ap.add_argument("--n-frames", type=int, default=150)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--int8", action=argparse.BooleanOptionalAction, default=True, help="include OpenVINO INT8")
    ap.add_argument("--no-write", action="store_true", help="print the table, leave BENCHMARKS.md alone")
    args = ap.parse_args()
    if args.n_frames < 2 * WARMUP_FRAMES:
        ap.error(f"--n-frames must be at least {2 * WARMUP_FRAMES} (steady FPS counts frames after {WARMUP_FRAMES})")
    if args.weights is None:
        if not args.no_write:
            ap.error("a written section needs --weights (the demo's trained train/weights/best.pt)")
        args.weights = PHANTOM_WEIGHTS
    return args


def model_facts(pt: Path) -> tuple[int, str]:
    """The size the checkpoint was trained at (640 if it does not say) and its SHA-256."""
    from yolo_spine.provenance import sha256_file
    from yolo_spine.train.train import checkpoint_meta
    from yolo_spine.ultra import import_ultralytics

    import_ultralytics(threads=1)
    imgsz = checkpoint_meta(pt)["train_args"].get("imgsz") or 640
    return int(imgsz if isinstance(imgsz, int) else max(imgsz)), sha256_file(pt)


def main() -> None:
    args = parse_args()
    shell_env = dict(os.environ)  # as the user's shell has it, before this process sets anything
    from yolo_spine.errors import UserError
    from yolo_spine.predict.model import resolve_conf
    from yolo_spine.ultra import configure_environment

    config_dir = configure_environment(threads=1)
    # Both tools: the user's environment, offline, the same Ultralytics config folder (fonts without download).
    path = os.pathsep.join([str(ROOT), *filter(None, [shell_env.get("PYTHONPATH")])])  # this checkout's code
    env = {**shell_env, "YOLO_OFFLINE": "1", "YOLO_CONFIG_DIR": str(config_dir), "PYTHONPATH": path}
    env.pop("OMP_NUM_THREADS", None)  # each tool chooses its threads, as from a user's shell
    pt = args.weights.resolve()
    size, sha = model_facts(pt)
    size = args.imgsz or size
    frames_dir = args.frames.resolve() if args.frames else None
    review = args.review or (frames_dir / "review" if frames_dir and (frames_dir / "review").is_dir() else None)
    conf_opt: float | str = args.conf if args.conf == "auto" else float(args.conf)
    try:
        conf, conf_record = resolve_conf(conf_opt, pt, review)  # type: ignore[arg-type]
    except UserError as exc:
        raise SystemExit(f"bench_predict: {exc}") from None
    with tempfile.TemporaryDirectory(prefix="bench_predict_") as tmp_str:
        tmp = Path(tmp_str)
        dataset = dataset_root(frames_dir) if frames_dir else make_ct_frames(tmp / "ct")
        frames = list_frames(frames_dir, dataset, args.split)
        video = tmp / "frames.avi"
        picked = make_video(frames, video, args.frame_size, args.n_frames)
        data = dataset / "data.yaml" if dataset else None
        models = export_models(pt, tmp, size, data, args.int8, env)
        int8_note = ""
        if "int8" in models:
            chk = json.loads(Path(f"{models['int8']}.json").read_text())["int8_check"]
            int8_note = (
                f"INT8 calibrated on {chk['calibration_split']}; its mask mAP50-95 drop against FP32 on "
                f"{chk['eval_split']}: {chk['drop_points']:.2f} points (accuracy on the test split: "
                "`scripts/bench_int8.py`)."
            )
        results: dict[tuple[str, str], Runs] = {}
        for r in range(args.repeat):
            for key, model in models.items():
                plain = results.setdefault(("plain", key), Runs())
                ours = results.setdefault(("ours", key), Runs())
                run_plain(model, video, size, conf, tmp / f"plain{r}_{key}", env, plain)
                run_ours(model, video, size, conf, tmp / f"ours{r}_{key}", env, ours)
            print(f"run {r + 1}/{args.repeat}: "
                  + ", ".join(f"{t} {k} {v.steady[-1]:.1f}" for (t, k), v in results.items()), flush=True)  # fmt: skip
        rg1 = predict_radiograph(pt, size, conf, tmp / "rg1", env)
    ctx = {
        "picked": picked,
        "n_test": len(frames),
        "size": size,
        "weights_name": pt.name,
        "sha": sha,
        "conf": conf,
        "conf_from": conf_record["from"],
        "frames_from": f"from {args.frames}" if args.frames else "made here by ct2yolo, configs/ct/demo.yaml",
        "rg1": rg1,
        "int8_note": int8_note,
    }
    body = report(args, ctx, results)
    print(body)
    if not args.no_write:
        write_section("predict" if args.imgsz is None else f"predict-{size}", body, MEASURES)


if __name__ == "__main__":
    main()
