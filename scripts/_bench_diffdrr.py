"""diffdrr's side of ``scripts/bench_ct2yolo.py``, run in a subprocess with diffdrr 0.6.1 on ``PYTHONPATH``.

    python scripts/_bench_diffdrr.py JOB.json   # JOB.json names the input and output .npz files

The parent passes the CT (HU), the class map, the volume's ``ijk_to_world`` and this project's cameras. Here
diffdrr renders exactly what the ``planes`` backend renders:

* Attenuation: the same HU → μ conversion (``drr.hu_to_mu``, nanodrr's) becomes diffdrr's ``density``, so the
  line integrals are the same quantity (diffdrr's ``read`` would normalise HU to [0, 1] its own way).
* Labels: the same vertebrae, renumbered 1..n, as diffdrr's mask; ``mask_to_channels=True`` renders every
  structure's line integral in its own channel in the same pass as the image (n + 1 channels, 0 = the rest);
  the image is the sum of the channels and a vertebra's mask is its channel > 0.
* Camera: the volume's own ``ijk_to_world`` as the affine (no re-orientation, no centring), the camera-to-world
  matrix as the pose, and the detector (``delx``, ``dely = −delx``, ``x0``, ``y0``) from ``K``, so every
  pixel's ray is the one the parent's camera casts through that pixel centre.
* Work per view after rendering, as in ``ct2yolo``: the 8-bit window (``display_radiograph``) and polygons
  (``mask_to_polygons``) of every vertebra.

Poses are rendered ``batch`` per call (diffdrr takes batched poses). Prints one JSON line of timings.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np


def main(job_path: str) -> None:
    """Render the job's cameras at each sample count; write images and masks, print timings."""
    job = json.loads(Path(job_path).read_text())
    threads = int(job["threads"])
    import cv2
    import torch

    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    from diffdrr.drr import DRR
    from diffdrr.pose import RigidTransform
    from torchio import LabelMap, ScalarImage, Subject

    from yolo_spine.ct.drr import display_radiograph, hu_to_mu
    from yolo_spine.geometry import mask_to_polygons

    data = np.load(job["input"])
    size, sdd = int(job["size"]), float(job["sdd_mm"])
    percentiles = tuple(job["display_percentiles"])
    k = data["K"]

    t0 = time.perf_counter()
    classes_kji = data["classes_kji"]
    classes = [int(c) for c in np.unique(classes_kji) if c >= 0]
    compact = np.zeros(classes_kji.shape, np.int16)
    for n, c in enumerate(classes, start=1):
        compact[classes_kji == c] = n
    mu = hu_to_mu(data["hu_kji"], float(job["bone_hu"]))
    affine = data["ijk_to_world"]
    mu_t = torch.from_numpy(np.ascontiguousarray(mu.transpose(2, 1, 0)))[None]  # torchio: (C, i, j, k)
    lab_t = torch.from_numpy(np.ascontiguousarray(compact.transpose(2, 1, 0)))[None]
    subject = Subject(
        volume=ScalarImage(tensor=mu_t, affine=affine),
        density=ScalarImage(tensor=mu_t, affine=affine),
        mask=LabelMap(tensor=lab_t, affine=affine),
        reorient=torch.eye(4),
    )
    p = float(sdd / k[0, 0])  # detector pixel (mm)
    # diffdrr's pixel (r, c) aims at ((c − w/2 + ½)·delx + x0, (h/2 − ½ − r)·dely + y0, sdd) in the camera
    # frame; this project's at ((c − cx)·p, (r − cy)·p, sdd).
    intrinsics = {
        "sdd": sdd,
        "height": size,
        "delx": p,
        "dely": -p,
        "x0": float(p * (size / 2 - 0.5 - k[0, 2])),
        "y0": float(p * (size / 2 - 0.5 - k[1, 2])),
        "reverse_x_axis": False,
        "renderer": "trilinear",
    }
    drr = DRR(subject, **intrinsics)
    t_setup = time.perf_counter() - t0

    def render(model: DRR, c2w: np.ndarray, n_points: int) -> np.ndarray:
        with torch.no_grad():
            pose = RigidTransform(torch.tensor(c2w, dtype=torch.float32))
            return model(pose, mask_to_channels=True, n_points=n_points).numpy()  # (B, n + 1, h, w)

    def views(model: DRR, c2w_all: np.ndarray, n_points: int, batch: int) -> tuple[np.ndarray, np.ndarray, int]:
        """Images, masks and polygon count of every camera, with the per-view work ct2yolo does."""
        imgs, masks, n_polys = [], [], 0
        for b in range(0, len(c2w_all), batch):
            out = render(model, c2w_all[b : b + batch], n_points)
            for chans in out:
                img = chans.sum(0)
                display_radiograph(img, percentiles)
                hit = chans[1:] > 0
                for m in hit:
                    if m.any():
                        n_polys += len(mask_to_polygons(m, min_area_px=float(job["min_area_px"]))[0])
                imgs.append(img)
                masks.append(hit)
        return np.stack(imgs), np.stack(masks), n_polys

    timed, extra = data["c2w_timed"], data["c2w_extra"]
    batch = int(job["batch"])
    arrays: dict[str, np.ndarray] = {"classes": np.array(classes)}
    results = {"setup": t_setup, "channels": len(classes) + 1, "threads": threads, "batch": batch, "runs": {}}
    for n_points in job["samples"]:
        t = time.perf_counter()
        views(drr, timed, n_points, batch)  # warm-up
        first = time.perf_counter() - t
        times = []
        for _ in range(int(job["repeat"])):
            t = time.perf_counter()
            imgs, masks, n_polys = views(drr, timed, n_points, batch)
            times.append(time.perf_counter() - t)
        if len(extra):
            e_imgs, e_masks, _ = views(drr, extra, n_points, batch)
            imgs, masks = np.concatenate([imgs, e_imgs]), np.concatenate([masks, e_masks])
        arrays[f"img_{n_points}"], arrays[f"mask_{n_points}"] = imgs.astype(np.float32), masks
        results["runs"][str(n_points)] = {"times": times, "first": first, "polygons": n_polys}
        print(f"diffdrr {n_points} samples: {np.median(times):.2f} s", file=sys.stderr, flush=True)
    ref = int(job.get("reference_samples", 0))
    if ref:
        # untimed cross-check at the reference's sample count, rendered in patches to bound memory
        patched = DRR(subject, **intrinsics, patch_size=max(1, size // 8))
        c2w_all = np.concatenate([timed, extra]) if len(extra) else timed
        imgs, masks, _ = views(patched, c2w_all, ref, 1)
        arrays[f"img_{ref}"], arrays[f"mask_{ref}"] = imgs.astype(np.float32), masks
    np.savez(job["output"], **arrays)
    print(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1])
