"""The feature vocabulary of robolearn: every module takes its key names and their rules from here.

Keys are identical in sim and on hardware (DESIGN.md, Contracts). Each key belongs to one family,
and each family has one rule (`FAMILY_RULES`):

- ``state``: proprioception, float32 (Do,)
- ``images/<camera>``: uint8 (H, W, 3) with bounds [0, 255]; ``depth/<camera>``: float32 (H, W) or (H, W, 1)
- ``tactile/<sensor>``: float32 of any shape, or a uint8 (H, W, 3) tactile image
- ``force``: float32 (6,) wrench
- ``action``: the action actually applied (after clipping and any safety filter), float32 (Da,), finite bounds
- ``action_commanded``: what the source asked for, recorded when a filter sat between source and env;
  the same rule as ``action``
- ``reward``: a float scalar per step (shape () or (1,))
- ``timing/<stage>``: float64 scalar per tick: loop timing (monotonic seconds); NaN where the stage did not
  happen on a tick (the only family that may hold NaN)
- ``task_embedding``: the per-episode language embedding handed to policies, float32 (D,) (not stored per frame)

Names (``<camera>``, ``<sensor>``, ``<stage>``) are letters, digits, ``_``, ``-`` and ``.``: a name is a
path segment in a store and a URL.

A `Spec` declares one feature (key, shape, dtype, bounds) and checks values at a boundary, like
dm_env's ``specs.Array``::

    from robolearn.spaces import Spec, specs_from_spaces

    specs = specs_from_spaces(env.observation_space, env.action_space)  # {"state": Spec(...), ..., "action": ...}
    specs["state"].validate(obs["state"])      # raises SpecError naming the key, else returns the array
    a = specs["action"].sample(np.random.default_rng(0))                # a valid (Da,) float32 action
    assert Spec.from_json(specs["action"].to_json()) == specs["action"]
    space = specs["action"].to_space()         # gymnasium.spaces.Box again
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from typing import Any, Union

import numpy as np

STATE = "state"
ACTION = "action"
ACTION_COMMANDED = "action_commanded"
INTERVENTION = "intervention"
"""Per frame, bool: a person had taken over from the policy (`robolearn deploy --teleop`); see `robolearn.store.layout`."""
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


# Keys that are not features: derived arrays a store may cache, and the sampler's future frames.
LATENTS = "latents/"
"""``latents/<camera>``: an autoencoder's latents of ``images/<camera>``, cached beside a store's frames."""
FUTURE = "future/"
"""``future/<key>``: frames after the current one, in a training batch (PAD, UWM, RDP's tokenizer)."""


def latent_key(camera: str) -> str:
    return f"{LATENTS}{camera}"


def future_key(key: str) -> str:
    return f"{FUTURE}{key}"


def is_image_key(key: str) -> bool:
    """True for camera frames ``images/<camera>`` (uint8, scaled to [0, 1] by policies, not normalized)."""
    return key.startswith(IMAGES)


def key_name(key: str) -> str:
    """The name part of a named key: ``"images/front"`` -> ``"front"``; a plain key is its own name."""
    return key.split("/", 1)[1] if key.startswith(NAMED_PREFIXES) else key


# ---- families -----------------------------------------------------------------------------------

OBSERVATION_FAMILIES = ("state", "images", "depth", "tactile", "force")
"""What an env's observation space may hold."""
FRAME_FAMILIES = (*OBSERVATION_FAMILIES, "action", "action_commanded", "reward", "timing", "intervention")
"""What a store holds per frame."""
FAMILIES = (*FRAME_FAMILIES, "task_embedding")
"""Every family of the vocabulary."""

_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
_PLAIN = {STATE: "state", FORCE: "force", ACTION: "action", ACTION_COMMANDED: "action_commanded",
          REWARD: "reward", TASK_EMBEDDING: "task_embedding", INTERVENTION: "intervention"}
_PREFIXED = {IMAGES: "images", DEPTH: "depth", TACTILE: "tactile", TIMING: "timing"}
_PATTERN = {"state": STATE, "images": f"{IMAGES}<camera>", "depth": f"{DEPTH}<camera>",
            "tactile": f"{TACTILE}<sensor>", "force": FORCE, "action": ACTION,
            "action_commanded": ACTION_COMMANDED, "reward": REWARD, "timing": f"{TIMING}<stage>",
            "task_embedding": TASK_EMBEDDING, "intervention": INTERVENTION}

FAMILY_RULES = {
    "state": "float32 with shape (Do,)",
    "images": "uint8 with shape (H, W, 3) and bounds [0, 255]",
    "depth": "float32 with shape (H, W) or (H, W, 1)",
    "tactile": "float32 of any shape, or a uint8 (H, W, 3) tactile image",
    "force": "a float32 (6,) wrench",
    "action": "float32 with shape (Da,) and finite bounds",
    "action_commanded": "float32 with shape (Da,) and finite bounds (the rule of 'action')",
    "reward": "a float scalar of shape () or (1,)",
    "timing": "a float64 scalar (shape ()) per tick, NaN where the stage did not happen on that tick",
    "task_embedding": "float32 with shape (D,)",
    "intervention": "a bool scalar (shape ()) per tick: True where a person had taken over from the policy",
}
"""The rule each family follows, as the sentence errors quote."""


class SpecError(ValueError):
    """A key, spec or value breaks the vocabulary; the message names the key and what is accepted."""


def family_of(key: str) -> str | None:
    """The family of `key` (``"images"`` for ``"images/front"``), or None outside the vocabulary."""
    if key in _PLAIN:
        return _PLAIN[key]
    for prefix, family in _PREFIXED.items():
        if key.startswith(prefix) and _NAME.fullmatch(key[len(prefix):]):
            return family
    return None


def describe_keys(families: Iterable[str] = FAMILIES) -> str:
    """``"'state', 'images/<camera>', ..."``: the key patterns of `families`, for error messages."""
    return ", ".join(repr(_PATTERN[f]) for f in families)


def check_key(key: str, families: Iterable[str] = FAMILIES) -> str:
    """Return the family of `key`; raise `SpecError` unless it is a key of one of `families`."""
    families = tuple(families)
    family = family_of(key) if isinstance(key, str) else None
    if family is None or family not in families:
        raise SpecError(f"{key!r} is not a robolearn feature key here; expected one of {describe_keys(families)} "
                        f"(names: letters, digits, '_', '-', '.').")
    return family


def _family_ok(family: str, shape: tuple[int, ...], dtype: np.dtype) -> bool:
    f32, u8 = dtype == np.float32, dtype == np.uint8
    if family in ("state", "action", "action_commanded", "task_embedding"):
        return f32 and len(shape) == 1
    if family == "images":
        return u8 and len(shape) == 3 and shape[2] == 3
    if family == "depth":
        return f32 and (len(shape) == 2 or (len(shape) == 3 and shape[2] == 1))
    if family == "tactile":
        return f32 or (u8 and len(shape) == 3 and shape[2] == 3)
    if family == "force":
        return f32 and shape == (6,)
    if family == "reward":
        return dtype.kind == "f" and shape in ((), (1,))
    if family == "timing":
        return dtype == np.float64 and shape == ()
    if family == "intervention":
        return dtype == np.bool_ and shape == ()
    raise AssertionError(f"no rule for family {family!r}")


# ---- Spec ---------------------------------------------------------------------------------------

Bound = Union[int, float, tuple]
"""A bound as a `Spec` holds it: one number for every element, or a flat tuple (one per element)."""


def _default_bound(dtype: np.dtype, which: str) -> float | int:
    if dtype.kind == "f":
        return -np.inf if which == "low" else np.inf
    info = np.iinfo(dtype)
    return int(info.min if which == "low" else info.max)


def _bound(key: str, value: Any, which: str, shape: tuple[int, ...], dtype: np.dtype) -> Bound:
    if value is None:
        return _default_bound(dtype, which)
    if isinstance(value, tuple) and not isinstance(value, np.ndarray) and np.ndim(value) == 1 \
            and len(value) == int(np.prod(shape)) != 1:
        arr = np.asarray(value, dtype=np.float64).reshape(shape)  # the flat form a Spec holds
    else:
        arr = np.asarray(value, dtype=np.float64)
    try:
        arr = np.broadcast_to(arr, shape)
    except ValueError:
        raise SpecError(f"{key!r}: {which} bound of shape {arr.shape} does not fit shape {shape}.") from None
    if np.isnan(arr).any():
        raise SpecError(f"{key!r}: {which} bound holds NaN; expected numbers (or +-inf for float keys).")
    if dtype.kind != "f":
        if not np.all(np.isfinite(arr)):
            raise SpecError(f"{key!r}: {which} bound is infinite; an integer ({dtype}) key needs finite bounds.")
        flat = [int(v) for v in arr.reshape(-1)]
    else:
        flat = [float(v) for v in arr.astype(dtype).reshape(-1)]  # bounds in the key's own precision
    if flat and all(v == flat[0] for v in flat):
        return flat[0]
    return tuple(flat)


def _full(bound: Bound, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A bound as a Spec holds it (one number or a flat tuple) -> an array of `shape`."""
    arr = np.asarray(bound, dtype=dtype)
    return np.broadcast_to(arr.reshape(shape) if isinstance(bound, tuple) else arr, shape).copy()


def _json_number(v: float | int) -> float | int | None:
    return None if isinstance(v, float) and np.isinf(v) else v


def _json_bound(bound: Bound, shape: tuple[int, ...]) -> Any:
    if not isinstance(bound, tuple):
        return _json_number(bound)
    nested = np.asarray(bound, dtype=object).reshape(shape).tolist()

    def walk(x):
        return [walk(v) for v in x] if isinstance(x, list) else _json_number(x)

    return walk(nested)


def _from_json_bound(value: Any, which: str) -> Any:
    inf = -np.inf if which == "low" else np.inf
    if value is None:
        return inf
    if isinstance(value, list):
        return [_from_json_bound(v, which) for v in value]
    return value


@dataclasses.dataclass(frozen=True)
class Spec:
    """One feature: key, per-frame shape, dtype and inclusive bounds [low, high].

    A Spec is always valid for its key's family (`FAMILY_RULES`): construction raises `SpecError`
    otherwise. `low`/`high` may be given as numbers or arrays (None: unbounded for float keys, the
    dtype's range for integer keys); they are kept in the key's dtype as one number, or a flat
    tuple when they differ per element, so specs compare with ``==`` and hash.
    """

    key: str
    shape: tuple[int, ...]
    dtype: str
    low: Bound = None
    high: Bound = None

    def __post_init__(self) -> None:
        family = check_key(self.key)
        try:
            shape = tuple(int(s) for s in self.shape)
            dtype = np.dtype(self.dtype)
        except (TypeError, ValueError):
            raise SpecError(f"{self.key!r}: shape {self.shape!r} and dtype {self.dtype!r} must be a tuple of "
                            "ints and a numpy dtype.") from None
        if not _family_ok(family, shape, dtype):
            raise SpecError(f"{self.key!r} is {dtype.name} {shape}; expected {FAMILY_RULES[family]}.")
        low = _bound(self.key, self.low, "low", shape, dtype)
        high = _bound(self.key, self.high, "high", shape, dtype)
        if np.any(_full(low, shape, dtype) > _full(high, shape, dtype)):
            raise SpecError(f"{self.key!r}: low bound exceeds high bound somewhere; expected low <= high.")
        if family == "images" and (low, high) != (0, 255):
            raise SpecError(f"{self.key!r} has bounds [{np.min(low)}, {np.max(high)}]; expected [0, 255].")
        if family in ("action", "action_commanded") and not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
            raise SpecError(f"{self.key!r} has infinite bounds; expected finite low and high "
                            "(policies normalize actions).")
        for name, value in (("shape", shape), ("dtype", dtype.name), ("low", low), ("high", high)):
            object.__setattr__(self, name, value)

    # ---- what it is ----

    @property
    def family(self) -> str:
        return family_of(self.key)  # type: ignore[return-value]

    @property
    def np_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) as arrays of `shape` and `dtype`."""
        return _full(self.low, self.shape, self.np_dtype), _full(self.high, self.shape, self.np_dtype)

    # ---- values ----

    def validate(self, value: Any) -> np.ndarray:
        """`value` as an array if it has this shape and dtype, holds no NaN and lies within the bounds;
        else `SpecError` naming the key, what was found and what is expected."""
        arr = np.asarray(value)
        if arr.shape != self.shape:
            raise SpecError(f"{self.key!r} has shape {arr.shape}; expected {self.shape}.")
        if arr.dtype != self.np_dtype:
            raise SpecError(f"{self.key!r} has dtype {arr.dtype}; expected {self.dtype}.")
        if arr.dtype.kind == "f" and self.family != "timing" and np.isnan(arr).any():  # timing: NaN = no such stage
            idx = tuple(int(i) for i in np.argwhere(np.isnan(arr))[0])
            raise SpecError(f"{self.key!r} holds NaN at index {idx}; expected numbers within its bounds.")
        low, high = self.bounds()
        outside = (arr < low) | (arr > high)
        if outside.any():
            idx = tuple(int(i) for i in np.argwhere(outside)[0])
            raise SpecError(f"{self.key!r} holds {arr[idx]} at index {idx}, outside its bounds "
                            f"[{low[idx]}, {high[idx]}].")
        return arr

    def sample(self, rng: np.random.Generator | int | None = None) -> np.ndarray:
        """A random value that `validate` accepts: uniform within finite bounds, exponential tails
        beside a one-sided bound, standard normal where unbounded."""
        rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        low, high = self.bounds()
        if self.np_dtype.kind != "f":
            return np.asarray(rng.integers(low, high, size=self.shape, dtype=self.np_dtype, endpoint=True))
        lo, hi = low.astype(np.float64), high.astype(np.float64)
        u = rng.uniform(size=self.shape)
        both, only_lo, only_hi = np.isfinite(lo) & np.isfinite(hi), np.isfinite(lo) & ~np.isfinite(hi), \
            ~np.isfinite(lo) & np.isfinite(hi)
        out = rng.standard_normal(size=self.shape)
        expo = rng.exponential(size=self.shape)
        with np.errstate(invalid="ignore", over="ignore"):
            out = np.where(both, lo * (1 - u) + hi * u, out)  # no hi - lo: it overflows for huge bounds
            out = np.where(only_lo, lo + expo, out)
            out = np.where(only_hi, hi - expo, out)
        return np.asarray(np.clip(np.asarray(out).astype(self.np_dtype), low, high))

    def zeros(self) -> np.ndarray:
        """All zeros, moved into the bounds where 0 lies outside them (dm_env's ``generate_value``)."""
        low, high = self.bounds()
        return np.asarray(np.clip(np.zeros(self.shape, self.np_dtype), low, high))

    # ---- conversions ----

    @classmethod
    def from_space(cls, space: Any, key: str) -> "Spec":
        """The spec of a gymnasium ``Box`` for `key` (raises `SpecError` for any other space)."""
        import gymnasium as gym

        if not isinstance(space, gym.spaces.Box):
            raise SpecError(f"{key!r} is a {type(space).__name__} space; expected a gymnasium.spaces.Box.")
        return cls(key, tuple(space.shape), np.dtype(space.dtype).name, space.low, space.high)

    def to_space(self) -> Any:
        """A gymnasium ``Box`` with this shape, dtype and bounds."""
        import gymnasium as gym

        low, high = self.bounds()
        return gym.spaces.Box(low, high, self.shape, self.np_dtype)

    def to_json(self) -> dict[str, Any]:
        """``{"key", "shape", "dtype", "low", "high"}``, plain JSON: an infinite bound is null, bounds that
        differ per element are nested lists of `shape`."""
        return {"key": self.key, "shape": list(self.shape), "dtype": self.dtype,
                "low": _json_bound(self.low, self.shape), "high": _json_bound(self.high, self.shape)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Spec":
        """Inverse of `to_json`; a missing bound means unbounded (float keys) or the dtype's range."""
        if not isinstance(data, Mapping) or not {"key", "shape", "dtype"} <= set(data):
            raise SpecError(f"a spec needs 'key', 'shape' and 'dtype' entries; got {data!r}.")
        low = _from_json_bound(data["low"], "low") if "low" in data else None
        high = _from_json_bound(data["high"], "high") if "high" in data else None
        return cls(str(data["key"]), tuple(data["shape"]), str(data["dtype"]), low, high)


def specs_from_spaces(observation_space: Any, action_space: Any) -> dict[str, Spec]:
    """One `Spec` per observation key of a gymnasium ``Dict`` space, plus ``"action"`` for the Box action space;
    raises `SpecError` naming the first key that breaks its family's rule."""
    import gymnasium as gym

    if not isinstance(observation_space, gym.spaces.Dict):
        raise SpecError(f"the observation space is a {type(observation_space).__name__}; expected a "
                        f"gymnasium.spaces.Dict keyed by {describe_keys(OBSERVATION_FAMILIES)}.")
    specs = {}
    for key, space in observation_space.spaces.items():
        check_key(key, OBSERVATION_FAMILIES)
        specs[key] = Spec.from_space(space, key)
    specs[ACTION] = Spec.from_space(action_space, ACTION)
    return specs
