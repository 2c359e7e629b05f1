"""The review as one self-contained HTML file (images embedded as base64; no external CSS, JS or fonts)."""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from yolo_spine.review.matching import ImageInstances

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#1d1d1f;max-width:1200px}
h1{font-size:22px} h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;font-size:13px} td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f2f2f2} td:first-child,th:first-child{text-align:left}
.grid{display:grid;grid-template-columns:repeat(4,1fr);gap:8px} .grid img{width:100%}
.pair{display:flex;gap:8px;margin:8px 0} .pair figure{margin:0} .pair img{max-width:560px;width:100%}
.note{color:#555;font-size:13px} .bad{color:#b00020;font-weight:600} .ok{color:#1b7f3b;font-weight:600}
.big{font-size:28px;font-weight:700}
"""


def png_data_uri(path_or_array: str | Path | np.ndarray) -> str:
    """Return a ``data:image/png;base64,…`` URI for a PNG file or an image array."""
    if isinstance(path_or_array, np.ndarray):
        ok, buf = cv2.imencode(".png", path_or_array)
        data = buf.tobytes() if ok else b""
    else:
        data = Path(path_or_array).read_bytes()
    return "data:image/png;base64," + base64.b64encode(data).decode()


def _color(cls: int) -> tuple[int, int, int]:
    rng = np.random.default_rng(cls * 7919 + 13)
    r, g, b = (int(v) for v in rng.integers(60, 255, 3))
    return r, g, b


def draw_instances(image_bgr: np.ndarray, inst: ImageInstances, names: list[str], title: str) -> np.ndarray:
    """Draw instance masks (filled, translucent) and class names onto a copy of an image."""
    out = image_bgr.copy()
    overlay = out.copy()
    for k, c in enumerate(inst.classes):
        overlay[inst.masks[k]] = _color(int(c))
    out = cv2.addWeighted(overlay, 0.45, out, 0.55, 0)
    scale = max(0.35, min(out.shape[:2]) / 900)
    for k, c in enumerate(inst.classes):
        ys, xs = np.nonzero(inst.masks[k])
        if not len(xs):
            continue
        label = names[int(c)] + (f" {inst.scores[k]:.2f}" if inst.scores is not None else "")
        org = (int(xs.max()) + 3, int(ys.mean()))
        cv2.putText(out, label, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(out, label, org, cv2.FONT_HERSHEY_SIMPLEX, scale, _color(int(c)), 1, cv2.LINE_AA)
    cv2.putText(
        out, title, (6, int(22 * scale * 2)), cv2.FONT_HERSHEY_SIMPLEX, scale * 1.3, (255, 255, 255), 2, cv2.LINE_AA
    )
    return out


def _table(header: list[str], rows: list[list[object]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(v: object) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def write_report(
    out_html: Path,
    metrics: Mapping[str, Any],
    curve_pngs: list[Path],
    confusion_png: Path,
    error_images: list[tuple[str, np.ndarray, np.ndarray, int]],
) -> Path:
    """Write ``report.html``.

    Args:
        out_html: Destination.
        metrics: The contents of ``metrics.json``.
        curve_pngs: The eight curve plots.
        confusion_png: The confusion matrix plot.
        error_images: ``(stem, ground truth drawing, prediction drawing, errors)``, worst first.
    """
    m = metrics
    conf = m["best_conf"]["mask"]["all"]["conf"]
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>yolo_spine review</title>"
        f"<style>{_CSS}</style></head><body>"
    ]
    parts.append(f"<h1>Model review — {html.escape(m['split'])} split of {html.escape(m['dataset'])}</h1>")
    parts.append(
        f"<p class='note'>Weights: {html.escape(m['weights'])}; anatomy: {html.escape(str(m['anatomy']))}; "
        f"{m['images']} images, {m['instances']} instances; {html.escape(m['created_utc'])}.</p>"
    )
    rec = "none (the model finds nothing at any confidence)" if conf is None else f"{conf:.3f}"
    verdict = m.get("usability") or {}
    if verdict.get("message"):
        # First thing a reader sees: every figure below describes a model that does not work.
        parts.append(f"<p class='bad big'>{html.escape(verdict['message'])}</p>")
    parts.append("<h2>Recommended confidence</h2>")
    parts.append(
        f"<p><span class='big'>{rec}</span><br><span class='note'>The confidence that maximises the mean "
        f"mask F1 over classes ({m['best_conf']['mask']['all']['f1']:.3f}); "
        + (
            "use it with <code>yolo_spine predict --conf auto</code>.</span></p>"
            if verdict.get("usable", True)
            else "<code>yolo_spine predict --conf auto</code> will not use it (the model is not usable) and falls "
            "back to predict's <code>fallback_conf</code>.</span></p>"
        )
    )
    rows = []
    for task in ("box", "mask"):
        t = m[task]
        rows.append([task, t["precision"], t["recall"], t["mAP50"], t["mAP50-95"]])
    parts.append("<h2>Overall</h2>" + _table(["", "precision", "recall", "mAP50", "mAP50-95"], rows))
    cc = m["pycocotools"]
    verdict = "<span class='ok'>agree</span>" if cc["agree"] else "<span class='bad'>DISAGREE</span>"
    parts.append(
        f"<p class='note'>Independent check: pycocotools mask mAP50-95 {cc['mask_mAP50-95']:.3f} vs "
        f"Ultralytics {cc['ultralytics_mask_mAP50-95']:.3f} (difference {cc['abs_diff_mAP50-95']:.3f}, "
        f"tolerance {cc['tolerance']}): {verdict}.</p>"
    )
    parts.append(
        "<h2>Curves</h2><div class='grid'>"
        + "".join(
            f"<figure><img alt='{p.stem}' src='{png_data_uri(p)}'>"
            f"<figcaption class='note'>{p.stem}</figcaption></figure>"
            for p in curve_pngs
        )
        + "</div>"
    )
    per = sorted(m["mask"]["per_class"].items(), key=lambda kv: (kv[1]["mAP50-95"], kv[0]))
    rows = [
        [
            name,
            v["instances"],
            v["precision"],
            v["recall"],
            v["mAP50"],
            v["mAP50-95"],
            m["box"]["per_class"].get(name, {}).get("mAP50-95"),
            m["best_conf"]["mask"]["per_class"].get(name, {}).get("conf"),
        ]
        for name, v in per
    ]
    parts.append(
        "<h2>Per class, worst first</h2>"
        + _table(
            ["class", "instances", "mask P", "mask R", "mask mAP50", "mask mAP50-95", "box mAP50-95", "best-F1 conf"],
            rows,
        )
    )
    parts.append(
        f"<h2>Confusion matrix at confidence {rec}</h2><img alt='confusion matrix' style='max-width:900px;"
        f"width:100%' src='{png_data_uri(confusion_png)}'>"
    )
    nb = m.get("neighbour_confusions") or []
    if nb:
        parts.append(
            "<h2>Confusions between neighbours</h2>"
            + _table(
                ["true", "predicted as", "count", "levels apart"],
                [[d["true"], d["predicted"], d["count"], d["distance"]] for d in nb[:20]],
            )
        )
    elif m.get("has_order"):
        parts.append("<h2>Confusions between neighbours</h2><p class='note'>None at the recommended confidence.</p>")
    if error_images:
        parts.append(
            "<h2>Images with the most errors</h2><p class='note'>Left: ground truth. Right: predictions at "
            "the recommended confidence.</p>"
        )
        for stem, gt_img, pred_img, n in error_images:
            parts.append(
                f"<h3 class='note'>{html.escape(stem)} — {n} error(s)</h3><div class='pair'>"
                f"<figure><img alt='ground truth' src='{png_data_uri(gt_img)}'></figure>"
                f"<figure><img alt='predictions' src='{png_data_uri(pred_img)}'></figure></div>"
            )
    parts.append(
        "<p class='note'>Written by yolo_spine val; every figure here is also in metrics.json, curves.csv "
        "and confusion_matrix.csv beside this file.</p></body></html>"
    )
    out_html.write_text("".join(parts), encoding="utf-8")
    return out_html
