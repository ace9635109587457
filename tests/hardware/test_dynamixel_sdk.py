"""The unmodified dynamixel_sdk drives the emulated XL330/XL430 servos over a pty, in another process."""

import time

import pytest

from robolearn_hardware.emulators import FaultConfig

sdk = pytest.importorskip("dynamixel_sdk")

ADDR = {"torque": 64, "led": 65, "goal": 116, "present": 132, "mode": 11, "homing": 20, "drive": 10,
        "profile_vel": 112, "watchdog": 98, "hw_error": 70, "p_gain": 84}
TICKS_PER_UNIT_S = 0.229 * 4096 / 60  # Profile_Velocity unit in ticks/s


def signed32(v: int) -> int:
    return v - (1 << 32) if v >= 1 << 31 else v


@pytest.fixture
def bus(emulator, open_ports):
    def start(ids=(1, 2, 3), model="xl330", **kw):
        emu = emulator("dynamixel", model, list(ids), return_delay_us=0, **kw)
        port = sdk.PortHandler(emu.port)
        open_ports.append(port)
        assert port.openPort() and port.setBaudRate(1_000_000)
        return emu, port, sdk.PacketHandler(2.0)

    return start


def call(fn, *args, tries: int = 5):
    """An SDK call retried on a communication failure: this machine is shared and a busy emulator process
    can miss the SDK's 34 ms timeout (drivers retry the same way). Faults are tested without retries."""
    for _ in range(tries):
        out = fn(*args)
        if out[-2] == sdk.COMM_SUCCESS:
            break
    return out


def retry(group_call, tries: int = 5) -> int:
    for _ in range(tries):
        result = group_call()
        if result == sdk.COMM_SUCCESS:
            break
    return result


def ok(result_error):
    result, error = result_error
    assert result == sdk.COMM_SUCCESS and error == 0, (result, error)


def test_ping_and_read_write_every_register_size(bus):
    emu, port, ph = bus(model="xl430")
    assert call(ph.ping, port, 2) == (1060, sdk.COMM_SUCCESS, 0)
    assert call(ph.read1ByteTxRx, port, 2, 7) == (2, sdk.COMM_SUCCESS, 0)  # ID
    assert call(ph.read2ByteTxRx, port, 2, 0) == (1060, sdk.COMM_SUCCESS, 0)  # Model_Number
    assert call(ph.read4ByteTxRx, port, 2, ADDR["present"]) == (2048, sdk.COMM_SUCCESS, 0)
    ok(call(ph.write1ByteTxRx, port, 2, ADDR["led"], 1))
    ok(call(ph.write2ByteTxRx, port, 2, ADDR["p_gain"], 800))
    ok(call(ph.write4ByteTxRx, port, 2, ADDR["profile_vel"], 123))
    assert call(ph.read1ByteTxRx, port, 2, ADDR["led"])[0] == 1
    assert call(ph.read2ByteTxRx, port, 2, ADDR["p_gain"])[0] == 800
    assert call(ph.read4ByteTxRx, port, 2, ADDR["profile_vel"])[0] == 123
    assert emu.state(2)["registers"]["Position_P_Gain"] == 800
    assert call(ph.read2ByteTxRx, port, 2, 126)[1:] == (sdk.COMM_SUCCESS, 0)  # Present_Load on the XL430
    result, error = call(ph.write4ByteTxRx, port, 2, ADDR["present"], 5)  # read-only
    assert result == sdk.COMM_SUCCESS and error == 7
    assert ph.getRxPacketError(error) == "[RxPacketError] Writing or Reading is not available to target address!"
    assert call(ph.write1ByteTxRx, port, 2, ADDR["mode"], 2)[1] == 4  # no mode 2: Data Range Error
    found, result = ph.broadcastPing(port)
    assert result == sdk.COMM_SUCCESS and found == {1: [1060, 46], 2: [1060, 46], 3: [1060, 46]}


def test_sync_and_bulk_read_write_of_several_servos(bus):
    emu, port, ph = bus()
    for i in (1, 2, 3):
        ok(call(ph.write1ByteTxRx, port, i, ADDR["torque"], 1))
    writer = sdk.GroupSyncWrite(port, ph, ADDR["goal"], 4)
    goals = {1: 1500, 2: 2500, 3: 3000}
    for i, g in goals.items():
        writer.addParam(i, list(g.to_bytes(4, "little")))
    assert writer.txPacket() == sdk.COMM_SUCCESS
    time.sleep(0.6)
    reader = sdk.GroupSyncRead(port, ph, ADDR["present"], 4)
    for i in goals:
        reader.addParam(i)
    assert retry(reader.txRxPacket) == sdk.COMM_SUCCESS
    assert {i: reader.getData(i, ADDR["present"], 4) for i in goals} == goals
    assert retry(reader.fastSyncRead) == sdk.COMM_SUCCESS
    assert {i: reader.getData(i, ADDR["present"], 4) for i in goals} == goals
    bulk = sdk.GroupBulkRead(port, ph)
    assert bulk.addParam(1, ADDR["present"], 4) and bulk.addParam(2, ADDR["torque"], 1)
    assert retry(bulk.txRxPacket) == sdk.COMM_SUCCESS
    assert bulk.getData(1, ADDR["present"], 4) == 1500 and bulk.getData(2, ADDR["torque"], 1) == 1
    bw = sdk.GroupBulkWrite(port, ph)
    assert bw.addParam(1, ADDR["led"], 1, [1]) and bw.addParam(3, ADDR["p_gain"], 2, [0x20, 0x03])
    assert bw.txPacket() == sdk.COMM_SUCCESS
    assert call(ph.read1ByteTxRx, port, 1, ADDR["led"])[0] == 1 and call(ph.read2ByteTxRx, port, 3, ADDR["p_gain"])[0] == 800


def test_eeprom_write_while_torque_on_is_refused_with_the_access_error(bus):
    emu, port, ph = bus(ids=[1])
    ok(call(ph.write1ByteTxRx, port, 1, ADDR["torque"], 1))
    result, error = call(ph.write1ByteTxRx, port, 1, ADDR["mode"], 1)
    assert result == sdk.COMM_SUCCESS and error == 7
    assert "not available" in ph.getRxPacketError(error)
    assert call(ph.read1ByteTxRx, port, 1, ADDR["mode"])[0] == 3
    ok(call(ph.write1ByteTxRx, port, 1, ADDR["torque"], 0))
    ok(call(ph.write1ByteTxRx, port, 1, ADDR["mode"], 1))
    assert call(ph.read1ByteTxRx, port, 1, ADDR["mode"])[0] == 1


def test_homing_offset_and_drive_mode_change_present_position(bus):
    emu, port, ph = bus(ids=[1], positions=[1000])
    assert call(ph.read4ByteTxRx, port, 1, ADDR["present"])[0] == 1000
    ok(call(ph.write4ByteTxRx, port, 1, ADDR["homing"], 300))
    assert call(ph.read4ByteTxRx, port, 1, ADDR["present"])[0] == 1300
    ok(call(ph.write1ByteTxRx, port, 1, ADDR["drive"], 1))  # reverse direction
    assert signed32(call(ph.read4ByteTxRx, port, 1, ADDR["present"])[0]) == -1000 + 300
    ok(call(ph.write1ByteTxRx, port, 1, ADDR["mode"], 4))  # extended position: negative goals allowed
    ok(call(ph.write1ByteTxRx, port, 1, ADDR["torque"], 1))
    ok(call(ph.write4ByteTxRx, port, 1, ADDR["goal"], (-500) & 0xFFFFFFFF))  # +200 in present units
    time.sleep(0.5)
    assert signed32(call(ph.read4ByteTxRx, port, 1, ADDR["present"])[0]) == -500
    assert emu.state(1)["shaft"] == pytest.approx(800, abs=1)  # the motor turned the other way


def test_motion_toward_the_goal_follows_the_profile_velocity(bus):
    emu, port, ph = bus(ids=[1])
    units = 60  # 60 * 0.229 rpm = 938 ticks/s
    ok(call(ph.write4ByteTxRx, port, 1, ADDR["profile_vel"], units))
    ok(call(ph.write1ByteTxRx, port, 1, ADDR["torque"], 1))
    t_goal = time.monotonic()
    ok(call(ph.write4ByteTxRx, port, 1, ADDR["goal"], 3048))
    settle = time.monotonic() - t_goal  # the goal took effect somewhere in here
    samples = []
    for _ in range(5):
        time.sleep(0.08)
        t0 = time.monotonic()
        pos = call(ph.read4ByteTxRx, port, 1, ADDR["present"])[0]
        samples.append((t0 - t_goal - settle, time.monotonic() - t_goal, pos))
    v = units * TICKS_PER_UNIT_S
    for lo_t, hi_t, pos in samples:  # saturated at the profile velocity while far from the goal
        assert 2048 + v * (lo_t - 0.01) - 2 <= pos <= 2048 + v * (hi_t + 0.01) + 2, samples
    assert [p for _, _, p in samples] == sorted(p for _, _, p in samples)
    time.sleep(max(0.0, 1.3 - (time.monotonic() - t_goal)))
    assert call(ph.read4ByteTxRx, port, 1, ADDR["present"])[0] == 3048


def test_bus_watchdog_stops_the_servo_when_the_host_goes_quiet(bus):
    emu, port, ph = bus(ids=[1])
    ok(call(ph.write4ByteTxRx, port, 1, ADDR["profile_vel"], 30))  # ~470 ticks/s: still moving for seconds
    ok(call(ph.write1ByteTxRx, port, 1, ADDR["torque"], 1))
    ok(call(ph.write1ByteTxRx, port, 1, ADDR["watchdog"], 10))  # 200 ms
    ok(call(ph.write4ByteTxRx, port, 1, ADDR["goal"], 4000))
    for _ in range(4):  # a host polling every 40 ms keeps it alive
        time.sleep(0.04)
        assert call(ph.read1ByteTxRx, port, 1, ADDR["watchdog"])[0] == 10
    t_quiet = time.monotonic()
    time.sleep(0.4)
    state = emu.state(1)["registers"]  # the control channel is not the bus: the watchdog saw nothing
    assert state["Bus_Watchdog"] == -1
    stopped = state["Present_Position"]
    assert 2048 < stopped < 2048 + 470 * (time.monotonic() - t_quiet + 0.3) and state["Goal_Position"] == stopped
    assert call(ph.read1ByteTxRx, port, 1, ADDR["watchdog"])[0] == 0xFF
    time.sleep(0.1)
    assert call(ph.read4ByteTxRx, port, 1, ADDR["present"])[0] == stopped  # it stays stopped
    assert call(ph.write4ByteTxRx, port, 1, ADDR["goal"], 2048) == (sdk.COMM_SUCCESS, 4)  # goals locked
    ok(call(ph.write1ByteTxRx, port, 1, ADDR["watchdog"], 0))
    ok(call(ph.write4ByteTxRx, port, 1, ADDR["goal"], 2048))


def test_injected_faults_reach_the_sdk_as_its_errors(bus):
    emu, port, ph = bus(ids=[1, 2, 3, 4], faults=FaultConfig(unplugged=(4,)))
    assert ph.ping(port, 4)[1] == sdk.COMM_RX_TIMEOUT
    emu.set_faults(FaultConfig(drop_rate=1.0, only_ids=(2,), unplugged=(4,)))
    assert ph.read4ByteTxRx(port, 2, ADDR["present"])[1] == sdk.COMM_RX_TIMEOUT
    assert call(ph.read4ByteTxRx, port, 1, ADDR["present"]) == (2048, sdk.COMM_SUCCESS, 0)
    reader = sdk.GroupSyncRead(port, ph, ADDR["present"], 4)
    for i in (1, 2, 3):
        reader.addParam(i)
    assert reader.txRxPacket() == sdk.COMM_RX_TIMEOUT
    emu.set_faults(FaultConfig(corrupt_rate=1.0, only_ids=(3,), seed=3))
    results = [ph.read4ByteTxRx(port, 3, ADDR["present"])[1] for _ in range(6)]
    assert sdk.COMM_SUCCESS not in results and sdk.COMM_RX_CORRUPT in results
    assert set(results) <= {sdk.COMM_RX_CORRUPT, sdk.COMM_RX_TIMEOUT}
    emu.set_faults(FaultConfig(late_rate=1.0, late_s=0.06, only_ids=(1,)))
    assert ph.read4ByteTxRx(port, 1, ADDR["present"])[1] == sdk.COMM_RX_TIMEOUT
    emu.set_faults(FaultConfig())
    time.sleep(0.05)  # the late reply lands now; the SDK clears its input before the next request
    assert call(ph.read4ByteTxRx, port, 1, ADDR["present"]) == (2048, sdk.COMM_SUCCESS, 0)
    stats = emu.command("stats")
    assert stats["dropped"] >= 2 and stats["corrupted"] == 6 and stats["late"] == 1


def test_overload_shows_as_the_alert_bit_and_hardware_error_status(bus):
    emu, port, ph = bus(ids=[1, 2], faults=FaultConfig(overload=(2,)))
    for i in (1, 2):
        ok(call(ph.write1ByteTxRx, port, i, ADDR["torque"], 1))
        # A retried reply can already carry id 2's alert bit, so only the transfer is checked here.
        assert call(ph.write4ByteTxRx, port, i, ADDR["goal"], 3000)[0] == sdk.COMM_SUCCESS
    time.sleep(0.3)  # id 2 is blocked: it stalls, then trips
    value, result, error = call(ph.read4ByteTxRx, port, 2, ADDR["present"])
    assert result == sdk.COMM_SUCCESS and error & 0x80 and value == 2048
    assert "Hardware error" in ph.getRxPacketError(error)
    assert call(ph.read1ByteTxRx, port, 2, ADDR["hw_error"])[0] == 0x20  # overload bit
    assert call(ph.read1ByteTxRx, port, 2, ADDR["torque"])[0] == 0
    assert call(ph.write1ByteTxRx, port, 2, ADDR["torque"], 1)[1] == 0x80 | 1  # refused until reboot
    assert call(ph.read4ByteTxRx, port, 1, ADDR["present"]) == (3000, sdk.COMM_SUCCESS, 0)
    assert call(ph.reboot, port, 2) == (sdk.COMM_SUCCESS, 0x80)  # answered before rebooting
    assert call(ph.read1ByteTxRx, port, 2, ADDR["hw_error"]) == (0, sdk.COMM_SUCCESS, 0)
    emu.command("overload", id=1)  # injected on demand
    assert call(ph.read1ByteTxRx, port, 1, ADDR["hw_error"]) == (0x20, sdk.COMM_SUCCESS, 0x80)
