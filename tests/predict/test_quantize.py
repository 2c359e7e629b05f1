"""``export --int8``'s choice between plain and accuracy-aware quantisation, with the quantisers stubbed.

The real NNCF paths run in the slow tier (``test_export_agreement.py``: the layer-restoring loop on example-CT
frames; ``test_predict.py``: the plain guard's refusal). Here only the decision is under test, which no real
model makes deterministic: a plain model that misses the limit falls back to accuracy-aware quantisation
(``auto``), is refused (``never``), or is never made (``always``); an accuracy-aware model that still misses is
refused too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from yolo_spine.errors import UserError


class _Stubs:
    """Plain export, guard and accuracy-aware quantiser that record their calls; drops given per model."""

    def __init__(self, tmp: Path, plain_drop: float, aa_drop: float) -> None:
        self.tmp, self.drops, self.calls = tmp, {"plain": plain_drop, "aa": aa_drop}, []

    def run_export(self, model: Any, args: dict[str, Any], format: str) -> Path:
        self.calls.append("plain")
        folder = self.tmp / "plain_int8_openvino_model"
        folder.mkdir()
        return folder

    def accuracy_aware(self, fp32: Path, data: Path, **kw: Any) -> Any:
        from yolo_spine.predict.quantize import AccuracyAwareRecord

        self.calls.append("aa")
        kw["out"].mkdir()
        return AccuracyAwareRecord(1.0, 5, 60, kw["tuning_split"], 3, [0.3, 0.2, 0.3])

    def measure(
        self, fp32: Path, int8: Path, data: Path, opts: Any, images: int, scratch: Path, fp32_scores: Any = None
    ) -> Any:
        from yolo_spine.predict.export import Int8Check

        if fp32_scores is None:
            self.calls.append("fp32")  # the FP32 model validated (again)
        drop = self.drops["aa" if "_aa_" in int8.name else "plain"]
        return Int8Check(opts.eval_split, opts.calibration_split, images, 0.3, 0.3 - drop / 100, 0.6, 0.6, drop,
                         opts.max_drop, drop <= opts.max_drop)  # fmt: skip


def _int8(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str, plain_drop: float, aa_drop: float):
    import yolo_spine.predict.export as export
    import yolo_spine.predict.quantize as quantize
    from yolo_spine.options import resolve_options
    from yolo_spine.predict.options import ExportOptions

    stubs = _Stubs(tmp_path, plain_drop, aa_drop)
    monkeypatch.setattr(export, "_run_export", stubs.run_export)
    monkeypatch.setattr(export, "measure_int8_drop", stubs.measure)
    monkeypatch.setattr(quantize, "accuracy_aware_int8", stubs.accuracy_aware)
    fp32 = tmp_path / "best_openvino_model"
    fp32.mkdir()
    (fp32 / "metadata.yaml").write_text("imgsz: [256, 256]\n")
    opts = resolve_options(ExportOptions, None, {"format": "openvino", "int8": True, "accuracy_aware": mode})
    try:
        return export._int8(None, {}, fp32, tmp_path / "data.yaml", opts, 3, tmp_path), stubs.calls
    except UserError as exc:
        return exc, stubs.calls


def test_auto_keeps_a_plain_model_within_the_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (folder, check), calls = _int8(tmp_path, monkeypatch, "auto", plain_drop=0.5, aa_drop=0.1)
    assert calls == ["plain", "fp32"] and folder.name == "plain_int8_openvino_model"
    assert check.method == "post-training" and check.post_training_drop_points is None and check.passed


def test_auto_falls_back_to_accuracy_aware_when_plain_misses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (folder, check), calls = _int8(tmp_path, monkeypatch, "auto", plain_drop=3.0, aa_drop=0.2)
    # FP32 validated once: the accuracy-aware model's check reuses the plain check's FP32 figures
    assert calls == ["plain", "fp32", "aa"] and folder.name == "best_int8_aa_openvino_model"
    assert check.fp32_mask_map50_95 == 0.3 and check.fp32_mask_map50 == 0.6
    assert check.method == "accuracy-aware" and check.post_training_drop_points == 3.0 and check.drop_points == 0.2
    assert check.accuracy_aware["tuning_split"] == "val" and check.accuracy_aware["fake_quantize"] == 60
    said = check.sentence()
    assert "accuracy-aware quantisation" in said and "plain post-training INT8 had dropped 3.00 points" in said


def test_never_refuses_and_always_skips_the_plain_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "never").mkdir()
    (tmp_path / "always").mkdir()
    refused, calls = _int8(tmp_path / "never", monkeypatch, "never", plain_drop=3.0, aa_drop=0.2)
    assert (
        isinstance(refused, UserError)
        and "refusing to write the INT8 model" in str(refused)
        and calls == ["plain", "fp32"]
    )
    (folder, check), calls = _int8(tmp_path / "always", monkeypatch, "always", plain_drop=0.1, aa_drop=0.2)
    assert (
        calls == ["aa", "fp32"]
        and folder.name == "best_int8_aa_openvino_model"
        and check.post_training_drop_points is None
    )
    assert check.method == "accuracy-aware" and check.passed


def test_an_accuracy_aware_model_that_still_misses_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    refused, calls = _int8(tmp_path, monkeypatch, "auto", plain_drop=3.0, aa_drop=1.5)
    assert calls == ["plain", "fp32", "aa"] and isinstance(refused, UserError)
    assert "accuracy-aware quantisation" in str(refused) and "exceeds --max-drop" in str(refused)
