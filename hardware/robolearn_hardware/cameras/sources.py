"""Frame sources for `ThreadedCamera`: synthetic (numbered frames), file-backed (an mp4 or a folder of
images, for replays and tests) and an OpenCV/V4L2 device. Frames are (H, W, 3) uint8 RGB.

Example::

    cam = ThreadedCamera("front", FileSource("demo.mp4", loop=True))
    cam = ThreadedCamera("wrist", OpenCVSource(0, size=(480, 640), fps=30))
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from robolearn.errors import InvalidValueError, MissingPathError

from .reader import CameraError, EndOfSource, FrameSource, SourceDisconnected

__all__ = ["FileSource", "OpenCVSource", "SyntheticSource", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def _size(size: Sequence[int], who: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise InvalidValueError(f"{who}: size={size!r}; expected (H, W), two positive integers.") from None
    if h < 1 or w < 1:
        raise InvalidValueError(f"{who}: size={size!r}; expected (H, W), two positive integers.")
    return h, w


def _fps(fps: float, who: str) -> float:
    if not (isinstance(fps, (int, float)) and fps > 0):
        raise InvalidValueError(f"{who}: fps={fps!r}; expected frames per second > 0.")
    return float(fps)


class SyntheticSource(FrameSource):
    """Numbered frames: a colour that changes per frame with the frame number drawn by ``cv2.putText``."""

    def __init__(self, size: Sequence[int] = (48, 64), fps: float = 30.0) -> None:
        self.size = _size(size, "SyntheticSource")
        self.fps = _fps(fps, "SyntheticSource")
        self.n = 0

    def open(self) -> None:
        self.n = 0

    def grab(self) -> np.ndarray:
        n, (h, w) = self.n, self.size
        self.n += 1
        frame = np.empty((h, w, 3), np.uint8)
        frame[:] = ((37 * n) % 200 + 20, (91 * n) % 200 + 20, (53 * n) % 200 + 20)
        cv2.putText(frame, str(n), (2, h - 4), cv2.FONT_HERSHEY_SIMPLEX, max(h / 60, 0.3), (255, 255, 255), 1)
        return frame


class FileSource(FrameSource):
    """Frames of a video file (anything ``cv2.VideoCapture`` reads: mp4, avi) or of a folder of images
    (sorted by name), at ``fps`` (default: the video's rate, 30 for a folder); at the end it starts again
    (``loop=True``) or ends (the camera then keeps its last frame, which goes stale).
    """

    def __init__(self, path: str | Path, fps: float | None = None, loop: bool = True) -> None:
        self.path = Path(path)
        self.loop = bool(loop)
        if not self.path.exists():
            raise MissingPathError(f"FileSource: {self.path} does not exist; expected a video file or a folder of "
                                   f"images ({', '.join(IMAGE_SUFFIXES)}).")
        self._images: list[Path] | None = None
        self._cap = None
        if self.path.is_dir():
            self._images = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not self._images:
                raise MissingPathError(f"FileSource: folder {self.path} holds no image ({', '.join(IMAGE_SUFFIXES)}).")
            first = self._read_image(self._images[0])
            native = 30.0
        else:
            cap = cv2.VideoCapture(str(self.path))
            ok, bgr = cap.read()
            native = cap.get(cv2.CAP_PROP_FPS) or 30.0
            cap.release()
            if not ok:
                raise CameraError(f"FileSource: {self.path} is not a video OpenCV can read; expected an mp4/avi "
                                  "file or a folder of images.")
            first = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        self.size = first.shape[:2]
        self.fps = _fps(native if fps is None else fps, "FileSource")
        self.index = 0

    def _read_image(self, path: Path) -> np.ndarray:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise CameraError(f"FileSource: {path} is not an image OpenCV can read.")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def open(self) -> None:
        self.close()
        self.index = 0
        if self._images is None:
            self._cap = cv2.VideoCapture(str(self.path))

    def grab(self) -> np.ndarray:
        frame = self._next()
        if frame is None and self.loop and self.index > 0:
            self.open()
            frame = self._next()
        if frame is None:
            raise EndOfSource(str(self.path))
        if frame.shape[:2] != self.size:
            raise CameraError(f"FileSource: frame {self.index} of {self.path} is {frame.shape[:2]}, not the first "
                              f"frame's {self.size}; expected frames of one size.")
        self.index += 1
        return frame

    def _next(self) -> np.ndarray | None:
        if self._images is not None:
            return self._read_image(self._images[self.index]) if self.index < len(self._images) else None
        ok, bgr = self._cap.read()
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) if ok else None

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class OpenCVSource(FrameSource):
    """A UVC/V4L2 camera through ``cv2.VideoCapture(index or /dev/videoN)``, asked for ``size`` and ``fps``;
    ``open()`` fails with `CameraError` when the device gives another size. ``grab()`` blocks until the
    device's next frame (self-paced); a failed read is taken as an unplugged device."""

    self_paced = True

    def __init__(self, device: int | str = 0, size: Sequence[int] = (480, 640), fps: float = 30.0) -> None:
        self.device = device
        self.size = _size(size, "OpenCVSource")
        self.fps = _fps(fps, "OpenCVSource")
        self._cap = None

    def open(self) -> None:
        cap = cv2.VideoCapture(self.device)
        if not cap.isOpened():
            cap.release()
            raise SourceDisconnected(f"OpenCVSource: cannot open camera {self.device!r}; `robolearn find-cameras` "
                                     "lists the ones present.")
        h, w = self.size
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, w)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, h)
        cap.set(cv2.CAP_PROP_FPS, self.fps)
        got = (int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)))
        if got != self.size:
            cap.release()
            raise CameraError(f"OpenCVSource: camera {self.device!r} gives (H, W)={got}, not the size={self.size} "
                              "asked for; set size to a mode the camera supports (v4l2-ctl --list-formats-ext).")
        self._cap = cap

    def grab(self) -> np.ndarray:
        if self._cap is None:
            raise SourceDisconnected(f"OpenCVSource: camera {self.device!r} is not open.")
        ok, bgr = self._cap.read()
        if not ok:
            raise SourceDisconnected(f"OpenCVSource: camera {self.device!r} returned no frame.")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
