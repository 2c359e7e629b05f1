"""3D evaluation: Dice, IoU, HD95, ASSD, surface Dice, volume difference and identification rate.

* :mod:`yolo_spine.evaluate.metrics` — pure functions on numpy masks and label arrays (MONAI surface distances)
  and the VerSe identification rate; the empty-mask rules are written down there.
* :mod:`yolo_spine.evaluate.eval3d` — reads label maps (NIfTI, MHA, NRRD) or centroid JSON files, maps label ids
  onto registry classes, resamples a prediction onto the ground-truth grid, scores every class.
* :mod:`yolo_spine.evaluate.report` — writes ``metrics.csv``, ``metrics.json`` and ``metrics.md``.
"""
