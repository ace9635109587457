"""DAgger-style window weighting and selection by the store's intervention mask: exact visit counts per epoch,
the loader's window frequencies, selection, and stores without the mask."""

import gymnasium as gym
import numpy as np
import pytest

from robolearn.errors import InvalidValueError
from robolearn.experiment import build_config
from robolearn.sampling import WindowSampler, make_loader
from robolearn.sampling.interventions import DataConfig, WeightedWindows, intervention_windows
from robolearn.store import Store, StoreWriter, features_from_space

OBS = gym.spaces.Dict({"state": gym.spaces.Box(-1, 1, (2,), np.float32)})
ACT = gym.spaces.Box(-1, 1, (2,), np.float32)
LENGTHS = (10, 12)
MARKED = {0: [4, 5], 1: []}  # episode -> frames a person drove


def write_store(path, marked=True):
    w = StoreWriter(path, features_from_space(OBS, ACT, intervention=marked), fps=10)
    frame = 0
    for ep, n in enumerate(LENGTHS):
        idx = np.arange(frame, frame + n, dtype=np.float32)
        data = {"state": np.stack([idx, idx], 1), "action": np.stack([idx, -idx], 1)}  # frame index in the data
        if marked:
            data["intervention"] = np.isin(np.arange(n), MARKED[ep])
        w.add_episode(data)
        frame += n
    w.close()
    return Store.open(path)


def sampler(store, T=3):
    return WindowSampler(store, ["state"], n_obs_steps=1, horizon=T)


def test_windows_overlap_an_intervention_through_their_action_steps(tmp_path):
    s = sampler(write_store(tmp_path / "s.zarr"), T=3)
    # Episode 0 marks frames 4, 5: windows anchored at 2..5 learn one of them (t .. t + 2); episode 1 none.
    assert np.flatnonzero(intervention_windows(s)).tolist() == [2, 3, 4, 5]


def test_weight_w_visits_marked_windows_w_times_per_epoch(tmp_path):
    s = sampler(write_store(tmp_path / "s.zarr"))
    n = len(s)  # 22 windows, 4 marked
    weighted = WeightedWindows.for_config(s, DataConfig(intervention_weight=3))
    counts = weighted.counts()
    assert len(weighted) == n + 2 * 4
    assert counts[[2, 3, 4, 5]].tolist() == [3, 3, 3, 3] and set(counts[[0, 1, *range(6, n)]]) == {1}
    # A fractional weight: floor or ceil of it, adding up to the total weight.
    half = WeightedWindows.for_config(s, DataConfig(intervention_weight=2.5)).counts()
    assert half[[2, 3, 4, 5]].sum() == 10 and set(half[[2, 3, 4, 5]]) <= {2, 3} and half.sum() == n - 4 + 10
    # What the loader draws: the marked windows' frames are 3x as frequent as in the plain epoch.
    anchors = []
    for batch in make_loader(weighted, batch_size=5, seed=0):
        anchors += batch["state"][:, 0, 0].int().tolist()
    assert len(anchors) == 30 and sorted(set(anchors)) == list(range(n))  # every window still visited
    assert [anchors.count(f) for f in (2, 3, 4, 5)] == [3, 3, 3, 3]
    assert [anchors.count(f) for f in (0, 1, 6, 21)] == [1, 1, 1, 1]


def test_select_interventions_keeps_only_the_marked_windows(tmp_path):
    s = sampler(write_store(tmp_path / "s.zarr"))
    only = WeightedWindows.for_config(s, DataConfig(select="interventions"))
    assert len(only) == 4 and only.table.tolist() == [2, 3, 4, 5]
    batch = only.get_batch(np.arange(4))
    assert batch["state"][:, 0, 0].tolist() == [2, 3, 4, 5] and batch["action"].shape == (4, 3, 2)
    both = WeightedWindows.for_config(s, DataConfig(select="interventions", intervention_weight=2))
    assert both.counts().tolist() == [0, 0, 2, 2, 2, 2] + [0] * 16


def test_a_store_without_the_mask_has_no_interventions(tmp_path):
    s = sampler(write_store(tmp_path / "old.zarr", marked=False))
    assert not intervention_windows(s).any()
    assert WeightedWindows.for_config(s, DataConfig(intervention_weight=5)).counts().tolist() == [1] * len(s)
    assert WeightedWindows.for_config(s, DataConfig()) is s
    with pytest.raises(InvalidValueError, match="data.select=interventions: no window of store .*deploy --teleop"):
        WeightedWindows.for_config(s, DataConfig(select="interventions"))


def test_data_config_from_the_command_line():
    cfg = build_config(["data.intervention_weight=4", "data.select=interventions"])
    assert cfg.data == DataConfig(intervention_weight=4.0, select="interventions")
    with pytest.raises(InvalidValueError, match="data.select='some'"):
        build_config(["data.select=some"])
    with pytest.raises(InvalidValueError, match="intervention_weight must be a number > 0"):
        build_config(["data.intervention_weight=0"])
