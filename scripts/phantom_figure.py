#!/usr/bin/env python
"""Draw one anatomical phantom as the pipeline sees it: AP and lateral DRRs and a sagittal slice, vertebra outlines.

Writes ``docs/phantom.png`` (the README's picture) from :func:`yolo_spine.synth.anatomy.anatomical_phantom`
through the same code ``ct2yolo`` uses (``ct.drr.Renderer``, ``ct.slices.iter_slices``). Synthetic only.

    python scripts/phantom_figure.py --seed 4 --fov thoracolumbar --out docs/phantom.png
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
    p.add_argument("--height", type=int, default=360, help="panel height in pixels")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "phantom.png")
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))

    import cv2
    import numpy as np
    import SimpleITK as sitk

    from yolo_spine.ct import drr
    from yolo_spine.ct import slices as sl
    from yolo_spine.ct.sidecar import VolumeGeometry
    from yolo_spine.registry import load_registry
    from yolo_spine.synth.anatomy import anatomical_phantom

    reg = load_registry("spine")
    ph = anatomical_phantom(args.seed, fov=args.fov)
    geom = VolumeGeometry.from_image(ph.image)
    hu = sitk.GetArrayFromImage(ph.image).astype(np.float32)
    labels = sitk.GetArrayFromImage(ph.labels)
    ids = {sid: reg.index(name) for sid, name in reg.source_id_map("totalsegmentator_v2").items()}
    lut = sl.class_lut(ids, int(labels.max()))
    classes = lut[labels]

    def colour(cls: int) -> tuple[int, int, int]:
        hue = int(179 * (cls * 0.38 % 1.0))
        bgr = cv2.cvtColor(np.uint8([[[hue, 200, 255]]]), cv2.COLOR_HSV2BGR)[0, 0]
        return tuple(int(c) for c in bgr)

    def draw(gray: np.ndarray, masks: dict[int, np.ndarray]) -> np.ndarray:
        img = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
        for cls, m in masks.items():
            contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(img, contours, -1, colour(cls), 1, cv2.LINE_AA)
        scale = args.height / img.shape[0]
        return cv2.resize(img, (round(img.shape[1] * scale), args.height), interpolation=cv2.INTER_AREA)

    # DRRs through the canonical AP and lateral cameras, with each vertebra's projected mask
    det = drr.DrrGeometry(size=512, sdd_mm=1000.0, sod_mm=800.0, orthographic=False, margin=0.05)
    renderer = drr.Renderer(hu, classes, geom, n_samples=128, threads=1)
    iso = (geom.ijk_to_world() @ np.r_[(np.asarray(geom.size_xyz) - 1) / 2.0, 1.0])[:3]
    panels = []
    for view in ("ap", "lat"):
        cam = drr.make_camera(geom, det, view, iso)
        gray = drr.display_radiograph(renderer.render_image(cam, 512), (0.5, 99.5))
        panels.append(draw(gray, renderer.render_masks(cam, 512)))
    # the sagittal slice through the middle of the vertebral bodies
    layout = sl.plane_layout(geom, "sagittal")
    i_mid = int(np.median(np.nonzero(classes >= 0)[2]))
    res = next(sl.iter_slices(hu, labels, geom, layout, lut, (400.0, 1800.0), indices=[i_mid], min_area_px=4))
    stack = sl.plane_stack(classes, layout)[i_mid]
    stack = cv2.resize(stack.astype(np.int16), (layout.width, layout.height), interpolation=cv2.INTER_NEAREST)
    panels.append(draw(res.pixels, {int(c): stack == c for c in np.unique(stack) if c >= 0}))
    gap = np.full((args.height, 6, 3), 255, np.uint8)
    figure = np.hstack([x for p_ in panels for x in (p_, gap)][:-1])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), figure, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"wrote {args.out} ({figure.shape[1]}x{figure.shape[0]}): seed {args.seed}, {ph.info['fov']}, {ph.levels}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
