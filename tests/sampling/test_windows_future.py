"""WindowSampler extras: future frames per key and per-episode columns (backwards compatible)."""

import numpy as np
import pytest

from robolearn.sampling import WindowSampler
from robolearn.store import Store, StoreError


def test_future_keys_and_episode_columns(make_store):
    store = Store.open(make_store((5, 7, 4)))
    plain = WindowSampler(store, ["state"], 2, 4)
    s = WindowSampler(store, ["state"], 2, 4, future_keys={"images/front": (2, 2)},
                      episode_columns=("has_actions", "task_index"))
    b, b0 = s.get_batch(np.array([0, 3, 5])), plain.get_batch(np.array([0, 3, 5]))
    for k in b0:
        np.testing.assert_array_equal(b[k], b0[k])  # the usual keys are untouched
    assert b["future/images/front"].shape == (3, 2, 8, 8, 3)
    assert b["future/images/front"][..., 0, 0, 1].tolist() == [[2, 4], [4, 4], [2, 4]]  # green = frame in episode
    assert b["future/images/front_is_pad"].tolist() == [[False, False], [True, True], [False, False]]
    assert b["has_actions"].tolist() == [True, True, True] and b["task_index"].tolist() == [0, 0, 0]
    assert "future/images/front" not in b0 and "has_actions" not in b0


def test_bad_extras_are_refused(make_store):
    store = Store.open(make_store((3,)))
    with pytest.raises(ValueError, match="must be >= 1"):
        WindowSampler(store, ["state"], 1, 2, future_keys={"state": (0, 1)})
    with pytest.raises(StoreError, match="episode column"):
        WindowSampler(store, ["state"], 1, 2, episode_columns=("nope",))
    with pytest.raises(StoreError, match="key 'latents/front' is not in store"):
        WindowSampler(store, ["latents/front"], 1, 2)
