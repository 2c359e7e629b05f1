"""Tests of yolo_spine.review."""
