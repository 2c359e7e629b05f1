"""OpenVINO FP32 and INT8 exports of a model that finds vertebrae predict what its ``.pt`` predicts.

The one-epoch fixture model (``tests/conftest.py``) loses every detection in INT8, so its INT8 agreement cannot be
checked (``test_predict.py`` checks its FP32 agreement and the INT8 guard). Here the committed phantom-pretrained
checkpoint (``yolo_spine/weights/yolo11n-seg-spine-phantoms.pt``: trained on synthetic phantoms only, never on the
example CT) predicts held-out slices and DRRs of the example CT, where it finds hundreds of instances at conf 0.1, and
both exports must find the same ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
PHANTOM_WEIGHTS = ROOT / "yolo_spine" / "weights" / "yolo11n-seg-spine-phantoms.pt"
#: Reference instances: the .pt's at or above this confidence (clear of the 0.05 cut, where runtimes flip).
REF_CONF = 0.1


def _mask(inst: dict, w: int, h: int) -> np.ndarray:
    from yolo_spine.geometry import polygons_to_mask

    poly = np.asarray(inst["polygon_xy"], dtype=float).reshape(-1, 2)
    return polygons_to_mask([poly], h, w) if len(poly) >= 3 else np.zeros((h, w), bool)


def _box_iou(a: list[float], b: list[float]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


def _matched_ious(ref_runs: list[dict], other_runs: list[dict]) -> tuple[int, list[float]]:
    """Pair each reference instance (conf >= REF_CONF, most confident first) with the unpaired same-class instance
    of the other model whose box overlaps it by more than 0.5 and whose mask overlaps it most; return the number
    of reference instances and the mask IoU of every pair."""
    n_ref, ious = 0, []
    for r, o in zip(ref_runs, other_runs, strict=True):
        assert r["source"] == o["source"]
        w, h = r["width"], r["height"]
        left = list(o["instances"])
        for a in sorted((i for i in r["instances"] if i["conf"] >= REF_CONF), key=lambda i: -i["conf"]):
            n_ref += 1
            ma = _mask(a, w, h)
            best, best_iou = None, -1.0
            for b in left:
                if b["class_id"] != a["class_id"] or _box_iou(a["box_xyxy"], b["box_xyxy"]) <= 0.5:
                    continue
                mb = _mask(b, w, h)
                iou = np.count_nonzero(ma & mb) / max(np.count_nonzero(ma | mb), 1)
                if iou > best_iou:
                    best, best_iou = b, iou
            if best is not None:
                left.remove(best)
                ious.append(best_iou)
    return n_ref, ious


@pytest.mark.slow
def test_openvino_fp32_and_int8_agree_with_the_pt_on_example_ct_frames(example_ct, tmp_path: Path) -> None:
    from yolo_spine.ct.convert import ct2yolo
    from yolo_spine.ct.options import CtOptions
    from yolo_spine.predict.export import export_model
    from yolo_spine.predict.run import predict

    assert PHANTOM_WEIGHTS.is_file(), f"the committed checkpoint {PHANTOM_WEIGHTS} is missing"
    ds = tmp_path / "ds"  # the demo's recipe, fewer slices and poses: train calibrates, val guards, test is predicted
    opts = CtOptions.load("demo")
    ct2yolo(ds, opts, volume=example_ct.volume, labels=example_ct.labels, study="lidc0001", anatomy="spine",
            progress=False, step=6, poses=4)  # fmt: skip
    fp32 = export_model(PHANTOM_WEIGHTS, format="openvino", imgsz=256, out=tmp_path / "fp32_openvino_model")
    int8 = export_model(PHANTOM_WEIGHTS, format="openvino", int8=True, imgsz=256, data=ds / "data.yaml",
                        max_drop=100, out=tmp_path / "int8_openvino_model")  # fmt: skip
    assert "FakeQuantize" in next(int8.glob("*.xml")).read_text()  # really INT8
    runs = {}
    for name, model in (("pt", PHANTOM_WEIGHTS), ("fp32", fp32), ("int8", int8)):
        m = predict(model, ds / "images" / "test", tmp_path / f"pred_{name}", conf=0.05, imgsz=256,
                    save_annotated=False)  # fmt: skip
        assert m["model"]["format"] == ("pt" if name == "pt" else "openvino")
        runs[name] = [
            json.loads(ln) for ln in (tmp_path / f"pred_{name}" / "predictions.jsonl").read_text().splitlines()
        ]
    n_ref, fp32_ious = _matched_ious(runs["pt"], runs["fp32"])
    _, int8_ious = _matched_ious(runs["pt"], runs["int8"])
    print(
        "reference", n_ref, "fp32", len(fp32_ious), np.median(fp32_ious), "int8", len(int8_ious), np.median(int8_ious)
    )
    assert n_ref >= 50  # enough instances for the comparison to mean something
    # FP32: the same network (OpenVINO may run it in bf16 on CPUs with AMX): measured 188 of 190 matched, median
    # mask IoU 0.99 (2026-12-05). A wrong letterbox, channel order or scale would match few and overlap little.
    assert len(fp32_ious) >= 0.9 * n_ref and np.median(fp32_ious) >= 0.9
    # INT8: activations on 256 levels move mask logits near the 0.5 threshold, so borders shift and weak instances
    # drop out: measured 174 of 190 matched (92 %), median mask IoU 0.85. The limits leave room for calibration
    # noise yet fail a quantisation that loses or misplaces the model's instances.
    assert len(int8_ious) >= 0.8 * n_ref and np.median(int8_ious) >= 0.75
