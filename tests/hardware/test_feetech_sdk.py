"""The unmodified scservo_sdk (feetech-servo-sdk) drives emulated STS3215 servos over a pty."""

import time

import pytest

from robolearn_hardware.emulators import FaultConfig

scs = pytest.importorskip("scservo_sdk")

ADDR = {"id": 5, "max_limit": 11, "homing": 31, "torque": 40, "accel": 41, "goal": 42, "goal_vel": 46,
        "lock": 55, "present": 56, "status": 65}


def call(fn, *args, tries: int = 5):
    """Retried on a communication failure (a busy shared machine can miss the 34 ms timeout)."""
    for _ in range(tries):
        out = fn(*args)
        if out[-2] == scs.COMM_SUCCESS:
            break
    return out


def ok(result_error):
    assert tuple(result_error) == (scs.COMM_SUCCESS, 0), result_error


@pytest.fixture
def bus(emulator, open_ports):
    def start(ids=(1, 2, 3), **kw):
        emu = emulator("feetech", "sts3215", list(ids), return_delay_us=0, **kw)
        port = scs.PortHandler(emu.port)
        open_ports.append(port)
        assert port.openPort() and port.setBaudRate(1_000_000)
        return emu, port, scs.PacketHandler(0)

    return start


def test_ping_read_write_and_sign_magnitude(bus):
    emu, port, ph = bus(ids=[1, 2], positions=[1000, 2048])
    assert call(ph.ping, port, 1) == (777, scs.COMM_SUCCESS, 0)
    assert call(ph.read1ByteTxRx, port, 2, ADDR["id"]) == (2, scs.COMM_SUCCESS, 0)
    assert call(ph.read2ByteTxRx, port, 1, ADDR["present"]) == (1000, scs.COMM_SUCCESS, 0)
    ok(call(ph.write1ByteTxRx, port, 1, ADDR["accel"], 254))
    ok(call(ph.write2ByteTxRx, port, 1, ADDR["goal_vel"], scs.SCS_TOSCS(-700, 15)))
    assert call(ph.read1ByteTxRx, port, 1, ADDR["accel"])[0] == 254
    assert scs.SCS_TOHOST(call(ph.read2ByteTxRx, port, 1, ADDR["goal_vel"])[0], 15) == -700
    # Homing_Offset is sign-magnitude with bit 11; Present = Actual - Offset.
    ok(call(ph.write2ByteTxRx, port, 1, ADDR["homing"], scs.SCS_TOSCS(-300, 11)))
    assert call(ph.read2ByteTxRx, port, 1, ADDR["present"])[0] == 1300
    assert emu.state(1)["registers"]["Homing_Offset"] == -300
    ok(call(ph.write2ByteTxRx, port, 1, ADDR["homing"], 1100))
    assert call(ph.read2ByteTxRx, port, 1, ADDR["present"])[0] == 4096 - 100  # wraps below 0


def test_sync_read_and_write_of_several_servos(bus):
    emu, port, ph = bus()
    writer = scs.GroupSyncWrite(port, ph, ADDR["torque"], 1)
    for i in (1, 2, 3):
        writer.addParam(i, [1])
    assert writer.txPacket() == scs.COMM_SUCCESS
    goals = {1: 1000, 2: 2500, 3: 3500}
    writer = scs.GroupSyncWrite(port, ph, ADDR["goal"], 2)
    for i, g in goals.items():
        writer.addParam(i, [scs.SCS_LOBYTE(g), scs.SCS_HIBYTE(g)])
    assert writer.txPacket() == scs.COMM_SUCCESS
    time.sleep(0.8)
    reader = scs.GroupSyncRead(port, ph, ADDR["present"], 2)
    for i in goals:
        reader.addParam(i)
    for _ in range(5):
        if reader.txRxPacket() == scs.COMM_SUCCESS:
            break
    assert {i: reader.getData(i, ADDR["present"], 2) for i in goals} == goals


def test_lock_decides_whether_eeprom_writes_survive_a_power_cycle(bus):
    emu, port, ph = bus(ids=[1])
    ok(call(ph.write1ByteTxRx, port, 1, ADDR["lock"], 1))
    ok(call(ph.write2ByteTxRx, port, 1, ADDR["max_limit"], 3000))
    assert call(ph.read2ByteTxRx, port, 1, ADDR["max_limit"])[0] == 3000  # in effect now...
    emu.command("power_cycle", id=1)
    assert call(ph.read2ByteTxRx, port, 1, ADDR["max_limit"])[0] == 4095  # ...but not saved
    ok(call(ph.write1ByteTxRx, port, 1, ADDR["lock"], 0))
    ok(call(ph.write2ByteTxRx, port, 1, ADDR["max_limit"], 3000))
    ok(call(ph.write1ByteTxRx, port, 1, ADDR["id"], 7))  # the reply still comes from id 1
    emu.command("power_cycle", id=7)
    assert call(ph.read2ByteTxRx, port, 7, ADDR["max_limit"])[0] == 3000
    assert call(ph.ping, port, 1)[1] == scs.COMM_RX_TIMEOUT


def test_motion_toward_the_goal_at_goal_velocity_and_position_limits(bus):
    emu, port, ph = bus(ids=[1])
    ok(call(ph.write2ByteTxRx, port, 1, ADDR["max_limit"], 3000))
    ok(call(ph.write1ByteTxRx, port, 1, ADDR["torque"], 1))
    ok(call(ph.write2ByteTxRx, port, 1, ADDR["goal_vel"], 1500))  # steps/s
    t_goal = time.monotonic()
    ok(call(ph.write2ByteTxRx, port, 1, ADDR["goal"], 3500))  # above the limit: clamped to 3000
    settle = time.monotonic() - t_goal  # the goal took effect somewhere in here
    samples = []
    for _ in range(4):
        time.sleep(0.08)
        t0 = time.monotonic()
        pos = call(ph.read2ByteTxRx, port, 1, ADDR["present"])[0]
        samples.append((t0 - t_goal - settle, time.monotonic() - t_goal, pos))
    for lo_t, hi_t, pos in samples:
        assert min(3000, 2048 + 1500 * (lo_t - 0.01)) - 2 <= pos <= 2048 + 1500 * (hi_t + 0.01) + 2, samples
    time.sleep(max(0.0, 1.2 - (time.monotonic() - t_goal)))
    assert call(ph.read2ByteTxRx, port, 1, ADDR["present"])[0] == 3000
    ok(call(ph.write1ByteTxRx, port, 1, ADDR["torque"], 0))
    emu.command("set_shaft", id=1, ticks=4200)  # turned past the wrap by hand
    assert call(ph.read2ByteTxRx, port, 1, ADDR["present"])[0] == 104


def test_injected_faults_reach_the_sdk_as_its_errors(bus):
    emu, port, ph = bus(ids=[1, 2, 3], faults=FaultConfig(unplugged=(3,)))
    assert ph.ping(port, 3)[1] == scs.COMM_RX_TIMEOUT
    emu.set_faults(FaultConfig(drop_rate=1.0, only_ids=(2,)))
    assert ph.read2ByteTxRx(port, 2, ADDR["present"])[1] == scs.COMM_RX_TIMEOUT
    reader = scs.GroupSyncRead(port, ph, ADDR["present"], 2)
    reader.addParam(1)
    reader.addParam(2)
    assert reader.txRxPacket() == scs.COMM_RX_TIMEOUT  # one lost reply fails the group
    emu.set_faults(FaultConfig(corrupt_rate=1.0, only_ids=(1,), seed=4))
    results = [ph.read2ByteTxRx(port, 1, ADDR["present"])[1] for _ in range(6)]
    assert scs.COMM_SUCCESS not in results and scs.COMM_RX_CORRUPT in results
    # A late reply: the SDK gives up, and since its clearPort() does not drop input the stale reply
    # answers the next request to that id -- the stale-data hazard a driver must guard against.
    emu.set_faults(FaultConfig(late_rate=1.0, late_s=0.06, only_ids=(1,)))
    assert ph.read2ByteTxRx(port, 1, ADDR["present"])[1] == scs.COMM_RX_TIMEOUT
    emu.set_faults(FaultConfig())
    time.sleep(0.05)
    value, result, _ = ph.read1ByteTxRx(port, 1, ADDR["id"])
    assert result == scs.COMM_SUCCESS and value == 2048 & 0xFF  # a byte of Present_Position, not the ID
    time.sleep(0.05)
    port.ser.reset_input_buffer()
    assert call(ph.read1ByteTxRx, port, 1, ADDR["id"]) == (1, scs.COMM_SUCCESS, 0)


def test_overload_sets_the_error_bit_and_drops_torque(bus):
    emu, port, ph = bus(ids=[1, 2], faults=FaultConfig(overload=(2,)))
    for i in (1, 2):
        ok(call(ph.write1ByteTxRx, port, i, ADDR["torque"], 1))
        # A retried reply can already carry id 2's overload bit, so only the transfer is checked here.
        assert call(ph.write2ByteTxRx, port, i, ADDR["goal"], 3000)[0] == scs.COMM_SUCCESS
    time.sleep(0.3)
    value, result, error = call(ph.read2ByteTxRx, port, 2, ADDR["present"])
    assert result == scs.COMM_SUCCESS and error == 32 and value == 2048
    assert ph.getRxPacketError(error) == "[RxPacketError] Overload error!"
    assert call(ph.read1ByteTxRx, port, 2, ADDR["status"])[0] == 32
    assert call(ph.read1ByteTxRx, port, 2, ADDR["torque"])[0] == 0
    assert call(ph.read2ByteTxRx, port, 1, ADDR["present"])[2] == 0
