"""An emulated Robotiq 2F-85 behind the Robotiq URCap's socket protocol (TCP 63352 on the robot).

The protocol is ASCII lines: ``GET VAR\\n`` -> ``VAR value\\n``; ``SET VAR value [VAR value ...]\\n`` -> ``ack\\n``
(``?`` instead of a value when the gripper cannot be read, e.g. during an emergency stop).

Variables (register names of the gripper's Modbus map): ``ACT`` activate (0/1), ``GTO`` go to the requested
position (0/1), ``ATR`` automatic release, ``ARD`` release direction, ``POS`` requested (SET) / actual (GET)
position 0 (open) .. 255 (closed), ``PRE`` the position request echo, ``SPE`` speed and ``FOR`` force 0..255,
``STA`` activation status (0 reset, 1 activating, 3 active), ``OBJ`` object status (0 moving, 1 stopped by
contact while opening, 2 stopped by contact while closing, 3 at the requested position), ``FLT`` fault.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GripperModel", "GripperModelConfig", "VARIABLES"]

VARIABLES = ("ACT", "GTO", "ATR", "ARD", "FOR", "SPE", "POS", "STA", "PRE", "OBJ", "FLT", "MOD")
STROKE_MM = 85.0


@dataclass
class GripperModelConfig:
    activation_s: float = 1.5
    """Time from ACT 1 to STA 3 (a real 2F-85 opens and closes once while activating)."""
    speed_range_mm_s: tuple[float, float] = (20.0, 150.0)
    """Finger speed at SPE 0 and SPE 255."""
    object_position: int | None = None
    """Where closing fingers meet an object (0..255), or None: nothing between the fingers."""


class GripperModel:
    """Registers and finger motion of one 2F-85; ``step(dt)`` moves the fingers, ``line(text)`` answers."""

    def __init__(self, config: GripperModelConfig | None = None):
        self.config = config or GripperModelConfig()
        self.regs = {v: 0 for v in VARIABLES}
        self.position = 0.0
        self._activating = 0.0
        self.estop = False

    def line(self, text: str) -> str:
        words = text.split()
        if not words:
            return ""
        if words[0] == "GET" and len(words) == 2:
            var = words[1]
            if var not in self.regs:
                return f"{var} ?"
            if self.estop:
                return f"{var} ?"
            value = round(self.position) if var == "POS" else self.regs[var]
            return f"{var} {value}"
        if words[0] == "SET" and len(words) >= 3 and len(words) % 2 == 1:
            pairs = list(zip(words[1::2], words[2::2]))
            if any(v not in self.regs for v, _ in pairs):
                return "?"
            try:
                values = [(v, int(x)) for v, x in pairs]
            except ValueError:
                return "?"
            for var, value in values:
                self._set(var, max(0, min(255, value)))
            return "ack"
        return "?"

    def _set(self, var: str, value: int) -> None:
        if var == "ACT":
            if value and not self.regs["ACT"]:
                self.regs["STA"] = 1
                self._activating = self.config.activation_s
            if not value:
                self.regs.update(STA=0, GTO=0, OBJ=0)
            self.regs["ACT"] = value
        elif var == "POS":
            self.regs["PRE"] = value
        else:
            self.regs[var] = value
        if var in ("POS", "GTO") and self.regs["STA"] == 3 and self.regs["GTO"]:
            self.regs["OBJ"] = 0

    def step(self, dt: float) -> None:
        r = self.regs
        if r["STA"] == 1:
            self._activating -= dt
            if self._activating <= 0:
                r["STA"] = 3
                r["OBJ"] = 3
            return
        if r["STA"] != 3 or not r["GTO"] or r["OBJ"] != 0:
            return
        lo, hi = self.config.speed_range_mm_s
        counts_per_s = (lo + (hi - lo) * r["SPE"] / 255) * 255 / STROKE_MM
        goal = float(r["PRE"])
        obj = self.config.object_position
        if obj is not None and goal > obj >= self.position:  # closing onto the object
            goal = float(obj)
        err = goal - self.position
        step = counts_per_s * dt
        if abs(err) <= step:
            self.position = goal
            r["OBJ"] = 3 if goal == r["PRE"] else 2  # 2: the fingers stopped on the object while closing
        else:
            self.position += step if err > 0 else -step

    def state(self) -> dict:
        return {**self.regs, "position": self.position, "object_position": self.config.object_position}
