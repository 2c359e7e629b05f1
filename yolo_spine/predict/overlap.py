"""Background reader and video-writer threads, so that decoding and encoding overlap inference.

OpenCV releases the GIL while it decodes and encodes, and so do ONNX Runtime, OpenVINO and PyTorch while they
infer; a reader that stays a couple of frames ahead and a writer that encodes behind take those milliseconds
off each frame's critical path. Both keep bounded queues, so memory stays constant on an endless stream, and
both hand their errors to the calling thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

#: Seconds between checks of the stop flag while a queue is full or empty.
_POLL_S = 0.1


class ReadAhead:
    """Iterate ``frames`` in a background thread, at most ``depth`` items ahead of the consumer.

    Args:
        frames: Any iterator (a source's frame generator); closed by the reader thread when it stops.
        depth: Items read ahead.
        stop_source: Called by :meth:`close` to wake a source that waits for input (a folder watch).
        latest_only: For live sources (a camera keeps producing whether or not anyone reads): when the
            consumer falls behind, the oldest waiting item is discarded so it always gets the newest; the
            number discarded is :attr:`skipped`. Otherwise the reader waits and nothing is skipped.
    """

    def __init__(
        self,
        frames: Iterator[Any],
        depth: int = 2,
        stop_source: Callable[[], None] | None = None,
        latest_only: bool = False,
    ) -> None:
        self._stop_source = stop_source
        self._latest_only = latest_only
        self.skipped = 0
        self._q: queue.Queue = queue.Queue(maxsize=max(1, int(depth)))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(frames,), name="yolo_spine-reader", daemon=True)
        self._thread.start()

    def _put(self, item: tuple[str, Any]) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _put_latest(self, item: tuple[str, Any]) -> None:
        while True:
            try:
                self._q.put_nowait(item)
                return
            except queue.Full:
                try:
                    self._q.get_nowait()
                    self.skipped += 1
                except queue.Empty:  # the consumer took one meanwhile
                    pass

    def _run(self, frames: Iterator[Any]) -> None:
        try:
            for item in frames:
                if self._stop.is_set():
                    break
                if self._latest_only:
                    self._put_latest(("item", item))
                elif not self._put(("item", item)):
                    break
            else:
                self._put(("end", None))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self._put(("error", exc))
        finally:
            close = getattr(frames, "close", None)
            if close is not None:
                close()

    def __iter__(self) -> Iterator[Any]:
        while True:
            kind, value = self._q.get()
            if kind == "item":
                yield value
            elif kind == "error":
                raise value
            else:
                return

    def close(self) -> None:
        """Stop the reader (it closes ``frames``) and wait for it."""
        self._stop.set()
        if self._stop_source is not None:
            self._stop_source()
        self._thread.join(timeout=10.0)


class BackgroundWriter:
    """Feed a ``cv2.VideoWriter`` (or anything with ``write``/``release``) from a background thread.

    Args:
        writer: The writer; released by :meth:`release`.
        depth: Frames queued before :meth:`write` waits.
    """

    def __init__(self, writer: Any, depth: int = 4) -> None:
        self._writer = writer
        self._q: queue.Queue = queue.Queue(maxsize=max(1, int(depth)))
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="yolo_spine-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            img = self._q.get()
            if img is None:
                return
            if self._error is None:
                try:
                    self._writer.write(img)
                except BaseException as exc:  # re-raised in the caller's thread
                    self._error = exc

    def write(self, img: Any) -> None:
        """Queue one frame (the writer keeps a reference: do not modify ``img`` afterwards)."""
        if self._error is not None:
            raise self._error
        self._q.put(img)

    def release(self) -> None:
        """Write what is queued, release the writer, and raise the first write error, if any."""
        if self._thread.is_alive():
            self._q.put(None)
            self._thread.join()
        self._writer.release()
        if self._error is not None:
            raise self._error
