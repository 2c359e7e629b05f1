"""Benchmark ct2yolo's DRRs on the real example CT against diffdrr 0.6.1, at matched image accuracy.

The unit of work is what ``ct2yolo`` does per view: the line-integral image, its 8-bit window, and a mask and
polygons for every vertebra (C5–L3), for an AP + lateral pair at ``--size``² with the camera and options of
``configs/ct/spine.yaml``. Every renderer renders the same cameras, the same attenuation (HU → μ as nanodrr
converts it) and the same 18 vertebrae:

* yolo_spine ``planes`` (shear-warp with OpenCV, the default) and ``nanodrr`` (ray marching; on a CPU PyTorch's
  3D ``grid_sample``), one view per call;
* diffdrr's trilinear renderer (``scripts/_bench_diffdrr.py``, in a subprocess), image and labels in one pass
  (``mask_to_channels``), both views in one call (batched poses), at several sample counts per ray.

Accuracy: each renderer's images and masks are compared with a reference rendered on the same cameras by
nanodrr with ``--ref-samples`` (1024) samples per ray: per-pixel relative error ``|a − ref| / ref`` over the
pixels the body covers (ref above 5 % of its maximum), median and 95th percentile, and mask IoU per vertebra
(min and median). diffdrr at the reference's sample count is checked against it too, which shows the two
libraries see the same rays. The timed pair uses the canonical AP and lateral cameras; ``--poses`` random
poses per view (the preset's ranges) are scored for accuracy as well, untimed. The ratio is reported at
matched error: diffdrr's smallest tested sample count whose median and p95 errors are at most the ``planes``
backend's.

Threads are pinned: ``torch.set_num_threads`` and ``cv2.setNumThreads`` to ``--threads`` in both processes.
diffdrr's own requirements pull pyvista, timm and kornia, so it is installed with ``--no-deps`` (plus the
modules it imports) into a folder of its own under the user cache and run with that folder on ``PYTHONPATH``;
torch and torchio come from this environment. Memory: diffdrr holds every sample point of a call at once, so at
512² and 500 samples two poses per call peak near 10 GB (3.6 GB measured at 256²); ``--diffdrr-batch 1`` halves it.

    python scripts/bench_ct2yolo.py                        # 512², 3 repeats, diffdrr at 128/256/384/500
    python scripts/bench_ct2yolo.py --size 96 --repeat 1 --diffdrr-samples 32,64 --ref-samples 256 --no-write
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scripts._bench import ROOT, command_line, git_rev, machine, median_seconds, write_section

DIFFDRR_PKGS = ["diffdrr==0.6.1", "fastcore", "pandas", "python-dateutil", "tzdata"]
#: What this section measures (scripts/check_benchmarks.py).
MEASURES = [
    "scripts/bench_ct2yolo.py",
    "scripts/_bench_diffdrr.py",
    "yolo_spine/ct/",
    "yolo_spine/io/volume.py",
    "yolo_spine/geometry.py",
    "configs/ct/",
]
TARGET_RATIO, TARGET_PAIR_S = 5.0, 2.0


def diffdrr_site(cache: Path) -> Path:
    """Install diffdrr --no-deps (and the modules it imports) into its own folder, once."""
    site = cache / "bench" / "diffdrr-0.6.1-site"
    if not (site / "diffdrr").is_dir():
        site.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), *DIFFDRR_PKGS]
        subprocess.run(cmd, check=True)
    return site


def image_errors(images: list[np.ndarray], refs: list[np.ndarray]) -> tuple[float, float]:
    """Median and 95th percentile of ``|a − ref| / ref`` over the body's pixels of every camera, pooled."""
    rel = []
    for a, b in zip(images, refs, strict=True):
        inside = b > 0.05 * b.max()
        rel.append(np.abs(a - b)[inside] / b[inside])
    pooled = np.concatenate(rel)
    return float(np.median(pooled)), float(np.percentile(pooled, 95))


def mask_ious(masks: list[dict[int, np.ndarray]], refs: list[dict[int, np.ndarray]]) -> list[float]:
    """IoU of every (camera, vertebra) present in either; a vertebra missing on one side scores 0."""
    out = []
    for ma, mb in zip(masks, refs, strict=True):
        for cls in sorted(set(ma) | set(mb)):
            if cls not in ma or cls not in mb:
                out.append(0.0)
            else:
                out.append(float((ma[cls] & mb[cls]).sum() / (ma[cls] | mb[cls]).sum()))
    return out


def accuracy(images, masks, refs, ref_masks, n_timed: int) -> dict:
    """Errors on the timed cameras and on the random poses (``None`` when there are none)."""
    out = {}
    for key, sl in (("pair", slice(0, n_timed)), ("poses", slice(n_timed, None))):
        if not refs[sl]:
            out[key] = None
            continue
        med, p95 = image_errors(images[sl], refs[sl])
        ious = mask_ious(masks[sl], ref_masks[sl])
        out[key] = {"median": med, "p95": p95, "iou_min": min(ious), "iou_median": float(np.median(ious))}
    return out


def _fmt_acc(a: dict | None) -> str:
    if a is None:
        return "– | – | –"
    return f"{100 * a['median']:.3f} % | {100 * a['p95']:.3f} % | {a['iou_min']:.3f} / {a['iou_median']:.3f}"


def matched(planes_acc: dict, dd_acc: dict[int, dict]) -> int | None:
    """Smallest diffdrr sample count whose median and p95 errors (all cameras) are at most planes'."""
    ok = [n for n, a in dd_acc.items() if a["median"] <= planes_acc["median"] and a["p95"] <= planes_acc["p95"]]
    return min(ok) if ok else None


def main() -> None:
    """Run the benchmark and write the ``ct2yolo`` section of BENCHMARKS.md."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=512, help="detector width = height (px)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch and OpenCV threads, both sides")
    ap.add_argument("--ref-samples", type=int, default=1024, help="samples per ray of the reference (nanodrr)")
    ap.add_argument("--diffdrr-samples", default="128,256,384,500", help="diffdrr's samples per ray (500: default)")
    ap.add_argument("--diffdrr-batch", type=int, default=2, help="poses per diffdrr call")
    ap.add_argument("--poses", type=int, default=1, help="random poses per view scored for accuracy (untimed)")
    ap.add_argument("--no-diffdrr", action="store_true")
    ap.add_argument("--no-write", action="store_true", help="print the table, leave BENCHMARKS.md alone")
    args = ap.parse_args()
    threads = max(1, args.threads)

    import cv2
    import SimpleITK as sitk
    import torch

    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)

    from yolo_spine.ct import drr as drr_mod
    from yolo_spine.ct import slices as sl
    from yolo_spine.ct.convert import ct2yolo
    from yolo_spine.ct.options import CtOptions
    from yolo_spine.ct.sidecar import VolumeGeometry
    from yolo_spine.data import cache_dir, example_ct
    from yolo_spine.geometry import mask_to_polygons
    from yolo_spine.io.volume import load_study
    from yolo_spine.registry import load_registry

    opts = CtOptions.for_anatomy("spine").drr
    size, n_default = args.size, opts.n_samples
    percentiles = opts.display_percentiles
    min_area = opts.min_area_px
    ex = example_ct()
    study = load_study(ex.volume, ex.labels, "cxr")
    reg = load_registry("spine")
    ids = reg.source_id_map("totalsegmentator_v2")
    image = sitk.GetArrayFromImage(study.image)
    labels = sitk.GetArrayFromImage(study.labels)
    lut = sl.class_lut({k: reg.index(v) for k, v in ids.items()}, int(labels.max()))
    classes = lut[labels]
    geom = VolumeGeometry.from_image(study.image)
    sdd = opts.sdd_mm
    det = drr_mod.DrrGeometry(size, sdd, sdd * opts.sod_fraction, False, opts.margin)
    iso = (geom.ijk_to_world() @ np.r_[(np.asarray(geom.size_xyz) - 1) / 2.0, 1.0])[:3]
    pair = [drr_mod.make_camera(geom, det, v, iso) for v in ("ap", "lat")]
    rng = np.random.default_rng(0)
    rot_max, trans_max = np.asarray(opts.pose_rot_deg, float), np.asarray(opts.pose_trans_mm, float)
    extra = [
        drr_mod.make_camera(
            geom,
            det,
            view,
            iso,
            drr_mod.rotation_xyz_deg(rng.uniform(-1, 1, 3) * rot_max),
            rng.uniform(-1, 1, 3) * trans_max,
            intrinsics_from=cam,
        )
        for view, cam in zip(("ap", "lat"), pair, strict=True)
        for _ in range(args.poses)
    ]
    cams = pair + extra
    bone_hu = opts.bone_hu

    def renderer(backend: str, n: int):
        return drr_mod.Renderer(image, classes, geom, n_samples=n, bone_hu=bone_hu, threads=threads, backend=backend)

    # reference: nanodrr, many samples per ray, same cameras
    t = time.perf_counter()
    ref_r = renderer("nanodrr", args.ref_samples)
    refs = [ref_r.render_image(c, size) for c in cams]
    ref_masks = [ref_r.render_masks(c, size) for c in cams]
    t_ref = time.perf_counter() - t
    del ref_r
    print(f"reference ({args.ref_samples} samples): {t_ref:.1f} s for {len(cams)} views", flush=True)

    rows: list[dict] = []
    for backend in drr_mod.BACKENDS:
        t = time.perf_counter()
        r = renderer(backend, n_default)
        t_setup = time.perf_counter() - t
        n_polys: list[int] = []

        def do_pair(r=r, n_polys=n_polys) -> None:
            n = 0
            for cam in pair:
                drr_mod.display_radiograph(r.render_image(cam, size), percentiles)
                for mask in r.render_masks(cam, size).values():
                    n += len(mask_to_polygons(mask, min_area_px=min_area)[0])
            n_polys.append(n)

        t = time.perf_counter()
        do_pair()  # warm-up (the planes backend stacks its slabs here, once per axis per study)
        t_first = time.perf_counter() - t
        t_pair, runs = median_seconds(do_pair, args.repeat)
        imgs = [r.render_image(c, size) for c in cams]
        masks = [r.render_masks(c, size) for c in cams]
        rows.append(
            {
                "name": f"yolo_spine `{backend}`" + (" (default)" if backend == "planes" else ""),
                "key": backend,
                "samples": f"{n_default} planes" if backend == "planes" else str(n_default),
                "pair": t_pair,
                "runs": runs,
                "setup": t_setup,
                "first": t_first,
                "polygons": n_polys[-1],
                "acc": accuracy(imgs, masks, refs, ref_masks, len(pair)),
                "all": accuracy(imgs, masks, refs, ref_masks, len(cams))["pair"],
            }
        )
        print(f"{backend}: pair {t_pair:.2f} s, set-up {t_setup:.2f} s, {rows[-1]['acc']}", flush=True)
        del r

    dd_rows: list[dict] = []
    crosscheck = None
    dd_info: dict = {}
    if not args.no_diffdrr:
        samples = [int(s) for s in args.diffdrr_samples.split(",") if s.strip()]
        site = diffdrr_site(cache_dir())
        with tempfile.TemporaryDirectory(prefix="bench_ct2yolo_") as tmp:
            inp, out, job = Path(tmp) / "in.npz", Path(tmp) / "out.npz", Path(tmp) / "job.json"
            np.savez(
                inp,
                hu_kji=image,
                classes_kji=classes.astype(np.int16),
                ijk_to_world=geom.ijk_to_world(),
                K=pair[0].K,
                c2w_timed=np.stack([np.linalg.inv(c.world_to_camera) for c in pair]),
                c2w_extra=np.stack([np.linalg.inv(c.world_to_camera) for c in extra]) if extra else np.zeros((0, 4, 4)),
            )
            job.write_text(
                json.dumps(
                    {
                        "input": str(inp),
                        "output": str(out),
                        "size": size,
                        "sdd_mm": sdd,
                        "bone_hu": bone_hu,
                        "display_percentiles": percentiles,
                        "min_area_px": min_area,
                        "samples": samples,
                        "repeat": args.repeat,
                        "threads": threads,
                        "batch": args.diffdrr_batch,
                        "reference_samples": args.ref_samples,
                    }
                )
            )
            env = {
                **os.environ,
                "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]),
                "OMP_NUM_THREADS": str(threads),
            }
            script = Path(__file__).resolve().parent / "_bench_diffdrr.py"
            proc = subprocess.run([sys.executable, str(script), str(job)], env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"diffdrr run failed: {proc.stderr.strip()[-3000:]}")
            dd_info = json.loads(proc.stdout.strip().splitlines()[-1])
            arrays = np.load(out)
            dd_classes = [int(c) for c in arrays["classes"]]

            def unpack(n: int) -> tuple[list[np.ndarray], list[dict[int, np.ndarray]]]:
                imgs = list(arrays[f"img_{n}"])
                masks = [{c: m[i] for i, c in enumerate(dd_classes) if m[i].any()} for m in arrays[f"mask_{n}"]]
                return imgs, masks

            for n in samples:
                imgs, masks = unpack(n)
                run = dd_info["runs"][str(n)]
                dd_rows.append(
                    {
                        "name": "diffdrr 0.6.1 trilinear" + (" (its default samples)" if n == 500 else ""),
                        "key": n,
                        "samples": str(n),
                        "pair": float(np.median(run["times"])),
                        "runs": run["times"],
                        "setup": dd_info["setup"],
                        "first": run["first"],
                        "polygons": run["polygons"],
                        "acc": accuracy(imgs, masks, refs, ref_masks, len(pair)),
                        "all": accuracy(imgs, masks, refs, ref_masks, len(cams))["pair"],
                    }
                )
            imgs, masks = unpack(args.ref_samples)
            crosscheck = accuracy(imgs, masks, refs, ref_masks, len(cams))["pair"]

    def whole_run(option_values: dict) -> float:
        """Seconds of one ct2yolo run on the example CT, reading and writing included."""
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            ct2yolo(Path(tmp) / "ds", volume=ex.volume, labels=ex.labels, **option_values, progress=False)
            return time.perf_counter() - t

    drr_threads = {"threads": threads}
    t_drr_io = whole_run({"planes": [], "views": ["ap", "lat"], "poses": 12, "drr": drr_threads})
    layout = sl.plane_layout(geom, "axial")

    def axial() -> None:
        for _ in sl.iter_slices(image, labels, geom, layout, lut, (400.0, 1800.0), step=1, min_area_px=20):
            pass

    t_axial, _ = median_seconds(axial, args.repeat)
    t_axial_io = whole_run({"planes": ["axial"], "views": []})

    body = _report(args, rows, dd_rows, crosscheck, dd_info, t_ref, len(extra), t_axial, t_axial_io, t_drr_io, layout)
    print(body)
    if not args.no_write:
        write_section("ct2yolo", body, MEASURES)


def _report(args, rows, dd_rows, crosscheck, dd_info, t_ref, n_extra, t_axial, t_axial_io, t_drr_io, layout) -> str:
    """The Markdown section."""
    threads = max(1, args.threads)
    lines = [
        f"Machine: {machine()}; commit {git_rev(MEASURES)}; {time.strftime('%Y-%m-%d')}.",
        f"Command: `{command_line()}`",
        "",
        f"Real CT (LIDC-IDRI-0001, 512×512×133, 18 vertebrae C5–L3), AP + lateral pair at {args.size}², "
        "`configs/ct/spine.yaml` camera; per view: line-integral image, 8-bit window, a mask and polygons per "
        f"vertebra. Threads pinned in both processes: torch {threads}, OpenCV {threads}. yolo_spine renders one "
        f"view per call; diffdrr {dd_info.get('batch', args.diffdrr_batch)} poses per call, image and "
        f"{dd_info.get('channels', '–')} label channels (18 vertebrae + the rest) in one pass. Same attenuation "
        "(HU → μ as nanodrr converts it), same labels, same rays: diffdrr gets the volume's affine, the camera's "
        "pose and a detector built from its intrinsics.",
        "",
        f"Error against nanodrr at {args.ref_samples} samples per ray on the same cameras ({t_ref:.0f} s for "
        f"{2 + n_extra} views): relative per-pixel error over the body (median, p95) and vertebra mask IoU "
        f"(min / median over vertebrae and views); “random poses”: {n_extra // 2} per view within the preset's "
        "ranges, untimed.",
        "",
        "| renderer | samples per ray | pair s (median) | runs (s) | set-up s | first pair s | polygons | "
        "median err | p95 err | IoU min / median | random poses: median err | p95 err | IoU min / median |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows + dd_rows:
        runs = ", ".join(f"{x:.2f}" for x in r["runs"])
        lines.append(
            f"| {r['name']} | {r['samples']} | {r['pair']:.2f} | {runs} | {r['setup']:.2f} | {r['first']:.2f} | "
            f"{r['polygons']} | {_fmt_acc(r['acc']['pair'])} | {_fmt_acc(r['acc']['poses'])} |"
        )
    if crosscheck is not None:
        lines.append(
            f"| diffdrr 0.6.1 trilinear, cross-check of the reference | {args.ref_samples} | – | – | – | – | – | "
            f"{_fmt_acc(crosscheck)} (all views) | | | |"
        )
    planes = next(r for r in rows if r["key"] == "planes")
    nano = next(r for r in rows if r["key"] == "nanodrr")
    lines += [
        f"| all {layout.n_slices} axial slices: window + polygons (no I/O) | – | {t_axial:.2f} | | | | | | | | | | |",
        f"| `ct2yolo` axial slices only, whole run incl. reading, PNG/labels/sidecars | – | {t_axial_io:.2f} "
        "| | | | | | | | | | |",
        f"| `ct2yolo` 26 DRRs (AP + lateral, 12 poses each) at 512², whole run incl. reading and writing | – | "
        f"{t_drr_io:.2f} | | | | | | | | | | |",
        "",
    ]
    pair_ok = "met" if planes["pair"] < TARGET_PAIR_S else "MISSED"
    summary = [
        f"`planes` pair {planes['pair']:.2f} s (target < {TARGET_PAIR_S:.0f} s: {pair_ok}); "
        f"`nanodrr` / `planes` {nano['pair'] / planes['pair']:.1f}×."
    ]
    if dd_rows:
        dd_acc = {r["key"]: r["all"] for r in dd_rows}
        n_match = matched(planes["all"], dd_acc)
        by_n = {r["key"]: r for r in dd_rows}
        if n_match is not None:
            ratio = by_n[n_match]["pair"] / planes["pair"]
            verdict = "met" if ratio >= TARGET_RATIO else "MISSED"
            summary.append(
                f"**At matched error** (all views: `planes` median {100 * planes['all']['median']:.3f} %, p95 "
                f"{100 * planes['all']['p95']:.3f} %), diffdrr needs {n_match} samples per ray (median "
                f"{100 * dd_acc[n_match]['median']:.3f} %, p95 {100 * dd_acc[n_match]['p95']:.3f} %): "
                f"**diffdrr / `planes` {ratio:.1f}×** (target ≥ {TARGET_RATIO:.0f}×: {verdict})."
            )
            lower = [n for n in dd_acc if n < n_match]
            if lower:  # the bracket: the most samples tested that fall short
                n_low = max(lower)
                summary.append(
                    f"The next count down, {n_low} samples, falls short (median "
                    f"{100 * dd_acc[n_low]['median']:.3f} %, p95 {100 * dd_acc[n_low]['p95']:.3f} %) at "
                    f"{by_n[n_low]['pair'] / planes['pair']:.1f}×."
                )
        else:
            best = min(dd_acc, key=lambda n: dd_acc[n]["p95"])
            ratio = by_n[best]["pair"] / planes["pair"]
            summary.append(
                f"No tested diffdrr sample count reaches the `planes` error (median "
                f"{100 * planes['all']['median']:.3f} %, p95 {100 * planes['all']['p95']:.3f} %); against its most "
                f"accurate ({best} samples, p95 {100 * dd_acc[best]['p95']:.3f} %) diffdrr / `planes` is "
                f"{ratio:.1f}×, a lower bound of the matched-error ratio."
            )
        if 500 in by_n:
            summary.append(f"At diffdrr's default 500 samples: {by_n[500]['pair'] / planes['pair']:.1f}×.")
    summary.append(
        "Not compared here: diffdrr's default renderer (Siddon: the exact integral of the voxel-constant "
        "volume, a different model from the trilinear one all rows share), parallel beams (diffdrr has none), "
        "GPUs."
    )
    return "\n".join([*lines, " ".join(summary)]) + "\n"


if __name__ == "__main__":
    main()
