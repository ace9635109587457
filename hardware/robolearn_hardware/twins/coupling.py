"""`TwinCoupling`: emulated servos whose shafts are a twin's joints.

Servo ``i`` of the bus (in id order) drives joint ``i`` of the twin. On every ``sync(now)`` (the bus calls
it before it serves each request, and every ``idle_period_s`` from its idle tick):

1. every servo runs its own rules up to ``now`` (modes, watchdog, torque, stall) and reports what it drives
   its shaft to do (`emulators.servo_base.ShaftCommand`, ticks);
2. that becomes the joint's `JointCommand` (radians, through `specs.angle`) and the twin steps whole physics
   steps up to ``now`` (at most ``max_catch_up_s`` of them after a stall of this process: the rest is
   skipped, not bursted);
3. each joint's angle and speed go back to its servo's shaft (`specs.ticks`), and the servo computes its
   Present registers from it as it always does: homing offset, drive mode, wrap-around, load.

A servo with a ``blocked`` fault holds its joint. ``move_joint`` / ``move_shaft`` put a joint somewhere by hand
(the control channel's ``set_joint`` / ``set_shaft``): with torque off it stays there (a kinematic twin) or falls from
there under gravity (a dynamic one); with torque on the servo pulls it back to its goal.

Example (what ``python -m robolearn_hardware.emulators.servo ... --twin so101`` does)::

    bus = make_bus("feetech", "sts3215", [1, 2, 3, 4, 5, 6], now=time.monotonic())
    bus.twin = couple("so101", bus.servos, now=time.monotonic())
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from robolearn.errors import InvalidValueError

from ..emulators.servo_base import EmulatedServo
from .model import ArmTwin, JointCommand
from .specs import TICKS_PER_RAD, TWINS, angle, ticks

__all__ = ["TwinCoupling", "couple"]


class TwinCoupling:
    """Servos (one per twin joint, in joint order) whose shafts follow ``twin`` (module docstring)."""

    def __init__(self, twin: ArmTwin, servos: Sequence[EmulatedServo], now: float, max_catch_up_s: float = 0.25,
                 idle_period_s: float = 0.01):
        if len(servos) != len(twin.names):
            raise InvalidValueError(f"the {twin.spec.name} twin has {len(twin.names)} joints "
                                    f"({', '.join(twin.names)}); {len(servos)} servos were given, one per joint")
        self.twin = twin
        self.servos = list(servos)
        self.t = float(now)
        self.max_catch_up_s = max_catch_up_s
        self.idle_period_s = idle_period_s
        """Between requests the twin is brought up to time this often (every request syncs it first)."""
        self.skipped_s = 0.0
        """Time not simulated because this process was not scheduled for longer than ``max_catch_up_s``."""
        for s in self.servos:
            s.twin_driven = True
        self._pull(now)

    def drives(self, servo: object) -> bool:
        return any(s is servo for s in self.servos)

    def tick(self, now: float) -> None:
        if now - self.t >= self.idle_period_s:
            self.sync(now)

    def sync(self, now: float) -> None:
        if now <= self.t:
            return
        for s in self.servos:
            s.advance(now, refresh=False)
        self.twin.commands = [self._joint_command(s) for s in self.servos]
        dt = self.twin.dt
        behind = now - self.t
        if behind > self.max_catch_up_s:
            self.skipped_s += behind - self.max_catch_up_s
            self.t = now - self.max_catch_up_s
        n = int((now - self.t) / dt)
        self.twin.step(n)
        self.t += n * dt
        self._pull(now)

    def move_joint(self, joint: str, rad: float, now: float) -> None:
        """Put ``joint`` at ``rad`` by hand (module docstring)."""
        if joint not in self.twin.names:
            raise KeyError(f"the {self.twin.spec.name} twin has no joint {joint!r}; joints: {', '.join(self.twin.names)}")
        self.sync(now)
        self.twin.set_joint(self.twin.names.index(joint), rad)
        self._pull(now)

    def move_shaft(self, servo: object, ticks_: float, now: float) -> None:
        """Turn ``servo``'s shaft to ``ticks_`` by hand: its joint goes to the matching angle."""
        i = next(i for i, s in enumerate(self.servos) if s is servo)
        self.move_joint(self.twin.names[i], angle(ticks_), now)

    def state(self, now: float) -> dict:
        """The twin's time and joint angles (rad) by name."""
        self.sync(now)
        return {"time": self.twin.time, "joints": dict(zip(self.twin.names, self.twin.qpos.tolist())),
                "skipped_s": self.skipped_s}

    @staticmethod
    def _joint_command(servo: EmulatedServo) -> JointCommand:
        c = servo.command
        if c.target is not None:
            vmax = c.vmax / TICKS_PER_RAD if c.vmax > 0 else math.inf
            return JointCommand(target=angle(c.target), vmax=vmax, blocked=servo.blocked)
        if c.velocity is not None:
            return JointCommand(velocity=c.velocity / TICKS_PER_RAD, blocked=servo.blocked)
        return JointCommand(blocked=servo.blocked)

    def _pull(self, now: float) -> None:
        q, qd = self.twin.qpos, self.twin.qvel
        for s, qi, vi in zip(self.servos, q, qd):
            s.place_shaft(ticks(float(qi)), float(vi) * TICKS_PER_RAD, now)


def couple(name: str, servos: Sequence[EmulatedServo], now: float) -> TwinCoupling:
    """A coupling of ``servos`` (in id order) to a new twin ``name`` (``so101``, ``koch``) without its scene."""
    if name not in TWINS:
        raise InvalidValueError(f"no twin named {name!r}; twins: {', '.join(TWINS)}")
    ordered = sorted(servos, key=lambda s: s.id)
    return TwinCoupling(ArmTwin(TWINS[name]), ordered, now)
