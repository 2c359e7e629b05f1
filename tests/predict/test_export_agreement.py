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


@pytest.fixture(scope="module")
def ct_frames(example_ct, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's recipe on the example CT, fewer slices and poses: train calibrates, val guards, test is predicted.

    Returns:
        The dataset's ``data.yaml``.
    """
    from yolo_spine.ct.convert import ct2yolo
    from yolo_spine.ct.options import CtOptions

    ds = tmp_path_factory.mktemp("ct_frames") / "ds"
    ct2yolo(ds, CtOptions.load("demo"), volume=example_ct.volume, labels=example_ct.labels, study="lidc0001",
            anatomy="spine", progress=False, step=6, poses=4)  # fmt: skip
    return ds / "data.yaml"


def _predict_all(models: dict[str, Path], images: Path, out: Path) -> dict[str, list[dict]]:
    """Each model's predictions (conf 0.05, 256 px) on a folder, as ``predictions.jsonl`` records."""
    from yolo_spine.predict.run import predict

    runs = {}
    for name, model in models.items():
        m = predict(model, images, out / f"pred_{name}", conf=0.05, imgsz=256, save_annotated=False)
        assert m["model"]["format"] == ("pt" if name == "pt" else "openvino")
        runs[name] = [json.loads(ln) for ln in (out / f"pred_{name}" / "predictions.jsonl").read_text().splitlines()]
    return runs


@pytest.mark.slow
def test_openvino_fp32_and_int8_agree_with_the_pt_on_example_ct_frames(ct_frames: Path, tmp_path: Path) -> None:
    from yolo_spine.predict.export import export_model

    assert PHANTOM_WEIGHTS.is_file(), f"the committed checkpoint {PHANTOM_WEIGHTS} is missing"
    ds = ct_frames.parent
    fp32 = export_model(PHANTOM_WEIGHTS, format="openvino", imgsz=256, out=tmp_path / "fp32_openvino_model")
    int8 = export_model(PHANTOM_WEIGHTS, format="openvino", int8=True, imgsz=256, data=ct_frames, max_drop=100,
                        accuracy_aware="never", out=tmp_path / "int8_openvino_model")  # fmt: skip
    assert "FakeQuantize" in next(int8.glob("*.xml")).read_text()  # really INT8
    runs = _predict_all({"pt": PHANTOM_WEIGHTS, "fp32": fp32, "int8": int8}, ds / "images" / "test", tmp_path)
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


@pytest.mark.slow
def test_accuracy_aware_int8_meets_its_limit_on_the_split_it_was_tuned_on(ct_frames: Path, tmp_path: Path) -> None:
    """``export --int8 --accuracy-aware always``: NNCF returns sensitive layers to FP32 until mask mAP50-95 on val
    is within --max-drop; the guard then measures the written model on val and must find it within the limit, and
    the model still predicts what the ``.pt`` predicts on held-out test frames.

    The phantom checkpoint scores little on real CT frames (mask mAP50-95 about 2 % on val), so the limit is 0.05
    points, below plain INT8's drop there (0.15): the layer-restoring loop runs (measured: 27 validations, 110 →
    80 FakeQuantize, 2 minutes on 2 cores).
    """
    from yolo_spine.predict.export import export_model
    from yolo_spine.predict.quantize import fake_quantize_ops

    out = tmp_path / "aa_openvino_model"
    int8 = export_model(PHANTOM_WEIGHTS, format="openvino", int8=True, imgsz=256, data=ct_frames, max_drop=0.05,
                        accuracy_aware="always", out=out)  # fmt: skip
    check = json.loads(Path(f"{int8}.json").read_text())["int8_check"]
    print("int8_check", check)
    aa = check["accuracy_aware"]
    assert check["method"] == "accuracy-aware" and check["post_training_drop_points"] is None  # no plain attempt
    assert (aa["tuning_split"], check["eval_split"], check["calibration_split"]) == ("val", "val", "train")
    assert check["fp32_mask_map50_95"] > 0.01  # the phantom model finds vertebrae on these frames: a drop can show
    # NNCF's first whole-split validation is FP32's: the same network and images as the guard's FP32 figure
    assert aa["split_metrics"][0] == pytest.approx(check["fp32_mask_map50_95"], abs=0.01), aa
    metrics = aa["split_metrics"]  # FP32, plain INT8, then each model with more layers back in FP32
    if 100 * (metrics[0] - metrics[1]) > 0.05:  # plain INT8 missed (measured: 0.15 points): layers were restored
        assert len(metrics) > 2 and 100 * (metrics[0] - metrics[-1]) <= 0.05, aa
    assert check["passed"] and check["drop_points"] <= 0.05, check  # the guard's own measurement of the written model
    n_fq = fake_quantize_ops(int8)
    assert 0 < n_fq == aa["fake_quantize"], (n_fq, aa)  # really INT8, and the record describes the written model
    runs = _predict_all({"pt": PHANTOM_WEIGHTS, "aa": int8}, ct_frames.parent / "images" / "test", tmp_path)
    n_ref, ious = _matched_ious(runs["pt"], runs["aa"])
    print("reference", n_ref, "accuracy-aware", len(ious), np.median(ious))
    assert n_ref >= 50 and len(ious) >= 0.85 * n_ref and np.median(ious) >= 0.8
