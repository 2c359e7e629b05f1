"""Tests of yolo_spine.train."""
