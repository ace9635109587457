"""The emulated servo's shaft: a first-order, speed-limited motion model integrated in closed form.

Position tracking: the shaft approaches the target with time constant ``tau``, but never faster than
``vmax`` (far from the target it moves at ``vmax``, within ``vmax * tau`` it decays exponentially).
Velocity tracking: the velocity approaches the target velocity with time constant ``tau``. Both are exact
for any step length, so a servo that nobody polled for a second lands where a 1 kHz simulation would.
Units are encoder ticks and seconds; the servo classes convert register units.

Example::

    shaft = Shaft(position=0.0)
    shaft.track_position(1000.0, vmax=2000.0, dt=0.1)   # moving at 2000 ticks/s: position 200
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Shaft"]


@dataclass
class Shaft:
    position: float
    """Ticks, multi-turn, in the motor's own direction (before homing offset and drive mode)."""
    velocity: float = 0.0
    """Ticks per second."""
    tau: float = 0.03
    """Time constant of the first-order response (s)."""

    def track_position(self, target: float, vmax: float, dt: float) -> None:
        if dt <= 0:
            return
        err = target - self.position
        s = 1.0 if err >= 0 else -1.0
        band = vmax * self.tau if vmax > 0 else math.inf
        if abs(err) > band:
            t_sat = (abs(err) - band) / vmax
            if dt <= t_sat:
                self.position += s * vmax * dt
                self.velocity = s * vmax
                return
            self.position = target - s * band
            dt -= t_sat
        decay = math.exp(-dt / self.tau)
        err = (target - self.position) * decay
        self.position = target - err
        self.velocity = err / self.tau

    def track_velocity(self, target: float, dt: float) -> None:
        if dt <= 0:
            return
        decay = math.exp(-dt / self.tau)
        dv = self.velocity - target
        self.position += target * dt + dv * self.tau * (1.0 - decay)
        self.velocity = target + dv * decay

    def hold(self) -> None:
        """Stop dead (a blocked joint, or torque off with nothing moving the shaft)."""
        self.velocity = 0.0
