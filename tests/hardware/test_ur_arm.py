"""The UR5e driver (through ur_rtde) and the Robotiq 2F-85 driver against the emulated controller in its own
process: the device contract, streaming that moves the MuJoCo twin, a missed watchdog and a protective stop
latched and refused until cleared, the gripper socket protocol, and the registry ids."""

import os
import socket
import time

import numpy as np
import pytest

from robolearn.devices import check_device, make_device
from robolearn.spaces import STATE
from robolearn_hardware.ur import ProtectiveStopError, Robotiq2F85, URArm, URConfig, ur5e
from robolearn_hardware.ur.arm import _no_delay, _sockets
from robolearn_hardware.ur.process import UREmulatorProcess
from robolearn_hardware.ur.robotiq_model import GripperModel, GripperModelConfig
from tests.hardware.sched import fifo_permitted

pytest.importorskip("rtde_control", reason="the ur extra (ur-rtde) is not installed")

Q0 = (0.0, -1.4, 1.5, -1.6, -1.57, 0.0)


@pytest.fixture(scope="module")
def emu():
    with UREmulatorProcess(q0=Q0, unlock_delay_s=0.5, gripper_activation_s=0.05) as e:
        yield e


def wait_for(predicate, timeout_s=5.0):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def test_ur5e_with_gripper_passes_the_device_contract_and_registers(emu):
    arm = make_device("ur5e", host=emu.host, gripper=True)
    assert isinstance(arm, URArm) and arm.action_space.shape == (7,)
    check_device(arm)
    gripper = make_device("robotiq-2f85", host=emu.host)
    check_device(gripper)
    assert emu.state()["runtime_state"] == "STOPPED"  # disconnect stopped the control script


@pytest.mark.parametrize("pacing", ["controller", "client"])
def test_streamed_targets_move_the_twin_and_the_emulator_misses_few_cycles(emu, pacing):
    with ur5e(emu.host, max_joint_step=0.1, pacing=pacing) as arm:
        q = arm.read().values[STATE]
        assert q == pytest.approx(emu.state()["actual_q"], abs=1e-3)
        goal = q + np.array([0.3, 0.0, 0.0, 0.0, 0.0, -0.2], np.float32)
        sent = arm.send_action(goal)
        assert sent == pytest.approx(q + np.array([0.1, 0, 0, 0, 0, -0.1]), abs=1e-6)  # max_joint_step
        assert arm.hold() == pytest.approx(sent)
        assert wait_for(lambda: np.allclose(arm.read().values[STATE], sent, atol=2e-3))
        before = emu.state()
        realtime = arm.realtime
    assert before["servo_cycles"] > 50 and before["missed_cycles"] <= before["servo_cycles"] // 2
    # the streaming thread ran at SCHED_FIFO where this user may, and said why not where not
    assert realtime["sched_fifo"] is fifo_permitted() and realtime["rt_priority"] == 80
    assert realtime["sched_fifo"] or "not permitted" in realtime["notes"][0]


def fifo_threads() -> dict[int, int]:
    """SCHED_FIFO threads of this process and their priorities."""
    out = {}
    for tid in map(int, os.listdir("/proc/self/task")):
        try:
            if os.sched_getscheduler(tid) & ~os.SCHED_RESET_ON_FORK == os.SCHED_FIFO:
                out[tid] = os.sched_getparam(tid).sched_priority
        except ProcessLookupError:
            pass
    return out


def test_without_rt_priority_the_stream_runs_at_normal_priority(emu):
    with ur5e(emu.host, rt_priority=None, freeze_gc=False) as arm:
        assert wait_for(lambda: arm.counters["cycles"] > 10)
        assert arm.realtime == {"loop_cpus": None, "rt_priority": None, "sched_fifo": False, "gc_frozen": False,
                                "notes": []}
        assert fifo_threads() == {}


def test_the_stream_keeps_old_objects_out_of_garbage_collections(emu):
    import gc

    assert gc.get_freeze_count() == 0
    with ur5e(emu.host) as arm:
        assert wait_for(lambda: arm.counters["cycles"] > 10)
        assert arm.realtime["gc_frozen"] and gc.get_freeze_count() > 1000  # everything alive at connect
    assert gc.get_freeze_count() == 0  # unfrozen at disconnect


def test_ur_rtde_receive_threads_run_above_the_stream_where_fifo_is_permitted(emu):
    with ur5e(emu.host, rt_priority=60) as arm:
        assert wait_for(lambda: arm.counters["cycles"] > 10)
        fifo, stream = fifo_threads(), arm._thread.native_id
    if fifo_permitted():  # the stream at 60; the receive threads of RTDEReceiveInterface and RTDEControlInterface at 70
        assert fifo.pop(stream) == 60
        assert sorted(fifo.values()) == [70, 70]
    else:
        assert fifo == {}


def rtde_sockets_no_delay() -> list[int]:
    """TCP_NODELAY of each of this process's TCP sockets connected to an RTDE port (30004)."""
    out = []
    for fd in map(int, os.listdir("/proc/self/fd")):
        try:
            sock = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue
        try:
            if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM \
                    and sock.getpeername()[1] == 30004:
                out.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        except OSError:
            pass
        finally:
            sock.close()
    return out


def test_ur_rtde_sockets_send_without_waiting_for_acks(emu):
    """ur_rtde leaves Nagle's algorithm on; a servo package must not wait for the ACK of the one before it."""
    with ur5e(emu.host) as arm:
        assert arm.rtde_sockets_no_delay == 2  # RTDEReceiveInterface's and RTDEControlInterface's
        assert rtde_sockets_no_delay() == [1, 1]


def test_no_delay_touches_only_new_sockets_to_that_port():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        old = socket.create_connection(("127.0.0.1", port))
        before = _sockets()
        new = socket.create_connection(("127.0.0.1", port))
        other = socket.socket()  # not connected: skipped without an error
        try:
            assert _no_delay(before, port) == 1
            assert new.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
            assert old.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
            assert _no_delay(before, port + 1) == 0
            new.sendall(b"x")  # the socket is still open after its duplicate was closed
        finally:
            for s in (old, new, other):
                s.close()


def test_tcp_control_streams_servol_through_the_controllers_ik(emu):
    with ur5e(emu.host, control="tcp") as arm:
        pose = np.asarray(arm._recv.getActualTCPPose(), np.float32)
        goal = pose + np.array([0.03, 0.0, -0.02, 0, 0, 0], np.float32)
        arm.send_action(goal)
        assert wait_for(lambda: np.allclose(arm._recv.getActualTCPPose(), goal, atol=2e-3))


def test_a_missed_watchdog_is_latched_as_a_protective_stop_until_cleared(emu):
    with ur5e(emu.host, watchdog_hz=50.0) as arm:
        q = arm.read().values[STATE]
        until = emu.command("drop_inputs", seconds=0.1)["until"]  # nothing reaches the robot for 5x 1/50 Hz
        assert wait_for(lambda: arm.fault is not None)
        assert arm.fault.cause == "watchdog"
        trip = [e for e in emu.state()["events"] if e["kind"] == "watchdog_trip"][-1]
        assert trip["t"] >= trip["deadline"] and arm.fault.t_detected >= trip["deadline"]
        with pytest.raises(ProtectiveStopError, match=r"RTDE watchdog.*1/50 Hz.*clear_protective_stop\(\)"):
            arm.send_action(q)
        with pytest.raises(ProtectiveStopError):
            arm.hold()
        assert arm.read().values[STATE] == pytest.approx(q, abs=1e-3)  # reading still works
        time.sleep(max(0.0, until - time.monotonic()) + 0.01)  # the emulator's clock is this machine's monotonic
        arm.clear_protective_stop()
        assert arm.fault is None and emu.state()["runtime_state"] == "PLAYING"
        goal = q + np.array([0.05, 0, 0, 0, 0, 0], np.float32)
        arm.send_action(goal)
        assert wait_for(lambda: np.allclose(arm.read().values[STATE], goal, atol=2e-3))


def test_a_protective_stop_refuses_motion_and_unlocks_only_after_the_controllers_delay(emu):
    with ur5e(emu.host) as arm:
        q = arm.read().values[STATE]
        emu.command("protective_stop", cause="collision")
        assert wait_for(lambda: arm.fault is not None)
        assert arm.fault.cause == "protective_stop"
        with pytest.raises(ProtectiveStopError, match="protective stop"):
            arm.send_action(q)
        with pytest.raises(ProtectiveStopError, match="Cannot unlock protective stop until 0.5s after occurrence"):
            arm.clear_protective_stop()
        time.sleep(0.6)
        arm.clear_protective_stop()
        assert arm.send_action(q) == pytest.approx(q, abs=1e-6)
        assert emu.state()["safety_mode"] == "NORMAL"


def test_connect_refuses_a_powered_off_robot_unless_asked_to_power_it_on():
    with UREmulatorProcess(robot_mode="POWER_OFF", gripper=False, twin=False) as off:
        with pytest.raises(Exception, match=r"not running \(robot mode 3.*power_on=True"):
            ur5e(off.host).connect()
        with ur5e(off.host, power_on=True) as arm:
            assert arm.read().values[STATE].shape == (6,)
        assert off.state()["robot_mode"] == "RUNNING"


def test_config_values_outside_what_ur_rtde_accepts_are_refused():
    with pytest.raises(ValueError, match="lookahead_time must be within 0.03..0.2"):
        URConfig(host="127.0.0.1", lookahead_time=0.5)
    with pytest.raises(ValueError, match="gain must be within 100..2000"):
        URConfig(host="127.0.0.1", gain=50)
    with pytest.raises(ValueError, match="pacing 'robot' is not one of controller, client"):
        URConfig(host="127.0.0.1", pacing="robot")
    with pytest.raises(ValueError, match=r"rt_priority must be within 1..99 \(SCHED_FIFO\) or None, got 100"):
        URConfig(host="127.0.0.1", rt_priority=100)


def test_gripper_moves_at_its_speed_and_reports_an_object(emu):
    with Robotiq2F85(emu.host) as gripper:
        assert gripper.send_action(np.array([2.0], np.float32)) == pytest.approx([1.0])  # clipped
        assert wait_for(lambda: gripper.read().values[STATE][0] == pytest.approx(1.0))
        assert not gripper.object_detected()
        emu.command("gripper_object", position=128)
        gripper.send_action(np.array([0.0], np.float32))
        assert wait_for(lambda: gripper.read().values[STATE][0] == 0.0)
        gripper.send_action(np.array([1.0], np.float32))
        assert wait_for(gripper.object_detected)
        assert gripper.read().values[STATE][0] == pytest.approx(128 / 255)
        emu.command("gripper_object", position=None)


def test_gripper_protocol_lines():
    g = GripperModel(GripperModelConfig(activation_s=0.1))
    assert g.line("GET STA") == "STA 0"
    assert g.line("SET ACT 1") == "ack" and g.line("GET STA") == "STA 1"
    g.step(0.2)
    assert g.line("GET STA") == "STA 3"
    assert g.line("SET POS 255 SPE 255 FOR 50 GTO 1") == "ack" and g.line("GET PRE") == "PRE 255"
    assert g.line("GET OBJ") == "OBJ 0"
    for _ in range(200):
        g.step(0.01)
    assert g.line("GET POS") == "POS 255" and g.line("GET OBJ") == "OBJ 3"
    assert g.line("SET NOPE 1") == "?" and g.line("GET NOPE") == "NOPE ?" and g.line("HELLO") == "?"
