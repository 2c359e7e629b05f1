"""Tests of yolo_spine.lift."""
