"""An emulated SO-101 follower and leader (one emulator process each) with a synthetic camera, written out as
a robot config YAML the way a user writes one: ports, device ids, a calibration folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from robolearn_hardware.arms import SO101_FOLLOWER, SO101_LEADER
from robolearn_hardware.bus.calibration import calibration_path, save_calibration
from tests.hardware.rigs import centred_calibration, start_emulator

# The leader's pose in shaft ticks per servo id (2048 is each joint's middle: 0 degrees).
POSE = {1: 2048 + 300, 2: 2048 - 200, 3: 2048 + 250, 4: 2048 - 150, 5: 2048 + 100, 6: 2300}
RETRY = {"retries": 50, "within_s": 0.6}
"""Patient enough for a loaded 2-core machine, short enough that an unplugged bus is reported in < 1 s."""


@dataclass
class Rig:
    follower: object  # EmulatorProcess
    leader: object
    config: Path
    calibration_dir: Path


def so101_rig(emulator, tmp_path: Path, *, episode_s: float = 0.3, reset_s: float = 0.1, control_fps: float = 30,
              record_fps: float | None = None, camera_fps: float = 30, pose: dict | None = None) -> Rig:
    follower = start_emulator(emulator, SO101_FOLLOWER)
    leader = start_emulator(emulator, SO101_LEADER)
    cal_dir = tmp_path / "calibration"
    for spec, device_id in ((SO101_FOLLOWER, "f1"), (SO101_LEADER, "l1")):
        save_calibration(calibration_path(spec.kind, device_id, cal_dir), centred_calibration(spec))
    for servo_id, ticks in (pose or POSE).items():
        leader.command("set_shaft", id=servo_id, ticks=ticks)
    robot = {
        "follower": {"device": "so101-follower",
                     "kwargs": {"port": follower.port, "id": "f1", "calibration_dir": str(cal_dir),
                                "on_disconnect": "torque_off", "retry": RETRY}},
        "leader": {"device": "so101-leader",
                   "kwargs": {"port": leader.port, "id": "l1", "calibration_dir": str(cal_dir), "retry": RETRY}},
        "cameras": [{"name": "front", "device": "synthetic-camera", "fps": camera_fps, "max_age_s": 0.25,
                     "kwargs": {"size": [24, 32]}}],
        "control_fps": control_fps, "safety": "so101", "task": "follow the leader",
        "episode_s": episode_s, "reset_s": reset_s,
    }
    if record_fps is not None:
        robot["record_fps"] = record_fps
    path = tmp_path / "robot.yaml"
    path.write_text(yaml.safe_dump({"robot": robot}))
    return Rig(follower, leader, path, cal_dir)
