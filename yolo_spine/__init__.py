"""yolo_spine: instance segmentation of anatomy on X-rays and CT-derived images with YOLOv11-seg.

Stages, in the order data flows: ``datasets`` (fetch, merge, check, stats, augment) → ``train`` →
``review`` / ``predict`` → ``ct`` (CT to DRR projections and slices) → ``lift`` (2D back to 3D) →
``evaluate`` (3D metrics). Shared pieces beneath them: ``registry`` (anatomy classes), ``io`` (X-ray,
label and volume files), ``geometry`` (polygons and masks), ``provenance`` (run manifests, atomic outputs).

Importing this package is cheap and has no side effects: torch and Ultralytics are imported inside the
functions that need them.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
