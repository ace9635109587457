"""`FakeTeleop`: a scripted operator, no window and no pygame (the window devices' `ScriptedTeleop`
replays pygame events instead).

Example::

    dev = FakeTeleop(gym.spaces.Box(-1, 1, (2,), np.float32), script=[[0.5, 0], None, [0, 0.5]],
                     events={3: "save"})
    with dev:
        dev.get_action(obs)   # [0.5, 0]; then None (no command: the loop holds), then [0, 0.5], then None ...
        dev.events()          # [] until the 4th get_action call, then ["save"]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import gymnasium as gym
import numpy as np

from robolearn.devices.base import DeviceBase
from robolearn.devices.protocols import EVENTS

__all__ = ["FakeTeleop"]


class FakeTeleop(DeviceBase):
    """A `Teleop` that plays a script.

    Args:
        action_space: the env's action space (default: Box [-1, 1]^2).
        script: one entry per ``get_action`` call, counted over the session: an action (clipped into
            `action_space`) or None (no command); after the script, None.
        events: episode keys by call index: ``{k: "save"}`` is reported by ``events()`` from the k-th
            ``get_action`` call (0-based) on; a list of keys is reported in order.
        name: device name.
    """

    def __init__(self, action_space: gym.spaces.Box | None = None, script: Sequence[Sequence[float] | None] = (),
                 events: Mapping[int, str | Sequence[str]] | None = None, name: str = "fake_teleop") -> None:
        super().__init__(name)
        self.action_space = action_space if action_space is not None else gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.script = [None if a is None else np.asarray(a, dtype=np.float32) for a in script]
        for i, a in enumerate(self.script):
            if a is not None and a.shape != self.action_space.shape:
                raise ValueError(f"FakeTeleop: script entry {i} has shape {a.shape}; expected "
                                 f"{self.action_space.shape} or None.")
        self._schedule: list[tuple[int, str]] = []
        for tick, keys in sorted((events or {}).items()):
            for key in [keys] if isinstance(keys, str) else keys:
                if key not in EVENTS:
                    raise ValueError(f"FakeTeleop: event {key!r} at call {tick}; accepted values: {', '.join(EVENTS)}.")
                self._schedule.append((int(tick), key))
        self.ticks = 0
        self._pending: list[str] = []

    def reset(self) -> None:
        """Nothing to forget: the script runs over the whole session."""

    def get_action(self, obs: dict[str, np.ndarray]) -> np.ndarray | None:
        self._require_connected("get_action()")
        while self._schedule and self._schedule[0][0] <= self.ticks:
            self._pending.append(self._schedule.pop(0)[1])
        entry = self.script[self.ticks] if self.ticks < len(self.script) else None
        self.ticks += 1
        if entry is None:
            return None
        return np.clip(entry, self.action_space.low, self.action_space.high).astype(np.float32)

    def events(self) -> list[str]:
        self._require_connected("events()")
        out, self._pending = self._pending, []
        return out
