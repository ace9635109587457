"""Robot configs: one YAML file says which devices make a robot, how fast it runs and how it is kept safe.

``configs/robot/<name>.yaml`` holds one ``robot:`` section (values only; the fields are `RobotConfig`'s)::

    robot:
      follower: {device: so101-follower, kwargs: {port: /dev/ttyACM0, id: my_follower, on_disconnect: park}}
      leader: {device: so101-leader, kwargs: {port: /dev/ttyACM1, id: my_leader}}
      cameras:
        - {name: front, device: opencv-camera, fps: 30, max_age_s: 0.1, kwargs: {device: 0, size: [480, 640]}}
      sensors:               # force/torque, tactile: keys force, tactile/<name>
        - {device: netft, kwargs: {host: 192.168.1.1}}
      teleop:                # how each other teleop device (--teleop ID) drives this robot
        - {device: spacemouse, kwargs: {mode: absolute, gripper_axis: -1}, takeover_key: save}
      control_fps: 30        # the loop's rate; every camera keeps its own fps
      record_fps: 30         # the store's rate: every control_fps / record_fps-th tick is recorded
      safety: so101          # configs/safety/so101.yaml: every action passes that SafetyFilter
      task: "pick up the cube and put it in the bowl"

Devices are built through `robolearn.devices.make_device` (the ``robolearn.devices`` entry points), so the
core never imports a driver: ``build_robot_env(cfg)`` gives the `RobotEnv` that `record`, `replay` and
`deploy` run, ``build_teleop(cfg)`` the leader, ``build_teleop(cfg, "spacemouse", env)`` a device of
``robot.teleop``: built with the env's ``action_space``, ``origin`` (where an absolute target starts: the target
the robot holds, ``env.hold_action``) and the entry's kwargs. A camera's ``name`` (its key ``images/<name>``), ``fps`` and
``max_age_s`` (the pairing rule: a tick takes the newest frame not older than that) are passed to its
constructor as ``name``, ``fps`` and ``max_age`` when set. Every error names the file and the key.

Example::

    cfg = load_robot_config("so101")                # configs/robot/so101.yaml, or a path to a YAML file
    env = build_robot_env(cfg)                      # disconnected; reset() connects
    leader = build_teleop(cfg)
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from robolearn.config import configs_dir, from_dict
from robolearn.errors import ConfigError, InvalidValueError, MissingPathError, UserError

__all__ = ["CameraSpec", "DeviceSpec", "RobotConfig", "TeleopSpec", "build_robot_env", "build_teleop",
           "load_robot_config", "robot_config_names", "takeover_key"]


@dataclass(frozen=True)
class DeviceSpec:
    """One device of the robot: its id and constructor arguments."""

    device: str = ""
    """Device id of the ``robolearn.devices`` registry (``robolearn devices``-style ids: so101-follower ...)."""
    kwargs: dict = field(default_factory=dict)
    """Constructor keyword arguments: an arm's port, id (its calibration file), calibration_dir,
    on_disconnect (park | torque_off | hold), ...; ``port: emulate`` runs the arm on its emulated twin."""


@dataclass(frozen=True)
class CameraSpec:
    """One camera: device id, key name, its own rate and pairing tolerance."""

    name: str = ""
    """Camera name; the observation key is ``images/<name>``."""
    device: str = ""
    """Device id (opencv-camera, file-camera, synthetic-camera, fake-camera, ...)."""
    fps: float | None = None
    """The camera's own frame rate (separate from control_fps); None: the device's default."""
    max_age_s: float | None = None
    """Pairing rule: a tick takes the newest frame not older than this (s); None: the device's default."""
    kwargs: dict = field(default_factory=dict)
    """Other constructor arguments (device index or path, size [H, W], ...)."""


@dataclass(frozen=True)
class TeleopSpec:
    """How a teleop device other than the leader drives this robot (``--teleop <device>``)."""

    device: str = ""
    """Device id (spacemouse, gamepad, terminal-teleop, phone, ...): its constructor takes ``action_space`` and
    ``origin``, which the robot gives."""
    kwargs: dict = field(default_factory=dict)
    """Other constructor arguments: mode (absolute for a robot's targets), step, axes, gripper_axis, kinematics, ..."""
    takeover_key: str = "takeover"
    """The device's episode key that hands control over during ``deploy --teleop`` (e.g. ``save`` for a
    SpaceMouse, whose right button is its only free one); ``--takeover-key`` overrides it."""


@dataclass(frozen=True)
class RobotConfig:
    """A robot: follower, cameras, optional leader, rates, safety preset and task (module docstring)."""

    follower: DeviceSpec = field(default_factory=DeviceSpec)
    """The robot that is commanded (a `Robot` device: reads ``state``, takes actions)."""
    leader: DeviceSpec | None = None
    """The teleop device that drives it when recording (a leader arm); None: name one with --teleop."""
    cameras: tuple[CameraSpec, ...] = ()
    """Cameras, each keyed ``images/<name>``."""
    sensors: tuple[DeviceSpec, ...] = ()
    """Other sensors: a force/torque sensor (key ``force``), tactile sensors (``tactile/<name>``)."""
    teleop: tuple[TeleopSpec, ...] = ()
    """Teleop devices other than the leader, by device id, with their kwargs on this robot (``--teleop ID``)."""
    control_fps: float = 30.0
    """Rate of the control loop (Hz)."""
    record_fps: float | None = None
    """Rate of the recorded store (Hz), dividing control_fps; None: control_fps."""
    safety: str = "default"
    """configs/safety/<name>.yaml: the SafetyFilter every action passes (record, replay, deploy)."""
    task: str = "free teleoperation"
    """The language instruction recorded with each episode (``--task`` overrides it)."""
    episode_s: float = 30.0
    """Length of a recorded episode (s) unless an episode key ends it earlier."""
    reset_s: float = 10.0
    """Reset period between recorded episodes (s): the follower keeps following, nothing is recorded."""
    name: str = ""
    """The config's name (default: its file name)."""
    path: str = ""
    """The file it was read from (set by `load_robot_config`)."""

    @property
    def where(self) -> str:
        return f"robot config {self.path or self.name or '(in memory)'}"

    @property
    def recording_fps(self) -> float:
        return float(self.record_fps or self.control_fps)

    def with_overrides(self, **changes: Any) -> RobotConfig:
        """A copy with `changes` applied (control_fps, task, ...), validated again."""
        return validate(dataclasses.replace(self, **changes))

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def robot_config_names() -> list[str]:
    """Names of the robot configs shipped in configs/robot/."""
    return sorted(p.stem for p in (configs_dir() / "robot").glob("*.yaml"))


def _resolve(name_or_path: str | Path) -> Path:
    p = Path(name_or_path)
    if p.is_file():
        return p
    looks_like_path = p.suffix in (".yaml", ".yml") or len(p.parts) > 1
    if not looks_like_path:
        named = configs_dir() / "robot" / f"{p}.yaml"
        if named.is_file():
            return named
    raise MissingPathError(f"no robot config {str(name_or_path)!r}: neither a YAML file nor one of "
                           f"configs/robot/ ({', '.join(robot_config_names()) or 'none'})")


def load_robot_config(name_or_path: str | Path) -> RobotConfig:
    """A robot config by name (configs/robot/<name>.yaml) or path, validated (module docstring)."""
    path = _resolve(name_or_path)
    where = f"robot config {path}"
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{where} is not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict) or set(data) != {"robot"} or not isinstance(data["robot"], dict):
        keys = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ConfigError(f"{where} must hold one 'robot:' section (a mapping), got {keys}")
    section = data["robot"]
    if "follower" not in section:
        raise ConfigError(f"{where}: missing key 'robot.follower' (the device that is commanded: "
                          "{device: <id>, kwargs: {...}})")
    try:
        cfg = from_dict(RobotConfig, {"name": path.stem, **section, "path": str(path)}, "robot")
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
    return validate(cfg)


def validate(cfg: RobotConfig) -> RobotConfig:
    """Check values across fields; a `ConfigError` names the file and the key."""
    where = cfg.where

    def bad(key: str, why: str) -> ConfigError:
        return ConfigError(f"{where}: robot.{key} {why}")

    for key, spec in (("follower", cfg.follower), ("leader", cfg.leader),
                      *((f"sensors[{i}]", s) for i, s in enumerate(cfg.sensors)),
                      *((f"teleop[{i}]", t) for i, t in enumerate(cfg.teleop))):
        if spec is not None and not spec.device:
            raise bad(f"{key}.device", "is missing; name a device id (e.g. so101-follower, netft, spacemouse)")
    from robolearn.devices.protocols import EVENTS

    for i, t in enumerate(cfg.teleop):
        if t.takeover_key not in EVENTS:
            raise bad(f"teleop[{i}].takeover_key", f"{t.takeover_key!r} is not an episode key; accepted: "
                                                   f"{', '.join(EVENTS)}")
        reserved = {"action_space", "origin"} & set(t.kwargs)
        if reserved:
            raise bad(f"teleop[{i}].kwargs", f"sets {sorted(reserved)}, which the robot gives; remove them")
        if [s.device for s in cfg.teleop].count(t.device) > 1:
            raise bad(f"teleop[{i}].device", f"{t.device!r} is listed twice; keep one entry per device")
    for key in ("control_fps", "episode_s"):
        if not getattr(cfg, key) > 0:
            raise bad(key, f"must be > 0, got {getattr(cfg, key)!r}")
    if not cfg.reset_s >= 0:
        raise bad("reset_s", f"must be >= 0, got {cfg.reset_s!r}")
    if cfg.record_fps is not None:
        ratio = cfg.control_fps / cfg.record_fps if cfg.record_fps > 0 else math.nan
        if not (ratio >= 1 and abs(ratio - round(ratio)) < 1e-9):
            raise bad("record_fps", f"{cfg.record_fps!r} must divide control_fps {cfg.control_fps!r} (a whole "
                                    "number of control ticks per recorded frame)")
    names = []
    for i, cam in enumerate(cfg.cameras):
        if not cam.name or "/" in cam.name:
            raise bad(f"cameras[{i}].name", f"{cam.name!r} must be a non-empty name without '/'")
        if not cam.device:
            raise bad(f"cameras[{i}].device", "is missing; name a camera device id (e.g. opencv-camera)")
        if cam.name in names:
            raise bad(f"cameras[{i}].name", f"{cam.name!r} is used twice; give each camera its own name")
        for key in ("fps", "max_age_s"):
            value = getattr(cam, key)
            if value is not None and not value > 0:
                raise bad(f"cameras[{i}].{key}", f"must be > 0 (or omitted), got {value!r}")
        reserved = {"name", "fps", "max_age"} & set(cam.kwargs)
        if reserved:
            raise bad(f"cameras[{i}].kwargs", f"sets {sorted(reserved)}; set them as cameras[{i}].name, .fps "
                                              "and .max_age_s")
        names.append(cam.name)
    if not (configs_dir() / "safety" / f"{cfg.safety}.yaml").is_file():
        have = sorted(p.stem for p in (configs_dir() / "safety").glob("*.yaml"))
        raise bad("safety", f"{cfg.safety!r} names no configs/safety/ preset; available: {', '.join(have)}")
    return cfg


def _make(spec: DeviceSpec | CameraSpec, key: str, where: str, **extra: Any) -> Any:
    from robolearn.devices.registry import make_device

    try:
        return make_device(spec.device, **{**spec.kwargs, **extra})
    except TypeError as e:  # a keyword the constructor does not take
        raise ConfigError(f"{where}: robot.{key}.kwargs do not fit {spec.device!r} ({e})") from None
    except UserError as e:
        raise type(e)(f"{where}: robot.{key}: {e}") from None


def build_robot_env(cfg: RobotConfig, *, fps: float | None = None):
    """The `RobotEnv` of ``cfg`` (devices constructed, not connected: ``reset()`` connects them); ``fps``
    overrides ``control_fps``."""
    from robolearn.devices.robot_env import FreeTask, RobotEnv

    robot = _make(cfg.follower, "follower", cfg.where)
    cameras = []
    for i, cam in enumerate(cfg.cameras):
        extra: dict[str, Any] = {"name": cam.name}
        if cam.fps is not None:
            extra["fps"] = cam.fps
        if cam.max_age_s is not None:
            extra["max_age"] = cam.max_age_s
        cameras.append(_make(cam, f"cameras[{i}]", cfg.where, **extra))
    sensors = [_make(spec, f"sensors[{i}]", cfg.where) for i, spec in enumerate(cfg.sensors)]
    return RobotEnv(robot, cameras=cameras, sensors=sensors, task=FreeTask(cfg.task),
                    control_hz=float(fps or cfg.control_fps))


def _teleop_entry(cfg: RobotConfig, device: str) -> tuple[int, TeleopSpec] | None:
    return next(((i, t) for i, t in enumerate(cfg.teleop) if t.device == device), None)


def build_teleop(cfg: RobotConfig, device: str | None = None, env: Any = None):
    """The teleop device: ``device`` (an id of the registry; the config's leader kwargs when it names the
    leader's device; a ``robot.teleop`` entry's kwargs, with the action space and hold target of ``env``, the
    `RobotEnv` it drives) or the config's leader."""
    if device is None or (cfg.leader is not None and device == cfg.leader.device):
        if cfg.leader is None:
            raise ConfigError(f"{cfg.where} has no robot.leader; name a teleop device (--teleop)")
        return _make(cfg.leader, "leader", cfg.where)
    found = _teleop_entry(cfg, device)
    if found is None:
        try:
            return _make(DeviceSpec(device=device), "teleop", cfg.where)
        except ConfigError as e:
            have = ", ".join(t.device for t in cfg.teleop) or "none"
            raise ConfigError(f"{e}; a teleop device that maps onto the robot's actions needs a robot.teleop entry "
                              f"(- {{device: {device}, kwargs: {{mode: absolute, ...}}}}); this config has: {have}") \
                from None
    i, entry = found
    if env is None:
        raise InvalidValueError(f"{cfg.where}: robot.teleop[{i}] ({device}) drives an env; pass the RobotEnv")
    base = env.unwrapped
    return _make(DeviceSpec(entry.device, entry.kwargs), f"teleop[{i}]", cfg.where, action_space=base.action_space,
                 origin=lambda obs: base.hold_action())


def takeover_key(cfg: RobotConfig, device: str | None) -> str:
    """The episode key that hands control over with ``device`` on this robot (its ``robot.teleop`` entry's, else
    ``takeover``)."""
    from robolearn.devices.protocols import TAKEOVER

    found = None if device is None else _teleop_entry(cfg, device)
    return TAKEOVER if found is None else found[1].takeover_key
