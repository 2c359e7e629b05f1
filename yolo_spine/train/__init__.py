"""Training: Ultralytics YOLOv11-seg offline, on every CPU core or GPUs, left/right-aware, with a run manifest."""
