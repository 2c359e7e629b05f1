#!/usr/bin/env python
"""The same phantom DRR with realism off, physics and randomized (three draws), side by side.

Writes ``docs/realism.png`` from :func:`yolo_spine.synth.anatomy.anatomical_phantom` through the code ``ct2yolo``
uses (``ct.drr.Renderer.render_materials``, ``ct.realism``), AP view. Synthetic only; no label outlines, so the
look of each preset is what one sees.

    python scripts/realism_figure.py --seed 4 --fov thoracolumbar --out docs/realism.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    """Render the figure."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=4)
    p.add_argument("--fov", default="thoracolumbar", help="field-of-view preset of the phantom")
    p.add_argument("--size", type=int, default=384, help="detector size in pixels")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "realism.png")
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))

    import cv2
    import numpy as np
    import SimpleITK as sitk

    from yolo_spine.ct import drr
    from yolo_spine.ct import realism as R
    from yolo_spine.ct.sidecar import VolumeGeometry
    from yolo_spine.synth.anatomy import anatomical_phantom

    ph = anatomical_phantom(args.seed, fov=args.fov)
    geom = VolumeGeometry.from_image(ph.image)
    hu = sitk.GetArrayFromImage(ph.image).astype(np.float32)
    no_labels = np.full(hu.shape, -1, np.int16)
    det = drr.DrrGeometry(size=args.size, sdd_mm=1000.0, sod_mm=800.0, orthographic=False, margin=0.05)
    renderer = drr.Renderer(hu, no_labels, geom, n_samples=128, threads=1, material_split=(-800.0, 350.0))
    iso = (geom.ijk_to_world() @ np.r_[(np.asarray(geom.size_xyz) - 1) / 2.0, 1.0])[:3]
    cam = drr.make_camera(geom, det, "ap", iso)
    mass = renderer.render_materials(cam, args.size)
    pixel_mm = det.sdd_mm / float(cam.K[0, 0])
    # as ct2yolo passes them: the CT voxel's blur already in the DRR, the collimator edge's penumbra
    optics = {
        "source_sigma_mm": R.ct_footprint_sigma_mm(geom.spacing_xyz, det.sdd_mm / det.sod_mm),
        "sdd_mm": det.sdd_mm,
    }
    panels = [("off", drr.display_radiograph(renderer.render_image(cam, args.size), (0.5, 99.5)))]
    for name, draws in (("physics", 1), ("randomized", 3)):
        preset = R.load_preset(name)
        for k in range(draws):
            rng = R.image_rng(0, f"phantom{args.seed}_drr_ap_p{k:03d}")
            params = R.draw_parameters(preset, rng)
            look = R.apply_realism(mass, params, pixel_mm, det.sdd_mm / det.sod_mm, "R", rng, **optics)
            panels.append((name if draws == 1 else f"{name} #{k + 1}", look.pixels))
    tiles = []
    for title, gray in panels:
        img = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
        cv2.rectangle(img, (0, 0), (img.shape[1], 26), (0, 0, 0), -1)
        cv2.putText(img, title, (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
        tiles += [img, np.full((args.size, 6, 3), 255, np.uint8)]
    figure = np.hstack(tiles[:-1])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), figure, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"wrote {args.out} ({figure.shape[1]}x{figure.shape[0]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
