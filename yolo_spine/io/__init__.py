"""File formats at the edges: X-ray images (PNG/TIFF/DICOM), YOLO label files, COCO files, CT volumes."""
