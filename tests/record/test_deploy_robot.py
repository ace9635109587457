"""`robolearn deploy --robot CONFIG`: a tiny policy trained on demos recorded on the emulated SO-101 runs in the
deploy loop on the same emulated follower (RobotEnv from the config, the config's safety preset); a servo unplugged
during deploy ends the episode as 'aborted'. Issue 12 part 6: the same end to end on the shipped emulated SO-101
and Koch (`port: emulate`, the MuJoCo twins) with a file camera and a synthetic camera."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import yaml

pytest.importorskip("robolearn_hardware")

from robolearn.store import open_store  # noqa: E402
from tests.cli.test_smoke import last_json, run  # noqa: E402
from tests.hardware.conftest import emulator  # noqa: E402,F401 - the fixture
from tests.hardware.waiting import wait_for  # noqa: E402
from tests.record.robot_rigs import so101_rig  # noqa: E402

TINY = ["policy=flow", "model.down_dims=[16,32]", "model.horizon=8", "model.n_action_steps=4",
        "model.num_inference_steps=3", "train.steps=4", "train.batch_size=8", "train.val_ratio=0"]


@pytest.mark.slow  # ~40 s on a loaded 2-core machine: record, train, deploy
def test_deploy_on_the_emulated_so101(emulator, tmp_path):  # noqa: F811
    rig = so101_rig(emulator, tmp_path, episode_s=0.4, reset_s=0.0)
    cfg = yaml.safe_load(rig.config.read_text())
    cfg["robot"]["cameras"] = []  # state only: the policy trains in seconds
    rig.config.write_text(yaml.safe_dump(cfg))
    store, ckpt = tmp_path / "demos.zarr", tmp_path / "run"
    run("record", "--robot", rig.config, "--out", store, "--episodes", 2, "--json")
    run("train", *TINY, "--store", store, "--out", ckpt, "--json")
    res = run("deploy", "--no-compile", "--checkpoint", ckpt, "--robot", rig.config, "--realtime", "--episodes", 1,
              "task.max_steps=12", "--out", tmp_path / "deployed.zarr", "--json")
    summary = last_json(res.output)
    assert summary["env"] == "robot:robot" and summary["safety"] == "so101" and summary["fps"] == 30.0
    assert summary["per_episode"][0]["steps"] == 12 and summary["safety_holds"] == 0
    deployed = open_store(tmp_path / "deployed.zarr").episode(0)
    sent = deployed["action"]
    assert sent.shape == (12, 6) and np.all(np.isfinite(sent))
    # configs/safety/so101.yaml: 10 degrees per tick, plus the servo's rounding to its 4096 ticks per turn
    assert np.all(np.abs(np.diff(sent, axis=0)) <= 10.0 + 360 / 4095)
    goal = (rig.follower.state(2)["registers"]["Goal_Position"] - 2048) * 360 / 4095
    assert goal == pytest.approx(float(sent[-1][1]), abs=0.1)  # the last action reached the servo

    # A servo unplugged mid-episode (a bus error): the episode is committed as 'aborted', the store consistent.
    aborted = tmp_path / "aborted.zarr"
    assert rig.follower.state(3)["registers"]["Torque_Enable"] == 0  # the last run let go of the arm

    def unplug_once_deploying():  # the follower connected (torque on) and a few ticks ran
        assert wait_for(lambda: rig.follower.state(3)["registers"]["Torque_Enable"] == 1, timeout=60)
        time.sleep(0.4)
        rig.follower.command("unplug", id=3)

    watcher = threading.Thread(target=unplug_once_deploying, daemon=True)
    watcher.start()
    bad = run("deploy", "--no-compile", "--checkpoint", ckpt, "--robot", rig.config, "--realtime", "--episodes", 2,
              "task.max_steps=300", "--out", aborted, "--json", ok=False)
    watcher.join(5)
    assert bad.exit_code == 2 and "a device failed during deploy episode seed" in bad.output
    assert "MotorNotRespondingError" in bad.output and "committed as 'aborted'" in bad.output
    ran = last_json(bad.output)  # the summary of what ran comes first
    assert ran["aborted"] == 1 and ran["episodes"] == 0 and "MotorNotRespondingError" in ran["abort_reason"]
    store = open_store(aborted)
    assert store.n_episodes == 1 and store.episodes["status"].tolist() == [1]
    n = int(store.lengths[0])
    assert 3 <= n < 300 and all(len(store.timestamps(k, 0)) == n for k in store.features)
    assert "MotorNotRespondingError" in store.episode_extra(0)["abort_reason"]


@pytest.mark.slow  # ~40 s: record, train, deploy
def test_a_leader_arm_takes_over_from_the_terminal(emulator, tmp_path, monkeypatch, terminal):  # noqa: F811
    """deploy --robot --teleop <the leader>: t typed in deploy's terminal (a pty) takes over at the first tick; the
    leader is driven to the follower's target by its own motors, then released to the hand, and the ticks it
    drove are marked; the terminal is restored and the leader's torque is off again afterwards."""
    import os
    import termios

    from robolearn.deploy import DeployConfig, deploy_checkpoint
    from robolearn.devices.terminal_keys import TerminalKeys
    from robolearn.store.intervention import intervention_mask

    rig = so101_rig(emulator, tmp_path, episode_s=0.4, reset_s=0.0)
    cfg = yaml.safe_load(rig.config.read_text())
    cfg["robot"]["cameras"] = []
    rig.config.write_text(yaml.safe_dump(cfg))
    store, ckpt = tmp_path / "demos.zarr", tmp_path / "run"
    run("record", "--robot", rig.config, "--out", store, "--episodes", 2, "--json")
    run("train", *TINY, "--store", store, "--out", ckpt, "--json")
    master, slave = terminal
    before = termios.tcgetattr(slave)
    monkeypatch.setattr(TerminalKeys, "for_stdin", classmethod(lambda cls: cls(slave)))
    os.write(master, b"t")
    out = deploy_checkpoint(ckpt, DeployConfig(robot=str(rig.config), teleop="so101-leader", realtime=True,
                                               episodes=1, max_steps=60, compile=False),
                            out=tmp_path / "taken.zarr", progress=False)
    take = out["takeover"]
    assert take["device"] == "so101-leader" and take["takeovers"] == 1 and take["handbacks"] == 0
    assert take["wait_ticks"] >= 1 and take["intervention_steps"] > 0  # driven first: the leader started away
    mask = intervention_mask(open_store(tmp_path / "taken.zarr"))
    assert mask.sum() == take["intervention_steps"] and mask[-take["intervention_steps"]:].all()
    assert termios.tcgetattr(slave) == before
    assert all(rig.leader.state(i)["registers"]["Torque_Enable"] == 0 for i in range(1, 7))


def test_deploy_robot_errors_are_one_sentence(tmp_path):
    bad = run("deploy", "--checkpoint", tmp_path, "--robot", "so101-emulated", ok=False)
    assert bad.exit_code == 2 and "--robot runs on the wall clock: add --realtime" in bad.output
    bad = run("deploy", "--checkpoint", tmp_path, "--robot", "so101-emulated", "--env", "robolearn/mujoco-reach",
              "--realtime", ok=False)
    assert bad.exit_code == 2 and "name one of --env robolearn/mujoco-reach and --robot so101-emulated" in bad.output


# -- Part 6 of issue 12: end to end on the shipped emulated robots (port: emulate, the MuJoCo twins) ----------

E2E_TINY = ["policy=flow", "model.down_dims=[16,32]", "model.vision_backbone=small", "model.image_feature_dim=8",
            "model.crop_shape=[20,28]", "model.horizon=8", "model.n_action_steps=4", "model.num_inference_steps=2",
            "train.steps=4", "train.batch_size=4", "train.val_ratio=0"]
CAMERA_HW = (24, 32)


def _frames_folder(path, n=12):
    """A folder of PNG frames, each one flat colour (frame k: (20 * k, 255 - 20 * k, 90)), for the file camera."""
    import cv2

    path.mkdir()
    colours = []
    for k in range(n):
        rgb = (20 * k, 255 - 20 * k, 90)
        frame = np.empty((*CAMERA_HW, 3), np.uint8)
        frame[:] = rgb
        cv2.imwrite(str(path / f"{k:03d}.png"), frame[..., ::-1])
        colours.append(rgb)
    return np.array(colours, np.float32)


def _emulated_robot_config(tmp_path, name):
    """The shipped configs/robot/<name>.yaml with a file camera and a synthetic camera, and a retry budget
    patient enough for a loaded 2-core machine (the emulator and its twin are a process competing for a core)."""
    from robolearn.config import configs_dir
    from tests.record.robot_rigs import RETRY

    cfg = yaml.safe_load((configs_dir() / "robot" / f"{name}.yaml").read_text())
    robot = cfg["robot"]
    for role in ("follower", "leader"):
        robot[role]["kwargs"]["retry"] = RETRY
    robot["cameras"] = [
        {"name": "front", "device": "file-camera", "fps": 30, "max_age_s": 0.25,
         "kwargs": {"path": str(tmp_path / "frames")}},
        {"name": "wrist", "device": "synthetic-camera", "fps": 30, "max_age_s": 0.25,
         "kwargs": {"size": list(CAMERA_HW)}},
    ]
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _hook_emulated_arms(monkeypatch, leader_offset_ticks):
    """A person's hand on the emulated leader (each servo turned by `leader_offset_ticks` once it is connected),
    and the follower's servo registers read just before its emulator stops. Returns {arm kind: [registers]}."""
    from robolearn.record import robot as robot_mod
    from robolearn_hardware.arms.emulated import EmulatedPort

    real_teleop, real_stop = robot_mod.teleop_device, EmulatedPort.stop
    last_registers: dict[str, list[dict]] = {}

    def teleop_device(cfg, spec, env):
        dev, name = real_teleop(cfg, spec, env)
        connect = dev.connect

        def connect_and_move():
            connect()
            for _, motor in dev.spec.motors:
                shaft = dev.emulator.state(motor.id)["shaft"]
                dev.emulator.command("set_shaft", id=motor.id, ticks=shaft + leader_offset_ticks)

        dev.connect = connect_and_move
        return dev, name

    def stop(self):
        if self.process is not None and self.twin is not None:
            last_registers[self.spec.kind] = [self.process.state(m.id)["registers"] for _, m in self.spec.motors]
        real_stop(self)

    monkeypatch.setattr(robot_mod, "teleop_device", teleop_device)
    monkeypatch.setattr(EmulatedPort, "stop", stop)
    return last_registers


@pytest.mark.slow  # ~1-2 min each on a loaded 2-core machine: record, train, deploy
@pytest.mark.parametrize("name", ["so101-emulated", "koch-emulated"])
def test_record_train_deploy_on_the_emulated_robot(tmp_path, monkeypatch, name):
    """Issue 12 part 6: demos recorded through `robolearn record` on the emulated leader + follower (each bus an
    emulator process on a pty, the follower's fed by its MuJoCo twin) with a file camera and a synthetic camera,
    a tiny image policy trained on them, deployed through `robolearn deploy --robot` on the same follower."""
    pytest.importorskip("robolearn_hardware.twins", reason="the MuJoCo twins behind `port: emulate`")
    from robolearn_hardware.arms.emulated import EmulatedPort
    from robolearn_hardware.bus.calibration import unnormalize

    monkeypatch.setenv("ROBOLEARN_EMULATED_CALIBRATION", str(tmp_path / "calibration"))
    colours = _frames_folder(tmp_path / "frames")
    config = _emulated_robot_config(tmp_path, name)
    servo_registers = _hook_emulated_arms(monkeypatch, leader_offset_ticks=120)
    store, ckpt, deployed = tmp_path / "demos.zarr", tmp_path / "run", tmp_path / "deployed.zarr"

    rec = last_json(run("record", "--robot", config, "--out", store, "--episodes", 2, "--episode-s", 0.6,
                        "--reset-s", 0, "--json").output)
    assert rec["episodes"] == 2 and rec["aborted"] == 0
    demos = open_store(store)
    assert demos.n_episodes == 2 and demos.episodes["status"].tolist() == [0, 0]
    assert set(demos.features) >= {"state", "action", "action_commanded", "images/front", "images/wrist"}
    ep = demos.episode(1)
    n = len(ep["action"])
    assert ep["images/front"].shape == (n, *CAMERA_HW, 3) and ep["images/wrist"].shape == (n, *CAMERA_HW, 3)
    # every front frame is one of the file's frames (flat colours), the file playing on
    means = ep["images/front"].reshape(n, -1, 3).mean(1)
    index = np.abs(means[:, None, :] - colours[None]).max(-1).argmin(1)
    assert np.abs(means - colours[index]).max() < 6 and len(set(index.tolist())) >= 4
    cams = demos.episode_extra(1)["cameras"]
    assert cams["front"]["camera_fps"] == 30.0 and cams["wrist"]["rule"] == "newest frame not older than max_age"
    # the leader was turned by hand: the follower (its twin) followed, and its state is read back over the bus
    states = np.concatenate([demos.episode(0)["state"], ep["state"]])
    assert np.abs(states - states[0]).max() > 5.0, states

    res = run("train", *E2E_TINY, "--store", store, "--out", ckpt, "--json")
    assert last_json(res.output)["steps"] == 4
    summary = last_json(run("deploy", "--no-compile", "--checkpoint", ckpt, "--robot", config, "--realtime",
                            "--episodes", 1, "task.max_steps=12", "--out", deployed, "--json").output)
    preset = name.split("-")[0]
    assert summary["env"] == f"robot:{name}" and summary["safety"] == preset and summary["fps"] == 30.0
    assert summary["per_episode"][0]["steps"] == 12
    ran = open_store(deployed).episode(0)
    sent = ran["action"]
    assert sent.shape == (12, 6) and np.all(np.isfinite(sent))
    assert ran["images/front"].shape == (12, *CAMERA_HW, 3) and ran["images/wrist"].shape == (12, *CAMERA_HW, 3)
    # configs/safety/<preset>.yaml: 10 degrees (or % open) per tick, plus the servo's rounding to its ticks
    assert np.all(np.abs(np.diff(sent, axis=0)) <= 10.0 + 360 / 4095 + 1e-3)
    # the last action sent is what the follower's servos were told (Goal_Position, through its calibration)
    follower = next(k for k in servo_registers if "follower" in k)
    port = EmulatedPort("emulate", _follower_spec(name), follower=True)
    cal = port.calibration()
    for i, (joint, motor) in enumerate(port.spec.motors):
        goal = servo_registers[follower][i]["Goal_Position"]
        assert abs(goal - unnormalize(motor, cal[joint], float(sent[-1][i]))) <= 1, joint


def _follower_spec(name):
    from robolearn_hardware.arms import KOCH_FOLLOWER, SO101_FOLLOWER

    return {"so101-emulated": SO101_FOLLOWER, "koch-emulated": KOCH_FOLLOWER}[name]


@pytest.mark.slow  # ~30 s: record, train, then deploy in a real terminal
def test_deploy_in_a_terminal_takes_over_with_t_and_saves_with_enter(tmp_path, monkeypatch):
    """The CLI as a user runs it, in a pty that is its controlling terminal (no stand-in for stdin): `robolearn deploy
    --robot so101-emulated --teleop so101-leader` prints its keys line; t typed then takes over (the leader is
    driven to the follower, then drives it), Enter saves the episode; the store marks the ticks the leader drove."""
    import os
    import pty
    import select
    import signal
    import sys

    from robolearn.store.intervention import intervention_mask

    pytest.importorskip("robolearn_hardware.twins", reason="the MuJoCo twins behind `port: emulate`")
    monkeypatch.setenv("ROBOLEARN_EMULATED_CALIBRATION", str(tmp_path / "calibration"))
    store, ckpt, deployed = tmp_path / "demos.zarr", tmp_path / "run", tmp_path / "deployed.zarr"
    run("record", "--robot", "so101-emulated", "--out", store, "--episodes", 2, "--episode-s", 0.5, "--reset-s", 0,
        "--json")
    run("train", *TINY, "--store", store, "--out", ckpt, "--json")
    argv = [sys.executable, "-c", "from robolearn.cli.main import main; main()", "deploy", "--no-compile",
            "--checkpoint", str(ckpt), "--robot", "so101-emulated", "--realtime", "--teleop", "so101-leader",
            "--episodes", "1", "task.max_steps=900", "--out", str(deployed), "--json"]
    pid, fd = pty.fork()
    if pid == 0:  # the child: the pty is its controlling terminal and stdin
        os.chdir(tmp_path)
        os.execv(argv[0], argv)
    out, typed, deadline, done, status = b"", [], time.monotonic() + 180, 0, None
    try:
        while time.monotonic() < deadline:
            if select.select([fd], [], [], 0.1)[0]:
                try:
                    data = os.read(fd, 4096)
                except OSError:  # the child exited: the pty closed
                    break
                if not data:
                    break
                out += data
            if not typed and b"t take over" in out:
                time.sleep(1.0)  # ~30 ticks of the policy first
                os.write(fd, b"t")
                typed.append(time.monotonic())
            elif len(typed) == 1 and time.monotonic() - typed[0] > 2.0:
                os.write(fd, b"\r")
                typed.append(time.monotonic())
        while done == 0 and time.monotonic() < deadline:  # the pty closed: the child is exiting
            done, status = os.waitpid(pid, os.WNOHANG)
            time.sleep(0.05)
    finally:
        if done == 0:  # still running (it hung): stop it; a reaped pid is never signalled (it may be reused)
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    text = out.decode(errors="replace")
    assert len(typed) == 2 and status is not None and os.waitstatus_to_exitcode(status) == 0, text[-2000:]
    stored = open_store(deployed)
    mask = intervention_mask(stored)
    assert stored.n_episodes == 1 and stored.episodes["status"].tolist() == [0]  # "ok": saved by the operator
    n = int(stored.lengths[0])
    assert 20 <= n < 900 and 0 < mask.sum() < n and mask[-int(mask.sum()):].all()  # the leader drove to the end
