"""Teleoperation devices: a person drives an env through a `Teleop`, one action per control tick.

A `Teleop` has the device lifecycle (`connect()` / `disconnect()`, or a `with` block), answers
`get_action(obs)` once per tick (None: no command this tick, the caller holds the robot still) and
reports the operator's episode keys through `events()`: "save", "discard", "rerecord", "quit".

The two devices here need no hardware: both read pygame events from a `TeleopViewer` window, which
shows the current frame scaled up with the recording state and the keys overlaid.

- `KeyboardTeleop`: arrow keys move the target by `step` per tick (WASD too, when `wasd=True`).
- `MouseTeleop`: the pointer over the frame is the target (absolute-target envs such as PushT).

Episode keys (both devices): s / Enter = save, d / Backspace = discard, r = re-record, q / Esc = quit
(closing the window quits too). With `wasd=True`, s and d move the target, so save and discard are on
Enter and Backspace only.

How a device maps to an env's actions comes from the env's optional `teleop_mapping` dict (keyword
arguments of the devices: `mode`, `step`, `screen_y_down`):
  - mode "delta" (default): the first two action axes get +-step while a key is held; None when idle.
  - mode "absolute": the first two axes are a target position; keys move it, starting from
    `origin(obs)` (the env's `hold_action`: where the robot is now); the mouse sets it directly.
  - screen_y_down: +action[1] moves down the frame (image coordinates, as in PushT).

Headless runs (tests, CI) use SDL's dummy video driver and synthetic events, e.g. through
`ScriptedTeleop`, which posts a scripted list of key and mouse events into the same pygame queue.

Example::

    with KeyboardTeleop(env.action_space, mode="absolute", origin=env.unwrapped.hold_action) as dev:
        obs, _ = env.reset(seed=0)
        while "quit" not in (events := dev.events()):
            dev.viewer.show(env.render(), ["ep 0  frame 12"], recording=True)
            action = dev.get_action(obs)
            obs, *_ = env.step(env.unwrapped.hold_action(obs) if action is None else action)
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np

from robolearn.errors import CannotCompleteError, InvalidValueError, MissingExtraError, MissingPathError

__all__ = ["EVENTS", "KeyboardTeleop", "MouseTeleop", "ScriptedTeleop", "Teleop", "TeleopViewer", "load_script",
           "make_teleop"]

EVENTS = ("save", "discard", "rerecord", "quit")
KEYS_HELP = "s/Enter save   d/Backspace discard   r re-record   q/Esc quit"
MODES = ("delta", "absolute")


@runtime_checkable
class Teleop(Protocol):
    """A device a person drives the robot with, read once per control tick."""

    def connect(self) -> None:
        """Open the device (window, USB, ...); idempotent."""

    def disconnect(self) -> None:
        """Release the device; idempotent."""

    def __enter__(self) -> Teleop: ...

    def __exit__(self, *exc: object) -> None: ...

    def reset(self) -> None:
        """A new episode starts: forget the absolute target so it restarts from where the robot is."""

    def get_action(self, obs: dict[str, np.ndarray]) -> np.ndarray | None:
        """The action (Da,) float32 for this tick, or None when the operator gives no command."""

    def events(self) -> list[str]:
        """Episode keys pressed since the last call, oldest first, each one of `EVENTS`."""


def _pygame() -> Any:
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    try:
        import pygame
    except ImportError as e:
        raise MissingExtraError(f"the keyboard and mouse teleop devices need pygame ({e}); install it with "
                          "`pip install pygame`.") from e
    return pygame


class TeleopViewer:
    """A pygame window: the current frame scaled up, the recording state and the episode keys on top.

    Args:
        size: window (width, height) in px; frames are scaled to fill it.
        title: window caption.
    """

    def __init__(self, size: Sequence[int] = (512, 512), title: str = "robolearn teleop") -> None:
        self.size = (int(size[0]), int(size[1]))
        self.title = title
        self._screen = None
        self._font = None

    @property
    def is_open(self) -> bool:
        return self._screen is not None

    def open(self) -> None:
        if self._screen is not None:
            return
        pg = _pygame()
        pg.display.init()
        pg.font.init()
        try:
            self._screen = pg.display.set_mode(self.size)
        except pg.error as e:
            raise CannotCompleteError(f"cannot open the teleop window ({e}); run where a display is available, or set "
                               "SDL_VIDEODRIVER=dummy for scripted runs.") from e
        if pg.display.get_driver() in ("offscreen", "dummy") and not os.environ.get("SDL_VIDEODRIVER"):
            # SDL fell back to an invisible window by itself: nobody could see the frame or press a key.
            pg.display.quit()
            self._screen = None
            raise CannotCompleteError("cannot open the teleop window: no display found; run where a display is "
                               "available, or set SDL_VIDEODRIVER=dummy for scripted runs.")
        pg.display.set_caption(self.title)
        self._font = pg.font.Font(None, 22)

    def close(self) -> None:
        if self._screen is None:
            return
        pg = _pygame()
        self._screen = self._font = None
        pg.display.quit()

    def pump(self) -> list[Any]:
        """Every pygame event since the last call (the window stays responsive only while this is called)."""
        if self._screen is None:
            return []
        return _pygame().event.get()

    def to_unit(self, pos: Sequence[float]) -> tuple[float, float] | None:
        """Window px -> (u, v) in [0, 1] across the frame (u right, v down); None outside the window."""
        u, v = pos[0] / max(self.size[0] - 1, 1), pos[1] / max(self.size[1] - 1, 1)
        return (u, v) if 0.0 <= u <= 1.0 and 0.0 <= v <= 1.0 else None

    def to_window(self, unit: Sequence[float]) -> tuple[int, int]:
        """(u, v) in [0, 1] -> window px (inverse of `to_unit`)."""
        return round(unit[0] * (self.size[0] - 1)), round(unit[1] * (self.size[1] - 1))

    def show(self, frame: np.ndarray | None, lines: Sequence[str] = (), recording: bool = False) -> None:
        """Draw `frame` (H, W, 3) uint8 scaled to the window, `lines` top left, a red "REC" when recording."""
        if self._screen is None:
            return
        pg = _pygame()
        self._screen.fill((0, 0, 0))
        if frame is not None:
            surface = pg.surfarray.make_surface(np.ascontiguousarray(np.asarray(frame)[..., :3].swapaxes(0, 1)))
            self._screen.blit(pg.transform.scale(surface, self.size), (0, 0))
        y = 6
        for line in [*lines, KEYS_HELP]:
            text = self._font.render(line, True, (255, 255, 255), (0, 0, 0))
            self._screen.blit(text, (6, y) if line != KEYS_HELP else (6, self.size[1] - text.get_height() - 6))
            y += text.get_height() + 2
        if recording:
            rec = self._font.render("REC", True, (255, 40, 40), (0, 0, 0))
            x = self.size[0] - rec.get_width() - 8
            pg.draw.circle(self._screen, (255, 40, 40), (x - 10, 6 + rec.get_height() // 2), 6)
            self._screen.blit(rec, (x, 6))
        pg.display.flip()


class _WindowTeleop:
    """What both pygame devices share: the viewer's lifecycle, its event queue and the episode keys."""

    def __init__(self, action_space: gym.spaces.Box, mode: str = "delta", step: float | None = None,
                 screen_y_down: bool = False, origin: Callable[[dict], np.ndarray] | None = None,
                 wasd: bool = False, viewer: TeleopViewer | None = None) -> None:
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
        self._connected = False

    # ---- lifecycle -------------------------------------------------------------------------------
    def connect(self) -> None:
        self.viewer.open()
        self._connected = True

    def disconnect(self) -> None:
        self.viewer.close()
        self._connected = False

    def __enter__(self):
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    @property
    def is_connected(self) -> bool:
        return self._connected

    def events(self) -> list[str]:
        self._poll()
        out, self._pending = self._pending, []
        return out

    # ---- shared event handling -------------------------------------------------------------------
    def _require_connected(self) -> None:
        if not self._connected:
            raise RuntimeError(f"{type(self).__name__} is not connected; call connect() or use it in a with block.")

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
                 pg.K_q: "quit", pg.K_ESCAPE: "quit"}
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
    module docstring (`mode`, `screen_y_down`, `origin`) and `TeleopViewer`.
    """

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
        self._require_connected()
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
        Other args: see the module docstring; `mode` must be "absolute".
    """

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
        self._require_connected()
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


class ScriptedTeleop:
    """Replays a script of synthetic pygame events into a device: headless tests and CLI smoke runs.

    The script is a list of entries, each applied just before the `tick`-th `get_action` call
    (0-based, counted over the whole session; the tick an episode key lands on is not stepped):
        {"tick": 3, "key": "right", "do": "down" | "up" | "press"}   pygame key name; press = down + up
        {"tick": 5, "mouse": [u, v], "button": true}                 pointer at (u, v) in [0, 1] of the frame
                                                                       (u right, v down); button optional
        {"tick": 9, "close": true}                                   the window's close button
    `idle_ticks` ticks after its last entry, a script posts a window close ("quit"), so a script that
    forgets to quit cannot hang a test.
    """

    def __init__(self, device: _WindowTeleop, script: Sequence[dict[str, Any]], idle_ticks: int = 1) -> None:
        self.device = device
        self.script = sorted((dict(e) for e in script), key=lambda e: int(e["tick"]))
        self.viewer = device.viewer
        self.ticks = 0
        self._last_tick = max((int(e["tick"]) for e in self.script), default=-1)
        self._quit_posted = False
        self.idle_ticks = int(idle_ticks)

    def connect(self) -> None:
        self.device.connect()

    def disconnect(self) -> None:
        self.device.disconnect()

    def __enter__(self) -> ScriptedTeleop:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    def reset(self) -> None:
        self.device.reset()

    def events(self) -> list[str]:
        return self.device.events()

    def get_action(self, obs: dict[str, np.ndarray]) -> np.ndarray | None:
        pg = _pygame()
        while self.script and int(self.script[0]["tick"]) <= self.ticks:
            self._post(pg, self.script.pop(0))
        if not self.script and self.ticks > self._last_tick + self.idle_ticks and not self._quit_posted:
            pg.event.post(pg.event.Event(pg.QUIT))
            self._quit_posted = True
        self.ticks += 1
        return self.device.get_action(obs)

    def _post(self, pg: Any, entry: dict[str, Any]) -> None:
        if "key" in entry:
            try:
                key = pg.key.key_code(str(entry["key"]))
            except ValueError:
                raise InvalidValueError(f"teleop script: unknown key {entry['key']!r} at tick {entry['tick']}; "
                                 "expected a pygame key name such as 'right', 's', 'return', 'escape'.") from None
            do = entry.get("do", "press")
            if do not in ("down", "up", "press"):
                raise InvalidValueError(f"teleop script: do={do!r} at tick {entry['tick']}; expected down, up or press.")
            if do in ("down", "press"):
                pg.event.post(pg.event.Event(pg.KEYDOWN, key=key, mod=0, unicode="", scancode=0))
            if do in ("up", "press"):
                pg.event.post(pg.event.Event(pg.KEYUP, key=key, mod=0, unicode="", scancode=0))
        elif "mouse" in entry:
            pos = self.viewer.to_window(entry["mouse"])
            pg.event.post(pg.event.Event(pg.MOUSEMOTION, pos=pos, rel=(0, 0), buttons=(0, 0, 0)))
            if "button" in entry:
                kind = pg.MOUSEBUTTONDOWN if entry["button"] else pg.MOUSEBUTTONUP
                pg.event.post(pg.event.Event(kind, pos=pos, button=1))
        elif entry.get("close"):
            pg.event.post(pg.event.Event(pg.QUIT))
        else:
            raise InvalidValueError(f"teleop script: entry {entry} has none of 'key', 'mouse', 'close'.")


def load_script(path: str | Path) -> tuple[str, list[dict[str, Any]], int]:
    """Read a teleop script file: (device, events, idle_ticks) (see `ScriptedTeleop`).

    The file: {"device": "keyboard" | "mouse", "events": [...], "idle_ticks": 1}; device and idle_ticks
    are optional.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingPathError(f"teleop script {path} does not exist.")
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise InvalidValueError(f"teleop script {path} is not valid JSON: {e}.") from None
    if not (isinstance(doc, dict) and isinstance(doc.get("events"), list)):
        raise InvalidValueError(f"teleop script {path} must be a JSON object with an 'events' list.")
    for entry in doc["events"]:
        if not (isinstance(entry, dict) and isinstance(entry.get("tick"), int)):
            raise InvalidValueError(f"teleop script {path}: entry {entry!r} needs an integer 'tick'.")
    idle = doc.get("idle_ticks", 1)
    if not (isinstance(idle, int) and idle >= 0):
        raise InvalidValueError(f"teleop script {path}: idle_ticks={idle!r}; expected an integer >= 0.")
    return str(doc.get("device", "keyboard")), doc["events"], idle


def make_teleop(spec: str, action_space: gym.spaces.Box, mapping: dict[str, Any] | None = None,
                origin: Callable[[dict], np.ndarray] | None = None, viewer: TeleopViewer | None = None) -> Any:
    """A device from its name: "keyboard", "mouse" or "scripted:<script.json>" (see `load_script`).

    `mapping` is the env's `teleop_mapping` (mode, step, screen_y_down); `origin` its `hold_action`.
    """
    kwargs = {**(mapping or {}), "origin": origin, "viewer": viewer}
    kind, script, idle = spec, None, 1
    if spec.startswith("scripted:"):
        kind, script, idle = load_script(spec.split(":", 1)[1])
    devices = {"keyboard": KeyboardTeleop, "mouse": MouseTeleop}
    if kind not in devices:
        raise InvalidValueError(f"unknown teleop device {spec!r}; accepted values: keyboard, mouse, scripted:<script.json>.")
    device = devices[kind](action_space, **kwargs)
    return ScriptedTeleop(device, script, idle) if script is not None else device
