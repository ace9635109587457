"""The on-disk layout of a robolearn demonstration store (zarr v3), schema version 3.

```
<store>/
  zarr.json                 root attrs: {"robolearn_store": {"version", "fps", "features", "tasks", "sources",
                            "status_names", "frame_layout", ...}}
  data/<key>                time-major arrays, one row per frame, for every feature key; image keys
                            sharded (frame_layout "sharded": many frames per file, see `store.shards`)
  stage/<key>               image frames waiting for their shard, one file per frame (sharded image keys)
  timestamps/<key>          float64 capture times, one per frame, for every feature key
  meta/episodes/<column>    the per-episode table (EPISODE_COLUMNS: length, task_index, success, status, ...)
  meta/episode_ends         int64 cumulative frame counts: the commit marker, written last
  meta/stats                attrs: per-key statistics (mean, std, min, max, q01, q99)
```

Feature keys follow DESIGN.md and `robolearn.spaces`: `state`, `images/<camera>`, `depth/<camera>`,
`tactile/<sensor>`, `force`, `action`, `reward`, plus two kinds that record how the data was made:

- `action` is the action actually applied (after clipping to the action space and any safety filter),
  as the env reports it in ``info["action"]``. `action_commanded` is what the source (expert, teleop
  device, policy) asked for; a store created for filtered recording (`features_from_space(...,
  commanded=True)`) has it, and then every episode carries it (same shape and dtype as `action`).
- `timing/<stage>`: float64 scalars, one per tick: when a stage of the control loop happened on that tick
  (monotonic seconds; stages such as obs_capture, request, inference_start, inference_end, delivery,
  applied). NaN where the stage did not happen on a tick (no inference that tick) -- the only keys that may
  hold NaN. Declared when the store is created (`features_from_space(..., timing=stages)`). They are not
  model inputs: samplers and statistics leave them out unless asked by name.
- `intervention`: a bool scalar per tick, True where a person had taken over from the policy (`robolearn deploy
  --teleop`: the action came from the teleop device). Declared when the store is created
  (`features_from_space(..., intervention=True)`); a store without it (every store recorded otherwise, and
  every store from before it existed) reads as all False (`robolearn.store.intervention.intervention_mask`).
  Each episode's extra (`EPISODE_EXTRA`) counts its `takeovers` and `intervention_steps`. Not a model input:
  samplers weight or select windows by it (`robolearn.sampling.interventions`).

Timestamps (one rule): `timestamps/<key>` is the capture time of that stream's frame, as the env or
device that produced it reported it in ``info["timestamps"][key]`` -- each stream measured on its own, not
one tick time copied to every key. All stamps of one episode are on the producing env's clock:
``time.monotonic()`` seconds for devices and envs running in real time; for a simulated env, its control
time since reset (steps / control_hz), which is the tick time of a `VirtualClock`, minus the sensor latency
the env declares for that key (`sensor_latency_s`). A key the env does not stamp gets the tick time;
`action` gets its time of application (``info["timestamps"]["action"]``, else the tick time); `timing/*`
get the tick's `action` stamp (their values are times themselves).

Episode table: besides what an episode is (length, task, source, seed, success), each row says how it was
recorded: `status` (`STATUS`: ok, or aborted when recording stopped on a fault such as an unplugged
device -- what was recorded is committed, not lost, and samplers skip it unless asked -- or truncated
when the loop stopped it before its end), and the counters `dropped_frames`, `late_frames` (from the tick
stamps or the caller, whichever is larger), `missed_ticks` (ticks the loop's clock skipped),
`held_ticks` (ticks the loop held the last target because no command came), `retries` (transient
device/transport errors retried). `dropped_frames` counts the frames missing on the worst stream (the
largest per-stream count a caller reports, or what the tick stamps show); per-stream counts are not stored.

Versions: 1 had neither `status` nor the three counters. A version-1 store reads with those columns at
their defaults (`EPISODE_COLUMNS`: status ok, counters 0); a writer that opens one upgrades it in place
(`upgrade_columns`): it adds the missing columns, sized to the committed episodes and holding the
default (the arrays' fill value: no chunk is written), then writes version 2 into the root attrs. A kill
between the two steps leaves a store that reads the same and is upgraded again on the next open. A store
of a newer version than `SCHEMA_VERSION` is refused.

Version 3 adds sharded image arrays (``frame_layout`` "sharded", the default of new stores): committed
frames of a sharded array may still wait in ``stage/<key>`` (`store.shards`), which a reader must know,
so an older robolearn refuses version 3. Stores without ``frame_layout`` keep one file per frame and read
and append as they are (a writer that opens one writes version 3 with the rest of its upgrade);
`robolearn data migrate` rewrites one into shards.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from robolearn.errors import UserError
from robolearn import spaces
from robolearn.spaces import ACTION, ACTION_COMMANDED, INTERVENTION, TIMING

SCHEMA_VERSION = 3
FRAME_LAYOUTS = ("sharded", "files")
"""How image arrays are stored: many frames per shard file, or (schema <= 2) one file per frame."""
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
    # version 2
    "status": ("int8", 0),
    "retries": ("int64", 0),
    "held_ticks": ("int64", 0),
    "missed_ticks": ("int64", 0),
}
V1_COLUMNS = ("length", "task_index", "source_index", "success", "declared_fps", "achieved_fps", "dropped_frames",
              "late_frames", "rate_flagged", "has_actions", "start_time", "seed")
"""The columns a version-1 store has; the others of EPISODE_COLUMNS read as their defaults there."""

STATUS: dict[str, int] = {"ok": 0, "aborted": 1, "truncated": 2}
"""Episode `status` codes (int8), also written to the root attrs as `status_names`:
ok: recorded to its end (the env ended it, or the operator or collector saved it);
aborted: recording stopped on a fault (device unplugged, loop error); what was recorded is committed;
truncated: the loop stopped it early on purpose (a step budget, a stop request) before the task ended."""


def status_code(status: str | int) -> int:
    """The int8 code of a status name (or code); a StoreError names the accepted ones."""
    if isinstance(status, str) and status in STATUS:
        return STATUS[status]
    if isinstance(status, (int, np.integer)) and int(status) in STATUS.values():
        return int(status)
    raise StoreError(f"unknown episode status {status!r}; accepted: {', '.join(STATUS)}")


def episode_columns(version: int) -> tuple[str, ...]:
    """The table columns a store of schema `version` has on disk (the rest read as their defaults)."""
    return V1_COLUMNS if int(version) < 2 else tuple(EPISODE_COLUMNS)


EPISODE_EXTRA = "episode_extra"
"""Root attrs key: {str(episode index): `EpisodeMeta.extra`} for the episodes that kept one (how a robot
recorded them: cameras' pairing rule and frame counters, an abort's reason). Written with the episode's commit,
before ``meta/episode_ends``; an entry at or past the committed count is left over from a cut-off commit and
is replaced by the next one (`Store.episode_extra` reads committed episodes only)."""

ACTION_KEY = ACTION  # the action feature; episodes with has_actions false hold placeholders there


def is_timing_key(key: str) -> bool:
    """`timing/<stage>`: per-tick loop timing, NaN allowed, not a model input."""
    return key.startswith(TIMING)


class StoreError(UserError, RuntimeError):
    """A store cannot be opened, written or read as asked; the message says what and where."""


def check_key(key: str) -> None:
    """Refuse a key outside the vocabulary of per-frame features (`robolearn.spaces.FRAME_FAMILIES`)."""
    try:
        spaces.check_key(key, spaces.FRAME_FAMILIES)
    except spaces.SpecError as e:
        raise StoreError(f"unknown feature key: {e}") from None


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
                        image_quality: int = 90, commanded: bool = False,
                        timing: tuple[str, ...] | list[str] = (), intervention: bool = False) -> dict[str, Feature]:
    """Derive store features from a gymnasium Dict observation space and a Box action space.

    `image_codec` ("zstd" lossless or "jpeg" at `image_quality`) applies to `images/<camera>` only;
    depth, tactile and low-dim keys stay lossless. `commanded` adds `action_commanded` (a store recorded
    through a filter); `timing` declares the `timing/<stage>` keys (float64 scalars per tick); `intervention`
    adds the per-tick takeover mask (bool scalars).
    """
    if image_codec not in ("zstd", "jpeg"):
        raise StoreError(f"unknown image codec {image_codec!r}: use 'zstd' (lossless) or 'jpeg'")
    feats: dict[str, Feature] = {}
    for key, space in observation_space.spaces.items():
        check_key(key)
        codec = image_codec if spaces.is_image_key(key) else "zstd"
        feats[key] = Feature(tuple(int(s) for s in space.shape), np.dtype(space.dtype).name, codec,
                             int(image_quality))
    feats[ACTION] = Feature(tuple(int(s) for s in action_space.shape), np.dtype(action_space.dtype).name)
    if commanded:
        feats[ACTION_COMMANDED] = feats[ACTION]
    for stage in timing:
        key = f"{TIMING}{stage}"
        check_key(key)
        feats[key] = Feature((), "float64")
    if intervention:
        feats[INTERVENTION] = Feature((), "bool")
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
    status: str | int = "ok"  # a name of STATUS (or its code)
    retries: int = 0
    held_ticks: int = 0
    missed_ticks: int = 0
    extra: dict = field(default_factory=dict)
    """JSON values kept with the episode in the root attrs (`EPISODE_EXTRA`); {} keeps nothing."""
