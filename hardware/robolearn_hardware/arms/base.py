"""Servo arms as robolearn devices: a follower is a `Robot`, a leader is a `Teleop`, both over one `ServoBus`.

An arm type is an `ArmSpec` (motors, full-turn joints, drive directions, registers set at connect); a
user's arm is an `ArmConfig` (port, device id, backend, what disconnect does). ``state`` and ``action`` are
the motors' normalised positions in the order of ``joint_names`` (degrees for body joints, [0, 100] for a
gripper), so a leader's action is the follower's action.

Calibration is JSON per device id (`robolearn_hardware.bus.calibration`); ``connect()`` loads it and
writes it to the motors only when they do not hold it already; ``arm.calibrate(ui)`` runs the procedure
(`robolearn_hardware.bus.procedure`).

``port="emulate"`` runs the arm on emulated servos (a follower's fed by its simulated twin) started at
``connect()`` and stopped at ``disconnect()``, with a generated calibration: see `arms.emulated`.

Disconnecting a follower (``ArmConfig.on_disconnect``):
    ``"park"`` (default): move slowly (``park_speed``) to the rest pose, then torque off. The rest pose is
        ``rest_pose`` or else the pose the arm was in at ``connect()`` (where it rested before), so a raised
        arm is never dropped;
    ``"torque_off"``: torque off where it is (LeRobot's default; a raised arm falls);
    ``"hold"``: keep torque on at the last target, watchdog disarmed (the arm stays up after the port closes).

Example::

    arm = so101_follower(port="/dev/ttyACM0", id="my_arm")
    with arm:
        q = arm.read().values["state"]          # (6,) float32
        arm.send_action(q)                      # returns what was sent
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import gymnasium as gym
import numpy as np

from robolearn import spaces
from robolearn.devices.base import DeviceBase
from robolearn.devices.protocols import Reading
from robolearn.errors import InvalidValueError

from ..bus import BusError, CalibrationError, Motor, MotorCalibration, NormMode, RetryBudget, ServoBus
from ..bus.calibration import calibration_path, load_calibration
from ..bus.procedure import CalibrationUI, ConsoleUI, ensure_calibrated
from ..emulators import EmulatorProcess
from .emulated import EmulatedPort, emulated_calibration_dir, is_emulated

__all__ = ["ArmSpec", "ArmConfig", "FollowerArm", "LeaderArm", "check_targets", "norm_bounds"]

log = logging.getLogger(__name__)

PARK_PERIOD_S = 0.02
PARK_MAX_S = 10.0
DRIVE_STEP = 5.0
"""`LeaderArm.drive_to`: action units (degrees, gripper %) a leader moves per call when its config sets no
max_relative_target: 150 deg/s at 30 Hz, brisk but not a jolt in the hand."""
PARK_SETTLE_S = 1.0


@dataclass(frozen=True)
class ArmSpec:
    """What an arm type is (fixed by its build, not by the user)."""

    kind: str
    """Type name: the default device name and the calibration folder (e.g. ``so101_follower``)."""
    motors: tuple[tuple[str, Motor], ...]
    """(joint name, motor) in the order of ``state`` and ``action``."""
    full_turn: tuple[str, ...] = ()
    """Joints that turn freely: their range is the whole turn, no sweep."""
    drive_modes: Mapping[str, int] = field(default_factory=dict)
    """Joints whose direction is reversed (1) so leader and follower agree."""
    setup: tuple[tuple[str, str | None, int], ...] = ()
    """(register, joint or None for every joint, value) written with torque off at connect (only if different)."""
    torque_goals: Mapping[str, float] = field(default_factory=dict)
    """Leader joints kept under torque at this normalised goal (the Koch leader's gripper spring)."""

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self.motors)

    @property
    def protocol(self) -> str:
        return self.motors[0][1].spec.protocol


@dataclass
class ArmConfig:
    """What a user chooses for one arm."""

    port: str
    """Serial port (/dev/ttyACM0, /dev/serial/by-id/..., an emulator's pty), or "emulate" (`arms.emulated`)."""
    id: str = "default"
    """Device id: names the calibration file ``<calibration_dir>/<kind>/<id>.json``."""
    name: str | None = None
    """Device name (default: the arm type)."""
    backend: str = "sdk"
    """"sdk" (dynamixel_sdk / scservo_sdk) or "own" (robolearn's codec)."""
    baud: int = 1_000_000
    """Baud rate the servos are set to."""
    calibration_dir: str | None = None
    """Folder of calibration files (default: $ROBOLEARN_CALIBRATION or ~/.config/robolearn/calibration; for an
    emulated port, a folder of its own: `arms.emulated.emulated_calibration_dir`)."""
    calibration: Mapping[str, MotorCalibration] | None = None
    """Use this calibration instead of the file."""
    retry: RetryBudget = field(default_factory=RetryBudget)
    """Retries per bus transaction (a mapping such as ``{retries: 5, within_s: 0.3}`` from a robot config)."""
    latency_timer_ms: float = 16.0
    """USB-serial latency timer (16 on a stock FTDI adapter; 1 after `robolearn doctor`'s fix)."""
    watchdog_s: float | None = 0.2
    """Dynamixel bus watchdog while torque is on (None: off)."""
    max_relative_target: float | None = None
    """Largest step of a follower's goal from its last read position (normalised units; None: no limit)."""
    on_disconnect: Literal["park", "torque_off", "hold"] = "park"
    """What a follower does on disconnect (module docstring)."""
    rest_pose: Mapping[str, float] | None = None
    """Follower pose to park in (normalised); None: the pose at connect()."""
    park_speed: float = 45.0
    """Parking speed (normalised units per second: degrees/s for body joints)."""

    def __post_init__(self) -> None:
        if isinstance(self.retry, Mapping):
            try:
                self.retry = RetryBudget(**self.retry)
            except TypeError:
                raise InvalidValueError(f"retry {dict(self.retry)!r} is not a retry budget; expected "
                                        "{retries: N, within_s: S}") from None
        if self.on_disconnect not in ("park", "torque_off", "hold"):
            raise InvalidValueError(f"on_disconnect {self.on_disconnect!r} is not one of park, torque_off, hold")
        if not self.park_speed > 0:
            raise InvalidValueError(f"park_speed must be > 0, got {self.park_speed}")
        if self.max_relative_target is not None and not self.max_relative_target > 0:
            raise InvalidValueError(f"max_relative_target must be > 0 or None, got {self.max_relative_target}")


def check_targets(who: str, action: np.ndarray, space: gym.spaces.Box, names: tuple[str, ...]) -> np.ndarray:
    """``action`` as float32 joint targets; one sentence naming ``who`` when its shape or values are wrong."""
    action = np.asarray(action, dtype=np.float32)
    if action.shape != space.shape:
        raise InvalidValueError(f"{who}: action has shape {action.shape}; expected {space.shape} "
                                f"(targets for {', '.join(names)})")
    if not np.all(np.isfinite(action)):
        raise InvalidValueError(f"{who}: action {action.tolist()} holds NaN or inf; expected finite targets")
    return action


def norm_bounds(motor: Motor, *, state: bool) -> tuple[float, float]:
    """Bounds of one joint's value: DEGREES readings are not bounded (a multi-turn joint), goals are +-180."""
    if motor.norm is NormMode.DEGREES:
        return (-np.inf, np.inf) if state else (-180.0, 180.0)
    if motor.norm is NormMode.RANGE_M100_100:
        return -100.0, 100.0
    return 0.0, 100.0


class _Arm(DeviceBase):
    """The bus, calibration and connect-time setup shared by followers and leaders."""

    follower: bool = False
    """A follower (a `Robot`): on an emulated port it gets its arm's twin."""

    def __init__(self, spec: ArmSpec, config: ArmConfig):
        super().__init__(config.name or spec.kind)
        self.spec, self.config = spec, config
        self.joint_names = spec.names
        self.emulated = EmulatedPort(config.port, spec, self.follower) if is_emulated(config.port) else None
        cal_dir = config.calibration_dir
        if cal_dir is None and self.emulated is not None:
            cal_dir = emulated_calibration_dir()
        self.calibration_file = calibration_path(spec.kind, config.id, cal_dir)
        self.bus = ServoBus(config.port, dict(spec.motors), baud=config.baud, backend=config.backend,
                            retry=config.retry, latency_timer_ms=config.latency_timer_ms, watchdog_s=config.watchdog_s)
        low, high = zip(*(norm_bounds(m, state=False) for _, m in spec.motors))
        self.action_space = gym.spaces.Box(np.array(low, np.float32), np.array(high, np.float32), dtype=np.float32)

    # -- calibration --
    def _load_calibration(self) -> dict[str, MotorCalibration]:
        if self.config.calibration is not None:
            return dict(self.config.calibration)
        if not self.calibration_file.exists():
            raise CalibrationError(f"{self.spec.kind} {self.config.id!r} has no calibration at {self.calibration_file}; "
                                   f"calibrate it first (robolearn calibrate, or arm.calibrate())")
        cal = load_calibration(self.calibration_file)
        if set(cal) != set(self.joint_names):
            raise CalibrationError(f"calibration file {self.calibration_file} is for joints {sorted(cal)}, "
                                   f"{self.spec.kind} has {list(self.joint_names)}; calibrate again with --overwrite")
        return cal

    def calibrate(self, ui: CalibrationUI | None = None, *, overwrite: bool = False) -> dict[str, MotorCalibration]:
        """Run the calibration procedure (or reuse the saved one the motors hold) and save it per device id."""
        if self.emulated is not None:
            raise CalibrationError(f"{self.spec.kind} {self.config.id!r} runs on an emulated port, which is calibrated "
                                   f"by construction ({self.calibration_file}); calibrate a real arm on its serial port")
        opened = not self.bus.is_connected
        if opened:
            self.bus.connect()
        try:
            self.bus.disable_torque()
            self._apply_setup()
            return ensure_calibrated(self.bus, self.calibration_file, ui or ConsoleUI(), overwrite=overwrite,
                                     full_turn=self.spec.full_turn, drive_modes=self.spec.drive_modes)
        finally:
            if opened:
                self.bus.disconnect()

    # -- connect-time setup --
    def _apply_setup(self) -> None:
        """The spec's registers, written only where the servo holds another value (EEPROM wears)."""
        for register, joint, value in self.spec.setup:
            names = [joint] if joint else list(self.joint_names)
            held = self.bus.sync_read(register, names)
            for n in names:
                if held[n] != value:
                    self.bus.write(register, n, value)

    @property
    def emulator(self) -> EmulatorProcess | None:
        """The emulator process of an emulated port while connected, else None."""
        return self.emulated.process if self.emulated is not None else None

    def disconnect(self) -> None:
        try:
            super().disconnect()
        finally:
            self._stop_emulator()

    def _stop_emulator(self) -> None:
        if self.emulated is not None:
            self.emulated.stop()
            self.bus.port = self.config.port

    def _open(self) -> None:
        if self.emulated is not None:
            self.bus.port = self.emulated.start()
            try:
                if self.config.calibration is None:
                    self.emulated.ensure_calibration(self.calibration_file)
                self._open_bus()
            except BaseException:
                self._stop_emulator()
                raise
        else:
            self._open_bus()

    def _open_bus(self) -> None:
        self.bus.connect()
        try:
            cal = self._load_calibration()
            self.bus.disable_torque()
            self._apply_setup()
            if self.bus.is_calibrated(cal):
                self.bus.calibration = cal
            else:
                log.info("%s: writing the calibration of %r to the motors", self.name, self.config.id)
                self.bus.write_calibration(cal)
            self._start()
        except BaseException:
            self.bus.disconnect()
            raise

    def _start(self) -> None:
        """After calibration and setup: torque on for a follower, the spring joints for a leader."""

    def _positions(self) -> np.ndarray:
        q = self.bus.read_positions(self.joint_names)
        return np.array([q[n] for n in self.joint_names], np.float64)


class FollowerArm(_Arm):
    """A `Robot`: reads ``state``, takes absolute joint targets (see the module docstring)."""

    follower = True

    def __init__(self, spec: ArmSpec, config: ArmConfig):
        super().__init__(spec, config)
        low, high = zip(*(norm_bounds(m, state=True) for _, m in spec.motors))
        self.observation_space = gym.spaces.Dict(
            {spaces.STATE: gym.spaces.Box(np.array(low, np.float32), np.array(high, np.float32), dtype=np.float32)})
        self._target: np.ndarray | None = None
        self._last_state: np.ndarray | None = None
        self._connect_pose: np.ndarray | None = None

    def _start(self) -> None:
        self._target = None
        self._connect_pose = self._positions()
        self._last_state = self._connect_pose.copy()
        self.bus.enable_torque()

    def read(self) -> Reading:
        self._require_connected("read()")
        q = self._positions()
        self._last_state = q
        return Reading({spaces.STATE: q.astype(np.float32)}, float(self.bus.last_read_t))

    def send_action(self, action: np.ndarray) -> np.ndarray:
        self._require_connected("send_action()")
        action = check_targets(self.name, action, self.action_space, self.joint_names)
        goal = np.clip(action, self.action_space.low, self.action_space.high).astype(np.float64)
        limit = self.config.max_relative_target
        if limit is not None:
            present = self._last_state if self._last_state is not None else self._positions()
            goal = np.clip(goal, present - limit, present + limit)
        return self._send(goal)

    def _send(self, goal: np.ndarray) -> np.ndarray:
        sent = self.bus.write_goals(dict(zip(self.joint_names, goal.tolist())))
        out = np.array([sent[n] for n in self.joint_names], np.float32)
        self._target = out.astype(np.float64)
        return out

    def hold(self) -> np.ndarray:
        self._require_connected("hold()")
        if self._target is None:
            return self._send(self._positions())
        return self._send(self._target)  # the last target again; never a fresh reading (Robot.hold)

    def park(self, pose: Mapping[str, float] | None = None) -> None:
        """Move to ``pose`` (default: the rest pose) at ``park_speed``, reading as it goes, and wait to arrive."""
        self._require_connected("park()")
        rest = pose or self.config.rest_pose
        target = np.array([rest[n] for n in self.joint_names], np.float64) if rest else self._connect_pose
        start = self._positions()
        distance = float(np.max(np.abs(target - start)))
        duration = min(distance / self.config.park_speed, PARK_MAX_S)
        steps = max(1, int(np.ceil(duration / PARK_PERIOD_S)))
        t0 = time.monotonic()
        for k in range(1, steps + 1):
            self._send(start + (target - start) * (k / steps))
            time.sleep(max(0.0, t0 + k * PARK_PERIOD_S - time.monotonic()))
            self._positions()  # keeps the bus watchdog fed
        deadline = time.monotonic() + PARK_SETTLE_S
        while time.monotonic() < deadline and np.max(np.abs(self._positions() - self._target)) > 2.0:
            time.sleep(PARK_PERIOD_S)

    def _close(self) -> None:
        mode = self.config.on_disconnect
        try:
            if mode == "park" and self.bus.torque_on:
                self.park()
        except BusError as e:
            log.warning("%s: parking failed (%s); turning torque off where the arm is", self.name, e)
        finally:
            self.bus.disconnect(disable_torque=mode != "hold")
            self._target = None


class LeaderArm(_Arm):
    """A `Teleop`: the arm a person moves by hand; its joint positions are the follower's action.

    Also a `robolearn.devices.protocols.DrivableTeleop`: before a takeover during deploy, ``drive_to(q)`` servos
    it under torque towards the follower's target ``q`` (at most ``max_relative_target``, else `DRIVE_STEP`, action
    units per call, from where it is), so the person's hand starts where the robot is; ``release()`` turns torque
    off again on every motor that had none before (a Koch leader's gripper spring stays on, at its goal).
    It has no keys (``has_keys``): during deploy the takeover key comes from the terminal or the live view.
    """

    has_keys = False

    def _start(self) -> None:
        self._held_before: set[str] | None = None
        springs = list(self.spec.torque_goals)
        if springs:
            self.bus.enable_torque(springs)
            self.bus.write_goals(dict(self.spec.torque_goals))

    def drive_to(self, target: np.ndarray) -> None:
        """Servo towards ``target`` (an action of ``action_space``) under torque; returns at once."""
        self._require_connected("drive_to()")
        target = check_targets(self.name, target, self.action_space, self.joint_names).astype(np.float64)
        step = self.config.max_relative_target or DRIVE_STEP
        present = self._positions()
        goal = np.clip(np.clip(target, self.action_space.low, self.action_space.high), present - step, present + step)
        goals = dict(zip(self.joint_names, goal.tolist()))
        self.bus.write_goals(goals)  # before torque on: a stale goal register never makes it jump
        if self._held_before is None:
            self._held_before = set(self.bus.torque_on)
            self.bus.enable_torque([n for n in self.joint_names if n not in self._held_before])
            self.bus.write_goals(goals)  # again: a Feetech servo takes its present position as goal at torque on

    def release(self) -> None:
        """Torque off on the motors ``drive_to`` turned on; a spring's goal is restored."""
        self._require_connected("release()")
        if self._held_before is None:
            return
        free = [n for n in self.joint_names if n not in self._held_before]
        self._held_before = None
        if free:
            self.bus.disable_torque(free)
        if self.spec.torque_goals:
            self.bus.write_goals(dict(self.spec.torque_goals))

    def reset(self) -> None:
        """Nothing to forget: a leader's command is where it is."""

    def _to_action(self, q: np.ndarray) -> np.ndarray:
        return np.clip(q, self.action_space.low, self.action_space.high).astype(np.float32)

    def get_action(self, obs: dict[str, np.ndarray]) -> np.ndarray | None:
        self._require_connected("get_action()")
        return self._to_action(self._positions())

    def events(self) -> list[str]:
        self._require_connected("events()")
        return []

    def _close(self) -> None:
        self.bus.disconnect(disable_torque=True)
