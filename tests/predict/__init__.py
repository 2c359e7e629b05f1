"""Tests of yolo_spine.predict."""
