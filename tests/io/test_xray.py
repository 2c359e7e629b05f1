from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest

from yolo_spine.errors import DataError
from yolo_spine.io.xray import read_xray, window_to_uint8


def test_8bit_png_passes_through(tmp_path: Path):
    img = np.random.default_rng(0).integers(0, 255, (20, 30), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), img)
    x = read_xray(tmp_path / "a.png")
    np.testing.assert_array_equal(x.pixels, img)
    assert not x.needs_conversion and x.bgr().shape == (20, 30, 3)


def test_12bit_png_is_windowed_not_truncated(tmp_path: Path):
    # A 12-bit X-ray stored in 16 bits: Ultralytics' high-byte conversion would give values 0..15 (black).
    ramp = np.tile(np.linspace(0, 4095, 256).astype(np.uint16), (32, 1))
    cv2.imwrite(str(tmp_path / "x12.png"), ramp)
    x = read_xray(tmp_path / "x12.png")
    assert x.source_bits == 16 and x.window_source == "percentile"
    assert (ramp >> 8).max() == 15  # what the high byte alone would show
    assert x.pixels.min() == 0 and x.pixels.max() == 255
    assert np.all(np.diff(x.pixels[0].astype(int)) >= 0)  # monotonic: order of intensities kept


def test_16bit_tiff(tmp_path: Path):
    img = (np.random.default_rng(1).random((16, 16)) * 60000).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "a.tiff"), img)
    assert read_xray(tmp_path / "a.tiff").pixels.dtype == np.uint8


def test_explicit_window():
    v = np.array([0.0, 50.0, 100.0])
    # DICOM PS3.3 C.11.2.1.2 linear function: 50 -> ((50 - 49.5) / 99 + 0.5) * 255 = 128.8
    np.testing.assert_array_equal(window_to_uint8(v, 50, 100), [0, 129, 255])


def test_unreadable_and_missing(tmp_path: Path):
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="not a readable image"):
        read_xray(tmp_path / "bad.png")
    with pytest.raises(DataError, match="not found"):
        read_xray(tmp_path / "nope.png")
    (tmp_path / "bad.dcm").write_bytes(b"\0" * 10)
    with pytest.raises(DataError, match="DICOM"):
        read_xray(tmp_path / "bad.dcm")


def test_real_monochrome1_radiograph_is_inverted(example_radiograph_path: Path):
    ds = pydicom.dcmread(example_radiograph_path)
    assert ds.PhotometricInterpretation == "MONOCHROME1" and ds.BitsStored == 15
    x = read_xray(example_radiograph_path)
    assert x.inverted and x.window_source == "dicom" and x.pixels.dtype == np.uint8
    assert x.pixels.shape == ds.pixel_array.shape
    raw = ds.pixel_array.astype(np.float64)
    # MONOCHROME1: high stored values are dark, so after inversion they must be darker than low ones
    hi = x.pixels[raw > np.percentile(raw, 90)].mean()
    lo = x.pixels[raw < np.percentile(raw, 10)].mean()
    assert hi < lo
    assert 20 < x.pixels.mean() < 235  # not black, not white
    assert x.pixel_spacing_mm is None or x.pixel_spacing_mm[0] > 0


def test_real_jpeg2000_radiograph_decodes_like_uncompressed(example_radiograph_path: Path):
    from yolo_spine.data import example_radiograph

    a = read_xray(example_radiograph_path).pixels.astype(int)
    b = read_xray(example_radiograph(compressed=True)).pixels.astype(int)
    assert a.shape == b.shape
    assert np.abs(a - b).mean() < 1.0  # lossless J2K of the same exposure
