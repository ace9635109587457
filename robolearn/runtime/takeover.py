"""Human takeover during deploy: a key hands control from the policy to a teleop device and back, without a jump.

`TakeoverSource` is the deploy loop's action source when a device is attached (``robolearn deploy --teleop``).
It wraps the policy's `ChunkedSource` and runs one state machine per tick::

    policy    the policy drives; the device is read every tick anyway (its keys and pose stay current).
              The key -> aligning (the robot holds from this tick on).
    aligning  the robot holds its target (``target()``: the env's hold, the last target sent). A device that
              moves itself (a leader arm with torque, `DrivableTeleop`) is driven to that target; any other
              device waits until its command agrees with the target within ``tolerance`` on every axis (the
              error is in ``status()``, the ticks waited are counted). A relative device (SpaceMouse, keyboard)
              re-anchors at the robot's target on ``reset()``, so its first command agrees. Agreed -> human:
              that tick runs the device's command. The key again cancels -> policy.
    human     the device drives (no command from it: the robot holds); every tick is marked ``intervention``
              (recorded per frame). The key -> policy: the chunk scheduler restarts from the current
              observation (`ChunkScheduler.restart`: nothing planned before the takeover is executed, results
              still in flight are dropped as stale) and the watchdog counts from now.

Every action, the device's too, passes the deploy loop's `SafetyFilter` (the `ControlLoop` filters whatever the
source returns). With ``align=False`` (delta-action envs: a command is a displacement, it cannot jump) the
handover is immediate.

The key is one of the device's episode keys (`robolearn.devices.protocols.TAKEOVER` by default: ``t`` in the
keyboard window; ``--takeover-key save`` lets a device with a single button use it); ``poll_keys`` adds keys from
elsewhere (a live view's button). Other episode keys of the device are not used by deploy.

Example::

    takeover = Takeover(device=leader, tolerance=0.05)
    deploy = DeployLoop(env, policy, clock, backend, scheduler, safety, takeover=takeover)
    result = deploy.run_episode(seed=0)
    result.takeover        # {"takeovers": 1, "intervention_steps": 40, "wait_ticks": 3, ...}
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from robolearn.devices.protocols import TAKEOVER, DrivableTeleop
from robolearn.errors import InvalidValueError

__all__ = ["STATES", "Takeover", "TakeoverSource"]

STATES = ("policy", "aligning", "human")
_NS = 1_000_000_000


@dataclass(frozen=True)
class Takeover:
    """How a person takes over during deploy (module doc)."""

    device: Any
    """The teleop device (`robolearn.devices.protocols.Teleop`), connected by the caller."""
    tolerance: float = 0.05
    """Handover agreement per action axis, as a fraction of that axis's range (high - low)."""
    align: bool = True
    """Wait for (or drive) the device to agree with the robot before it drives; False for delta actions."""
    key: str = TAKEOVER
    """The device's episode key that toggles control (one of `robolearn.devices.protocols.EVENTS`)."""
    poll_keys: Callable[[], list[str]] | None = None
    """More keys pressed since the last call (a live view's buttons); ``key`` among them toggles too."""

    def __post_init__(self) -> None:
        from robolearn.devices.protocols import EVENTS

        if not 0 < self.tolerance <= 1:
            raise InvalidValueError(f"takeover tolerance must be in (0, 1] (a fraction of each action axis's range), "
                                    f"got {self.tolerance}")
        if self.key not in EVENTS:
            raise InvalidValueError(f"--takeover-key {self.key!r} is not an episode key; accepted: {', '.join(EVENTS)}")


class TakeoverSource:
    """The deploy loop's `ActionSource` with a person able to take over (module doc).

    Args:
        policy: the policy's source (`robolearn.runtime.deploy.ChunkedSource`: ``act``, ``reset``, ``history``,
            ``scheduler``, ``watchdog``, ``timing``).
        takeover: the device and settings.
        action_space: the env's Box action space (the tolerance is relative to its ranges).
        target: the robot's current target (Da,): what it holds now (``hold_action(env)``).
        time_ns: the loop's clock in integer ns (``timing["applied"]`` of the device's ticks).
    """

    def __init__(self, policy: Any, takeover: Takeover, action_space: Any, target: Callable[[], np.ndarray],
                 time_ns: Callable[[], int]) -> None:
        self.policy, self.cfg, self.device = policy, takeover, takeover.device
        self.target, self.time_ns = target, time_ns
        low, high = (np.asarray(b, dtype=np.float64) for b in (action_space.low, action_space.high))
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
            raise InvalidValueError(f"takeover needs an action space with finite bounds (the tolerance is a fraction "
                                    f"of each range), got {action_space}")
        self.tol = takeover.tolerance * (high - low)
        self.drivable = isinstance(self.device, DrivableTeleop)
        self.state = "policy"
        self.intervention = False
        """Whether the last ``act`` gave the device control (the tick is marked ``intervention``)."""
        self._own_timing: dict[str, float] | None = None
        self._reset_counts()

    def _reset_counts(self) -> None:
        self.n_takeovers = self.n_handbacks = self.n_cancelled = 0
        self.n_intervention_steps = self.n_wait_ticks = 0
        self.error = float("nan")
        """While aligning: the largest |device - target| over the axes, in tolerances (<= 1 agrees)."""
        self.handover_errors: list[float] = []
        """Per takeover: that error at the tick the device took over (<= 1)."""

    # -- ActionSource --------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> None:
        if self.state == "aligning" and self.drivable:
            self.device.release()
        self.state, self.intervention, self._own_timing = "policy", False, None
        self._reset_counts()
        self.device.reset()
        self.policy.reset(seed)

    def act(self, obs: dict[str, np.ndarray], tick: int) -> np.ndarray | None:
        command = self.device.get_action(obs)  # every tick: the device's pose and keys stay current
        keys = list(self.device.events())
        if self.cfg.poll_keys is not None:
            keys += list(self.cfg.poll_keys())
        if keys.count(self.cfg.key) % 2:
            return self._toggle(obs, tick, command)
        if self.state == "policy":
            return self._policy(obs, tick)
        self.policy.history.add(obs)  # the policy's To observations stay current for the handback
        if self.state == "aligning":
            return self._align(command)
        return self._human(command)

    @property
    def timing(self) -> dict[str, float]:
        """The last tick's stages: the policy's, or only ``applied`` for a tick the policy did not plan."""
        return self.policy.timing if self._own_timing is None else self._own_timing

    def stats(self) -> dict[str, float]:
        """Per episode: takeovers, handbacks, cancelled (aligning given up), intervention_steps, wait_ticks
        (ticks held while aligning), handover_error_max (in tolerances, <= 1), state at the end."""
        return {"takeovers": self.n_takeovers, "handbacks": self.n_handbacks, "cancelled": self.n_cancelled,
                "intervention_steps": self.n_intervention_steps, "wait_ticks": self.n_wait_ticks,
                "handover_error_max": max(self.handover_errors, default=0.0), "state": self.state}

    def status(self) -> dict[str, Any]:
        """What an operator sees: the state, and while aligning the error in tolerances and the ticks waited."""
        return {"state": self.state, "error": self.error, "wait_ticks": self.n_wait_ticks}

    # -- states --------------------------------------------------------------------------------------
    def _own(self, action: np.ndarray | None, human: bool) -> np.ndarray | None:
        self._own_timing = {"applied": self.time_ns() / _NS}
        self.intervention = human
        if human:
            self.n_intervention_steps += 1
        return None if action is None else np.asarray(action, dtype=np.float32)

    def _policy(self, obs: dict[str, np.ndarray], tick: int) -> np.ndarray | None:
        self._own_timing, self.intervention = None, False
        return self.policy.act(obs, tick)

    def _toggle(self, obs: dict[str, np.ndarray], tick: int, command: np.ndarray | None) -> np.ndarray | None:
        if self.state == "policy":
            self.device.reset()  # a relative device re-anchors at the robot's target
            if not self.cfg.align:
                self.state = "human"
                self.n_takeovers += 1
                self.handover_errors.append(0.0)
                self.policy.history.add(obs)
                return self._own(command, True)
            self.state, self.error = "aligning", float("nan")
            if self.drivable:
                self.device.drive_to(self.target())
            self.policy.history.add(obs)
            self.n_wait_ticks += 1
            return self._own(None, False)  # hold from this tick: the robot stops where the person takes over
        if self.state == "aligning":
            self.n_cancelled += 1
            if self.drivable:
                self.device.release()
        else:
            self.n_handbacks += 1
        self.state = "policy"
        self.policy.scheduler.restart()  # nothing planned before the takeover runs; plan from this observation
        self.policy.watchdog.feed()  # the policy's silence while the person drove is not a stall
        return self._policy(obs, tick)

    def _align(self, command: np.ndarray | None) -> np.ndarray | None:
        target = np.asarray(self.target(), dtype=np.float64)
        if self.drivable:
            self.device.drive_to(target)
        if command is not None:
            self.error = float(np.max(np.abs(np.asarray(command, dtype=np.float64) - target) / self.tol))
            if self.error <= 1.0:
                if self.drivable:
                    self.device.release()
                self.state = "human"
                self.n_takeovers += 1
                self.handover_errors.append(self.error)
                return self._own(command, True)
        self.n_wait_ticks += 1
        return self._own(None, False)

    def _human(self, command: np.ndarray | None) -> np.ndarray | None:
        return self._own(command, True)
