"""ServoBus against emulated servos in their own process: named registers, sync read/write, retries under
injected faults, an unplugged motor reported within the retry budget, hardware errors naming the motor.
Every test runs through the vendor SDK (default) and through robolearn's own codec."""

import time

import numpy as np
import pytest

from robolearn_hardware.bus import HardwareErrorAlert, Motor, MotorCalibration, MotorMismatchError, \
    MotorNotRespondingError, NormMode, RetryBudget, ServoBus
from robolearn_hardware.emulators import FaultConfig
from tests.hardware.rigs import PATIENT

BACKENDS = ["sdk", "own"]
RIGS = {"feetech": ["sts3215"] * 3, "dynamixel": ["xl430-w250", "xl330-m288", "xl330-m288"]}


def motors_of(models):
    return {name: Motor(i + 1, model, NormMode.RANGE_0_100 if name == "gripper" else NormMode.DEGREES)
            for i, (name, model) in enumerate(zip(("shoulder", "elbow", "gripper"), models))}


@pytest.fixture
def rig(emulator):
    buses = []

    def start(protocol, backend, retry=PATIENT, **kw):
        models = RIGS[protocol]
        emu = emulator(protocol, models, [1, 2, 3], return_delay_us=0, **kw)
        bus = ServoBus(emu.port, motors_of(models), backend=backend, retry=retry)
        bus.connect()
        buses.append(bus)
        return emu, bus

    yield start
    for bus in buses:
        bus.disconnect()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("protocol", ["feetech", "dynamixel"])
def test_named_registers_and_sync_read_write_cycles(rig, protocol, backend):
    emu, bus = rig(protocol, backend)
    assert bus.read("ID", "elbow") == 2
    bus.write("Return_Delay_Time", "elbow", 3)
    assert emu.state(2)["registers"]["Return_Delay_Time"] == 3
    assert bus.sync_read("Present_Position") == {"shoulder": 2048, "elbow": 2048, "gripper": 2048}
    cal = {n: MotorCalibration(m.id, 0, 0, 1024, 3072) for n, m in bus.motors.items()}
    bus.write_calibration(cal)
    assert bus.is_calibrated(cal) and bus.read_calibration() == cal
    bus.enable_torque()
    goals = {"shoulder": 45.0, "elbow": -30.0, "gripper": 75.0}
    sent = bus.write_goals(goals)
    assert sent == pytest.approx(goals, abs=0.1)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:  # sync read + write cycles: each read also feeds the watchdog
        q = bus.read_positions()
        bus.write_goals(goals)
        if all(abs(q[n] - goals[n]) < 0.5 for n in goals):
            break
    assert q == pytest.approx(goals, abs=0.5)
    raw = bus.sync_read("Goal_Position")
    assert raw == bus.unnormalize(goals) and raw["shoulder"] == 2048 + 512
    assert bus.stats.failures == 0 and bus.stats.transactions > 10


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("protocol", ["feetech", "dynamixel"])
def test_retries_are_counted_under_injected_faults_and_nothing_aborts(rig, protocol, backend):
    emu, bus = rig(protocol, backend, retry=RetryBudget(retries=5, within_s=0.5),
                   faults=FaultConfig(drop_rate=0.03, corrupt_rate=0.02, seed=7))
    shafts = {1: 1500.0, 2: 2048.0, 3: 2600.0}
    for i, ticks in shafts.items():
        emu.command("set_shaft", id=i, ticks=ticks)
    for _ in range(150):
        assert bus.sync_read("Present_Position") == {"shoulder": 1500, "elbow": 2048, "gripper": 2600}
    faults = emu.command("stats")
    assert faults["dropped"] + faults["corrupted"] > 0
    assert bus.stats.failures == 0
    assert bus.stats.retries > 0 and bus.stats.no_reply + bus.stats.corrupt >= bus.stats.retries
    assert sum(bus.stats.retries_by_motor.values()) >= bus.stats.retries


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("protocol", ["feetech", "dynamixel"])
def test_an_unplugged_motor_is_reported_by_name_within_the_retry_budget(rig, protocol, backend):
    budget = RetryBudget(retries=3, within_s=0.15)
    emu, bus = rig(protocol, backend, retry=budget)
    emu.command("unplug", id=2)
    t0 = time.monotonic()
    with pytest.raises(MotorNotRespondingError, match=r"'elbow' \(id 2\) did not answer a sync read") as err:
        bus.sync_read("Present_Position")
    elapsed = time.monotonic() - t0
    attempt_s = 2 * bus.latency_timer_ms / 1000 + 0.002 + 0.01
    assert err.value.motors == ["elbow"]
    assert elapsed < budget.within_s + attempt_s + 0.1  # the budget, one attempt's timeout, scheduling slack
    assert bus.stats.retries_by_motor == {"elbow": bus.stats.retries} and bus.stats.failures == 1
    emu.command("plug", id=2)
    assert bus.sync_read("Present_Position")["elbow"] == 2048


@pytest.mark.parametrize("protocol", ["feetech", "dynamixel"])
def test_a_hardware_error_names_the_motor_and_the_fault(rig, protocol):
    emu, bus = rig(protocol, "sdk")
    emu.command("overload", id=3)
    with pytest.raises(HardwareErrorAlert, match=r"motor 'gripper' \(id 3\) reports a hardware error: overload") as e:
        bus.sync_read("Present_Position")
    assert e.value.motor == "gripper" and e.value.bits["overload"]
    assert bus.stats.hardware_alerts >= 1


def test_connect_names_a_wrong_model_and_a_silent_motor(emulator):
    emu = emulator("dynamixel", "xl330-m288", [1, 2], return_delay_us=0)
    wrong = ServoBus(emu.port, {"a": Motor(1, "xl430-w250"), "b": Motor(2, "xl330-m288")}, retry=PATIENT)
    with pytest.raises(MotorMismatchError, match=r"'a' \(id 1\) is model number 1200, not xl430-w250"):
        wrong.connect()
    assert not wrong.is_connected
    silent = ServoBus(emu.port, {"a": Motor(1, "xl330-m288"), "c": Motor(5, "xl330-m288")},
                      retry=RetryBudget(1, 0.1))
    with pytest.raises(MotorNotRespondingError, match=r"'c' \(id 5\) did not answer a ping"):
        silent.connect()


def test_missing_vendor_sdk_is_a_user_error_naming_the_extra(monkeypatch):
    import builtins

    from robolearn.errors import MissingExtraError
    from robolearn_hardware.bus.backends import open_transport

    real_import = builtins.__import__

    def no_sdk(name, *args, **kw):
        if name in ("dynamixel_sdk", "scservo_sdk"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_sdk)
    with pytest.raises(MissingExtraError, match=r"robolearn-hardware\[dynamixel\]"):
        open_transport("dynamixel", "/dev/null", baud=1_000_000)
    with pytest.raises(MissingExtraError, match=r"robolearn-hardware\[feetech\]"):
        open_transport("feetech", "/dev/null", baud=1_000_000)
    assert open_transport("feetech", "/dev/null", baud=1_000_000, backend="own").port == "/dev/null"


def test_goals_outside_the_calibrated_range_are_clamped_and_reported_as_sent(rig):
    emu, bus = rig("feetech", "sdk")
    bus.write_calibration({n: MotorCalibration(m.id, 0, 0, 1500, 2500) for n, m in bus.motors.items()})
    sent = bus.write_goals({"shoulder": 170.0, "elbow": -170.0, "gripper": 150.0})
    assert bus.sync_read("Goal_Position") == {"shoulder": 2500, "elbow": 1500, "gripper": 2500}
    assert sent == pytest.approx({"shoulder": 500 * 360 / 4095, "elbow": -500 * 360 / 4095, "gripper": 100.0})
    assert np.isfinite(bus.last_read_t)


@pytest.mark.slow
def test_soak_one_percent_bad_replies_for_minutes_without_an_abort(emulator):
    """The issue's reliability target: 1 % dropped + 1 % corrupted replies on a 6-servo SO-101 bus, read and
    write cycles for ROBOLEARN_SOAK_S seconds at the default retry budget: no abort. The slow suite runs 2 minutes
    (its 90-minute CI budget); the 10-minute run is benchmarks/hardware.py's soak (results/hardware.json)."""
    import os

    from robolearn_hardware.arms import SO101_FOLLOWER
    from tests.hardware.rigs import centred_calibration, start_emulator

    seconds = float(os.environ.get("ROBOLEARN_SOAK_S", "120"))
    emu = start_emulator(emulator, SO101_FOLLOWER, faults=FaultConfig(drop_rate=0.01, corrupt_rate=0.01, seed=3))
    bus = ServoBus(emu.port, dict(SO101_FOLLOWER.motors), calibration=centred_calibration(SO101_FOLLOWER))
    bus.connect()
    try:
        bus.enable_torque()
        cycles, deadline = 0, time.monotonic() + seconds
        while time.monotonic() < deadline:
            q = bus.read_positions()
            bus.write_goals({n: 20.0 * np.sin(cycles / 50) if n != "gripper" else 50.0 for n in q})
            cycles += 1
    finally:
        bus.disconnect()
    injected = emu.command("stats")
    print(f"soak: {cycles} cycles in {seconds:.0f} s, {bus.stats.as_dict()}, emulator {injected}")
    assert bus.stats.failures == 0 and bus.stats.retries > 0 and injected["dropped"] + injected["corrupted"] > 0
