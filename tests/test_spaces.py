"""robolearn.spaces: the key vocabulary, family rules, Spec validation/sampling and space <-> Spec <-> JSON."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

from robolearn import spaces
from robolearn.spaces import Spec, SpecError, check_key, family_of, specs_from_spaces

INF = np.inf

# One valid space per family (several where the rule allows several forms).
FAMILY_SPACES = {
    "state": ("state", gym.spaces.Box(-INF, INF, (7,), np.float32)),
    "state_bounded": ("state", gym.spaces.Box(np.array([-1, -2, 0], np.float32), np.array([1, 2, INF], np.float32))),
    "images": ("images/front", gym.spaces.Box(0, 255, (6, 8, 3), np.uint8)),
    "depth_hw": ("depth/front", gym.spaces.Box(0.0, 10.0, (6, 8), np.float32)),
    "depth_hw1": ("depth/wrist", gym.spaces.Box(0.0, INF, (6, 8, 1), np.float32)),
    "tactile_float": ("tactile/left", gym.spaces.Box(-5.0, 5.0, (4, 4, 2), np.float32)),
    "tactile_image": ("tactile/gel.sight", gym.spaces.Box(0, 255, (6, 6, 3), np.uint8)),
    "force": ("force", gym.spaces.Box(-50.0, 50.0, (6,), np.float32)),
    "action": ("action", gym.spaces.Box(np.array([-1, -1, 0], np.float32), np.array([1, 1, 0.04], np.float32))),
    "action_commanded": ("action_commanded", gym.spaces.Box(-1.0, 1.0, (3,), np.float32)),
    "reward": ("reward", gym.spaces.Box(-INF, INF, (), np.float32)),
    "reward_1": ("reward", gym.spaces.Box(0.0, 1.0, (1,), np.float64)),
    "timing": ("timing/inference", gym.spaces.Box(-INF, INF, (), np.float64)),
    "task_embedding": ("task_embedding", gym.spaces.Box(-1.0, 1.0, (384,), np.float32)),
}


def _same_space(a: gym.spaces.Box, b: gym.spaces.Box) -> None:
    assert a.shape == b.shape and a.dtype == b.dtype
    np.testing.assert_array_equal(a.low, b.low)
    np.testing.assert_array_equal(a.high, b.high)


@pytest.mark.parametrize("name", sorted(FAMILY_SPACES))
def test_round_trip_space_spec_json_spec_space(name):
    key, space = FAMILY_SPACES[name]
    spec = Spec.from_space(space, key)
    text = json.dumps(spec.to_json(), allow_nan=False)  # plain JSON: no Infinity/NaN tokens
    again = Spec.from_json(json.loads(text))
    assert again == spec and hash(again) == hash(spec)
    _same_space(again.to_space(), space)
    assert spec.family == family_of(key)


def test_per_element_bounds_keep_their_layout():
    low = np.arange(6, dtype=np.float32).reshape(2, 3) - 10
    spec = Spec.from_space(gym.spaces.Box(low, low + 1, (2, 3), np.float32), "tactile/pad")
    d = spec.to_json()
    assert d["low"] == low.tolist() and d["high"] == (low + 1).tolist()
    _same_space(Spec.from_json(d).to_space(), gym.spaces.Box(low, low + 1, (2, 3), np.float32))


def test_bounds_are_kept_in_the_key_dtype():
    # float32(0.1) > 0.1: a bound kept in float64 would refuse the space's own high value.
    spec = Spec("action", (1,), "float32", -0.1, 0.1)
    spec.validate(np.array([0.1], np.float32))
    assert spec.to_json()["high"] == float(np.float32(0.1))


def test_specs_from_spaces():
    obs = gym.spaces.Dict({k: s for k, s in (FAMILY_SPACES["state"], FAMILY_SPACES["images"],
                                             FAMILY_SPACES["force"])})
    specs = specs_from_spaces(obs, FAMILY_SPACES["action"][1])
    assert list(specs) == ["force", "images/front", "state", "action"]  # Dict sorts its keys
    assert specs["action"].shape == (3,) and specs["images/front"].dtype == "uint8"
    with pytest.raises(SpecError, match=r"'action' is not a robolearn feature key here; expected one of 'state'"):
        specs_from_spaces(gym.spaces.Dict({"action": FAMILY_SPACES["action"][1]}), FAMILY_SPACES["action"][1])
    with pytest.raises(SpecError, match="observation space is a Box; expected a gymnasium.spaces.Dict"):
        specs_from_spaces(FAMILY_SPACES["state"][1], FAMILY_SPACES["action"][1])


# ---- keys ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("key,family", [
    ("state", "state"), ("images/front", "images"), ("images/cam_high-2", "images"), ("depth/front", "depth"),
    ("tactile/gel.sight", "tactile"), ("force", "force"), ("action", "action"),
    ("action_commanded", "action_commanded"), ("reward", "reward"), ("timing/inference", "timing"),
    ("task_embedding", "task_embedding"),
])
def test_known_keys(key, family):
    assert family_of(key) == family == check_key(key)


@pytest.mark.parametrize("key", ["rgb", "images/", "images/a/b", "images/a b", "depth", "states", "Action",
                                 "latents/front", "future/images/front", ""])
def test_unknown_keys(key):
    assert family_of(key) is None
    with pytest.raises(SpecError, match=r"is not a robolearn feature key here; expected one of 'state', "
                                        r"'images/<camera>'"):
        check_key(key)


def test_check_key_restricted_to_families():
    assert check_key("force", spaces.OBSERVATION_FAMILIES) == "force"
    with pytest.raises(SpecError) as err:
        check_key("reward", spaces.OBSERVATION_FAMILIES)
    assert "'reward'" in str(err.value) and "'tactile/<sensor>', 'force' (names" in str(err.value)
    assert "timing" not in str(err.value)


def test_key_helpers():
    assert spaces.image_key("front") == "images/front" and spaces.depth_key("a") == "depth/a"
    assert spaces.tactile_key("l") == "tactile/l" and spaces.timing_key("io") == "timing/io"
    assert spaces.key_name("images/front") == "front" and spaces.key_name("state") == "state"
    assert spaces.is_image_key("images/front") and not spaces.is_image_key("depth/front")


# ---- family rules -------------------------------------------------------------------------------


@pytest.mark.parametrize("key,shape,dtype,low,high,message", [
    ("state", (2, 2), "float32", None, None, "'state' is float32 (2, 2); expected float32 with shape (Do,)."),
    ("state", (2,), "float64", None, None, "'state' is float64 (2,); expected float32"),
    ("images/front", (4, 4), "uint8", None, None, "'images/front' is uint8 (4, 4); expected uint8 with shape (H, W, 3)"),
    ("images/front", (4, 4, 3), "float32", 0, 1, "'images/front' is float32 (4, 4, 3); expected uint8"),
    ("images/front", (4, 4, 3), "uint8", 0, 1, "'images/front' has bounds [0, 1]; expected [0, 255]."),
    ("depth/front", (4, 4, 3), "float32", None, None, "expected float32 with shape (H, W) or (H, W, 1)"),
    ("tactile/pad", (4, 4), "uint8", None, None, "expected float32 of any shape, or a uint8 (H, W, 3) tactile image"),
    ("force", (3,), "float32", None, None, "'force' is float32 (3,); expected a float32 (6,) wrench."),
    ("action", (2,), "float32", None, None, "'action' has infinite bounds; expected finite low and high"),
    ("action", (2,), "float64", -1, 1, "'action' is float64 (2,); expected float32 with shape (Da,)"),
    ("action_commanded", (2,), "float32", -INF, 1, "'action_commanded' has infinite bounds"),
    ("reward", (2,), "float32", None, None, "'reward' is float32 (2,); expected a float scalar"),
    ("reward", (), "int64", None, None, "'reward' is int64 (); expected a float scalar"),
    ("timing/loop", (), "float32", None, None, "'timing/loop' is float32 (); expected a float64 scalar"),
    ("state", (2,), "float32", 1, 0, "'state': low bound exceeds high bound"),
    ("state", (2,), "float32", np.nan, 0, "'state': low bound holds NaN"),
    ("state", (2,), "float32", np.zeros(3), None, "'state': low bound of shape (3,) does not fit shape (2,)"),
])
def test_family_rules(key, shape, dtype, low, high, message):
    with pytest.raises(SpecError) as err:
        Spec(key, shape, dtype, low, high)
    assert message in str(err.value)


def test_from_space_needs_a_box():
    with pytest.raises(SpecError, match=r"'state' is a Discrete space; expected a gymnasium.spaces.Box."):
        Spec.from_space(gym.spaces.Discrete(3), "state")


def test_from_json_needs_the_fields():
    with pytest.raises(SpecError, match="needs 'key', 'shape' and 'dtype'"):
        Spec.from_json({"shape": [2], "dtype": "float32"})


# ---- validate -----------------------------------------------------------------------------------


ACTION = Spec("action", (3,), "float32", [-1, -1, 0], [1, 1, 0.5])


@pytest.mark.parametrize("value,message", [
    (np.zeros(2, np.float32), "'action' has shape (2,); expected (3,)."),
    (np.zeros((1, 3), np.float32), "'action' has shape (1, 3); expected (3,)."),
    (np.zeros(3, np.float64), "'action' has dtype float64; expected float32."),
    (np.array([0, np.nan, 0], np.float32), "'action' holds NaN at index (1,); expected numbers within its bounds."),
    (np.array([0, 0, 0.75], np.float32), "'action' holds 0.75 at index (2,), outside its bounds [0.0, 0.5]."),
    (np.array([-2, 0, 0], np.float32), "'action' holds -2.0 at index (0,), outside its bounds [-1.0, 1.0]."),
])
def test_validate_errors(value, message):
    with pytest.raises(SpecError) as err:
        ACTION.validate(value)
    assert str(err.value) == message


def test_validate_returns_the_array_and_accepts_the_bounds():
    value = np.array([-1, 1, 0.5], np.float32)
    np.testing.assert_array_equal(ACTION.validate(value), value)
    image = Spec("images/front", (2, 2, 3), "uint8", 0, 255)
    image.validate(np.full((2, 2, 3), 255, np.uint8))
    with pytest.raises(SpecError, match="has dtype int64; expected uint8"):
        image.validate(np.zeros((2, 2, 3), np.int64))
    Spec("timing/loop", (), "float64").validate(0.25)  # a Python float is a float64 scalar


def test_zeros_lie_in_the_bounds():
    np.testing.assert_array_equal(ACTION.zeros(), np.zeros(3, np.float32))
    shifted = Spec("state", (2,), "float32", 1.0, 2.0)
    np.testing.assert_array_equal(shifted.zeros(), np.ones(2, np.float32))
    assert shifted.zeros().dtype == np.float32


# ---- sample -------------------------------------------------------------------------------------


def _random_spec(rng: np.random.Generator) -> Spec:
    """A random valid spec: any family, shape, and bounds finite, one-sided, unbounded or per-element."""
    family = rng.choice(["state", "images", "depth", "tactile_f", "tactile_u8", "force", "action",
                         "action_commanded", "reward", "timing"])
    n = int(rng.integers(1, 5))
    key, shape, dtype = {
        "state": ("state", (n,), "float32"), "images": ("images/c", (n, n + 1, 3), "uint8"),
        "depth": ("depth/c", (n, n), "float32"), "tactile_f": ("tactile/s", (n, 2, n), "float32"),
        "tactile_u8": ("tactile/s", (n, n, 3), "uint8"), "force": ("force", (6,), "float32"),
        "action": ("action", (n,), "float32"), "action_commanded": ("action_commanded", (n,), "float32"),
        "reward": ("reward", (), "float64"), "timing": ("timing/t", (), "float64"),
    }[str(family)]
    if dtype == "uint8":
        return Spec(key, shape, dtype, 0, 255)
    centre = rng.normal(0, 100, shape)
    width = rng.exponential(10, shape) * (rng.uniform(size=shape) > 0.1)  # some zero-width bounds
    low, high = centre - width, centre + width
    if key not in ("action", "action_commanded"):
        kind = rng.integers(4)  # finite, one-sided low, one-sided high, unbounded
        low = np.where(kind == 2, -INF, low) if kind in (2, 3) else low
        high = np.where(kind == 1, INF, high) if kind in (1, 3) else high
        if kind == 3:
            low = np.full(shape, -INF)
    return Spec(key, shape, dtype, low, high)


def test_sample_always_validates():
    for seed in range(400):
        rng = np.random.default_rng(seed)
        spec = _random_spec(rng)
        for _ in range(3):
            value = spec.sample(rng)
            assert isinstance(value, np.ndarray)
            spec.validate(value)
        np.testing.assert_array_equal(spec.sample(seed), spec.sample(seed))  # seeded: reproducible
        spec.validate(spec.zeros())
        assert Spec.from_json(json.loads(json.dumps(spec.to_json(), allow_nan=False))) == spec


def test_sample_within_huge_bounds():
    finfo = np.finfo(np.float32)
    spec = Spec("state", (4,), "float32", finfo.min, finfo.max)
    for seed in range(20):
        spec.validate(spec.sample(seed))


def test_timing_may_hold_nan():
    timing = Spec("timing/inference_end", (), "float64")
    timing.validate(np.float64("nan"))  # the stage did not happen on this tick
    with pytest.raises(SpecError, match="holds NaN"):
        Spec("reward", (), "float64").validate(np.float64("nan"))
