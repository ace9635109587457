"""Recording on an emulated SO-101 (follower + leader, each bus an emulator process on a pty) with a synthetic
camera: through `robolearn record --robot`, the store holds what the follower really sent, each stream with its
own stamps and the camera's pairing rule; an unplugged device ends the episode as aborted, the store consistent;
`replay` sends the recorded actions back to the servos."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("robolearn_hardware")

from robolearn.cli.main import app  # noqa: E402
from robolearn.record.robot import RecordingAborted, record_robot  # noqa: E402
from robolearn.devices.robot_config import load_robot_config  # noqa: E402
from robolearn.store import open_store  # noqa: E402
from tests.hardware.conftest import emulator  # noqa: E402,F401 - the fixture
from tests.record.robot_rigs import POSE, so101_rig  # noqa: E402

DEG_PER_TICK = 360 / 4095


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def last_json(output: str) -> dict:
    return json.loads([line for line in output.splitlines() if line.startswith("{")][-1])


def goal_degrees(emu, servo_id: int) -> float:
    return (emu.state(servo_id)["registers"]["Goal_Position"] - 2048) * DEG_PER_TICK


def test_record_two_episodes_on_the_emulated_so101(emulator, tmp_path):  # noqa: F811
    rig = so101_rig(emulator, tmp_path, episode_s=0.3, reset_s=0.1)
    out = tmp_path / "demos.zarr"
    result = run("record", "--robot", rig.config, "--out", out, "--episodes", 2, "--task", "follow me", "--json")
    assert result.exit_code == 0, result.output + repr(result.exception)
    summary = last_json(result.output)
    assert summary["episodes"] == 2 and summary["aborted"] == 0 and summary["store"] == str(out.resolve())

    store = open_store(out)
    assert store.n_episodes == 2 and store.lengths.tolist() == [9, 9]  # 0.3 s at 30 Hz
    assert store.episodes["status"].tolist() == [0, 0] and store.tasks == ["follow me"]
    assert set(store.features) == {"state", "images/front", "action", "action_commanded"}
    ep = store.episode(1)
    assert ep["state"].shape == (9, 6) and ep["images/front"].shape == (9, 24, 32, 3)
    assert ep["action"].shape == (9, 6) and ep["action"].dtype == np.float32
    # By episode 1 the follower has walked to the leader's pose (10 deg/tick at most): what was sent is the pose.
    leader_pose = np.array([(POSE[i] - 2048) * DEG_PER_TICK for i in range(1, 6)], np.float32)
    np.testing.assert_allclose(ep["action"][-1][:5], leader_pose, atol=0.1)
    np.testing.assert_allclose(ep["action_commanded"][-1][:5], leader_pose, atol=0.1)
    assert goal_degrees(rig.follower, 2) == pytest.approx(float(ep["action"][-1][1]), abs=0.1)  # reached the servo
    # Each stream has its own stamps: camera frames are captured before the tick that pairs them, state later.
    t_img, t_state, t_act = (store.timestamps(k, 1) for k in ("images/front", "state", "action"))
    assert np.all(np.diff(t_act) > 0) and not np.array_equal(t_img, t_state)
    assert np.all(t_img <= t_act + 1e-9) and np.all(t_act - t_img < 0.25 + 0.05)  # the pairing rule's max_age
    # The pairing rule and the camera's counters are kept with each episode and in the store attrs.
    extra = store.episode_extra(0)
    cam = extra["cameras"]["front"]
    assert cam["rule"] == "newest frame not older than max_age" and cam["max_age_s"] == 0.25
    assert cam["camera_fps"] == 30.0 and cam["grabbed"] >= 5 and {"dropped", "read_twice"} <= set(cam)
    assert store.info["cameras"]["front"]["max_age_s"] == 0.25 and store.info["robot"] == "robot"
    assert store.info["robot_config"]["follower"]["device"] == "so101-follower"


def test_record_fps_subsamples_the_control_ticks(emulator, tmp_path):  # noqa: F811
    rig = so101_rig(emulator, tmp_path, episode_s=0.4, control_fps=30, record_fps=15)
    summary = record_robot(load_robot_config(rig.config), tmp_path / "s.zarr", episodes=1, progress=False)
    store = open_store(tmp_path / "s.zarr")
    assert summary["frames"] == 6 and store.lengths.tolist() == [6] and store.fps == 15.0  # 12 ticks, every 2nd
    assert np.median(np.diff(store.timestamps("action", 0))) == pytest.approx(1 / 15, abs=0.02)


def test_keys_typed_in_the_terminal_end_episodes(emulator, tmp_path, monkeypatch, terminal):  # noqa: F811
    """A leader arm has no keys: r typed in record's terminal (a pty) re-records the first attempt at its first tick,
    the second runs its full length and is saved; t (takeover) means nothing while recording."""
    import os
    import termios

    from robolearn.devices.terminal_keys import TerminalKeys

    master, slave = terminal
    before = termios.tcgetattr(slave)
    monkeypatch.setattr(TerminalKeys, "for_stdin", classmethod(lambda cls: cls(slave)))
    os.write(master, b"tr")  # typed before record starts (no Backspace: the line discipline would erase the t)
    rig = so101_rig(emulator, tmp_path, episode_s=0.4, reset_s=0.0, control_fps=30)
    summary = record_robot(load_robot_config(rig.config), tmp_path / "s.zarr", episodes=1, progress=False)
    assert summary["rerecorded"] == 1 and summary["episodes"] == 1 and not summary["quit"]
    assert open_store(tmp_path / "s.zarr").lengths.tolist() == [12]  # 0.4 s at 30 Hz: the saved attempt ran out
    assert termios.tcgetattr(slave) == before


def test_no_record_writes_nothing(emulator, tmp_path):  # noqa: F811
    rig = so101_rig(emulator, tmp_path, episode_s=0.2, reset_s=0.0)
    out = tmp_path / "never.zarr"
    result = run("record", "--robot", rig.config, "--out", out, "--episodes", 2, "--no-record", "--json")
    assert result.exit_code == 0, result.output + repr(result.exception)
    summary = last_json(result.output)
    assert summary["episodes"] == 2 and summary["store"] is None and summary["frames"] == 0
    assert not out.exists()
    assert goal_degrees(rig.follower, 1) != 0.0  # the follower did move: the session ran


def _when_recording(path, then, delay_s=0.3, timeout_s=30.0):
    """Run `then()` `delay_s` after the store at `path` appears (devices connected, the first episode started)."""
    def watch():
        deadline = time.monotonic() + timeout_s
        while not (path / "zarr.json").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(delay_s)
        then()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_an_unplugged_follower_ends_the_episode_as_aborted(emulator, tmp_path):  # noqa: F811
    rig = so101_rig(emulator, tmp_path, episode_s=5.0, reset_s=0.1)
    out = tmp_path / "demos.zarr"
    watcher = _when_recording(out, lambda: rig.follower.command("unplug", id=3))
    t0 = time.monotonic()
    with pytest.raises(RecordingAborted, match=r"MotorNotRespondingError.*committed as 'aborted'.*--resume") as e:
        record_robot(load_robot_config(rig.config), out, episodes=2, progress=False)
    watcher.join(5)
    assert time.monotonic() - t0 < 20  # not the 5 s episode twice: it stopped at the fault
    assert e.value.summary["aborted"] == 1 and e.value.summary["episodes"] == 0
    store = open_store(out)  # consistent: committed episodes only, every key the same length
    assert store.n_episodes == 1 and store.episodes["status"].tolist() == [1]
    n = int(store.lengths[0])
    assert 3 <= n < 150 and all(len(store.timestamps(k, 0)) == n for k in store.features)
    assert "MotorNotRespondingError" in store.episode_extra(0)["abort_reason"]
    # --resume appends after the aborted episode once the servo is back
    rig.follower.command("plug", id=3)
    summary = record_robot(load_robot_config(rig.config).with_overrides(episode_s=0.2), out, episodes=1,
                           resume=True, progress=False)
    assert summary["episodes"] == 1 and open_store(out).episodes["status"].tolist() == [1, 0]


def test_a_camera_gone_ends_the_episode_as_aborted(emulator, tmp_path, monkeypatch):  # noqa: F811
    from robolearn.record import robot as robot_mod
    from robolearn_hardware.cameras import FaultySource

    rig = so101_rig(emulator, tmp_path, episode_s=5.0)
    made = []

    def build(cfg, fps=None):
        env = build_robot_env(cfg, fps=fps)
        cam = env.cameras[0]
        cam.source = FaultySource(cam.source)
        made.append(cam.source)
        return env

    build_robot_env = robot_mod.build_robot_env
    monkeypatch.setattr(robot_mod, "build_robot_env", build)
    out = tmp_path / "demos.zarr"
    watcher = _when_recording(out, lambda: made[0].unplug(30.0))
    with pytest.raises(RecordingAborted, match=r"camera 'front'.*older than max_age"):
        record_robot(load_robot_config(rig.config), out, episodes=1, progress=False)
    watcher.join(5)
    store = open_store(out)
    assert store.episodes["status"].tolist() == [1] and store.lengths[0] >= 3
    extra = store.episode_extra(0)
    assert "StaleFrameError" in extra["abort_reason"] and extra["cameras"]["front"]["disconnects"] == 1


def test_replay_sends_the_recorded_actions(emulator, tmp_path):  # noqa: F811
    rig = so101_rig(emulator, tmp_path, episode_s=0.3)
    out = tmp_path / "demos.zarr"
    record_robot(load_robot_config(rig.config), out, episodes=1, progress=False)
    recorded = open_store(out).episode(0)["action"]
    rig.leader.command("set_shaft", id=2, ticks=2048 + 600)  # replay follows the store, not the leader
    for servo_id in range(1, 7):  # the follower back where the recording started (torque is off: by hand)
        rig.follower.command("set_shaft", id=servo_id, ticks=2048)
    result = run("replay", out, "--episode", 0, "--robot", rig.config, "--json")
    assert result.exit_code == 0, result.output + repr(result.exception)
    summary = last_json(result.output)
    assert summary["steps"] == len(recorded) and summary["safety_preset"] == "so101"
    np.testing.assert_allclose(np.array(summary["sent"], np.float32), recorded, atol=0.1)
    assert summary["max_abs_error"] < 0.1 and summary["safety"]["holds"] == 0
    for servo_id in (1, 2, 3):  # the last replayed action is what the servos hold
        assert goal_degrees(rig.follower, servo_id) == pytest.approx(float(recorded[-1][servo_id - 1]), abs=0.1)

    # From the recording's end pose the first recorded targets are far away: the filter walks there at its limit.
    result = run("replay", out, "--episode", 0, "--robot", rig.config, "--json")
    summary = last_json(result.output)
    sent = np.array(summary["sent"], np.float32)
    assert summary["safety"]["clipped_velocity"] >= 1 and summary["max_abs_error"] > 1.0  # 300 deg/s = 10/tick
    assert np.all(np.abs(np.diff(sent, axis=0)) <= 10.0 + DEG_PER_TICK)  # so101.yaml: 10 deg/tick, servo rounding


def test_replay_of_a_missing_episode_is_one_sentence(emulator, tmp_path):  # noqa: F811
    rig = so101_rig(emulator, tmp_path, episode_s=0.2)
    out = tmp_path / "demos.zarr"
    record_robot(load_robot_config(rig.config), out, episodes=1, progress=False)
    result = run("replay", out, "--episode", 4, "--robot", rig.config)
    assert result.exit_code == 2 and f"--episode 4 is not in {out}: it holds episodes 0..0" in result.output


@pytest.mark.parametrize("config", ["so101-emulated", "koch-emulated"])
def test_record_on_a_shipped_emulated_robot(tmp_path, config):
    pytest.importorskip("robolearn_hardware.twins", reason="the MuJoCo twins behind `port: emulate`")
    out = tmp_path / "demos.zarr"
    result = run("record", "--robot", config, "--out", out, "--episodes", 1, "--episode-s", 0.3, "--json")
    assert result.exit_code == 0, result.output + repr(result.exception)
    store = open_store(out)
    assert store.n_episodes == 1 and store.lengths.tolist() == [9] and store.episodes["status"].tolist() == [0]
    assert store.features["images/front"].shape == (96, 128, 3) and store.features["state"].shape == (6,)
    assert store.info["robot"] == config and store.episode_extra(0)["cameras"]["front"]["camera_fps"] == 30.0
