"""``yolo_spine pacs``: a study from a PACS over DICOMweb, segmented, and stored back as DICOM-SEG."""
