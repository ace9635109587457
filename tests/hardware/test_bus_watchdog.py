"""The Dynamixel bus watchdog the ServoBus arms with torque: a driver killed with SIGKILL leaves servos that
stop by themselves within the configured time; a host that stops writing finds the trip counted and re-armed."""

import os
import select
import signal
import subprocess
import sys
import time

import pytest

from robolearn_hardware.bus import Motor, ServoBus
from tests.hardware.rigs import PATIENT

CLIENT = """
import sys, time
from robolearn_hardware.bus import Motor, RetryBudget, ServoBus
bus = ServoBus(sys.argv[1], {"a": Motor(1, "xl330-m288"), "b": Motor(2, "xl330-m288")}, watchdog_s=0.1,
               retry=RetryBudget(6, 1.0))
bus.connect()
for n in bus.motors:
    bus.write("Profile_Velocity", n, 20)  # about 310 ticks/s: a long, slow move
bus.enable_torque()
bus.sync_write("Goal_Position", {"a": 4000, "b": 100})
print("moving", flush=True)
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    bus.sync_read("Present_Position")
    time.sleep(0.01)
"""
SPEED = 20 * 0.229 * 4096 / 60  # ticks/s at Profile_Velocity 20


def test_servos_stop_within_the_watchdog_time_after_the_driver_is_killed(emulator):
    emu = emulator("dynamixel", "xl330-m288", [1, 2], return_delay_us=0)
    proc = subprocess.Popen([sys.executable, "-c", CLIENT, emu.port], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 30.0)
        assert ready and proc.stdout.readline().strip() == b"moving", proc.stderr.read1().decode()
        time.sleep(0.3)
        before = emu.state(1)
        assert before["registers"]["Bus_Watchdog"] == 5 and before["shaft_velocity"] > SPEED / 2
        os.kill(proc.pid, signal.SIGKILL)
        killed_at = emu.state(1)["shaft"]
        proc.wait(10)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        proc.stdout.close()
        proc.stderr.close()
    time.sleep(0.4)
    stopped = [emu.state(i) for i in (1, 2)]
    time.sleep(0.3)
    later = [emu.state(i) for i in (1, 2)]
    for s, t in zip(stopped, later):
        assert s["registers"]["Bus_Watchdog"] == -1 and s["registers"]["Torque_Enable"] == 1
        assert t["shaft"] == pytest.approx(s["shaft"], abs=0.5) and abs(t["shaft_velocity"]) < 1.0
    # it ran at most the watchdog's 100 ms (+ the kill's own latency) past the moment it was killed
    assert 0 <= stopped[0]["shaft"] - killed_at < SPEED * 0.2
    assert stopped[0]["shaft"] < 3000 and stopped[1]["shaft"] > 1000  # far from the goals it was heading to


def _armed_pair(emulator):
    """Two XL330s on an emulated bus and a ServoBus with a 100 ms watchdog, connected."""
    emu = emulator("dynamixel", "xl330-m288", [1, 2], return_delay_us=0)
    bus = ServoBus(emu.port, {"a": Motor(1, "xl330-m288"), "b": Motor(2, "xl330-m288")}, watchdog_s=0.1,
                   retry=PATIENT)
    bus.connect()
    return emu, bus


def test_a_trip_after_the_host_stopped_writing_is_counted_and_re_armed(emulator):
    emu, bus = _armed_pair(emulator)
    try:
        bus.enable_torque()
        bus.sync_write("Goal_Position", {"a": 2600, "b": 1500})
        time.sleep(0.5)  # the host stalls: the servos stop themselves
        assert emu.state(1)["registers"]["Bus_Watchdog"] == -1
        bus.sync_write("Goal_Position", {"a": 2600, "b": 1500})  # finds the trip, re-arms, then writes
        assert bus.stats.watchdog_trips == 2
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and bus.sync_read("Present_Position") != {"a": 2600, "b": 1500}:
            time.sleep(0.01)
        assert bus.sync_read("Present_Position") == {"a": 2600, "b": 1500}
        assert bus.sync_read("Bus_Watchdog") == {"a": 5, "b": 5}
    finally:
        bus.disconnect()
    assert emu.state(1)["registers"]["Bus_Watchdog"] == 0 and emu.state(1)["registers"]["Torque_Enable"] == 0


def test_a_trip_during_a_stall_is_found_even_when_a_read_comes_first(emulator):
    """What a control tick does after the host stalled (devices connecting, a slow first tick): read, then write.
    The read answers but does not clear the trip; the write that follows still finds it, re-arms, and moves."""
    emu, bus = _armed_pair(emulator)
    try:
        bus.enable_torque()
        time.sleep(0.4)  # no instruction for 4 watchdog periods
        assert emu.state(1)["registers"]["Bus_Watchdog"] == -1
        bus.sync_read("Present_Position")  # the tick's read: answered, the trip stays
        bus.sync_write("Goal_Position", {"a": 2600, "b": 1500})
        assert bus.stats.watchdog_trips == 2 and emu.state(1)["registers"]["Bus_Watchdog"] == 5
        assert emu.state(1)["registers"]["Goal_Position"] == 2600  # the goal was taken, not refused
    finally:
        bus.disconnect()
