"""Cameras: the threaded reader, its sources and the fault wrapper, without a camera (issue 12 part 4)."""

import threading
import time

import imageio.v2 as imageio
import numpy as np
import pytest

from robolearn.devices import check_device
from robolearn.errors import UserError
from robolearn_hardware.cameras import (CameraError, FaultySource, FileSource, StaleFrameError, SyntheticSource,
                                        ThreadedCamera, file_camera, opencv_camera, synthetic_camera)
from tests.hardware.real import device, real_device
from tests.hardware.waiting import wait_for

SIZE = (48, 64)


@pytest.fixture(autouse=True)
def no_thread_left():
    before = set(threading.enumerate())
    yield
    left = [t for t in threading.enumerate() if t not in before and t.name.startswith("camera-")]
    assert not left, f"camera threads still running: {left}"


def write_mp4(path, n=12, fps=20):
    # Frame i is a flat grey of 20 * i + 10: order survives lossy compression.
    with imageio.get_writer(path, fps=fps, codec="libx264", macro_block_size=16) as w:
        for i in range(n):
            w.append_data(np.full((*SIZE, 3), 20 * i + 10, np.uint8))
    return path


def test_synthetic_camera_passes_check_device():
    check_device(synthetic_camera("front", size=SIZE, fps=60))


def test_file_cameras_pass_check_device(tmp_path):
    check_device(file_camera(write_mp4(tmp_path / "a.mp4"), name="video", fps=60))
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        imageio.imwrite(folder / f"{i:03d}.png", np.full((*SIZE, 3), 50 * i, np.uint8))
    check_device(file_camera(folder, name="folder", fps=60))


def test_faulty_camera_passes_check_device():
    check_device(ThreadedCamera("faulty", FaultySource(SyntheticSource(SIZE, 60), drop=0.2, black=0.2, seed=1)))


def test_read_latest_fails_loudly_on_stall_and_recovers_and_read_never_blocks():
    src = FaultySource(SyntheticSource(SIZE, fps=100), seed=0)
    with ThreadedCamera("front", src, max_age=0.05) as cam:
        assert cam.read_latest().values["images/front"].shape == (*SIZE, 3)
        src.stall(0.6)
        time.sleep(0.15)
        with pytest.raises(StaleFrameError) as e:
            cam.read_latest(0.05)
        msg = str(e.value)
        assert isinstance(e.value, UserError)
        assert "'front'" in msg and "max_age=50.0 ms" in msg and "ms old" in msg
        age_ms = float(msg.split("newest frame is ")[1].split(" ms")[0])
        assert age_ms > 100
        n_stalled = cam.frame_number
        worst = 0.0
        for _ in range(10):  # the source delivers nothing: read() still returns at once
            t0 = time.monotonic()
            reading = cam.read()
            worst = max(worst, time.monotonic() - t0)
        assert worst < 0.05, f"read() took {worst * 1e3:.1f} ms while the source stalled"
        assert reading.values["images/front"].shape == (*SIZE, 3)
        assert cam.frame_number == n_stalled
        assert wait_for(lambda: cam.frame_number > n_stalled, timeout=3.0), "no frame after the stall ended"
        assert cam.read_latest(0.5).t_capture > reading.t_capture
    assert src.counts["stalls"] == 1


def test_counters_slow_reader_drops_frames():
    with synthetic_camera("front", size=SIZE, fps=100) as cam:
        for _ in range(6):
            cam.read()
            time.sleep(0.05)
        c = cam.counters()
    assert c["dropped"] > 0 and c["grabbed"] > 6
    assert c["read_twice"] == 0
    assert c["dropped"] <= c["grabbed"]


def test_counters_fast_reader_reads_frames_twice():
    with synthetic_camera("front", size=SIZE, fps=10) as cam:
        first = cam.read()
        for _ in range(20):
            cam.read()
            time.sleep(0.005)
        c = cam.counters()
        second = cam.read()
    assert c["read_twice"] > 0
    assert c["read_twice"] + c["grabbed"] >= 21  # every read got a new frame or was counted as a repeat
    assert second.t_capture >= first.t_capture


def test_file_camera_round_trip_in_order(tmp_path):
    path = write_mp4(tmp_path / "demo.mp4", n=12, fps=20)
    src = FileSource(path, loop=False)
    assert src.size == SIZE and src.fps == pytest.approx(20)
    src.open()
    levels = []
    try:
        while True:
            levels.append(float(src.grab().mean()))
    except Exception as e:  # the end of a non-looping file
        assert type(e).__name__ == "EndOfSource"
    finally:
        src.close()
    assert len(levels) == 12
    np.testing.assert_allclose(levels, [20 * i + 10 for i in range(12)], atol=4)

    # Through the threaded camera: frames come in order, then the file ends and the frame goes stale.
    with file_camera(path, name="replay", fps=200, loop=False) as cam:
        assert wait_for(lambda: cam.ended, timeout=3.0)
        assert cam.counters()["grabbed"] == 12
        assert cam.read().values["images/replay"].mean() == pytest.approx(230, abs=4)
        time.sleep(0.06)
        with pytest.raises(StaleFrameError, match="file ended"):
            cam.read_latest(0.05)


def test_file_camera_loops(tmp_path):
    path = write_mp4(tmp_path / "loop.mp4", n=4)
    with file_camera(path, name="loop", fps=200, loop=True) as cam:
        assert wait_for(lambda: cam.counters()["grabbed"] >= 10, timeout=3.0)
        assert not cam.ended


def test_missing_file_is_named(tmp_path):
    with pytest.raises(UserError, match="nope.mp4 does not exist"):
        FileSource(tmp_path / "nope.mp4")


def test_black_frames_visible_and_seeded():
    def blacks(seed):
        src = FaultySource(SyntheticSource(SIZE, 30), black=0.5, seed=seed)
        src.open()
        return [int(src.grab().max() == 0) for _ in range(40)]

    a = blacks(3)
    assert a == blacks(3) and 5 < sum(a) < 35
    src = FaultySource(SyntheticSource(SIZE, 200), black=1.0, seed=0)
    with ThreadedCamera("front", src) as cam:
        assert cam.read().values["images/front"].max() == 0


def test_drops_skip_frames():
    src = FaultySource(SyntheticSource(SIZE, 30), drop=0.5, seed=2)
    src.open()
    got = [src.grab() for _ in range(40)]
    assert src.counts["drops"] == sum(g is None for g in got) and 5 < src.counts["drops"] < 35


def test_disconnect_then_reconnect_visible():
    src = FaultySource(SyntheticSource(SIZE, 100), seed=0)
    with ThreadedCamera("front", src, max_age=0.05, retry_s=0.02) as cam:
        src.unplug(0.3)
        assert wait_for(lambda: cam.counters()["disconnects"] == 1, timeout=1.0)
        time.sleep(0.1)
        with pytest.raises(StaleFrameError, match="'front'"):
            cam.read_latest()
        t0 = time.monotonic()
        cam.read()
        assert time.monotonic() - t0 < 0.05
        assert wait_for(lambda: cam.counters()["reconnects"] == 1, timeout=3.0)
        n = cam.frame_number
        assert wait_for(lambda: cam.frame_number > n + 2, timeout=3.0)
        cam.read_latest(0.5)


def test_connect_without_frames_fails_clearly():
    src = FaultySource(SyntheticSource(SIZE, 100), seed=0)
    src.stall(5.0)
    cam = ThreadedCamera("dark", src, first_frame_timeout=0.2)
    with pytest.raises(CameraError, match="'dark' delivered no frame within 0.2 s"):
        cam.connect()
    assert not cam.is_connected


@real_device("ROBOLEARN_CAMERA", "an OpenCV index or /dev/videoN")
def test_opencv_device_camera():
    dev = device("ROBOLEARN_CAMERA")
    check_device(opencv_camera(int(dev) if dev.isdigit() else dev, name="device"))


def test_cameras_registered_as_devices():
    from robolearn.devices import device_ids, make_device

    assert {"synthetic-camera", "file-camera", "opencv-camera"} <= set(device_ids())
    cam = make_device("synthetic-camera", name="reg", size=SIZE, fps=50)
    assert isinstance(cam, ThreadedCamera) and not cam.is_connected
    assert cam.pairing()["rule"] == "newest frame not older than max_age"
