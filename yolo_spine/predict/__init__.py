"""Prediction: webcam, video, streams and X-ray folders (16-bit, DICOM), streamed with FPS; order fix; export."""
