"""Tests of yolo_spine.io."""
