"""Tests of yolo_spine.demo."""
