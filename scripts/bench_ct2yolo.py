"""Benchmark ct2yolo on the example CT: an AP+lateral DRR pair with every vertebra polygon, and all axial slices.

The alternative is diffdrr 0.6.1 (the DiffDRR package) rendering the same pair with one channel per vertebra
(``mask_to_channels``), in the same run. diffdrr's own requirements pull pyvista, timm and kornia, so it is
installed with ``--no-deps`` (plus fastcore and pandas, which it imports) into a folder of its own under the
user cache and run in a subprocess with that folder on ``PYTHONPATH``; torch and torchio come from this
environment. Figures are medians of ``--repeat`` runs; the machine is noisy, so compare the ratio.

Both of this project's DRR backends are timed: ``planes`` (shear-warp with OpenCV, the default) and ``nanodrr``
(ray marching; on a CPU PyTorch's 3D ``grid_sample``).

    python scripts/bench_ct2yolo.py [--size 512] [--repeat 3] [--no-diffdrr] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import command_line, machine, median_seconds, write_section

DIFFDRR_PKGS = ["diffdrr==0.6.1", "fastcore", "pandas", "python-dateutil", "tzdata"]

DIFFDRR_CODE = r"""
import json, sys, time, torch
import numpy as np
from diffdrr.data import read
from diffdrr.drr import DRR
vol, mask, size, sdd, delx, repeat, threads, ids = sys.argv[1:9]
size, sdd, delx, repeat, threads = int(size), float(sdd), float(delx), int(repeat), int(threads)
torch.set_num_threads(threads)
ids = [int(i) for i in ids.split(",")]
subject = read(vol, labelmap=mask, labels=ids, orientation="AP")
drr = DRR(subject, sdd=sdd, height=size, delx=delx, renderer="trilinear")
rot = torch.tensor([[0.0, 0.0, 0.0], [torch.pi / 2, 0.0, 0.0]])
xyz = torch.tensor([[0.0, 0.8 * sdd, 0.0], [0.0, 0.8 * sdd, 0.0]])
def pair():
    with torch.no_grad():
        for k in range(2):
            img = drr(rot[k:k+1], xyz[k:k+1], parameterization="euler_angles", convention="ZXY", mask_to_channels=True)
    return img
pair()
times = []
for _ in range(repeat):
    t = time.perf_counter(); out = pair(); times.append(time.perf_counter() - t)
print(json.dumps({"times": times, "channels": int(out.shape[1])}))
"""


def diffdrr_site(cache: Path) -> Path:
    """Install diffdrr --no-deps (and the two modules it imports) into its own folder, once."""
    site = cache / "bench" / "diffdrr-0.6.1-site"
    if not (site / "diffdrr").is_dir():
        site.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), *DIFFDRR_PKGS]
        subprocess.run(cmd, check=True)
    return site


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--n-samples", type=int, default=128)
    ap.add_argument("--no-diffdrr", action="store_true")
    ap.add_argument("--no-write", action="store_true", help="print the table, leave BENCHMARKS.md alone")
    args = ap.parse_args()

    import SimpleITK as sitk
    import torch

    from yolo_spine.ct import drr as drr_mod
    from yolo_spine.ct import slices as sl
    from yolo_spine.ct.convert import ct2yolo
    from yolo_spine.ct.sidecar import VolumeGeometry
    from yolo_spine.data import cache_dir, example_ct
    from yolo_spine.geometry import mask_to_polygons
    from yolo_spine.io.volume import load_study
    from yolo_spine.registry import load_registry

    threads = torch.get_num_threads()
    ex = example_ct()
    study = load_study(ex.volume, ex.labels, "cxr")
    reg = load_registry("spine")
    ids = reg.source_id_map("totalsegmentator_v2")
    image = sitk.GetArrayFromImage(study.image)
    labels = sitk.GetArrayFromImage(study.labels)
    lut = sl.class_lut({k: reg.index(v) for k, v in ids.items()}, int(labels.max()))
    classes = lut[labels]
    geom = VolumeGeometry.from_image(study.image)
    det = drr_mod.DrrGeometry(size=args.size, sdd_mm=1800.0, sod_mm=1440.0, orthographic=False, margin=0.05)
    iso = (geom.ijk_to_world() @ np.r_[(np.asarray(geom.size_xyz) - 1) / 2.0, 1.0])[:3]
    cams = [drr_mod.make_camera(geom, det, v, iso) for v in ("ap", "lat")]
    ours: dict[str, dict] = {}
    for backend in drr_mod.BACKENDS:
        t = time.perf_counter()
        renderer = drr_mod.Renderer(image, classes, geom, n_samples=args.n_samples, backend=backend)
        t_setup = time.perf_counter() - t
        n_polys = []

        def pair(renderer=renderer, n_polys=n_polys) -> None:
            n = 0
            for cam in cams:
                drr_mod.display_radiograph(renderer.render_image(cam, args.size), (0.5, 99.5))
                for mask in renderer.render_masks(cam, args.size).values():
                    n += len(mask_to_polygons(mask, min_area_px=20)[0])
            n_polys.append(n)

        t = time.perf_counter()
        pair()  # warm-up (the planes backend stacks its slabs here, once per axis per study)
        t_first = time.perf_counter() - t
        t_pair, pair_runs = median_seconds(pair, args.repeat)
        ours[backend] = {"pair": t_pair, "runs": pair_runs, "setup": t_setup, "first": t_first}
        ours[backend]["polygons"] = n_polys[-1]
        print(f"{backend}: pair {t_pair:.2f} s, set-up {t_setup:.2f} s")

    def whole_run(overrides: dict) -> float:
        """Seconds of one ct2yolo run on the example CT, reading and writing included."""
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            ct2yolo(Path(tmp) / "ds", volume=ex.volume, labels=ex.labels, overrides=overrides, progress=False)
            return time.perf_counter() - t

    t_drr_io = whole_run({"planes": [], "views": ["ap", "lat"], "poses": 12})

    layout = sl.plane_layout(geom, "axial")

    def axial() -> None:
        for _ in sl.iter_slices(image, labels, geom, layout, lut, (400.0, 1800.0), step=1, min_area_px=20):
            pass

    t_axial, _ = median_seconds(axial, args.repeat)
    t_axial_io = whole_run({"planes": ["axial"], "views": []})

    # diffdrr: same CT, same pair, one channel per vertebra, in its own install
    dd = None
    if not args.no_diffdrr:
        site = diffdrr_site(cache_dir())
        delx = float(np.linalg.inv(cams[0].K)[0, 0] * 1800.0)  # our detector's pixel size in mm
        vert_ids = ",".join(str(i) for i in sorted(ids) if (labels == i).any())
        env = {**os.environ, "PYTHONPATH": str(site)}
        cmd = [sys.executable, "-c", DIFFDRR_CODE, str(ex.volume), str(ex.labels), str(args.size), "1800", str(delx)]
        cmd += [str(args.repeat), str(threads), vert_ids]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"diffdrr run failed: {proc.stderr.strip().splitlines()[-1]}")
        dd = json.loads(proc.stdout.strip().splitlines()[-1])
        dd["median"] = float(np.median(dd["times"]))

    planes = ours["planes"]
    rows = [
        "| what | seconds (median) | notes |",
        "|---|---|---|",
    ]
    for backend, r in ours.items():
        default = " (default)" if backend == "planes" else ""
        rows.append(
            f"| AP+lateral DRR pair, {args.size}², image + vertebra masks + polygons, yolo_spine `{backend}`"
            f"{default} | {r['pair']:.2f} | {r['polygons']} polygons, runs {[round(x, 2) for x in r['runs']]}; "
            f"set-up {r['setup']:.2f} s once per study; first pair {r['first']:.2f} s |"
        )
    if dd:
        rows.append(
            f"| same pair, diffdrr 0.6.1 trilinear, `mask_to_channels` ({dd['channels']} channels, no polygons) | "
            f"{dd['median']:.2f} | runs {[round(x, 2) for x in dd['times']]} |"
        )
    rows += [
        f"| all {layout.n_slices} axial slices: window + polygons (no I/O) | {t_axial:.2f} | |",
        f"| `ct2yolo` axial slices only, whole run incl. reading, PNG/labels/sidecars | {t_axial_io:.2f} | |",
        f"| `ct2yolo` 26 DRRs (AP + lateral, 12 poses each) at 512², whole run incl. reading and writing | "
        f"{t_drr_io:.2f} | default backend |",
    ]
    ratio = (
        f"\n**For the pair: diffdrr / yolo_spine `planes` {dd['median'] / planes['pair']:.1f}×, "
        f"diffdrr / yolo_spine `nanodrr` {dd['median'] / ours['nanodrr']['pair']:.1f}×, "
        f"`nanodrr` / `planes` {ours['nanodrr']['pair'] / planes['pair']:.1f}×** (targets: ≥ 5× diffdrr, < 2 s)\n"
        if dd
        else f"\n**`nanodrr` / `planes` for the pair: {ours['nanodrr']['pair'] / planes['pair']:.1f}×**\n"
    )
    body = (
        f"Machine: {machine()}; torch threads {threads}.\n\nCommand: `{command_line()}`\n\n"
        + "\n".join(rows)
        + "\n"
        + ratio
    )
    print(body)
    if not args.no_write:
        write_section("ct2yolo", body)


if __name__ == "__main__":
    main()
