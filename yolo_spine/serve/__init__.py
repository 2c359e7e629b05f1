"""``yolo_spine serve``: an HTTP inference service for radiographs (own JSON API, MONAI Label's API, a review page)."""
