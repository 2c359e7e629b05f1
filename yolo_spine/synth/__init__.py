"""Phantoms (generated, never real data) for tests, benchmarks and demos: 2D datasets and 3D label volumes."""

from yolo_spine.synth.xray2d import make_xray_dataset

__all__ = ["make_xray_dataset"]
