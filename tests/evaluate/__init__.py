"""Tests of yolo_spine.evaluate."""
