"""`ScriptedTeleop`: a window device driven by a script of synthetic pygame events (headless tests, smoke runs)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from robolearn.devices.teleop.viewer import _pygame
from robolearn.devices.teleop.window import _WindowTeleop
from robolearn.errors import InvalidValueError, MissingPathError

__all__ = ["ScriptedTeleop", "load_script"]


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
        self.name = device.name  # the same device, driven by a script

    @property
    def action_space(self):
        return self.device.action_space

    @property
    def is_connected(self) -> bool:
        return self.device.is_connected

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
        self.device._require_connected("get_action()")  # before posting into a pygame queue that is not there
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
