"""Tests of yolo_spine.datasets."""
