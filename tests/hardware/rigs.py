"""Emulated arms for the bus and arm tests: an emulator process per arm, wired to an arm's spec."""

from __future__ import annotations

from robolearn_hardware.arms import ArmSpec
from robolearn_hardware.bus import MotorCalibration, RetryBudget

MODEL_OF = {"xl330-m288": "xl330-m288", "xl330-m077": "xl330-m077", "xl430-w250": "xl430-w250", "sts3215": "sts3215"}
PATIENT = RetryBudget(retries=200, within_s=3.0)
"""A budget for tests that inject no faults: this 2-core machine is shared by several test runs, and an emulator
process can be descheduled for seconds under load (a string of missed ~34 ms timeouts). Sized by time: 200
retries outlast the 3 s bound, so the 3 s bound is what applies (20 retries ran out after ~0.7 s)."""


def start_emulator(emulator, spec: ArmSpec, positions=None, **kw):
    """An emulator process holding ``spec``'s servos (ids, models, protocol), replies without return delay."""
    ids = [m.id for _, m in spec.motors]
    models = [m.model for _, m in spec.motors]
    return emulator(spec.protocol, models, ids, return_delay_us=0, positions=positions, **kw)


def centred_calibration(spec: ArmSpec, half_range: int = 1024) -> dict[str, MotorCalibration]:
    """Offset 0 and a range of +-half_range ticks around 2048 (a full turn for full-turn joints): an emulated
    servo at 2048 reads 0 degrees / the middle of its range."""
    cal = {}
    for name, m in spec.motors:
        lo, hi = (0, 4095) if name in spec.full_turn else (2048 - half_range, 2048 + half_range)
        cal[name] = MotorCalibration(m.id, int(spec.drive_modes.get(name, 0)), 0, lo, hi)
    return cal


class ScriptedUI:
    """A person at the calibration prompts, moving the emulated shafts through the control channel.

    ``middle``: {servo id: shaft ticks} set when asked for the middle pose; ``sweep``: a list of such dicts,
    one per sample of the range sweep; ``answers``: replies to ``choose`` in order. Every prompt is recorded.
    """

    def __init__(self, emu, middle=None, sweep=(), answers=()):
        self.emu, self.middle, self.sweep, self.answers = emu, middle or {}, list(sweep), list(answers)
        self.waits: list[str] = []
        self.choices: list[tuple[str, dict]] = []
        self.told: list[str] = []
        self._step = 0

    def _move(self, shafts):
        for servo_id, ticks in shafts.items():
            self.emu.command("set_shaft", id=servo_id, ticks=float(ticks))

    def tell(self, message):
        self.told.append(message)

    def wait(self, message):
        self.waits.append(message)
        if "middle" in message:
            self._move(self.middle)

    def choose(self, message, options):
        self.choices.append((message, dict(options)))
        return self.answers.pop(0)

    def sweeping(self, positions):
        if self._step >= len(self.sweep):
            return False
        self._move(self.sweep[self._step])
        self._step += 1
        return True


def sweep_path(travel: dict[int, tuple[float, float, float]], steps: int = 6) -> list[dict[int, float]]:
    """Samples moving each servo {id: (middle, low end, high end)} middle -> low -> high -> middle."""
    path = []
    for a, b in ((0, 1), (1, 2), (2, 0)):
        for k in range(1, steps + 1):
            path.append({i: ends[a] + (ends[b] - ends[a]) * k / steps for i, ends in travel.items()})
    return path
