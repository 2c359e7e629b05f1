"""Benchmark ``lift`` and ``eval3d`` on the real example CT (LIDC-IDRI-0001, 512×512×133).

The ground-truth label map is cut into axial, coronal and sagittal slices by ``ct2yolo`` (no DRRs; not timed),
then timed: lifting and fusing the three planes (vote) back into the volume, and scoring the lifted map against
the ground truth with ``eval3d`` (every vertebra present). Targets on 2 cores: < 2 s and < 5 s.

    python scripts/bench_lift.py            # median of 3
    python scripts/bench_lift.py --quick    # one run each, no BENCHMARKS.md update
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scripts._bench import command_line, git_rev, machine, median_seconds, write_section

#: What this section measures (scripts/check_benchmarks.py).
MEASURES = [
    "scripts/bench_lift.py",
    "yolo_spine/lift/",
    "yolo_spine/evaluate/eval3d.py",
    "yolo_spine/evaluate/metrics.py",
    "configs/lift/",
]


def main() -> None:
    """Run the benchmark and update the ``lift`` section of BENCHMARKS.md (unless ``--quick``)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one run each, print only")
    args = ap.parse_args()
    from yolo_spine.ct.convert import ct2yolo
    from yolo_spine.data import example_ct
    from yolo_spine.evaluate.eval3d import evaluate_volumes
    from yolo_spine.lift.io import read_lift_inputs
    from yolo_spine.lift.lift import _write_volume, lift_slice_inputs
    from yolo_spine.registry import load_registry

    ex = example_ct()
    reg = load_registry("spine")
    repeat = 1 if args.quick else 3
    with tempfile.TemporaryDirectory() as tmp:
        ds = Path(tmp) / "ds"
        ct2yolo(ds, volume=ex.volume, labels=ex.labels, anatomy="spine", views=[], progress=False)
        inputs = read_lift_inputs(ds)
        holder: dict = {}

        def run_lift() -> None:
            holder["out"] = lift_slice_inputs(inputs, reg, fusion="vote")

        t_lift, _ = median_seconds(run_lift, repeat)
        labels, geometry, info = holder["out"]
        seg = Path(tmp) / "seg.nii.gz"
        _write_volume(labels, geometry, seg, overwrite=True)

        def run_eval() -> None:
            holder["eval"] = evaluate_volumes(
                seg, ex.labels, "spine", tolerance_mm=2.0, gt_scheme=ex.label_scheme, pred_scheme="class_id+1"
            )

        t_eval, _ = median_seconds(run_eval, repeat)
        result = holder["eval"]
    n_slices = sum(p["slices"] for p in info["planes"].values())
    n_classes = result.mean.n_gt_classes
    body = (
        "## lift + eval3d (example CT)\n\n"
        f"Machine: {machine()}; commit {git_rev(MEASURES)}; `{command_line()}`\n\n"
        f"LIDC-IDRI-0001 512×512×133, ground truth cut by ct2yolo into {n_slices} slices over 3 planes.\n\n"
        "| step | seconds (median) | target |\n|---|---|---|\n"
        f"| lift + fuse 3 planes (vote) | {t_lift:.2f} | < 2 |\n"
        f"| eval3d, {n_classes} vertebrae (Dice, HD95, ASSD, NSD) | {t_eval:.2f} | < 5 |\n\n"
        f"Oracle mean vertebra Dice of the fused lift: {result.mean.values['dice']:.4f}.\n"
    )
    print(body)
    if not args.quick:
        write_section("lift", body, MEASURES)


if __name__ == "__main__":
    main()
