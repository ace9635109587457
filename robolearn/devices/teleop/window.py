"""The window devices: `KeyboardTeleop` and `MouseTeleop` read pygame events from a `TeleopViewer`.

See `robolearn.devices.teleop` for the key map and how `teleop_mapping` maps a device to an env's actions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from robolearn.devices.base import DeviceBase
from robolearn.devices.teleop.viewer import TeleopViewer, _pygame
from robolearn.errors import InvalidValueError

__all__ = ["MODES", "KeyboardTeleop", "MouseTeleop"]

MODES = ("delta", "absolute")


class _WindowTeleop(DeviceBase):
    """What both pygame devices share: the viewer's lifecycle, its event queue and the episode keys."""

    def __init__(self, action_space: gym.spaces.Box, mode: str = "delta", step: float | None = None,
                 screen_y_down: bool = False, origin: Callable[[dict], np.ndarray] | None = None,
                 wasd: bool = False, viewer: TeleopViewer | None = None) -> None:
        super().__init__(self.name)
        if not (isinstance(action_space, gym.spaces.Box) and len(action_space.shape) == 1
                and action_space.shape[0] >= 2):
            raise InvalidValueError(f"teleop needs a 1-D Box action space with at least 2 axes, got {action_space}.")
        if mode not in MODES:
            raise InvalidValueError(f"teleop mode={mode!r} is not supported; accepted values: {', '.join(MODES)}.")
        self.action_space = action_space
        self.mode = mode
        span = (action_space.high[:2] - action_space.low[:2]).astype(np.float64)
        # Default step: 2% of the range per tick for a target, full scale for a displacement.
        self.step = float(step) if step is not None else float(span.min()) * (0.02 if mode == "absolute" else 0.5)
        self.y_sign = -1.0 if screen_y_down else 1.0  # the "up" key moves up the frame
        self.origin = origin
        self.wasd = wasd
        self.viewer = viewer or TeleopViewer()
        self._pending: list[str] = []

    # ---- lifecycle (DeviceBase): the window opens on connect --------------------------------------
    def _open(self) -> None:
        self.viewer.open()

    def _close(self) -> None:
        self.viewer.close()

    def events(self) -> list[str]:
        self._poll()
        out, self._pending = self._pending, []
        return out

    # ---- shared event handling -------------------------------------------------------------------
    def _poll(self) -> None:
        pg = _pygame()
        for event in self.viewer.pump():
            if event.type == pg.QUIT:
                self._pending.append("quit")
            elif event.type == pg.KEYDOWN and (name := self._episode_key(event.key)):
                self._pending.append(name)
            else:
                self._handle(event)

    def _episode_key(self, key: int) -> str | None:
        pg = _pygame()
        table = {pg.K_RETURN: "save", pg.K_KP_ENTER: "save", pg.K_BACKSPACE: "discard", pg.K_r: "rerecord",
                 pg.K_q: "quit", pg.K_ESCAPE: "quit", pg.K_t: "takeover"}
        if not self.wasd:
            table.update({pg.K_s: "save", pg.K_d: "discard"})
        return table.get(key)

    def _handle(self, event: Any) -> None:
        """Device-specific events (movement keys, mouse)."""

    def _base(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """The action before this device's command: the origin (the robot holding still) or zeros."""
        if self.origin is not None:
            return np.asarray(self.origin(obs), dtype=np.float64).copy()
        return np.clip(np.zeros(self.action_space.shape), self.action_space.low, self.action_space.high)

    def _clip(self, action: np.ndarray) -> np.ndarray:
        return np.clip(action, self.action_space.low, self.action_space.high).astype(np.float32)


class KeyboardTeleop(_WindowTeleop):
    """Arrow keys (and WASD with `wasd=True`) move the target by `step` action units per tick.

    A key that goes down and up between two ticks still moves the target once. Other args: see the
    package docstring (`mode`, `screen_y_down`, `origin`) and `TeleopViewer`.
    """

    name = "keyboard"

    def __init__(self, action_space: gym.spaces.Box, **kwargs: Any) -> None:
        super().__init__(action_space, **kwargs)
        self._held: set[int] = set()
        self._tapped: set[int] = set()
        self._target: np.ndarray | None = None

    def _moves(self) -> dict[int, tuple[float, float]]:
        pg = _pygame()
        moves = {pg.K_RIGHT: (1.0, 0.0), pg.K_LEFT: (-1.0, 0.0), pg.K_UP: (0.0, 1.0), pg.K_DOWN: (0.0, -1.0)}
        if self.wasd:
            moves.update({pg.K_d: (1.0, 0.0), pg.K_a: (-1.0, 0.0), pg.K_w: (0.0, 1.0), pg.K_s: (0.0, -1.0)})
        return moves

    def _handle(self, event: Any) -> None:
        pg = _pygame()
        if event.type == pg.KEYDOWN and event.key in self._moves():
            self._held.add(event.key)
            self._tapped.add(event.key)
        elif event.type == pg.KEYUP:
            self._held.discard(event.key)

    def reset(self) -> None:
        self._target = None
        self._tapped.clear()

    def get_action(self, obs: dict[str, np.ndarray]) -> np.ndarray | None:
        self._require_connected("get_action()")
        self._poll()
        moves = self._moves()
        direction = np.zeros(2)
        for key in self._held | self._tapped:
            direction += moves[key]
        self._tapped.clear()
        direction[1] *= self.y_sign
        pressed = bool(np.any(direction))
        if self.mode == "delta":
            if not pressed:
                return None
            action = self._base(obs)
            action[:2] += self.step * direction
            return self._clip(action)
        if self._target is None:
            if not pressed:
                return None  # untouched this episode: the caller holds the robot where it is
            self._target = self._base(obs)
        self._target[:2] += self.step * direction
        self._target = self._clip(self._target).astype(np.float64)
        return self._clip(self._target)


class MouseTeleop(_WindowTeleop):
    """The pointer over the frame sets the target of an absolute-target env (e.g. PushT).

    Args:
        follow: "button" drives only while the left button is held (release to let go), "always" drives
            whenever the pointer is over the window.
        Other args: see the package docstring; `mode` must be "absolute".
    """

    name = "mouse"

    def __init__(self, action_space: gym.spaces.Box, follow: str = "button", **kwargs: Any) -> None:
        super().__init__(action_space, **kwargs)
        if self.mode != "absolute":
            raise InvalidValueError("the mouse drives absolute-target envs only (teleop_mapping mode 'absolute', "
                             "e.g. robolearn/pusht); use the keyboard for this env.")
        if follow not in ("button", "always"):
            raise InvalidValueError(f"follow={follow!r} is not supported; accepted values: 'button', 'always'.")
        self.follow = follow
        self._pos: tuple[int, int] | None = None
        self._pressed = False

    def _handle(self, event: Any) -> None:
        pg = _pygame()
        if event.type == pg.MOUSEMOTION:
            self._pos = tuple(event.pos)
        elif event.type in (pg.MOUSEBUTTONDOWN, pg.MOUSEBUTTONUP) and event.button == 1:
            self._pos = tuple(event.pos)
            self._pressed = event.type == pg.MOUSEBUTTONDOWN
        elif event.type == getattr(pg, "WINDOWLEAVE", -1):
            self._pos = None

    def reset(self) -> None:
        self._pressed = False  # a new episode starts with the robot holding still until the operator grabs it

    def get_action(self, obs: dict[str, np.ndarray]) -> np.ndarray | None:
        self._require_connected("get_action()")
        self._poll()
        if self._pos is None or (self.follow == "button" and not self._pressed):
            return None
        unit = self.viewer.to_unit(self._pos)
        if unit is None:
            return None
        low, high = self.action_space.low[:2].astype(np.float64), self.action_space.high[:2].astype(np.float64)
        v = unit[1] if self.y_sign < 0 else 1.0 - unit[1]
        action = self._base(obs)
        action[:2] = low + np.array([unit[0], v]) * (high - low)
        return self._clip(action)
