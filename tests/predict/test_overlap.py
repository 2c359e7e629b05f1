"""Reader and writer threads of predict: order kept, errors handed over, early stops close the source."""

from __future__ import annotations

import pytest

from yolo_spine.predict.overlap import BackgroundWriter, ReadAhead


def test_read_ahead_keeps_order_and_ends():
    reader = ReadAhead(iter(range(50)), depth=2)
    assert list(reader) == list(range(50))
    reader.close()


def test_read_ahead_hands_the_sources_error_to_the_consumer():
    def frames():
        yield 1
        raise ValueError("unreadable frame")

    reader = ReadAhead(frames())
    it = iter(reader)
    assert next(it) == 1
    with pytest.raises(ValueError, match="unreadable frame"):
        next(it)
    reader.close()


def test_read_ahead_close_stops_an_endless_source_and_closes_it():
    closed = []

    def endless():
        try:
            n = 0
            while True:
                yield n
                n += 1
        finally:
            closed.append(True)

    reader = ReadAhead(endless(), depth=2)
    it = iter(reader)
    assert [next(it) for _ in range(5)] == [0, 1, 2, 3, 4]
    reader.close()
    assert closed == [True] and not reader._thread.is_alive()


class _Writer:
    def __init__(self, fail_at: int | None = None) -> None:
        self.frames: list[int] = []
        self.released = False
        self.fail_at = fail_at

    def write(self, img: int) -> None:
        if img == self.fail_at:
            raise OSError("disk full")
        self.frames.append(img)

    def release(self) -> None:
        self.released = True


def test_background_writer_writes_everything_in_order_before_release():
    raw = _Writer()
    wr = BackgroundWriter(raw, depth=3)
    for k in range(40):
        wr.write(k)
    wr.release()
    assert raw.frames == list(range(40)) and raw.released


def test_background_writer_raises_a_write_error_in_the_callers_thread():
    raw = _Writer(fail_at=3)
    wr = BackgroundWriter(raw)
    for k in range(6):
        try:
            wr.write(k)
        except OSError:
            break
    with pytest.raises(OSError, match="disk full"):
        wr.release()
    assert raw.released and raw.frames == [0, 1, 2]


def test_closing_the_reader_ends_an_endless_folder_watch_promptly(tmp_path):
    """Ctrl-C during a watch without timeout: the reader wakes the waiting source instead of hanging."""
    import time

    import cv2
    import numpy as np

    from yolo_spine.predict.sources import open_source

    cv2.imwrite(str(tmp_path / "a.png"), np.full((16, 16), 128, np.uint8))
    src = open_source(tmp_path, watch=True, watch_timeout=None, poll_s=30.0)
    reader = ReadAhead(src.frames(), stop_source=src.stop)
    first = next(iter(reader))
    assert first.source == "a.png"
    t = time.monotonic()
    reader.close()
    assert time.monotonic() - t < 5.0 and not reader._thread.is_alive()


def test_latest_only_hands_over_the_newest_item_and_counts_the_rest():
    """A live source faster than its consumer: items arrive in order, the last one always, skips are counted."""
    import time

    def camera():
        for k in range(200):
            time.sleep(0.0005)
            yield k

    reader = ReadAhead(camera(), depth=1, latest_only=True)
    got = []
    for item in reader:
        got.append(item)
        time.sleep(0.01)  # a model slower than the camera
    reader.close()
    assert got == sorted(got) and got[-1] == 199
    assert reader.skipped > 0 and len(got) + reader.skipped == 200
