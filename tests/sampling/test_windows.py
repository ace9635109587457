import numpy as np
import pytest
import torch

from robolearn.sampling import WindowSampler, make_loader, split_episodes
from robolearn.store import Store, StoreError


def test_window_alignment_and_padding(make_store):
    store = Store.open(make_store((5, 7, 4)))
    s = WindowSampler(store, ["state", "images/front"], n_obs_steps=2, horizon=4)
    assert len(s) == 16
    b = s.get_batch(np.array([0, 4, 5, 11]))
    # state[:, 0] encodes episode*100 + frame
    assert b["state"][..., 0].tolist() == [[0, 0], [3, 4], [100, 100], [105, 106]]
    assert b["state_is_pad"].tolist() == [[True, False], [False, False], [True, False], [False, False]]
    assert b["action"][..., 0].tolist() == [[0, -1, -2, -3], [-4, -4, -4, -4], [-100, -101, -102, -103],
                                            [-106, -106, -106, -106]]
    assert b["action_is_pad"].tolist() == [[False] * 4, [False, True, True, True], [False] * 4,
                                           [False, True, True, True]]
    assert b["images/front"].shape == (4, 2, 8, 8, 3)
    assert b["images/front"][2, 1, 0, 0, 0] == 1  # red channel = episode index
    assert b["episode_index"].tolist() == [0, 0, 1, 1]


def test_uncached_path_matches_cached(make_store):
    store = Store.open(make_store((5, 7, 4)))
    a = WindowSampler(store, ["state", "images/front"], 2, 4)
    b = WindowSampler(store, ["state", "images/front"], 2, 4, cache_bytes=0)
    idx = np.array([3, 0, 15, 7, 7])
    ba, bb = a.get_batch(idx), b.get_batch(idx)
    for k in ba:
        np.testing.assert_array_equal(ba[k], bb[k])


def test_split_is_deterministic_and_by_episode():
    tr, va = split_episodes(20, 0.2, seed=3)
    tr2, va2 = split_episodes(20, 0.2, seed=3)
    assert tr.tolist() == tr2.tolist() and va.tolist() == va2.tolist()
    assert len(va) == 4 and not set(tr) & set(va) and sorted([*tr, *va]) == list(range(20))
    assert len(split_episodes(1, 0.5)[0]) == 1  # never leaves training empty


def test_loader_with_workers_gives_same_batches(make_store):
    store = Store.open(make_store((5, 7, 4)))
    s = WindowSampler(store, ["state"], 2, 4, episodes=np.array([0, 2]))
    assert len(s) == 9
    inproc = [b["state"] for b in make_loader(s, 4, shuffle=True, seed=1)]
    workers = [b["state"] for b in make_loader(s, 4, shuffle=True, seed=1, num_workers=2)]
    assert len(inproc) == 2
    for x, y in zip(inproc, workers):
        assert isinstance(x, torch.Tensor) and torch.equal(x, y)


def test_unknown_key_is_refused(make_store):
    with pytest.raises(StoreError, match="key 'depth/front' is not in store"):
        WindowSampler(Store.open(make_store((3,))), ["depth/front"], 2, 4)


def test_aborted_episodes_are_skipped_unless_asked(tmp_path):
    from robolearn.sampling.windows import usable_episodes
    from robolearn.store import EpisodeMeta, StoreWriter
    from tests.conftest import FEATURES, episode_frames

    path = tmp_path / "a.zarr"
    with StoreWriter(path, FEATURES, fps=10) as w:
        for e, (n, status) in enumerate([(5, "ok"), (7, "aborted"), (4, "truncated")]):
            w.add_episode(episode_frames(e, n), None, EpisodeMeta(status=status, seed=e))
    store = Store.open(path)
    s = WindowSampler(store, ["state"], 2, 4)
    assert s.episodes.tolist() == [0, 2] and len(s) == 9 and s.skipped_aborted == 1
    assert set(s.get_batch(np.arange(len(s)))["episode_index"].tolist()) == {0, 2}
    assert WindowSampler(store, ["state"], 2, 4, episodes=np.array([1, 2])).episodes.tolist() == [2]
    everything = WindowSampler(store, ["state"], 2, 4, include_aborted=True)
    assert everything.episodes.tolist() == [0, 1, 2] and len(everything) == 16
    with pytest.raises(StoreError, match=r"no episodes selected .*1 aborted skipped \(include_aborted=True keeps"):
        WindowSampler(store, ["state"], 2, 4, episodes=np.array([1]))
    assert usable_episodes(store).tolist() == [0, 2]
    assert usable_episodes(store, include_aborted=True).tolist() == [0, 1, 2]
