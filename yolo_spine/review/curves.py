"""Precision/recall/F1 curves from Ultralytics' validation metrics: tables, best-F1 confidence, re-plots.

Ultralytics evaluates at 1000 confidence thresholds ``px`` (0…1) and keeps, per class present in the split,
the precision, recall and F1 curves, plus precision at 1000 recall values (PR curve at IoU 0.5). These
functions turn them into a long table (``curves.csv``) and into the confidence that maximises F1, overall
(mean F1 over classes, as Ultralytics reports) and per class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class CurveSet:
    """Curves of one task (boxes or masks).

    Attributes:
        px: ``(1000,)`` confidence thresholds (P, R, F1 x axis) and recall values (PR x axis).
        class_ids: ``(C,)`` class ids of the rows below (classes present in the split).
        p: ``(C, 1000)`` precision per confidence.
        r: ``(C, 1000)`` recall per confidence.
        f1: ``(C, 1000)`` F1 per confidence.
        pr: ``(C, 1000)`` precision per recall (IoU 0.5).
    """

    px: np.ndarray
    class_ids: np.ndarray
    p: np.ndarray
    r: np.ndarray
    f1: np.ndarray
    pr: np.ndarray


def curves_from_metric(metric: object) -> CurveSet:
    """Read the curves of an Ultralytics ``Metric`` (``metrics.box`` or ``metrics.seg``)."""
    ids = np.asarray(getattr(metric, "ap_class_index", []), dtype=int).reshape(-1)
    n = len(ids)

    def arr(name: str) -> np.ndarray:
        a = np.asarray(getattr(metric, name, np.zeros((0, 1000))), dtype=float)
        return a.reshape(-1, a.shape[-1])[:n] if a.size else np.zeros((n, 1000))

    px = np.asarray(getattr(metric, "px", np.linspace(0, 1, 1000)), dtype=float)
    return CurveSet(px, ids, arr("p_curve"), arr("r_curve"), arr("f1_curve"), arr("prec_values"))


def best_f1(curves: CurveSet, names: list[str]) -> dict:
    """Return the confidence maximising F1, overall and per class.

    Overall: the maximum of the mean F1 curve over present classes (Ultralytics' own choice, without its
    smoothing). ``conf`` is ``None`` when no class reaches a positive F1 (the model finds nothing).

    Returns:
        ``{"all": {"conf", "f1", "precision", "recall"}, "per_class": {name: {"conf", "f1", "precision", "recall"}}}``.
    """

    def at(p: np.ndarray, r: np.ndarray, f: np.ndarray) -> dict:
        if f.size == 0 or float(f.max()) <= 0.0:
            return {"conf": None, "f1": 0.0, "precision": 0.0, "recall": 0.0}
        i = int(np.argmax(f))
        return {
            "conf": round(float(curves.px[i]), 4),
            "f1": round(float(f[i]), 4),
            "precision": round(float(p[i]), 4),
            "recall": round(float(r[i]), 4),
        }

    overall = (
        at(curves.p.mean(0), curves.r.mean(0), curves.f1.mean(0))
        if len(curves.class_ids)
        else at(np.zeros(0), np.zeros(0), np.zeros(0))
    )
    per_class = {names[c]: at(curves.p[k], curves.r[k], curves.f1[k]) for k, c in enumerate(curves.class_ids)}
    return {"all": overall, "per_class": per_class}


def curve_rows(prefix: str, curves: CurveSet, names: list[str], step: int = 1) -> list[tuple]:
    """Rows ``(curve, class, confidence, recall, value)`` for ``curves.csv``.

    P, R and F1 rows fill ``confidence``; PR rows fill ``recall`` (their x axis). ``class`` is a class name or
    ``all`` (the mean over present classes, as plotted in bold by Ultralytics).
    """
    rows: list[tuple] = []
    x = curves.px[::step]
    series = {"P": curves.p, "R": curves.r, "F1": curves.f1, "PR": curves.pr}
    for short, data in series.items():
        curve = f"{prefix}{short}"
        if not len(curves.class_ids):
            continue
        blocks = [("all", data.mean(0))] + [(names[c], data[k]) for k, c in enumerate(curves.class_ids)]
        for cname, y in blocks:
            for xv, yv in zip(x, y[::step], strict=True):
                rows.append(
                    (curve, cname, f"{xv:.4f}", "", f"{yv:.5f}")
                    if short != "PR"
                    else (curve, cname, "", f"{xv:.4f}", f"{yv:.5f}")
                )
    return rows


def plot_curve(curves: CurveSet, names: list[str], short: str, title: str, out_png: str) -> None:
    """Plot one curve family (``P``, ``R``, ``F1`` or ``PR``) with every class thin and the mean bold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = {"P": curves.p, "R": curves.r, "F1": curves.f1, "PR": curves.pr}[short]
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=110)
    for k, c in enumerate(curves.class_ids):
        ax.plot(curves.px, data[k], linewidth=0.8, alpha=0.6, label=names[c] if len(curves.class_ids) <= 12 else None)
    if len(curves.class_ids):
        mean = data.mean(0)
        if short == "PR":
            label = f"all classes (area {np.trapezoid(mean, curves.px):.3f})"
        else:
            i = int(np.argmax(mean))
            label = f"all classes: {mean[i]:.2f} at {curves.px[i]:.3f}"
        ax.plot(curves.px, mean, linewidth=2.5, color="#1f3c88", label=label)
    ax.set_xlabel("recall" if short == "PR" else "confidence")
    ax.set_ylabel({"P": "precision", "R": "recall", "F1": "F1", "PR": "precision"}[short])
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best", frameon=False)
    fig.tight_layout()
    fig.savefig(out_png)
    plt.close(fig)
