"""Schema version 2: episode status and counters, timing/* with NaN, action_commanded, version-1 stores."""

import shutil

import gymnasium as gym
import numpy as np
import pytest
import zarr

from robolearn.store import EpisodeMeta, Feature, Store, StoreError, StoreWriter, ensure_stats
from robolearn.store.info import validate_store
from robolearn.store.layout import EPISODE_COLUMNS, SCHEMA_VERSION, STATUS, V1_COLUMNS, features_from_space
from robolearn.store.ops import filter_store
from tests.conftest import FEATURES, episode_frames

NEW_COLUMNS = [c for c in EPISODE_COLUMNS if c not in V1_COLUMNS]


def make_v1(path) -> None:
    """Turn a store into what schema version 1 wrote: no status/counter columns, version 1, no status names."""
    for col in NEW_COLUMNS:
        shutil.rmtree(path / "meta" / "episodes" / col)
    root = zarr.open_group(str(path), mode="r+")
    info = dict(root.attrs["robolearn_store"])
    info["version"] = 1
    del info["status_names"]
    root.attrs["robolearn_store"] = info


def test_status_and_counters_round_trip(tmp_path):
    path = tmp_path / "s.zarr"
    with StoreWriter(path, FEATURES, fps=10.0) as w:
        w.add_episode(episode_frames(0, 4), None, EpisodeMeta(retries=2, held_ticks=3, missed_ticks=1))
        w.add_episode(episode_frames(1, 3), None, EpisodeMeta(status="aborted"))
        w.add_episode(episode_frames(2, 3), None, EpisodeMeta(status="truncated"))
        with pytest.raises(StoreError, match="unknown episode status 'crashed'; accepted: ok, aborted, truncated"):
            w.add_episode(episode_frames(3, 3), None, EpisodeMeta(status="crashed"))
    s = Store.open(path)
    assert s.n_episodes == 3 and s.n_frames == 10  # the refused episode left nothing
    assert s.episodes["status"].tolist() == [STATUS["ok"], STATUS["aborted"], STATUS["truncated"]]
    assert s.episodes["retries"].tolist() == [2, 0, 0]
    assert s.episodes["held_ticks"].tolist() == [3, 0, 0]
    assert s.episodes["missed_ticks"].tolist() == [1, 0, 0]
    assert validate_store(path)["ok"]
    # A filtered copy keeps the new columns.
    out = tmp_path / "f.zarr"
    filter_store(path, out, episodes=[1, 0])
    c = Store.open(out)
    assert c.episodes["status"].tolist() == [STATUS["ok"], STATUS["aborted"]]
    assert c.episodes["retries"].tolist() == [2, 0] and c.episodes["held_ticks"].tolist() == [3, 0]


def test_timing_keys_keep_nan_and_stay_out_of_stats(tmp_path):
    obs = gym.spaces.Dict({"state": gym.spaces.Box(-1, 1, (3,), np.float32)})
    feats = features_from_space(obs, gym.spaces.Box(-1, 1, (2,), np.float32), commanded=True,
                                timing=("obs_capture", "inference_start"))
    assert feats["action_commanded"] == feats["action"]
    assert feats["timing/obs_capture"] == Feature((), "float64")
    n = 6
    t = 100.0 + np.arange(n) / 10
    infer = np.where(np.arange(n) % 3 == 0, t + 0.002, np.nan)  # inference on every third tick only
    frames = {"state": np.zeros((n, 3), np.float32), "action": np.ones((n, 2), np.float32),
              "action_commanded": np.full((n, 2), 2.0, np.float32),
              "timing/obs_capture": t, "timing/inference_start": infer}
    path = tmp_path / "t.zarr"
    with StoreWriter(path, feats, fps=10.0) as w:
        w.add_episode(frames)
        with pytest.raises(StoreError, match="key 'timing/obs_capture': frame 2 holds inf"):
            w.add_episode({**frames, "timing/obs_capture": np.where(np.arange(n) == 2, np.inf, t)})
        with pytest.raises(StoreError, match="key 'action_commanded': frame 0 holds NaN"):
            w.add_episode({**frames, "action_commanded": np.full((n, 2), np.nan, np.float32)})
    s = Store.open(path)
    got = s.episode(0)
    np.testing.assert_array_equal(got["timing/inference_start"], infer)  # NaN where no inference ran
    assert np.isnan(got["timing/inference_start"]).tolist() == [False, True, True, False, True, True]
    np.testing.assert_array_equal(got["timing/obs_capture"], t)
    np.testing.assert_array_equal(got["action_commanded"], frames["action_commanded"])
    stats = ensure_stats(path)
    assert sorted(stats) == ["action", "action_commanded", "state"]


def test_version_1_store_reads_with_defaults(make_store):
    path = make_store((5, 7, 4))
    make_v1(path)
    s = Store.open(path)
    assert s.version == 1 and (s.n_episodes, s.n_frames) == (3, 16)
    assert s.episodes["status"].tolist() == [0, 0, 0] and s.episodes["status"].dtype == np.int8
    for col in ("retries", "held_ticks", "missed_ticks"):
        assert s.episodes[col].tolist() == [0, 0, 0]
    assert s.episodes["seed"].tolist() == [0, 1, 2]
    assert validate_store(path)["ok"]


def test_appending_to_a_version_1_store_upgrades_it(make_store):
    path = make_store((5, 7))
    make_v1(path)
    before = Store.open(path)
    old = [before.episode(e) for e in range(2)]
    with StoreWriter(path) as w:
        w.add_episode(episode_frames(2, 3), None, EpisodeMeta(status="aborted", retries=4, seed=2))
    s = Store.open(path)
    assert s.version == SCHEMA_VERSION and s.info["status_names"] == STATUS
    assert s.lengths.tolist() == [5, 7, 3]
    assert s.episodes["status"].tolist() == [0, 0, STATUS["aborted"]]
    assert s.episodes["retries"].tolist() == [0, 0, 4]
    assert s.episodes["seed"].tolist() == [0, 1, 2]
    for e in range(2):
        for k, v in old[e].items():
            np.testing.assert_array_equal(s.episode(e)[k], v)
    assert validate_store(path)["ok"]


def test_upgrade_killed_before_its_version_was_written_is_finished_on_next_open(make_store):
    path = make_store((5, 7))
    make_v1(path)
    # The kill came after the first new column was added (with a stray row), before the version.
    root = zarr.open_group(str(path), mode="r+")
    root.create_array("meta/episodes/status", shape=(3,), chunks=(4096,), dtype="int8", fill_value=0)
    s = Store.open(path)
    assert s.version == 1 and s.n_episodes == 2 and s.episodes["status"].tolist() == [0, 0]
    with StoreWriter(path) as w:
        w.add_episode(episode_frames(2, 3), None, EpisodeMeta(status="truncated"))
    s = Store.open(path)
    assert s.version == SCHEMA_VERSION
    assert s.episodes["status"].tolist() == [0, 0, STATUS["truncated"]]
    assert validate_store(path)["ok"]


def test_newer_schema_is_refused_by_the_reader(make_store):
    path = make_store((3,))
    root = zarr.open_group(str(path), mode="r+")
    root.attrs["robolearn_store"] = {**root.attrs["robolearn_store"], "version": SCHEMA_VERSION + 1}
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}.*upgrade robolearn"):
        Store.open(path)
