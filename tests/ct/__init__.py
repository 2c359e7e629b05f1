"""Tests of yolo_spine.ct."""
