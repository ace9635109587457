"""Opt-in: the servo buses of a real SO-101 or Koch arm (follower or leader), read only -- nothing moves.
Set ROBOLEARN_SO101_PORT / ROBOLEARN_KOCH_PORT (tests/hardware/real.py) and run ``pytest -m real_device``."""

from __future__ import annotations

import pytest

from robolearn_hardware.arms import KOCH_FOLLOWER, KOCH_LEADER, SO101_FOLLOWER, SO101_LEADER
from robolearn_hardware.bus import ServoBus
from robolearn_hardware.doctor import run_checks
from tests.hardware.real import device, real_device

SPECS = {"ROBOLEARN_SO101_PORT": (SO101_FOLLOWER, SO101_LEADER), "ROBOLEARN_KOCH_PORT": (KOCH_FOLLOWER, KOCH_LEADER)}


def _read_cycles(var: str) -> None:
    port = device(var)
    for check in run_checks(port):  # what `robolearn doctor` says, printed with -s
        print(f"doctor: {check.to_json()}")
    bus = ServoBus(port, dict(SPECS[var][0].motors), watchdog_s=None)  # same ids; a leader's models may differ
    bus.connect(check_models=False)
    try:
        models = {n: bus.read("Model_Number", n) for n in bus.motors}
        spec = next((s for s in SPECS[var] if models == {n: m.spec.model_number for n, m in s.motors}), None)
        assert spec is not None, f"{port}: model numbers {models} are neither {' nor '.join(s.kind for s in SPECS[var])}'s"
        for _ in range(200):
            q = bus.sync_read("Present_Position")
            assert set(q) == set(bus.motors) and all(0 <= v < m.spec.resolution
                                                     for v, m in zip(q.values(), bus.motors.values()))
        assert bus.stats.failures == 0
        print(f"{spec.kind} on {port}: {bus.stats.as_dict()}")
    finally:
        bus.disconnect()


@real_device("ROBOLEARN_SO101_PORT", "the serial port of an SO-101 arm, e.g. /dev/ttyACM0")
def test_a_real_so101_bus_answers_every_read():
    _read_cycles("ROBOLEARN_SO101_PORT")


@real_device("ROBOLEARN_KOCH_PORT", "the serial port of a Koch arm, e.g. /dev/ttyUSB0")
def test_a_real_koch_bus_answers_every_read():
    _read_cycles("ROBOLEARN_KOCH_PORT")


@pytest.mark.parametrize("var", sorted(SPECS))
def test_real_device_tests_are_skipped_without_their_variable(var, monkeypatch):
    import os

    from tests.hardware import real

    monkeypatch.delenv(var, raising=False)
    def probe():
        pass

    marked = real.real_device(var, "x")(probe)
    names = [m.name for m in marked.pytestmark]
    assert "real_device" in names and "skipif" in names
    skip = next(m for m in marked.pytestmark if m.name == "skipif")
    assert skip.args[0] is (not os.environ.get(var)) and var in skip.kwargs["reason"]
