"""Robot configs: the shipped ones load and name installed devices; every mistake is one sentence naming the
file and the key; a config builds its RobotEnv through the device registry."""

from __future__ import annotations

import re

import pytest
import yaml

from robolearn.devices import device_ids
from robolearn.devices.robot_config import (build_robot_env, build_teleop, load_robot_config,
                                            robot_config_names)
from robolearn.errors import ConfigError, MissingPathError

FAKE = {"follower": {"device": "fake-robot"},
        "cameras": [{"name": "wrist", "device": "fake-camera", "fps": 15, "kwargs": {"size": [12, 16]}}],
        "control_fps": 30, "task": "wave"}


def write(tmp_path, robot, name="r.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"robot": robot}))
    return path


def test_shipped_configs_load_and_name_installed_devices():
    pytest.importorskip("robolearn_hardware")
    names = robot_config_names()
    assert {"so101", "koch", "so101-bimanual", "so101-emulated", "koch-emulated"} <= set(names)
    ids = set(device_ids())
    for name in names:
        cfg = load_robot_config(name)
        assert cfg.name == name and cfg.follower.device in ids and (cfg.leader is None or cfg.leader.device in ids)
        assert all(c.device in ids and c.fps and c.max_age_s for c in cfg.cameras)
        assert all(s.device in ids for s in (*cfg.sensors, *cfg.teleop))
        assert cfg.recording_fps == cfg.control_fps == 30.0
    assert load_robot_config("so101-emulated").follower.kwargs["port"] == "emulate"
    assert [c.name for c in load_robot_config("so101-bimanual").cameras] == ["top", "left_wrist", "right_wrist"]
    for name in ("ur5e", "ur5e-emulated"):
        ur = load_robot_config(name)
        assert ur.leader is None and ur.safety == "ur5e" and [s.device for s in ur.sensors] == ["netft"]
        assert {t.device: t.takeover_key for t in ur.teleop} == {"spacemouse": "save", "gamepad": "takeover",
                                                                 "terminal-teleop": "takeover", "phone": "takeover"}
    assert load_robot_config("ur5e-emulated").follower.kwargs["host"] == "emulate"


@pytest.mark.parametrize("change, message", [
    ({"folower": {"device": "x"}}, "unknown config key 'robot.folower'; RobotConfig accepts"),
    ({"control_fps": "fast"}, "robot.control_fps: expected float, got 'fast'"),
    ({"control_fps": 0}, "robot.control_fps must be > 0, got 0.0"),
    ({"record_fps": 20}, "robot.record_fps 20.0 must divide control_fps 30.0"),
    ({"safety": "nope"}, "robot.safety 'nope' names no configs/safety/ preset; available:"),
    ({"cameras": [{"name": "a", "device": "fake-camera"}, {"name": "a", "device": "fake-camera"}]},
     "robot.cameras[1].name 'a' is used twice"),
    ({"cameras": [{"name": "a", "device": "fake-camera", "kwargs": {"fps": 3}}]},
     "robot.cameras[0].kwargs sets ['fps']; set them as cameras[0].name, .fps and .max_age_s"),
    ({"cameras": [{"name": "a", "device": "fake-camera", "max_age_s": -1}]},
     "robot.cameras[0].max_age_s must be > 0 (or omitted), got -1.0"),
    ({"leader": {"kwargs": {}}}, "robot.leader.device is missing"),
    ({"reset_s": -2}, "robot.reset_s must be >= 0"),
])
def test_a_bad_value_is_one_sentence_naming_file_and_key(tmp_path, change, message):
    path = write(tmp_path, {**FAKE, **change})
    with pytest.raises(ConfigError) as e:
        load_robot_config(path)
    text = str(e.value)
    assert text.startswith(f"robot config {path}") and message in text and "\n" not in text


def test_missing_section_follower_and_names(tmp_path):
    path = tmp_path / "flat.yaml"
    path.write_text(yaml.safe_dump(FAKE))
    with pytest.raises(ConfigError, match=r"must hold one 'robot:' section \(a mapping\), got \['cameras'"):
        load_robot_config(path)
    with pytest.raises(ConfigError, match="missing key 'robot.follower'"):
        load_robot_config(write(tmp_path, {"control_fps": 30}))
    with pytest.raises(MissingPathError, match=r"no robot config 'so102': neither a YAML file nor one of "
                                               r"configs/robot/ \(.*so101"):
        load_robot_config("so102")
    with pytest.raises(MissingPathError, match="no robot config"):
        load_robot_config(tmp_path / "absent.yaml")


def test_build_robot_env_through_the_registry(tmp_path):
    cfg = load_robot_config(write(tmp_path, FAKE))
    env = build_robot_env(cfg)
    assert set(env.observation_space.spaces) == {"state", "images/wrist"}
    assert env.observation_space["images/wrist"].shape == (12, 16, 3)
    assert env.control_hz == 30.0 and env.task_description == "wave" and env.cameras[0].fps == 15.0
    assert build_robot_env(cfg, fps=10).control_hz == 10.0
    obs, info = env.reset(seed=0)
    assert set(info["timestamps"]) == {"state", "images/wrist"}
    env.close()
    with pytest.raises(ConfigError, match="has no robot.leader; name a teleop device"):
        build_teleop(cfg)
    assert type(build_teleop(cfg, "fake-teleop")).__name__ == "FakeTeleop"


def test_kwargs_a_device_does_not_take_name_the_key(tmp_path):
    cfg = load_robot_config(write(tmp_path, {**FAKE, "follower": {"device": "fake-robot", "kwargs": {"prot": 1}}}))
    with pytest.raises(ConfigError, match=r"robot.follower.kwargs do not fit 'fake-robot' \(.*'prot'"):
        build_robot_env(cfg)
    cfg = load_robot_config(write(tmp_path, {**FAKE, "follower": {"device": "fake-robbot"}}))
    with pytest.raises(Exception, match=r"robot.follower: unknown device id 'fake-robbot'; did you mean fake-robot"):
        build_robot_env(cfg)


def test_overrides_are_validated_again(tmp_path):
    cfg = load_robot_config(write(tmp_path, FAKE))
    assert cfg.with_overrides(control_fps=60.0, task="x").control_fps == 60.0
    with pytest.raises(ConfigError, match="robot.episode_s must be > 0"):
        cfg.with_overrides(episode_s=0.0)


def test_sensors_and_teleop_entries_build_with_the_env(tmp_path):
    from robolearn.devices.robot_config import takeover_key

    robot = {**FAKE, "sensors": [{"device": "fake-force-torque"}],
             "teleop": [{"device": "fake-teleop", "kwargs": {}, "takeover_key": "save"}]}
    cfg = load_robot_config(write(tmp_path, robot))
    env = build_robot_env(cfg)
    assert set(env.observation_space.spaces) == {"state", "images/wrist", "force"}
    assert takeover_key(cfg, "fake-teleop") == "save" and takeover_key(cfg, "keyboard") == "takeover"
    with pytest.raises(Exception, match="robot.teleop\\[0\\].kwargs do not fit 'fake-teleop'.*'origin'"):
        build_teleop(cfg, "fake-teleop", env)  # the fake takes no origin: the entry's key is named
    with pytest.raises(Exception, match="robot.teleop\\[0\\] \\(fake-teleop\\) drives an env; pass the RobotEnv"):
        build_teleop(cfg, "fake-teleop")


@pytest.mark.parametrize("teleop, message", [
    ([{"device": "spacemouse", "takeover_key": "grab"}], "robot.teleop[0].takeover_key 'grab' is not an episode key"),
    ([{"device": "spacemouse", "kwargs": {"origin": 1}}], "robot.teleop[0].kwargs sets ['origin'], which the robot "
                                                          "gives"),
    ([{"device": "spacemouse"}, {"device": "spacemouse"}], "'spacemouse' is listed twice"),
    ([{"kwargs": {}}], "robot.teleop[0].device is missing"),
])
def test_teleop_entry_mistakes_are_one_sentence(tmp_path, teleop, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_robot_config(write(tmp_path, {**FAKE, "teleop": teleop}))


def test_a_mapped_teleop_device_without_an_entry_says_how_to_add_one(tmp_path):
    pytest.importorskip("robolearn_hardware")
    cfg = load_robot_config(write(tmp_path, FAKE))
    with pytest.raises(ConfigError, match=r"needs a robot.teleop entry \(- \{device: spacemouse, kwargs: "
                                          r"\{mode: absolute, ...\}\}\); this config has: none"):
        build_teleop(cfg, "spacemouse", build_robot_env(cfg))
