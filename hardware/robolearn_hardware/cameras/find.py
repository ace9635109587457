"""Finding cameras: which OpenCV indices or video devices open and stream, at what size and measured rate.

On Linux the candidates are the V4L2 nodes ``/dev/video*`` (a UVC camera usually shows two: the stream and a
metadata node that does not stream); elsewhere OpenCV indices ``0..max_index``. Each candidate is opened in
turn, a first frame read, then frames are read for ``measure_s`` seconds: ``fps_measured`` is what the device
really delivers (``fps_reported`` is what the driver claims). Use the ``device`` value in a robot config's
camera kwargs (``opencv-camera``: ``device: 0`` or ``device: /dev/video2``) with ``size: [height, width]``.

Example::

    for cam in find_cameras():
        print(cam.device, cam.height, cam.width, cam.fps_measured)
"""

from __future__ import annotations

import glob
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

__all__ = ["FoundCamera", "candidates", "find_cameras", "probe"]


@dataclass(frozen=True)
class FoundCamera:
    device: int | str
    """What to open: an OpenCV index or a device path (the ``device`` kwarg of ``opencv-camera``)."""
    width: int
    height: int
    fps_reported: float
    """The driver's claim (CAP_PROP_FPS); 0 when it gives none."""
    fps_measured: float
    """Frames read per second over the measuring window."""
    frames: int
    """Frames read while measuring."""
    backend: str

    def to_json(self) -> dict:
        return asdict(self)


def candidates(max_index: int = 10) -> list[int | str]:
    """/dev/video* in numeric order on Linux, else the indices 0..max_index - 1."""
    if sys.platform.startswith("linux"):
        nodes = glob.glob("/dev/video*")
        number = lambda p: int(m.group(1)) if (m := re.search(r"(\d+)$", p)) else 1 << 30  # noqa: E731
        return sorted(nodes, key=number)
    return list(range(max_index))


def probe(device: int | str, measure_s: float = 1.0) -> FoundCamera | None:
    """Open `device`, read a first frame, then read for `measure_s` s; None when it does not open or stream."""
    import cv2

    cap = cv2.VideoCapture(device)
    try:
        if not cap.isOpened():
            return None
        ok, frame = cap.read()
        if not ok or frame is None:
            return None
        n, t0 = 0, time.monotonic()
        while time.monotonic() - t0 < measure_s:
            ok, _ = cap.read()
            if not ok:
                break
            n += 1
        elapsed = time.monotonic() - t0
        return FoundCamera(device=device, width=int(frame.shape[1]), height=int(frame.shape[0]),
                           fps_reported=float(cap.get(cv2.CAP_PROP_FPS) or 0.0),
                           fps_measured=n / elapsed if elapsed > 0 else 0.0, frames=n,
                           backend=str(cap.getBackendName()))
    finally:
        cap.release()


def find_cameras(devices: Sequence[int | str] | None = None, measure_s: float = 1.0,
                 max_index: int = 10) -> list[FoundCamera]:
    """Every candidate (`candidates()` unless `devices` is given) that opens and streams, measured."""
    found = []
    for device in candidates(max_index) if devices is None else devices:
        cam = probe(device, measure_s)
        if cam is not None:
            found.append(cam)
    return found
