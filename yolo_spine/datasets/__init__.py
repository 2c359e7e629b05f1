"""Dataset tools: fetch Roboflow exports, merge them into one leakage-free YOLO-seg dataset, check, stats, augment."""
