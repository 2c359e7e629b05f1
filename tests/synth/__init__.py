"""Tests of yolo_spine.synth."""
