"""Teleoperation devices: a person drives an env through a `Teleop`, one action per control tick.

A `Teleop` has the device lifecycle (`connect()` / `disconnect()`, or a `with` block), answers
`get_action(obs)` once per tick (None: no command this tick, the caller holds the robot still) and
reports the operator's episode keys through `events()`: "save", "discard", "rerecord", "quit".

The two devices here need no hardware: both read pygame events from a `TeleopViewer` window, which
shows the current frame scaled up with the recording state and the keys overlaid.

- `KeyboardTeleop`: arrow keys move the target by `step` per tick (WASD too, when `wasd=True`).
- `MouseTeleop`: the pointer over the frame is the target (absolute-target envs such as PushT).

Episode keys (both devices): s / Enter = save, d / Backspace = discard, r = re-record, q / Esc = quit
(closing the window quits too); t = takeover (during `robolearn deploy --teleop`: hand control between the
policy and the device; ignored while recording). With `wasd=True`, s and d move the target, so save and discard are on
Enter and Backspace only.

How a device maps to an env's actions comes from the env's optional `teleop_mapping` dict (keyword
arguments of the devices: `mode`, `step`, `screen_y_down`):
  - mode "delta" (default): the first two action axes get +-step while a key is held; None when idle.
  - mode "absolute": the first two axes are a target position; keys move it, starting from
    `origin(obs)` (the env's `hold_action`: the target that holds the robot where it is); the mouse sets
    it directly.
  - screen_y_down: +action[1] moves down the frame (image coordinates, as in PushT).

Headless runs (tests, CI) use SDL's dummy video driver and synthetic events, e.g. through
`ScriptedTeleop`, which posts a scripted list of key and mouse events into the same pygame queue
(`robolearn.devices.FakeTeleop` scripts actions directly, without pygame).

Modules: `viewer` (the window), `window` (the keyboard and mouse devices), `scripted` (`ScriptedTeleop`,
`load_script`); the `Teleop` protocol itself is in `robolearn.devices.protocols`.

Example::

    with KeyboardTeleop(env.action_space, mode="absolute", origin=env.unwrapped.hold_action) as dev:
        obs, _ = env.reset(seed=0)
        while "quit" not in (events := dev.events()):
            dev.viewer.show(env.render(), ["ep 0  frame 12"], recording=True)
            action = dev.get_action(obs)
            obs, *_ = env.step(env.unwrapped.hold_action() if action is None else action)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from robolearn.devices.protocols import EVENTS, Teleop
from robolearn.devices.teleop.scripted import ScriptedTeleop, load_script
from robolearn.devices.teleop.viewer import KEYS_HELP, TeleopViewer
from robolearn.devices.teleop.window import MODES, KeyboardTeleop, MouseTeleop
from robolearn.errors import InvalidValueError

__all__ = ["EVENTS", "KEYS_HELP", "MODES", "KeyboardTeleop", "MouseTeleop", "ScriptedTeleop", "Teleop", "TeleopViewer",
           "load_script", "make_teleop"]


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
