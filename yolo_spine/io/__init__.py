"""File formats at the edges (X-ray images, YOLO label files, COCO files, CT volumes) and atomic output writing."""
