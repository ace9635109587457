"""Issue 13 part 5, end to end without a robot: record on the emulated UR5e (configs/robot/ur5e-emulated.yaml:
``host: emulate`` for the arm and the Net F/T) driven by a scripted SpaceMouse (canned HID reports through its
parser, on a SOCK_SEQPACKET pair as hidraw gives them), train a tiny flow policy on state + force, deploy it
through the deploy loop on the same emulated arm with ``--out``, and take over with the SpaceMouse in the middle
of the episode: the taken-over ticks are marked ``intervention`` in the deployed store."""

from __future__ import annotations

import array
import fcntl
import os
import socket
import struct
import termios
import threading
import time

import numpy as np
import pytest
import yaml

pytest.importorskip("robolearn_hardware")
pytest.importorskip("rtde_control", reason="the ur extra (ur-rtde) is not installed")
pytest.importorskip("robosuite", reason="the UR5e twin's MJCF ships in robosuite")

from tests.cli.test_smoke import last_json, run  # noqa: E402

TINY = ["policy=flow", "model.lowdim_keys=[force]", "model.down_dims=[16,32]", "model.horizon=8",
        "model.n_action_steps=4", "model.num_inference_steps=3", "train.steps=4", "train.batch_size=8",
        "train.val_ratio=0"]
WRENCH = [1.5, -2.0, -4.9, 0.1, 0.05, -0.02]


def six_axis(x=0, y=0, z=0, rx=0, ry=0, rz=0) -> bytes:
    """A SpaceMouse Wireless motion report (id 1, six int16, about +-350 at full deflection)."""
    return bytes([1]) + struct.pack("<6h", x, y, z, rx, ry, rz)


def buttons(bits: int) -> bytes:
    """A button report (id 3): bit 1 is the right button (save while recording; takeover in deploy here)."""
    return bytes([3, bits])


class ScriptedSpaceMouse:
    """Canned reports into one end of a SOCK_SEQPACKET pair; the device reads the other (its ``path`` is that
    descriptor). Each report is written once the device has drained the one before (a poll: ``get_action`` or
    ``events``, two per control tick), so a script advances with the control loop, not with the wall clock."""

    def __init__(self) -> None:
        self.device_end, self.test_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.fd = self.device_end.fileno()
        self.sent = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def pending(self) -> int:
        n = array.array("i", [0])
        fcntl.ioctl(self.fd, termios.FIONREAD, n)
        return n[0]

    def play(self, reports: list[bytes], timeout_s: float = 120.0) -> None:
        def feed():
            deadline = time.monotonic() + timeout_s
            for report in reports:
                self.test_end.send(report)
                while self.pending() and not self._stop.is_set():
                    if time.monotonic() > deadline:
                        return
                    time.sleep(0.002)
                if self._stop.is_set():
                    return
                self.sent += 1

        self._stop.clear()
        self._thread = threading.Thread(target=feed, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            assert not self._thread.is_alive()
        os.set_blocking(self.fd, False)
        try:
            while self.device_end.recv(64):  # what the device did not read
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        self.stop()
        self.device_end.close()
        self.test_end.close()


def _children() -> set[int]:
    out = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid():
            out.add(int(pid))
    return out


@pytest.mark.slow  # ~1-2 min on a loaded 2-core machine: two emulator starts per command, record, train, deploy
def test_record_train_deploy_and_take_over_on_the_emulated_ur5e(tmp_path):
    from robolearn.config import configs_dir
    from robolearn.store import open_store

    mouse = ScriptedSpaceMouse()
    cfg = yaml.safe_load((configs_dir() / "robot" / "ur5e-emulated.yaml").read_text())
    robot = cfg["robot"]
    robot["cameras"] = []  # state + force: the policy trains in seconds
    robot["sensors"][0]["kwargs"]["emulator"]["wrench"] = WRENCH
    robot.update(episode_s=1.0, reset_s=0.0)
    mouse_entry = next(t for t in robot["teleop"] if t["device"] == "spacemouse")
    mouse_entry["kwargs"].update(path=mouse.fd, six_axis=True)
    config = tmp_path / "ur5e-scripted.yaml"
    config.write_text(yaml.safe_dump(cfg))
    before = _children()
    store, ckpt, deployed = tmp_path / "demos.zarr", tmp_path / "run", tmp_path / "deployed.zarr"
    try:
        # record: the cap pushed right, then forward and down (about 2 mm per tick at 200/350 deflection)
        mouse.play([six_axis(x=200)] * 40 + [six_axis(y=200, z=-100)] * 200)
        rec = last_json(run("record", "--robot", config, "--teleop", "spacemouse", "--out", store, "--episodes", 2,
                            "--json").output)
        mouse.stop()
        assert rec["episodes"] == 2 and rec["aborted"] == 0 and mouse.sent > 20
        demos = open_store(store)
        ep = demos.episode(0)
        n = len(ep["state"])
        stamps = {k: demos.timestamps(k, 0) for k in ("force", "state")}
        assert n >= 20 and ep["force"].shape == (n, 6) and stamps["force"].shape == (n,)
        assert ep["force"] == pytest.approx(np.tile(WRENCH, (n, 1)), abs=1e-3)  # the F/T emulator's load
        assert np.all(np.diff(stamps["force"]) > 0) and np.all(np.diff(stamps["state"]) > 0)  # each its own stamps
        moved = np.abs(ep["action"][-1, :6] - ep["action"][0, :6]).max()
        assert moved > 0.01  # the SpaceMouse moved the tool, the IK the joints
        from robolearn_hardware.ur.kinematics import UR5E, forward

        dx = forward(UR5E, ep["action"][20, :6])[:3] - forward(UR5E, ep["action"][0, :6])[:3]
        assert dx[0] > 0.01 and abs(dx[1]) < 0.5 * dx[0]  # cap pushed along +x: the flange went along +x

        tr = last_json(run("train", *TINY, "--store", store, "--out", ckpt, "--json").output)
        assert tr["steps"] == 4
        import json

        assert json.loads((ckpt / "config.json").read_text())["config"]["lowdim_keys"] == ["force"]

        # deploy: the policy drives ~10 ticks, the right button takes over, the cap drives ~15 ticks, the button
        # hands back to the policy
        press = [buttons(0b10), buttons(0)]
        mouse.play([six_axis()] * 20 + press + [six_axis(x=150)] * 30 + press + [six_axis()] * 400)
        res = run("deploy", "--no-compile", "--checkpoint", ckpt, "--robot", config, "--realtime", "--episodes", 1,
                  "--teleop", "spacemouse", "task.max_steps=50", "--out", deployed, "--json")
        mouse.stop()
        summary = last_json(res.output)
    finally:
        mouse.close()
    assert summary["env"] == "robot:ur5e-scripted" and summary["safety"] == "ur5e" and summary["episodes"] == 1
    take = summary["takeover"]
    assert take["device"] == "spacemouse" and take["key"] == "save"
    assert take["takeovers"] == 1 and take["handbacks"] == 1 and take["cancelled"] == 0
    result = open_store(deployed)
    out = result.episode(0)
    mask = np.asarray(out["intervention"], bool)
    assert len(mask) == 50 and mask.sum() == take["intervention_steps"] > 5
    first, last = np.flatnonzero(mask)[[0, -1]]
    assert 0 < first and last < 49 and mask[first:last + 1].all()  # one block in the middle of the episode
    assert out["force"] == pytest.approx(np.tile(WRENCH, (50, 1)), abs=1e-3)
    assert result.timestamps("force", 0).shape == (50,)
    human = out["action"][first:last + 1, :6]
    flange = np.array([forward(UR5E, q)[:3] for q in human])
    assert flange[-1][0] - flange[0][0] > 0.005  # the person's cap moved the tool along +x
    assert np.all(np.abs(np.diff(out["action"], axis=0)) <= 0.05 + 1e-5)  # configs/safety/ur5e.yaml, no jump
    time.sleep(0.2)
    assert _children() - before == set()  # every emulator process stopped
