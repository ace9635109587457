"""The feature vocabulary of robolearn: every module takes its key names from here.

Keys are identical in sim and on hardware (DESIGN.md, Contracts):

- ``state``: proprioception, float32 (Do,)
- ``images/<camera>``: uint8 (H, W, 3); ``depth/<camera>``: float32 (H, W) or (H, W, 1)
- ``tactile/<sensor>``: float32 of any shape, or a uint8 (H, W, 3) tactile image
- ``force``: float32 (6,) wrench
- ``action``: the action actually applied (after clipping and any safety filter), float32 (Da,)
- ``action_commanded``: what the source asked for, recorded when a filter sat between source and env
- ``reward``: float32 scalar per step
- ``timing/<stage>``: float64 per-tick loop timing (monotonic seconds)
- ``task_embedding``: the per-episode language embedding handed to policies (not stored per frame)
"""

from __future__ import annotations

STATE = "state"
ACTION = "action"
ACTION_COMMANDED = "action_commanded"
REWARD = "reward"
FORCE = "force"
TASK_EMBEDDING = "task_embedding"

IMAGES = "images/"
DEPTH = "depth/"
TACTILE = "tactile/"
TIMING = "timing/"

CAMERA_PREFIXES = (IMAGES, DEPTH)
"""Prefixes of per-camera keys (frames rendered as images)."""
NAMED_PREFIXES = (IMAGES, DEPTH, TACTILE, TIMING)
"""Prefixes whose keys carry a name: ``<prefix><name>``."""


def image_key(camera: str) -> str:
    return f"{IMAGES}{camera}"


def depth_key(camera: str) -> str:
    return f"{DEPTH}{camera}"


def tactile_key(sensor: str) -> str:
    return f"{TACTILE}{sensor}"


def timing_key(stage: str) -> str:
    return f"{TIMING}{stage}"
