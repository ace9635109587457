"""The on-disk layout of a robolearn demonstration store (zarr v3).

```
<store>/
  zarr.json                 root attrs: {"robolearn_store": {"version", "fps", "features", "tasks", "sources", ...}}
  data/<key>                time-major arrays, one row per frame, for every feature key
  timestamps/<key>          float64 capture times (monotonic seconds), one per frame
  meta/episodes/<column>    the per-episode table (length, task_index, success, fps, ...)
  meta/episode_ends         int64 cumulative frame counts: the commit marker, written last
  meta/stats                attrs: per-key statistics (mean, std, min, max, q01, q99)
```

Feature keys follow DESIGN.md: `state`, `images/<camera>`, `depth/<camera>`, `tactile/<sensor>`,
`force`, `action`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from robolearn.errors import UserError

SCHEMA_VERSION = 1
ROOT_ATTR = "robolearn_store"
LOCK_NAME = ".robolearn.lock"

# Per-episode table: column -> (dtype, fill value). `success` is -1 when the task defines none.
EPISODE_COLUMNS: dict[str, tuple[str, float]] = {
    "length": ("int64", 0),
    "task_index": ("int32", -1),
    "source_index": ("int32", -1),
    "success": ("int8", -1),
    "declared_fps": ("float64", 0.0),
    "achieved_fps": ("float64", 0.0),
    "dropped_frames": ("int64", 0),
    "late_frames": ("int64", 0),
    "rate_flagged": ("bool", False),
    "has_actions": ("bool", True),
    "start_time": ("float64", 0.0),
    "seed": ("int64", -1),
}

KEY_PREFIXES = ("images/", "depth/", "tactile/")
ACTION_KEY = "action"  # the action feature; episodes with has_actions false hold placeholders there
PLAIN_KEYS = ("state", "force", ACTION_KEY, "reward")


class StoreError(UserError, RuntimeError):
    """A store cannot be opened, written or read as asked; the message says what and where."""


def check_key(key: str) -> None:
    """Refuse a feature key outside DESIGN.md's vocabulary."""
    if key in PLAIN_KEYS or (key.startswith(KEY_PREFIXES) and len(key.split("/")) == 2 and key.split("/")[1]):
        return
    raise StoreError(
        f"unknown feature key {key!r}: expected one of {', '.join(PLAIN_KEYS)} "
        f"or images/<camera>, depth/<camera>, tactile/<sensor>"
    )


@dataclass(frozen=True)
class Feature:
    """One stream of the store: per-frame shape and dtype, and how it is chunked and compressed."""

    shape: tuple[int, ...]
    dtype: str
    codec: str = "zstd"  # "zstd" (lossless) or "jpeg" (images only)
    quality: int = 90  # JPEG quality when codec == "jpeg"

    @property
    def is_image(self) -> bool:
        return len(self.shape) == 3

    def to_json(self) -> dict:
        d = asdict(self)
        d["shape"] = list(self.shape)
        return d

    @staticmethod
    def from_json(d: dict) -> "Feature":
        return Feature(shape=tuple(d["shape"]), dtype=d["dtype"], codec=d.get("codec", "zstd"),
                       quality=int(d.get("quality", 90)))


def features_from_space(observation_space, action_space, image_codec: str = "zstd",
                        image_quality: int = 90) -> dict[str, Feature]:
    """Derive store features from a gymnasium Dict observation space and a Box action space.

    `image_codec` ("zstd" lossless or "jpeg" at `image_quality`) applies to `images/<camera>` only;
    depth, tactile and low-dim keys stay lossless.
    """
    if image_codec not in ("zstd", "jpeg"):
        raise StoreError(f"unknown image codec {image_codec!r}: use 'zstd' (lossless) or 'jpeg'")
    feats: dict[str, Feature] = {}
    for key, space in observation_space.spaces.items():
        check_key(key)
        codec = image_codec if key.startswith("images/") else "zstd"
        feats[key] = Feature(tuple(int(s) for s in space.shape), np.dtype(space.dtype).name, codec,
                             int(image_quality))
    feats["action"] = Feature(tuple(int(s) for s in action_space.shape), np.dtype(action_space.dtype).name)
    return feats


@dataclass
class EpisodeMeta:
    """What the writer records about one episode besides its frames."""

    task: str = ""
    success: bool | None = None
    declared_fps: float = 0.0
    achieved_fps: float = 0.0
    dropped_frames: int = 0
    late_frames: int = 0
    rate_flagged: bool = False
    has_actions: bool = True
    start_time: float = 0.0
    seed: int = -1
    source: str = ""
    extra: dict = field(default_factory=dict)
