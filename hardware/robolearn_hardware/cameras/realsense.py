"""Intel RealSense depth cameras (D400 series) through ``pyrealsense2`` (the ``realsense`` extra, imported when a
source is made): colour ``images/<name>`` and, aligned to it, depth ``depth/<name>`` in metres, each frame stamped
with the device's capture time.

Capture time: a frame's timestamp in the global-time or system-time domain (the host-synchronised clocks
librealsense offers) is milliseconds of the host's wall clock; it is moved onto ``time.monotonic()`` by the
wall-minus-monotonic offset at arrival. A frame stamped on the camera's own hardware clock (another domain) is
stamped when it arrives.

The pip wheel bundles librealsense and loads libusb-1.0 and libudev from the system (`make install` installs
them when root). Run a real device with ``ROBOLEARN_REALSENSE=<serial>|any pytest -m real_device``.

Example::

    cam = realsense_camera(name="front", serial="123622270000", size=(480, 640), fps=30)
    with cam:
        r = cam.read_latest()
        r.values["images/front"], r.values["depth/front"], r.t_capture
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from robolearn.errors import MissingExtraError

from .reader import Captured, FrameSource, SourceDisconnected
from .sources import _fps, _size

__all__ = ["RealSenseSource", "import_pyrealsense2"]


def import_pyrealsense2():
    """The ``pyrealsense2`` module, or `MissingExtraError` naming the extra to install."""
    try:
        import pyrealsense2
    except ImportError as e:
        raise MissingExtraError(f"a RealSense camera needs pyrealsense2 ({e}); install it with: pip install "
                                "'robolearn-hardware[realsense]'") from None
    return pyrealsense2


class RealSenseSource(FrameSource):
    """Colour + aligned depth frames of one RealSense (``serial``; None: the first one found) at ``size`` (H, W)
    and ``fps``; ``depth=False`` streams colour only. Self-paced: ``grab()`` waits for the device's next frame
    set (at most ``timeout_s``: a camera that sends nothing is taken as unplugged)."""

    self_paced = True

    def __init__(self, serial: str | None = None, size: Sequence[int] = (480, 640), fps: float = 30.0,
                 depth: bool = True, timeout_s: float = 1.0) -> None:
        self.rs = import_pyrealsense2()
        self.serial = None if serial in (None, "", "any") else str(serial)
        self.size = _size(size, "RealSenseSource")
        self.fps = _fps(fps, "RealSenseSource")
        self.has_depth = bool(depth)
        self.timeout_s = float(timeout_s)
        self._pipeline = None
        self._align = None
        self.depth_scale = 0.0
        """Metres per depth unit (the device's; 0.001 on most D400s)."""

    def open(self) -> None:
        rs = self.rs
        h, w = self.size
        config = rs.config()
        if self.serial is not None:
            config.enable_device(self.serial)
        config.enable_stream(rs.stream.color, w, h, rs.format.rgb8, int(round(self.fps)))
        if self.has_depth:
            config.enable_stream(rs.stream.depth, w, h, rs.format.z16, int(round(self.fps)))
        pipeline = rs.pipeline()
        try:
            profile = pipeline.start(config)
        except RuntimeError as e:  # no such device, or a mode it does not have
            which = f"serial {self.serial}" if self.serial else "any RealSense"
            raise SourceDisconnected(f"RealSenseSource: cannot start {which} at {w}x{h} {self.fps:g} fps ({e}); "
                                     "`rs-enumerate-devices` lists the devices and their modes.") from None
        if self.has_depth:
            self.depth_scale = float(profile.get_device().first_depth_sensor().get_depth_scale())
            self._align = rs.align(rs.stream.color)
        self._pipeline = pipeline

    def grab(self) -> Captured:
        if self._pipeline is None:
            raise SourceDisconnected("RealSenseSource: the camera is not open.")
        try:
            frames = self._pipeline.wait_for_frames(int(self.timeout_s * 1000))
        except RuntimeError as e:  # "Frame didn't arrive within ...": unplugged or stalled
            raise SourceDisconnected(f"RealSenseSource: no frame within {self.timeout_s} s ({e}).") from None
        if self._align is not None:
            frames = self._align.process(frames)
        color = frames.get_color_frame()
        rgb = np.asanyarray(color.get_data()).copy()
        depth = None
        if self.has_depth:
            raw = np.asanyarray(frames.get_depth_frame().get_data())
            depth = raw.astype(np.float32) * np.float32(self.depth_scale)
        return Captured(rgb, depth, self._monotonic(color))

    def _monotonic(self, frame) -> float | None:
        domain = frame.get_frame_timestamp_domain()
        if domain in (self.rs.timestamp_domain.global_time, self.rs.timestamp_domain.system_time):
            return time.monotonic() - (time.time() - frame.get_timestamp() / 1000.0)
        return None  # the camera's own clock: stamped on arrival

    def close(self) -> None:
        pipeline, self._pipeline = self._pipeline, None
        if pipeline is not None:
            try:
                pipeline.stop()
            except RuntimeError:
                pass  # already stopped: the device went away
