"""The RealSense camera source without a camera: the missing extra is one sentence naming it; colour and aligned
depth frames with the device's capture stamps go through `ThreadedCamera` (a stand-in for pyrealsense2 with its
API's shapes); the real device is an opt-in test (tests/hardware/real.py)."""

from __future__ import annotations

import builtins
import sys
import time
import types

import numpy as np
import pytest

from robolearn.devices import check_device, make_device
from robolearn.errors import MissingExtraError
from robolearn_hardware.cameras import SourceDisconnected, ThreadedCamera, realsense_camera
from robolearn_hardware.cameras.realsense import RealSenseSource
from tests.hardware.real import device, real_device

SIZE = (24, 32)
DEPTH_SCALE = 0.001


def test_a_missing_pyrealsense2_names_the_extra(monkeypatch):
    real_import = builtins.__import__

    def no_realsense(name, *args, **kw):
        if name == "pyrealsense2":
            raise ImportError("No module named 'pyrealsense2'")
        return real_import(name, *args, **kw)

    monkeypatch.delitem(sys.modules, "pyrealsense2", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_realsense)
    with pytest.raises(MissingExtraError, match=r"pip install 'robolearn-hardware\[realsense\]'"):
        make_device("realsense-camera", name="front")


class _Frame:
    def __init__(self, data, stamp_ms, domain):
        self.data, self.stamp_ms, self.domain = data, stamp_ms, domain

    def get_data(self):
        return self.data

    def get_timestamp(self):
        return self.stamp_ms

    def get_frame_timestamp_domain(self):
        return self.domain


def fake_pyrealsense2(domain="global_time", stall_after=None):
    """pyrealsense2's calls that RealSenseSource makes, serving frame k: colour k, depth 100 * (k + 1) units,
    stamped 20 ms before it is served (wall clock, ms) in `domain`; after `stall_after` frames it times out."""
    rs = types.SimpleNamespace(stream=types.SimpleNamespace(color="color", depth="depth"),
                               format=types.SimpleNamespace(rgb8="rgb8", z16="z16"),
                               timestamp_domain=types.SimpleNamespace(global_time="global_time",
                                                                      system_time="system_time",
                                                                      hardware_clock="hardware_clock"))
    state = {"k": 0, "streams": [], "stopped": False}

    class Config:
        def enable_device(self, serial):
            state["serial"] = serial

        def enable_stream(self, stream, w, h, fmt, fps):
            state["streams"].append((stream, w, h, fmt, fps))

    class Frames:
        def __init__(self, k):
            h, w = SIZE
            stamp = time.time() * 1000 - 20.0
            self.color = _Frame(np.full((h, w, 3), k % 250, np.uint8), stamp, getattr(rs.timestamp_domain, domain))
            self.depth = _Frame(np.full((h, w), 100 * (k + 1), np.uint16), stamp, "")

        def get_color_frame(self):
            return self.color

        def get_depth_frame(self):
            return self.depth

    class Pipeline:
        def start(self, config):
            sensor = types.SimpleNamespace(get_depth_scale=lambda: DEPTH_SCALE)
            dev = types.SimpleNamespace(first_depth_sensor=lambda: sensor)
            return types.SimpleNamespace(get_device=lambda: dev)

        def wait_for_frames(self, timeout_ms):
            if stall_after is not None and state["k"] >= stall_after:
                time.sleep(timeout_ms / 1000)
                raise RuntimeError(f"Frame didn't arrive within {timeout_ms}")
            time.sleep(1 / 60)
            state["k"] += 1
            return Frames(state["k"] - 1)

        def stop(self):
            state["stopped"] = True

    rs.config, rs.pipeline = Config, Pipeline
    rs.align = lambda to: types.SimpleNamespace(process=lambda frames: frames)
    return rs, state


def test_colour_and_depth_frames_with_the_device_stamps_through_the_threaded_camera(monkeypatch):
    rs, state = fake_pyrealsense2()
    monkeypatch.setitem(sys.modules, "pyrealsense2", rs)
    cam = realsense_camera("1234", name="wrist", size=SIZE, fps=30, max_age=0.5)
    assert set(cam.observation_space) == {"images/wrist", "depth/wrist"}
    assert cam.observation_space["depth/wrist"].shape == SIZE and cam.observation_space["depth/wrist"].dtype == np.float32
    check_device(cam)
    with cam:
        r = cam.read_latest()
        got_at = time.monotonic()
    assert state["serial"] == "1234" and state["stopped"]
    assert state["streams"][-2:] == [("color", 32, 24, "rgb8", 30), ("depth", 32, 24, "z16", 30)]
    k = int(r.values["images/wrist"][0, 0, 0])
    assert r.values["images/wrist"].shape == (*SIZE, 3)
    assert r.values["depth/wrist"].dtype == np.float32
    np.testing.assert_allclose(r.values["depth/wrist"], 100 * (k + 1) * DEPTH_SCALE)  # metres
    # the device's stamp (20 ms before the frame was served), moved onto the monotonic clock
    assert got_at - 0.6 < r.t_capture < got_at - 0.019


def test_a_camera_clock_stamp_is_taken_at_arrival_and_a_silent_camera_is_unplugged(monkeypatch):
    rs, _ = fake_pyrealsense2(domain="hardware_clock", stall_after=2)
    monkeypatch.setitem(sys.modules, "pyrealsense2", rs)
    src = RealSenseSource(size=SIZE, depth=False, timeout_s=0.05)
    assert not src.has_depth
    src.open()
    before = time.monotonic()
    frame = src.grab()
    assert frame.depth is None and frame.t_capture is None  # ThreadedCamera stamps it when grabbed
    src.grab()
    with pytest.raises(SourceDisconnected, match="no frame within 0.05 s"):
        src.grab()
    src.close()
    assert time.monotonic() - before < 2.0
    assert ThreadedCamera("c", RealSenseSource(size=SIZE, depth=False)).depth_key is None


@real_device("ROBOLEARN_REALSENSE", "a serial number or any")
def test_a_real_realsense():
    cam = realsense_camera(device("ROBOLEARN_REALSENSE"), name="real", size=(480, 640), fps=30, max_age=0.2)
    check_device(cam)
    with cam:
        time.sleep(0.5)
        r = cam.read_latest()
    depth = r.values["depth/real"]
    assert r.values["images/real"].shape == (480, 640, 3) and depth.shape == (480, 640)
    assert np.isfinite(depth).all() and (depth > 0).mean() > 0.1  # some of the scene is within range
    assert time.monotonic() - 1.0 < r.t_capture <= time.monotonic()
