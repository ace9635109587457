"""Cameras: a threaded reader (`ThreadedCamera`, ``read_latest(max_age)``, frame counters) over frame sources
(synthetic, file-backed, OpenCV/V4L2 device) and a fault wrapper. Registered under the ``robolearn.devices``
entry point group: ``make_device("synthetic-camera", name="front", fps=30)``,
``make_device("file-camera", name="front", path="demo.mp4")``, ``make_device("realsense-camera", name="front",
serial="...")`` (colour + depth; the ``realsense`` extra).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .faults import FaultySource
from .reader import (PAIRING_RULE, CameraError, Captured, EndOfSource, FrameSource, SourceDisconnected,
                     StaleFrameError, ThreadedCamera)
from .sources import FileSource, OpenCVSource, SyntheticSource

__all__ = ["PAIRING_RULE", "CameraError", "Captured", "EndOfSource", "FaultySource", "FileSource", "FrameSource",
           "OpenCVSource", "SourceDisconnected", "StaleFrameError", "SyntheticSource", "ThreadedCamera",
           "file_camera", "opencv_camera", "realsense_camera", "register", "synthetic_camera"]


def synthetic_camera(name: str = "front", size: Sequence[int] = (48, 64), fps: float = 30.0,
                     max_age: float = 0.1) -> ThreadedCamera:
    """A camera of numbered synthetic frames at ``fps``."""
    return ThreadedCamera(name, SyntheticSource(size, fps), max_age=max_age)


def file_camera(path: str | Path, name: str = "front", fps: float | None = None, loop: bool = True,
                max_age: float = 0.1) -> ThreadedCamera:
    """A camera replaying a video file or a folder of images at ``fps`` (default: the file's)."""
    return ThreadedCamera(name, FileSource(path, fps, loop), max_age=max_age)


def opencv_camera(device: int | str = 0, name: str = "front", size: Sequence[int] = (480, 640),
                  fps: float = 30.0, max_age: float = 0.1) -> ThreadedCamera:
    """A UVC/V4L2 camera (index or /dev/videoN) through OpenCV."""
    return ThreadedCamera(name, OpenCVSource(device, size, fps), max_age=max_age)


def realsense_camera(serial: str | None = None, name: str = "front", size: Sequence[int] = (480, 640),
                     fps: float = 30.0, depth: bool = True, max_age: float = 0.1) -> ThreadedCamera:
    """An Intel RealSense (``serial``; None or "any": the first found): ``images/<name>`` and, with ``depth``,
    ``depth/<name>`` (metres, aligned to colour), stamped with the device's capture time (`cameras.realsense`)."""
    from .realsense import RealSenseSource

    return ThreadedCamera(name, RealSenseSource(serial, size, fps, depth), max_age=max_age)


def register() -> dict[str, Callable[..., Any]]:
    """Device ids of the cameras (the ``robolearn.devices`` entry point)."""
    return {"synthetic-camera": synthetic_camera, "file-camera": file_camera, "opencv-camera": opencv_camera,
            "realsense-camera": realsense_camera}
