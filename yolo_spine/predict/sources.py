"""Where frames come from: an X-ray, a folder (optionally watched), a video, a webcam, a stream URL, a stream file.

:func:`open_source` turns the ``--source`` text into a :class:`Source` whose :meth:`Source.frames` yields one
:class:`Frame` at a time (nothing is accumulated, so an endless webcam or stream runs in constant memory).

* Image files go through :func:`yolo_spine.io.xray.read_xray`, the same function ``merge`` uses: 16-bit
  PNG/TIFF and DICOM are windowed to 8 bits, ``MONOCHROME1`` is inverted, compressed DICOM is decoded; every
  frame of a multi-frame DICOM is predicted.
* A folder is read in sorted file-name order; with ``watch`` it is then polled for new images (a file counts
  once its size has stopped changing between two polls, so a scanner's half-written export is never read)
  until ``watch_timeout`` seconds pass without a new file, or Ctrl-C.
* A video file, a webcam index (``0``) and a stream URL (``rtsp://``, ``http://`` …) are read with OpenCV;
  a stream file (``.streams`` or ``.txt``, one URL, video path or webcam index per line) is read round-robin,
  one frame from each open stream in turn.

**Identity.** A frame's ``source`` is the file name only (never the folder, never a DICOM header field); a URL
is reduced to host and path (no user, password or query string), a webcam to ``webcam<index>``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from yolo_spine.errors import DataError, UserError

log = logging.getLogger("yolo_spine")

#: Video container suffixes read with OpenCV.
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".asf", ".ts", ".gif"}
#: Suffixes of a stream file (one source per line).
STREAM_FILE_SUFFIXES = {".streams", ".txt"}
#: URL schemes treated as streams.
STREAM_SCHEMES = ("rtsp://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")


@dataclass
class Frame:
    """One image or video frame to predict on.

    Attributes:
        image_bgr: ``(H, W, 3)`` ``uint8`` BGR pixels.
        source: Reference for outputs: a file name, ``webcam<i>`` or a URL's host and path; never identifiers.
        frame: Frame index within the source (0 for a still image).
        stem: Output name stem (file stem, ``webcam0``, ``stream1`` …), unique within one run.
        is_video: Whether the frame belongs to a video-like source (annotated output is a video).
        fps: The source's frame rate when it reports one (for the annotated video), else ``None``.
        path: The image file a still frame was read from (``None`` for captures); never written to outputs.
        n_frames: Frames in that file (a multi-frame DICOM has several).
    """

    image_bgr: np.ndarray
    source: str
    frame: int
    stem: str
    is_video: bool = False
    fps: float | None = None
    path: Path | None = None
    n_frames: int = 1


def _cv2() -> Any:
    import cv2

    return cv2


def open_capture(target: int | str) -> Any:
    """Open an OpenCV ``VideoCapture`` on a webcam index, a video file or a URL (tests replace this function).

    OpenCV's own warnings about a camera that does not exist are silenced; the caller reports the failure.
    """
    cv2 = _cv2()
    logging_mod = getattr(getattr(cv2, "utils", None), "logging", None)
    previous = None
    if logging_mod is not None:
        previous = logging_mod.getLogLevel()
        logging_mod.setLogLevel(logging_mod.LOG_LEVEL_SILENT)
    try:
        return cv2.VideoCapture(target)
    finally:
        if logging_mod is not None and previous is not None:
            logging_mod.setLogLevel(previous)


def safe_url_name(url: str) -> str:
    """Reduce a stream URL to ``scheme://host[:port]/path`` (no credentials, no query string)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


def _is_url(text: str) -> bool:
    return text.lower().startswith(STREAM_SCHEMES)


def _is_image_file(path: Path) -> bool:
    from yolo_spine.io.xray import RASTER_SUFFIXES, is_dicom

    return path.suffix.lower() in RASTER_SUFFIXES or is_dicom(path)


@dataclass
class _Capture:
    """One OpenCV-readable stream with its output names."""

    target: int | str
    source: str
    stem: str


class Source:
    """A prediction source; iterate :meth:`frames` once.

    Attributes:
        kind: ``image``, ``folder``, ``video``, ``webcam``, ``stream`` or ``streams``.
        description: A human-readable, identifier-free description for logs and the run manifest.
        dropped: ``{file name: reason}`` for inputs that could not be read (counted in the manifest).
    """

    def __init__(
        self,
        kind: str,
        description: str,
        images: list[Path] | None = None,
        folder: Path | None = None,
        captures: list[_Capture] | None = None,
        watch: bool = False,
        watch_timeout: float | None = None,
        poll_s: float = 1.0,
    ) -> None:
        """Create a source; use :func:`open_source` rather than this constructor."""
        self.kind = kind
        self.description = description
        self.dropped: dict[str, str] = {}
        self._images = images or []
        self._folder = folder
        self._captures = captures or []
        self._watch = watch
        self._watch_timeout = watch_timeout
        self._poll_s = poll_s
        self._stems: dict[str, int] = {}
        self._stopping = threading.Event()

    def stop(self) -> None:
        """Ask a folder watch to end at its next poll (callable from any thread)."""
        self._stopping.set()

    def __repr__(self) -> str:
        return f"Source({self.kind}: {self.description})"

    def _unique_stem(self, stem: str) -> str:
        n = self._stems.get(stem, 0)
        self._stems[stem] = n + 1
        return stem if n == 0 else f"{stem}_{n}"

    def frames(self) -> Iterator[Frame]:
        """Yield frames one at a time (see the module docstring for the order)."""
        if self.kind in {"image", "folder"}:
            yield from self._image_frames(self._images)
            if self._watch and self._folder is not None:
                yield from self._watch_folder(set(self._images))
        else:
            yield from self._capture_frames()

    def _image_frames(self, paths: list[Path]) -> Iterator[Frame]:
        from yolo_spine.io.xray import read_xray

        for path in paths:
            try:
                x = read_xray(path)
            except DataError as exc:
                if self.kind == "image":
                    raise
                reason = str(exc).replace(str(path), path.name)  # the file name only: folders carry identifiers
                log.warning("skipping %s: %s", path.name, reason)
                self.dropped[path.name] = reason
                continue
            stem = self._unique_stem(path.stem)
            yield Frame(x.bgr(), path.name, 0, stem, path=path, n_frames=x.n_frames)
            for k in range(1, x.n_frames):  # multi-frame DICOM: every frame, read one at a time
                yield Frame(read_xray(path, frame=k).bgr(), path.name, k, stem, path=path, n_frames=x.n_frames)

    def _watch_folder(self, seen: set[Path]) -> Iterator[Frame]:
        if self._folder is None:
            return
        sizes: dict[Path, tuple[int, float]] = {}
        last_new = time.monotonic()
        log.info("watching the source folder for new images (Ctrl-C to stop)")  # its name may be a patient's
        while not self._stopping.is_set():
            ready = []
            for p in sorted(self._folder.iterdir()):
                if p in seen or not p.is_file() or p.name.startswith(".") or not _is_image_file(p):
                    continue
                try:
                    st = p.stat()
                except OSError:
                    continue
                key = (st.st_size, st.st_mtime)
                if st.st_size > 0 and sizes.get(p) == key:
                    ready.append(p)
                else:
                    sizes[p] = key
            for p in ready:
                seen.add(p)
                sizes.pop(p, None)
            if ready:
                last_new = time.monotonic()
                yield from self._image_frames(ready)
            elif self._watch_timeout is not None and time.monotonic() - last_new >= self._watch_timeout:
                log.info("no new image for %.0f s; watch ends", self._watch_timeout)
                return
            self._stopping.wait(self._poll_s)

    def _capture_frames(self) -> Iterator[Frame]:
        cv2 = _cv2()
        opened: list[tuple[Any, float | None]] = []  # (cv2.VideoCapture, its frame rate when plausible)
        for c in self._captures:
            cap = open_capture(c.target)
            if cap is None or not cap.isOpened():
                for other, _ in opened:
                    other.release()
                if isinstance(c.target, int):
                    raise UserError(f"webcam {c.target} does not open (no such camera, or it is in use)")
                raise UserError(f"cannot open the video or stream {c.source}")
            fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
            opened.append((cap, fps if 0 < fps < 1000 else None))
        counts = [0] * len(opened)
        active = list(range(len(opened)))
        stems = [self._unique_stem(c.stem) for c in self._captures]
        try:
            while active:
                for i in list(active):
                    cap, cap_fps = opened[i]
                    ok, img = cap.read()
                    if not ok or img is None:
                        active.remove(i)
                        if counts[i] == 0:
                            self.dropped[self._captures[i].source] = "no frame could be read"
                            log.warning("no frame could be read from %s", self._captures[i].source)
                        continue
                    if img.ndim == 2:
                        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
                    yield Frame(img, self._captures[i].source, counts[i], stems[i], is_video=True, fps=cap_fps)
                    counts[i] += 1
        finally:
            for cap, _ in opened:
                cap.release()


def _capture_for(text: str, base: Path | None, index: int | None = None) -> _Capture:
    """A capture for a webcam index, URL or video path given in ``--source`` or a stream-file line."""
    text = text.strip()
    if text.isdigit():
        return _Capture(int(text), f"webcam{int(text)}", f"webcam{int(text)}")
    if _is_url(text):
        name = safe_url_name(text)
        stem = f"stream{index}" if index is not None else "stream"
        return _Capture(text, name, stem)
    path = Path(text)
    if base is not None and not path.is_absolute():
        path = base / path
    if not path.is_file():
        raise UserError(f"video not found: {path}")
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise UserError(f"{path.name} is not a video file ({', '.join(sorted(VIDEO_SUFFIXES))})")
    return _Capture(str(path), path.name, path.stem)


def open_source(
    source: str | Path | int,
    watch: bool = False,
    watch_timeout: float | None = None,
    poll_s: float = 1.0,
) -> Source:
    """Interpret ``--source`` (see the module docstring) and return the :class:`Source`.

    Args:
        source: A webcam index, URL, image, folder, video or stream file.
        watch: For a folder, keep polling for new images after the existing ones.
        watch_timeout: Stop watching after this many seconds without a new image (``None``: until Ctrl-C).
        poll_s: Seconds between polls of a watched folder.

    Returns:
        The source, not yet opened (cameras and streams open when :meth:`Source.frames` starts).

    Raises:
        UserError: A missing path, an unreadable or unsupported file, ``--watch`` on something not a folder.
    """
    text = str(source).strip()
    if watch and not Path(text).is_dir():
        raise UserError(f"--watch needs a folder as --source, not {Path(text).name or text}")
    if text.isdigit() or _is_url(text):
        cap = _capture_for(text, None)
        kind = "webcam" if isinstance(cap.target, int) else "stream"
        return Source(kind, cap.source, captures=[cap])
    path = Path(text).expanduser()
    if path.is_dir():
        images = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".") and _is_image_file(p))
        if not images and not watch:
            raise UserError(f"{path} holds no images (PNG, JPEG, TIFF, DICOM …)")
        return Source(
            "folder",
            f"folder of {len(images)} images",
            images=images,
            folder=path,
            watch=watch,
            watch_timeout=watch_timeout,
            poll_s=poll_s,
        )
    if not path.exists():
        raise UserError(f"source not found: {path} (an image, folder, video, stream file, URL or webcam index)")
    suffix = path.suffix.lower()
    if suffix in STREAM_FILE_SUFFIXES:
        try:
            lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read the stream file {path.name}: {exc}") from None
        lines = [ln for ln in lines if ln and not ln.startswith("#")]
        if not lines:
            raise UserError(f"the stream file {path.name} lists no sources")
        caps = [_capture_for(ln, path.parent, i) for i, ln in enumerate(lines)]
        return Source("streams", f"{len(caps)} streams from {path.name}", captures=caps)
    if suffix in VIDEO_SUFFIXES:
        cap = _capture_for(str(path), None)
        return Source("video", path.name, captures=[cap])
    if _is_image_file(path):
        return Source("image", path.name, images=[path])
    raise UserError(f"{path.name} is not an image, video or stream file this tool reads")
