"""Teleop devices (issue 13 part 3): SpaceMouse and gamepad from canned HID reports, the terminal device on a
pty, and the phone over HTTPS + websocket with IK on the SO-101 twin."""

import json
import os
import ssl
import stat
import struct
import termios
import urllib.request

import gymnasium as gym
import numpy as np
import pytest

from robolearn.devices import check_device, make_device
from robolearn.errors import UserError
from robolearn_hardware.teleop import (ActionMapper, GamepadTeleop, HidError, SpaceMouseTeleop, TerminalTeleop,
                                       find_hidraw, parse_gamepad, parse_keys)

BOX7 = gym.spaces.Box(-1.0, 1.0, (7,), np.float32)   # dx dy dz droll dpitch dyaw gripper (robosuite OSC)


def spacemouse_report(rid, *values):
    return bytes([rid]) + struct.pack(f"<{len(values)}h", *values)


# ---- SpaceMouse ------------------------------------------------------------------------------------------
def test_spacemouse_passes_check_device(hid_pair):
    fd, feed = hid_pair
    feed.send(spacemouse_report(1, 175, 0, 0, 0, 0, 0))
    check_device(SpaceMouseTeleop(BOX7, path=fd, six_axis=True, gripper_axis=-1))


def test_spacemouse_six_axis_reports_map_to_deltas_and_buttons(hid_pair):
    fd, feed = hid_pair
    with SpaceMouseTeleop(BOX7, path=fd, six_axis=True, gripper_axis=-1, step=0.5) as sm:
        assert sm.get_action({}) is None                      # nothing pushed yet: the loop holds
        feed.send(spacemouse_report(1, 350, -175, 350, 0, 70, -350))  # x right, y (device back) ..., yaw
        a = sm.get_action({})
        # x: +1 -> +0.5; y: device -175 negated -> +0.25; z: 350 negated -> -0.5; pitch 70 negated -> -0.1
        np.testing.assert_allclose(a[:6], [0.5, 0.25, -0.5, 0.0, -0.1, -0.5], atol=1e-6)
        feed.send(spacemouse_report(3) + b"\x01")             # left button pressed: gripper closes
        feed.send(spacemouse_report(3) + b"\x00")
        assert sm.get_action({})[6] == 1.0
        feed.send(spacemouse_report(3) + b"\x02")             # right button: save
        feed.send(spacemouse_report(1, 0, 0, 0, 0, 0, 0))
        assert sm.events() == ["save"] and sm.events() == []
        np.testing.assert_allclose(sm.get_action({}), [0, 0, 0, 0, 0, 0, 1.0])  # still: gripper kept closed
        assert sm.reports_seen == 5


def test_spacemouse_legacy_layout_splits_translation_and_rotation(hid_pair):
    fd, feed = hid_pair
    with SpaceMouseTeleop(gym.spaces.Box(-1, 1, (6,), np.float32), path=fd, six_axis=False, step=1.0) as sm:
        feed.send(spacemouse_report(1, 35, 0, 0))
        feed.send(spacemouse_report(2, 0, 0, 175))
        np.testing.assert_allclose(sm.get_action({}), [0.1, 0, 0, 0, 0, 0.5], atol=1e-6)


def test_spacemouse_absolute_mode_integrates_from_the_origin(hid_pair):
    fd, feed = hid_pair
    space = gym.spaces.Box(-1, 1, (3,), np.float32)
    with SpaceMouseTeleop(space, path=fd, six_axis=True, mode="absolute", step=0.1, axes=["0", "-1", "2"],
                          origin=lambda obs: obs["state"]) as sm:
        feed.send(spacemouse_report(1, 350, 350, 0, 0, 0, 0))
        obs = {"state": np.array([0.2, 0.0, 0.5])}
        np.testing.assert_allclose(sm.get_action(obs), [0.3, 0.1, 0.5], atol=1e-6)   # y: device -1, axes "-1"
        np.testing.assert_allclose(sm.get_action(obs), [0.4, 0.2, 0.5], atol=1e-6)   # held: keeps moving


# ---- gamepad ---------------------------------------------------------------------------------------------
def ds4_report(lx=128, ly=128, rx=128, ry=128, hat=8, face=0, shoulder=0, ps=0, l2=0, r2=0):
    r = bytearray(64)
    r[0], r[1:5] = 0x01, bytes([lx, ly, rx, ry])
    r[5], r[6], r[7], r[8], r[9] = hat | face << 4, shoulder, ps, l2, r2
    return bytes(r)


def test_gamepad_report_parsing():
    axes, l2, r2, buttons = parse_gamepad(ds4_report(lx=255, ly=0, r2=255, face=0b1010, shoulder=0b100000), "dualshock4")
    np.testing.assert_allclose(axes, [1.0, 1.0, 0.0, 0.0], atol=1e-2)
    assert (l2, r2) == (0.0, 1.0) and buttons == {"cross", "triangle", "options"}
    assert parse_gamepad(b"\x11" + bytes(77), "dualshock4") is None  # Bluetooth report: not this layout


def test_gamepad_sticks_triggers_and_episode_buttons(hid_pair):
    fd, feed = hid_pair
    with GamepadTeleop(BOX7, path=fd, gripper_axis=-1, step=1.0) as pad:
        feed.send(ds4_report())
        assert pad.get_action({}) is None                       # centred sticks, trigger released
        feed.send(ds4_report(lx=255, ry=0, r2=128))             # right, right stick up, trigger half
        a = pad.get_action({})
        np.testing.assert_allclose(a, [1.0, 0.0, 1.0, 0.0, 0.0, 0.0, -1 + 2 * 128 / 255], atol=1e-2)
        feed.send(ds4_report(shoulder=0b100000))                # options pressed ...
        feed.send(ds4_report(shoulder=0b100000))                # ... and held: one save
        feed.send(ds4_report(shoulder=0b010000, face=0b1000))   # share + triangle
        feed.send(ds4_report(ps=1))
        assert pad.events() == ["save", "discard", "rerecord", "quit"]
    check_device(GamepadTeleop(BOX7, path=hid_pair[0], layout="dualsense"))


def test_hid_errors_name_the_device(tmp_path):
    with pytest.raises(HidError, match=r"no HID device 256f:c62e found .*present: hidraw0 046d:c52b"):
        node = tmp_path / "hidraw0" / "device"
        node.mkdir(parents=True)
        (node / "uevent").write_text("DRIVER=hid-generic\nHID_ID=0003:0000046D:0000C52B\n")
        find_hidraw(0x256F, [0xC62E], sysfs=tmp_path)
    (tmp_path / "hidraw1" / "device").mkdir(parents=True)
    (tmp_path / "hidraw1" / "device" / "uevent").write_text("HID_ID=0003:0000256F:0000C62E\n")
    assert find_hidraw(0x256F, [0xC62E], sysfs=tmp_path) == "/dev/hidraw1"
    with pytest.raises(HidError, match="/nonexistent/hidraw9 does not exist"):
        SpaceMouseTeleop(BOX7, path="/nonexistent/hidraw9").connect()
    with pytest.raises(UserError, match="layout='xbox'"):
        GamepadTeleop(BOX7, path=0, layout="xbox")
    with pytest.raises(UserError, match="name 7 motion axes"):
        ActionMapper(BOX7, axes=list(range(7)), gripper_axis=-1)


# ---- terminal ---------------------------------------------------------------------------------------------
def test_parse_keys_decodes_escape_sequences():
    assert parse_keys("\x1b[A\x1b[Dw\r\x7f\x1b[5~q\x1b") == ["up", "left", "w", "enter", "backspace", "q", "esc"]


def test_terminal_teleop_on_a_pty(terminal):
    master, slave = terminal
    before = termios.tcgetattr(slave)
    space = gym.spaces.Box(-1, 1, (5,), np.float32)
    with TerminalTeleop(space, fd=slave, step=0.1, gripper_axis=-1) as dev:
        lflag = termios.tcgetattr(slave)[3]
        assert not lflag & termios.ICANON and not lflag & termios.ECHO   # cbreak, no echo
        assert dev.get_action({}) is None
        os.write(master, b"\x1b[C\x1b[C\x1b[Aw")                          # right twice, up, w
        np.testing.assert_allclose(dev.get_action({}), [0.2, 0.1, 0.1, 0.0, 0.0], atol=1e-6)
        assert dev.get_action({}) is None                                 # no key since: hold
        os.write(master, b" a")                                           # gripper closes, axis 3 down
        np.testing.assert_allclose(dev.get_action({}), [0, 0, 0, -0.1, 1.0], atol=1e-6)
        os.write(master, b"\r\x7fr\x03")
        assert dev.events() == ["save", "discard", "rerecord", "quit"]
    assert termios.tcgetattr(slave) == before                              # terminal restored


def test_terminal_teleop_passes_check_device_and_refuses_a_non_terminal(terminal, tmp_path):
    check_device(TerminalTeleop(gym.spaces.Box(-1, 1, (2,), np.float32), fd=terminal[1]))
    with open(tmp_path / "f", "w") as f, pytest.raises(UserError, match="is not a terminal"):
        TerminalTeleop(gym.spaces.Box(-1, 1, (2,), np.float32), fd=f.fileno()).connect()


# ---- phone ------------------------------------------------------------------------------------------------
websocket = pytest.importorskip("websocket")
SO101 = gym.spaces.Box(-np.pi, np.pi, (6,), np.float32)   # 5 arm joints + gripper, radians


@pytest.fixture(scope="module")
def ik():
    from robolearn_hardware.teleop.phone import TwinIK
    specs = pytest.importorskip("robolearn_hardware.twins.specs", reason="the SO-101 twin (issue 12 part 3)")
    try:
        return TwinIK.for_twin("so101")
    except specs.TwinUnavailableError as e:
        pytest.skip(str(e))


def make_phone(ik, tmp_path, **kw):
    from robolearn_hardware.teleop.phone import PhoneTeleop
    return PhoneTeleop(SO101, ik, arm_axes=(0, 1, 2, 3), roll_axis=4, gripper_axis=5, host="127.0.0.1", port=0,
                       cert_folder=tmp_path / "cert", announce=lambda s: None, **kw)


def client(phone, cert):
    ctx = {"ca_certs": str(cert), "cert_reqs": ssl.CERT_REQUIRED}   # the per-install certificate verifies
    return websocket.create_connection(f"wss://127.0.0.1:{phone.server.port}/phone/ws?token={phone.token}",
                                       sslopt=ctx, timeout=5)


def send_pose(ws, seq, position, quat=(0, 0, 0, 1), move=True, gripper=None):
    ws.send(json.dumps({"type": "pose", "seq": seq, "data": {
        "move": move, "gripper": gripper, "position": dict(zip("xyz", position)),
        "orientation": dict(zip("xyzw", quat))}}))
    answer = json.loads(ws.recv())
    assert answer["type"] == "ack" and answer["seq"] == seq
    return answer


def quat_about_x(angle):   # a rotation about WebXR's x (right) axis: the phone's nose tips down for angle < 0
    return (np.sin(angle / 2), 0.0, 0.0, np.cos(angle / 2))


def test_phone_poses_over_wss_reach_the_pose_by_ik(ik, tmp_path):
    phone = make_phone(ik, tmp_path)
    q_start = np.array([0.1, -0.4, 0.5, 0.6, 0.0, 0.0])
    with phone:
        cert = tmp_path / "cert" / "cert.pem"
        ws = client(phone, cert)
        assert phone.get_action({"state": q_start}) is None          # no pose yet
        p0 = np.array([0.05, 1.2, -0.3])
        send_pose(ws, 1, p0, move=True)
        first = phone.get_action({"state": q_start})
        np.testing.assert_allclose(first[:4], q_start[:4], atol=1e-4)   # the touch starts where the robot is
        pos0, pitch0 = ik.fk(q_start[:4])
        # walk the phone 4 cm forward (WebXR -z), 3 cm left (-x), 3 cm down (-y), its nose down by 15 deg
        steps = 6
        for i in range(1, steps + 1):
            f = i / steps
            send_pose(ws, 1 + i, p0 + f * np.array([-0.03, -0.03, -0.04]), quat=quat_about_x(-np.deg2rad(15) * f),
                      gripper=0.25)
            action = phone.get_action({"state": q_start})
        pos, pitch = ik.fk(action[:4])
        np.testing.assert_allclose(pos, pos0 + [0.04, 0.03, -0.03], atol=1e-3)
        # a rotation about WebXR x is one about the robot's -y: nose down = tool pitched down (+)
        assert abs(pitch - (pitch0 + np.deg2rad(15))) < np.deg2rad(0.5)
        assert action[5] == pytest.approx(-np.pi + 0.25 * 2 * np.pi, abs=1e-5)   # gripper slider
        assert phone.last_error[0] < 1e-3
        # the clutch released: the arm holds; touching again continues from there
        send_pose(ws, 20, p0 + [0.5, 0.5, 0.5], move=False)
        np.testing.assert_allclose(phone.get_action({"state": q_start}), action)
        send_pose(ws, 21, p0 + [0.5, 0.5, 0.5], move=True)
        np.testing.assert_allclose(phone.get_action({"state": q_start}), action, atol=1e-4)
        # a tracking jump is refused; episode keys arrive
        assert send_pose(ws, 22, p0 + [0.9, 0.5, 0.5]).get("rejected") == "jump"
        ws.send(json.dumps({"type": "key", "data": "save"}))
        send_pose(ws, 23, p0 + [0.5, 0.5, 0.5])
        assert phone.events() == ["save"] and phone.session.rejected == 1
        ws.close()


def test_phone_page_served_over_https_with_token_and_cert_made_once(ik, tmp_path):
    phone = make_phone(ik, tmp_path)
    with phone:
        cert, key = tmp_path / "cert" / "cert.pem", tmp_path / "cert" / "key.pem"
        ctx = ssl.create_default_context(cafile=str(cert))
        base = f"https://127.0.0.1:{phone.server.port}"
        page = urllib.request.urlopen(f"{base}/phone?token={phone.token}", context=ctx, timeout=5).read().decode()
        assert "immersive-ar" in page and "/phone/ws" in page
        with pytest.raises(urllib.error.HTTPError, match="401"):
            urllib.request.urlopen(f"{base}/phone", context=ctx, timeout=5)
        with pytest.raises(Exception):
            websocket.create_connection(f"wss://127.0.0.1:{phone.server.port}/phone/ws?token=wrong",
                                        sslopt={"ca_certs": str(cert)}, timeout=5).recv()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    key_bytes, cert_bytes = key.read_bytes(), cert.read_bytes()
    with make_phone(ik, tmp_path):
        pass
    assert key.read_bytes() == key_bytes and cert.read_bytes() == cert_bytes   # reused, never overwritten


def test_certificate_pair_is_never_half_replaced(tmp_path):
    from robolearn_hardware.teleop.phone import ensure_certificate
    (tmp_path / "cert.pem").write_text("mine")
    with pytest.raises(UserError, match="never overwrites"):
        ensure_certificate(tmp_path)
    assert (tmp_path / "cert.pem").read_text() == "mine" and not (tmp_path / "key.pem").exists()


def test_phone_passes_check_device_and_is_registered(ik, tmp_path):
    check_device(make_phone(ik, tmp_path))
    dev = make_device("phone", action_space=SO101, arm_axes=(0, 1, 2, 3), host="127.0.0.1", port=0,
                      cert_folder=tmp_path / "cert")
    assert dev.ik.joints == ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex") and not dev.is_connected
    assert {"spacemouse", "gamepad", "terminal-teleop", "phone"} <= set(__import__("robolearn.devices",
                                                                                   fromlist=["device_ids"]).device_ids())
