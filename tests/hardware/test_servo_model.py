"""The emulated servos' rules and physics, in virtual time (no processes, no pty)."""

import pytest

from robolearn_hardware.emulators import FaultConfig, make_bus, wire_s
from robolearn_hardware.emulators.motion import Shaft
from robolearn_hardware.protocol import ProtocolError
from robolearn_hardware.protocol import dynamixel as dxl
from robolearn_hardware.protocol import feetech as ft
from robolearn_hardware.protocol.dynamixel import ALERT, ErrorCode

u32 = lambda v: (v & 0xFFFFFFFF).to_bytes(4, "little")  # noqa: E731
s32 = lambda b: int.from_bytes(b, "little", signed=True)  # noqa: E731


def dxl_servo(model="xl330", **kw):
    bus = make_bus("dynamixel", model, [1], now=0.0, **kw)
    return bus, bus.servos[0]


def test_shaft_saturates_then_decays_exactly_for_any_step():
    a, b = Shaft(0.0, tau=0.02), Shaft(0.0, tau=0.02)
    a.track_position(1000.0, vmax=2000.0, dt=0.3)
    for _ in range(300):
        b.track_position(1000.0, vmax=2000.0, dt=0.001)
    assert a.position == pytest.approx(b.position, abs=1e-6)
    c = Shaft(0.0, tau=0.02)
    c.track_position(1000.0, vmax=2000.0, dt=0.1)
    assert c.position == pytest.approx(200.0) and c.velocity == pytest.approx(2000.0)
    d = Shaft(0.0, tau=0.02)
    d.track_velocity(100.0, dt=1.0)
    assert d.velocity == pytest.approx(100.0) and d.position == pytest.approx(100.0 - 2.0, abs=1e-3)


def test_dynamixel_write_rules_and_error_codes():
    _, s = dxl_servo()
    assert s.write(11, b"\x01", 0.0) == 0  # Operating_Mode = velocity, torque off: fine
    assert s.write(64, b"\x01", 0.0) == 0
    assert s.write(11, b"\x03", 0.0) == ErrorCode.ACCESS  # EEPROM while torque is on
    assert s.get("Operating_Mode") == 1
    assert s.write(132, u32(5), 0.0) == ErrorCode.ACCESS  # read-only
    assert s.write(116, b"\x00\x08", 0.0) == ErrorCode.DATA_LENGTH  # cuts Goal_Position
    assert s.write(64, b"\x02", 0.0) == ErrorCode.DATA_RANGE
    assert s.write(104, u32(446), 0.0) == ErrorCode.DATA_LIMIT  # above Velocity_Limit 445
    assert s.write(160, b"\x00", 0.0) == ErrorCode.ACCESS  # past the table
    assert s.read(146, 4, 0.0) == (ErrorCode.ACCESS, b"")
    s.write(64, b"\x00", 0.0)
    s.write(11, b"\x03", 0.0)
    s.write(64, b"\x01", 0.0)
    assert s.write(116, u32(4096), 0.0) == ErrorCode.DATA_LIMIT  # outside the position limits
    assert s.write(116, u32(3000), 0.0) == 0
    # REG_WRITE then ACTION; ACTION with nothing registered is an instruction error.
    assert s.reg_write(65, b"\x01", 0.0) == 0 and s.get("LED") == 0 and s.get("Registered_Instruction") == 1
    assert s.action(0.0) == 0 and s.get("LED") == 1
    assert s.action(0.0) == ErrorCode.INSTRUCTION


def test_dynamixel_homing_offset_and_drive_mode_apply_to_present_and_goal():
    _, s = dxl_servo(positions=[1000.0])
    assert s.get("Present_Position") == 1000
    s.write(20, u32(500), 0.0)
    assert s.get("Present_Position") == 1500
    s.write(10, b"\x01", 0.0)  # reverse
    assert s.get("Present_Position") == -1000 + 500
    s.write(11, b"\x04", 0.0)  # extended position: no limits
    s.write(64, b"\x01", 0.0)
    assert s.get("Goal_Position") == -500  # torque on holds where it is
    s.write(116, u32(-400), 0.0)  # +100 in present units
    s.advance(2.0)
    assert s.get("Present_Position") == -400
    assert s.shaft.position == pytest.approx(900.0, abs=0.5)  # the shaft turned the other way


def test_dynamixel_modes_move_the_shaft():
    _, s = dxl_servo()
    s.write(11, b"\x01", 0.0)
    s.write(64, b"\x01", 0.0)
    s.write(104, u32(100), 0.0)  # 100 * 0.229 rpm
    s.advance(1.0)
    assert s.get("Present_Velocity") == 100
    assert s.get("Present_Position") - 2048 == pytest.approx(100 * 0.229 * 4096 / 60 * (1.0 - 0.03), abs=3)
    assert s.get("Moving") == 1
    s.write(64, b"\x00", 1.0)
    s.write(11, b"\x10", 1.0)  # PWM
    s.write(64, b"\x01", 1.0)
    p0 = s.get("Present_Position")
    s.write(100, (-885 & 0xFFFF).to_bytes(2, "little"), 1.0)
    s.advance(1.5)
    assert s.get("Present_Position") < p0 - 1000


def test_dynamixel_motion_respects_profile_velocity():
    _, s = dxl_servo()
    s.write(112, u32(50), 0.0)  # 50 * 0.229 rpm = 781.7 ticks/s
    s.write(64, b"\x01", 0.0)
    s.write(116, u32(3048), 0.0)
    s.advance(0.5)
    assert s.get("Present_Position") == pytest.approx(2048 + 0.5 * 50 * 0.229 * 4096 / 60, abs=1)
    s.advance(2.0)
    assert s.get("Present_Position") == 3048 and s.get("Moving") == 0


def test_dynamixel_bus_watchdog_trips_at_its_time_and_stops_the_servo():
    _, s = dxl_servo()
    s.write(112, u32(20), 0.0)
    s.write(64, b"\x01", 0.0)
    s.write(98, b"\x05", 0.0)  # 100 ms
    s.write(116, u32(4000), 0.0)
    s.kick(0.05)
    s.advance(0.149)
    assert s.get("Bus_Watchdog") == 5
    s.advance(0.5)
    assert s.get("Bus_Watchdog") == -1
    stopped = round(2048 + 0.15 * 20 * 0.229 * 4096 / 60)  # where it was when the watchdog tripped
    assert s.get("Goal_Position") == pytest.approx(stopped, abs=1)
    assert s.get("Present_Position") == pytest.approx(stopped, abs=1)
    assert s.write(116, u32(100), 0.5) == ErrorCode.DATA_RANGE
    assert s.write(98, b"\x00", 0.5) == 0 and s.write(116, u32(100), 0.5) == 0


def test_dynamixel_overload_sets_alert_drops_torque_until_reboot():
    bus, s = dxl_servo(faults=FaultConfig(overload=(1,)))
    s.write(64, b"\x01", 0.0)
    s.write(116, u32(3000), 0.0)
    s.advance(0.05)
    assert s.hardware_error == 0 and s.get("Present_Current") > 0
    s.advance(0.3)
    assert s.get("Hardware_Error_Status") == 0x20 and not s.torque
    assert s.read(132, 4, 0.3)[0] == ALERT
    assert s.write(64, b"\x01", 0.3) == ALERT | ErrorCode.RESULT_FAIL
    s.reboot(0.4)
    assert s.get("Hardware_Error_Status") == 0 and s.write(65, b"\x01", 0.4) == 0


def test_dynamixel_factory_reset_and_reboot():
    _, s = dxl_servo()
    s.write(20, u32(77), 0.0)
    s.write(7, b"\x09", 0.0)
    assert s.id == 9
    s.write(64, b"\x01", 0.0)
    assert s.factory_reset(0x02, 0.0) == ErrorCode.ACCESS  # not with torque on
    s.write(64, b"\x00", 0.0)
    assert s.factory_reset(0x02, 0.0) == 0
    assert s.id == 9 and s.baud == 1_000_000 and s.get("Homing_Offset") == 0
    s.factory_reset(0xFF, 0.0)
    assert s.id == 1 and s.baud == 57_600  # factory settings: a host at 1 Mbps no longer hears it


def test_bus_timing_models_wire_time_and_return_delay():
    bus = make_bus("dynamixel", "xl430", [1, 2, 3], now=0.0, return_delay_us=100)
    req = dxl.sync_read(132, 4, [1, 2, 3])
    replies = bus.receive(req, 10.0, 1_000_000)
    reply_len = len(dxl.encode_status(1, 0, b"\x00" * 4))
    t = 10.0 + wire_s(len(req), 1_000_000)
    expected = []
    for _ in range(3):
        t += 100e-6 + wire_s(reply_len, 1_000_000)
        expected.append(t)
    assert [due for due, _ in replies] == pytest.approx(expected)
    assert [dxl.DynamixelParser().feed(r)[0].id for _, r in replies] == [1, 2, 3]
    # A port at another baud rate: the servos hear noise and stay silent.
    assert bus.receive(dxl.ping(1), 11.0, 57_600) == []


def test_bus_broadcast_ping_fast_sync_read_and_faults():
    bus = make_bus("dynamixel", "xl330", [3, 1, 2], now=0.0)
    ids = [dxl.DynamixelParser().feed(r)[0].id for _, r in bus.receive(b"".join([dxl.ping(0xFE)]), 0.0, 1_000_000)]
    assert ids == [1, 2, 3]
    [(_, wire)] = bus.receive(dxl.sync_read(132, 4, [1, 2, 3], fast=True), 0.1, 1_000_000)
    [pkt] = dxl.DynamixelParser().feed(wire)
    assert {i: s32(d) for i, (e, d) in dxl.decode_fast_status(pkt, [(1, 4), (2, 4), (3, 4)]).items()} == {1: 2048, 2: 2048, 3: 2048}
    bus.apply_faults(FaultConfig(unplugged=(2,)))
    [(_, wire)] = bus.receive(dxl.sync_read(132, 4, [1, 2, 3], fast=True), 0.2, 1_000_000)
    assert len(wire) == 8 + (4 + 4) - 2 + 2  # only id 1 answered: the chain stops at the missing servo
    assert len(bus.receive(dxl.sync_read(132, 4, [1, 2, 3]), 0.3, 1_000_000)) == 2
    bus.apply_faults(FaultConfig(drop_rate=0.5, corrupt_rate=0.5, seed=1))
    got = [r for _, r in bus.receive(b"".join(dxl.read(1, 132, 4) for _ in range(40)), 0.4, 1_000_000)]
    stats = bus.stats()
    assert stats["dropped"] + stats["corrupted"] == 40 and len(got) == stats["corrupted"] > 5
    for r in got:  # every corrupted reply fails the host's checks
        parser = dxl.DynamixelParser()
        for e in parser.feed(r) + parser.flush():
            if isinstance(e, dxl.Packet):
                with pytest.raises(ProtocolError):
                    dxl.decode_status(e, 1, 4)
    # A bad-CRC request addressed to a servo is answered with a CRC error.
    bad = bytearray(dxl.read(1, 132, 4))
    bad[-1] ^= 0x40
    bus.apply_faults(FaultConfig())
    [(_, wire)] = bus.receive(bytes(bad), 0.5, 1_000_000)
    assert dxl.DynamixelParser().feed(wire)[0].error == ErrorCode.CRC


def test_feetech_offset_wrap_lock_and_power_cycle():
    bus = make_bus("feetech", "sts3215", [1], now=0.0, positions=[4000.0])
    s = bus.servos[0]
    assert s.get("Present_Position") == 4000
    s.shaft.position = 4200.0
    s.advance(0.0)
    assert s.get("Present_Position") == 104  # single-turn encoder: the reading wraps
    s.write(31, (0x800 | 200).to_bytes(2, "little"), 0.0)  # Homing_Offset = -200 (sign bit 11)
    assert s.get("Homing_Offset") == -200 and s.get("Present_Position") == 304  # Present = Actual - Offset
    s.write(55, b"\x01", 0.0)  # Lock = 1: EEPROM changes are not saved
    s.write(11, (3000).to_bytes(2, "little"), 0.0)
    assert s.get("Max_Position_Limit") == 3000
    s.power_cycle(1.0)
    assert s.get("Max_Position_Limit") == 4095 and s.get("Homing_Offset") == -200  # offset was saved (Lock 0)
    s.write(55, b"\x00", 1.0)
    s.write(11, (3000).to_bytes(2, "little"), 1.0)
    s.power_cycle(2.0)
    assert s.get("Max_Position_Limit") == 3000
    # Writes Feetech cannot take are ignored without an error bit (read back to check).
    assert s.write(56, b"\x00\x00", 2.0) == 0 and s.get("Present_Position") == 304
    assert s.write(5, b"\xfe", 2.0) == 0 and s.id == 1


def test_feetech_position_mode_stays_inside_the_frame_and_limits():
    bus = make_bus("feetech", "sts3215", [1], now=0.0, positions=[100.0])
    s = bus.servos[0]
    s.write(11, (3500).to_bytes(2, "little"), 0.0)
    s.write(40, b"\x01", 0.0)
    s.write(46, (1000).to_bytes(2, "little"), 0.0)  # 1000 steps/s
    s.write(42, (4000).to_bytes(2, "little"), 0.0)  # clamped to Max_Position_Limit 3500
    s.advance(1.0)
    assert s.get("Present_Position") == pytest.approx(1100, abs=1)  # went up through the frame, not across 0
    s.advance(5.0)
    assert s.get("Present_Position") == 3500
    s.write(40, b"\x80", 5.0)  # 128: recentre
    assert s.get("Present_Position") == 2048 and s.get("Homing_Offset") == 3500 - 2048
    s.write(40, b"\x00", 5.0)
    s.write(33, b"\x03", 5.0)  # step mode: goal is a relative move
    s.write(40, b"\x01", 5.0)
    s.write(42, (0x8000 | 48).to_bytes(2, "little"), 5.0)
    s.advance(6.0)
    assert s.get("Present_Position") == 2000


def test_feetech_overload_and_response_level():
    bus = make_bus("feetech", "sts3215", [1, 2], now=0.0, faults=FaultConfig(overload=(2,)))
    s1, s2 = bus.servos
    for s in (s1, s2):
        s.write(40, b"\x01", 0.0)
        s.write(42, (3000).to_bytes(2, "little"), 0.0)
    bus.tick(0.5)
    assert s2.get("Status") == 32 and not s2.torque and s1.get("Status") == 0
    [(_, wire)] = bus.receive(ft.read(2, 56, 2), 0.5, 1_000_000)
    assert ft.FeetechParser(replies=True).feed(wire)[0].code == 32
    s2.write(40, b"\x01", 0.6)
    assert s2.get("Status") == 0  # re-enabling torque clears it (until it stalls again)
    s1.write(8, b"\x00", 0.6)  # Response_Status_Level 0: only PING and READ are answered
    assert bus.receive(ft.write(1, 41, b"\x10"), 0.7, 1_000_000) == []
    assert len(bus.receive(ft.read(1, 41, 1), 0.8, 1_000_000)) == 1
