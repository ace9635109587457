"""The same core checks through our own codec (OwnCodecPort), the fallback when no vendor SDK is installed."""

import time

import pytest

from robolearn_hardware.emulators import FaultConfig
from robolearn_hardware.protocol.client import CorruptReply, NoReply, OwnCodecPort

u32 = lambda v: (v & 0xFFFFFFFF).to_bytes(4, "little")  # noqa: E731


def retry(fn, *args, tries: int = 5):
    """Retried on a communication failure (a busy shared machine can miss the timeout)."""
    for k in range(tries):
        try:
            return fn(*args)
        except (NoReply, CorruptReply):
            if k == tries - 1:
                raise


@pytest.fixture
def own_port(emulator):
    ports = []

    def start(protocol, model, ids, **kw):
        emu = emulator(protocol, model, ids, return_delay_us=0, **kw)
        port = OwnCodecPort(emu.port, protocol=protocol).open()
        ports.append(port)
        return emu, port

    yield start
    for p in ports:
        p.close()


def test_dynamixel_through_our_codec(own_port):
    emu, bus = own_port("dynamixel", "xl330", [1, 2, 3])
    assert retry(bus.ping, 2) == (1200, 0)
    assert retry(bus.read, 1, 7, 1) == (b"\x01", 0)
    assert retry(bus.read, 1, 0, 2) == ((1200).to_bytes(2, "little"), 0)
    assert retry(bus.write, 1, 84, (800).to_bytes(2, "little")) == 0
    assert retry(bus.read, 1, 84, 2)[0] == (800).to_bytes(2, "little")
    assert retry(bus.write, 1, 64, b"\x01") == 0
    assert retry(bus.write, 1, 11, b"\x01") == 7  # EEPROM while torque is on: Access Error
    bus.sync_write(64, 1, {2: b"\x01", 3: b"\x01"})
    bus.sync_write(116, 4, {1: u32(1000), 2: u32(2500), 3: u32(3000)})
    time.sleep(0.8)
    got = retry(bus.sync_read, 132, 4, [1, 2, 3])
    assert {i: int.from_bytes(d, "little") for i, (d, e) in got.items()} == {1: 1000, 2: 2500, 3: 3000}
    fast = retry(bus.fast_sync_read, 132, 4, [1, 2, 3])
    assert {i: int.from_bytes(d, "little") for i, (d, e) in fast.items()} == {1: 1000, 2: 2500, 3: 3000}
    # Homing offset and drive mode.
    assert retry(bus.write, 1, 64, b"\x00") == 0
    assert retry(bus.write, 1, 20, u32(100)) == 0 and retry(bus.write, 1, 10, b"\x01") == 0
    assert int.from_bytes(retry(bus.read, 1, 132, 4)[0], "little", signed=True) == -1000 + 100
    # Bus watchdog: armed with torque on, tripped by silence.
    assert retry(bus.write, 2, 98, b"\x05") == 0
    time.sleep(0.3)
    assert retry(bus.read, 2, 98, 1) == (b"\xff", 0)
    assert retry(bus.write, 2, 116, u32(2000)) == 4
    # Faults become exceptions naming the ids.
    emu.set_faults(FaultConfig(drop_rate=1.0, only_ids=(3,)))
    with pytest.raises(NoReply, match=r"id\(s\) \[3\]"):
        bus.sync_read(132, 4, [1, 2, 3])
    emu.set_faults(FaultConfig(corrupt_rate=1.0, only_ids=(1,), seed=3))
    outcomes = []
    for _ in range(6):
        try:
            bus.read(1, 132, 4)
            outcomes.append("ok")
        except (NoReply, CorruptReply) as e:
            outcomes.append(type(e).__name__)
    assert "ok" not in outcomes and "CorruptReply" in outcomes
    emu.set_faults(FaultConfig(late_rate=1.0, late_s=0.06, only_ids=(1,)))
    with pytest.raises(NoReply):
        bus.read(1, 7, 1)
    emu.set_faults(FaultConfig())
    time.sleep(0.05)
    assert retry(bus.read, 1, 7, 1) == (b"\x01", 0)  # the stale late reply is not taken for this one
    emu.command("overload", id=2)
    assert retry(bus.read, 2, 70, 1) == (b"\x20", 0x80)
    assert retry(bus.reboot, 2) == 0x80 and retry(bus.read, 2, 70, 1) == (b"\x00", 0)


def test_feetech_through_our_codec(own_port):
    emu, bus = own_port("feetech", "sts3215", [1, 2], positions=[1000, 2048])
    assert retry(bus.ping, 1) == (777, 0)
    assert retry(bus.read, 2, 5, 1) == (b"\x02", 0)
    assert retry(bus.read, 1, 56, 2) == ((1000).to_bytes(2, "little"), 0)
    assert retry(bus.write, 1, 31, (0x800 | 300).to_bytes(2, "little")) == 0  # Homing_Offset -300
    assert retry(bus.read, 1, 56, 2)[0] == (1300).to_bytes(2, "little")
    bus.sync_write(40, 1, {1: b"\x01", 2: b"\x01"})
    bus.sync_write(42, 2, {1: (2000).to_bytes(2, "little"), 2: (3000).to_bytes(2, "little")})
    time.sleep(0.8)
    got = retry(bus.sync_read, 56, 2, [1, 2])
    assert {i: int.from_bytes(d, "little") for i, (d, e) in got.items()} == {1: 2000, 2: 3000}
    with pytest.raises(ValueError, match="Fast Sync Read is a Dynamixel"):
        bus.fast_sync_read(56, 2, [1, 2])
    emu.set_faults(FaultConfig(unplugged=(2,)))
    with pytest.raises(NoReply):
        bus.ping(2)
    emu.set_faults(FaultConfig(late_rate=1.0, late_s=0.06, only_ids=(1,)))
    with pytest.raises(NoReply):
        bus.read(1, 56, 2)
    emu.set_faults(FaultConfig())
    time.sleep(0.05)
    assert retry(bus.read, 1, 5, 1) == (b"\x01", 0)  # where scservo_sdk returns a stale byte
    emu.command("overload", id=1)
    assert retry(bus.read, 1, 65, 1) == (b"\x20", 0x20)
