"""Issue #9's reliability targets that fit a test (the numbers under load are in benchmarks/hardware.py and
benchmarks/results/hardware.json): an unplugged bus is detected within 100 ms at the default retry budget and a
1 ms serial latency timer; a pulled USB adapter (the emulator's pty closes) is an I/O error the recording and
deploy loops end an episode on; a stalled camera never blocks the control loop. The others: 1 % bad replies
(test_servo_bus.py's soak), SIGKILL -> the Dynamixel bus watchdog stops the servos (test_bus_watchdog.py)."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

from robolearn.devices import FakeRobot, RobotEnv
from robolearn.runtime import ControlLoop, RealClock
from robolearn_hardware.arms import KOCH_FOLLOWER, SO101_FOLLOWER
from robolearn_hardware.bus import MotorNotRespondingError, RetryBudget, ServoBus
from robolearn_hardware.cameras import FaultySource, SyntheticSource, ThreadedCamera
from robolearn_hardware.emulators import FaultConfig
from tests.hardware.rigs import start_emulator

ARMS = {"so101": SO101_FOLLOWER, "koch": KOCH_FOLLOWER}
LATENCY_TIMER_MS = 1.0
"""What `robolearn doctor` asks a user to set (/sys/bus/usb-serial/devices/<tty>/latency_timer); the stock 16 ms
makes each attempt ~35 ms, so the default budget's 4 attempts take ~150 ms (benchmarks/results/hardware.json)."""


def _bus(emu, spec, backend="sdk"):
    bus = ServoBus(emu.port, dict(spec.motors), backend=backend, retry=RetryBudget(),
                   latency_timer_ms=LATENCY_TIMER_MS, watchdog_s=None)
    bus.connect()
    return bus


@pytest.mark.parametrize("arm", ARMS)
def test_an_unplugged_bus_is_detected_within_100_ms(emulator, arm):
    """Every servo stops answering (a cable pulled between adapter and arm): the default budget (3 retries within
    150 ms) at a 1 ms latency timer raises within 100 ms, naming every motor. The best of three trials is held to
    the bound: on this shared 2-core machine one trial can be descheduled for longer than that."""
    spec = ARMS[arm]
    emu = start_emulator(emulator, spec)
    bus = _bus(emu, spec)
    ids = tuple(m.id for _, m in spec.motors)
    times = []
    try:
        for _ in range(3):
            assert len(bus.sync_read("Present_Position")) == len(ids)
            emu.set_faults(FaultConfig(unplugged=ids))
            t0 = time.monotonic()
            with pytest.raises(MotorNotRespondingError, match="did not answer a sync read") as e:
                bus.sync_read("Present_Position")
            times.append(time.monotonic() - t0)
            assert sorted(e.value.motors) == sorted(bus.motors)
            emu.set_faults(FaultConfig())
    finally:
        bus.disconnect()
    assert min(times) < 0.100, times
    assert bus.stats.failures == 3 and bus.stats.retries >= 3 * 3


@pytest.mark.parametrize("backend", ["sdk", "own"])
def test_a_pulled_adapter_is_an_io_error_at_once(emulator, backend):
    """The emulator killed: its pty closes as a tty does when its USB adapter is pulled. The next transaction
    raises an OSError (what `record` and `deploy` end an episode on as 'aborted'), not termios.error."""
    spec = SO101_FOLLOWER
    emu = start_emulator(emulator, spec)
    bus = _bus(emu, spec, backend)
    try:
        bus.sync_read("Present_Position")
        os.kill(emu.pid, signal.SIGKILL)
        emu.proc.wait(5)
        t0 = time.monotonic()
        with pytest.raises(OSError) as e:
            for _ in range(50):
                bus.sync_read("Present_Position")
        assert time.monotonic() - t0 < 1.0
        assert emu.port in str(e.value) and "serial port stopped working" in str(e.value), repr(e.value)
    finally:
        try:
            bus.disconnect()
        except OSError:
            pass


def test_a_stalled_camera_never_blocks_the_control_loop():
    """A camera that delivers nothing for 0.3 s (shorter than its max_age) in a 30 Hz loop: every tick still
    steps at once with the newest frame it has (read twice, counted), and the loop goes on when frames return."""
    src = FaultySource(SyntheticSource((24, 32), fps=30), seed=0)
    cam = ThreadedCamera("front", src, max_age=1.0)
    env = RobotEnv(FakeRobot(), cameras=[cam], control_hz=30.0)
    steps: list[tuple[float, int]] = []
    last = {"t": None}

    def on_step(rec):
        now = time.monotonic()
        steps.append((now - last["t"] if last["t"] is not None else 0.0, int(rec.obs["images/front"][0, 0, 0])))
        last["t"] = now
        if len(steps) == 10:
            src.stall(0.3)

    class Hold:
        def reset(self, seed=None):
            pass

        def act(self, obs, tick):
            return None  # the loop holds: the test is about the camera

    loop = ControlLoop(env, Hold(), RealClock(30.0), on_step=on_step, max_steps=45)
    try:
        result = loop.run_episode(seed=0)
        counters = cam.counters()
    finally:
        env.close()
    assert result.steps == 45 and src.counts["stalls"] == 1
    gaps = np.array([dt for dt, _ in steps[1:]])
    # a blocked read would show as one tick as long as the stall (0.3 s); the loop's ticks stay near 1/30 s
    assert gaps.max() < 0.2, gaps
    assert counters["read_twice"] >= 5  # the ticks during the stall took the last frame again
    colours = [c for _, c in steps]
    assert colours[-1] != colours[12]  # frames came back after the stall


def test_a_first_attempt_that_overran_the_window_is_retried_once(emulator):
    """A host descheduled during the first attempt (here: a clock that jumps 0.2 s per reading, past the 150 ms
    window) still gets one retry; the window bounds the later ones (the 10-minute soak's one abort at load ~3 was
    such a stall: 'after 1 attempt(s) in 220 ms')."""
    spec = SO101_FOLLOWER
    emu = start_emulator(emulator, spec)
    now = [0.0]

    def jumpy():
        now[0] += 0.2
        return now[0]

    bus = ServoBus(emu.port, dict(spec.motors), retry=RetryBudget(), latency_timer_ms=LATENCY_TIMER_MS,
                   watchdog_s=None, clock=jumpy)
    bus.connect()
    try:
        emu.command("unplug", id=2)
        with pytest.raises(MotorNotRespondingError, match=r"after 2 attempt\(s\)"):
            bus.sync_read("Present_Position")
        assert bus.stats.retries == 1 and bus.stats.failures == 1
    finally:
        bus.disconnect()
