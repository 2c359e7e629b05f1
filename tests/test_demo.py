"""The demo end to end on the real example CT, shrunk to a smoke size (the full run is `yolo_spine demo`)."""

from __future__ import annotations

import json

import SimpleITK as sitk


def test_demo_runs_every_stage_on_the_real_ct(tmp_path):
    from yolo_spine.data import example_ct
    from yolo_spine.demo.run import run_demo

    tiny = tmp_path / "tiny.yaml"
    tiny.write_text(
        "ct:\n  poses: 1\n  step: 6\n  drr: {size: 96, n_samples: 32}\n"
        "  split: {mode: slab, slab_mm: 5.0, fractions: {train: 0.5, val: 0.2, test: 0.3}}\n"
        "epochs: 1\nimgsz: 64\n"
    )
    out = tmp_path / "demo"
    s = run_demo(out, preset=tiny, device="cpu")
    for key in ("fetch", "ct2yolo", "train", "review", "predict", "lift", "eval3d"):
        assert key in s["seconds"]
    assert (out / "review" / "report.html").is_file() and (out / "summary.md").is_file()
    assert 0.0 <= s["mask_mAP50_test"] <= 1.0
    assert set(s["dice_per_vertebra"]) == {"C5", "C6", "C7", *(f"T{i}" for i in range(1, 13)), "L1", "L2", "L3"}
    seg, ct = sitk.ReadImage(s["nifti"]), sitk.ReadImage(str(example_ct().volume))
    assert seg.GetSize() == ct.GetSize() and seg.GetDirection() == ct.GetDirection()
    assert max(abs(a - b) for a, b in zip(seg.GetOrigin(), ct.GetOrigin(), strict=True)) < 1e-3
    saved = json.loads((out / "summary.json").read_text())
    assert saved["manifest"]["command"] == "demo" and saved["identification_rate_drr"] is not None
