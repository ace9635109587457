import json
import os

import numpy as np
import pytest
import zarr

from robolearn.output import OutputError
from robolearn.store import EpisodeMeta, Store, StoreError, StoreWriter, ensure_stats, repair
from robolearn.store.info import store_info, validate_store
from robolearn.store.shards import index_nbytes, parse_index
from tests.conftest import FEATURES, episode_frames


def test_roundtrip_values_and_table(make_store):
    path = make_store((5, 7, 4), tasks=["a", "b", "a"])
    s = Store.open(path)
    assert (s.n_episodes, s.n_frames) == (3, 16)
    assert s.lengths.tolist() == [5, 7, 4]
    assert s.tasks == ["a", "b"] and [s.task(i) for i in range(3)] == ["a", "b", "a"]
    assert s.episodes["success"].tolist() == [1, 0, 1]
    assert s.episodes["seed"].tolist() == [0, 1, 2]
    for e, n in enumerate([5, 7, 4]):
        got = s.episode(e)
        for k, v in episode_frames(e, n).items():
            np.testing.assert_array_equal(got[k], v)
        ts = s.timestamps("state", e)
        assert ts.shape == (n,) and np.all(np.diff(ts) > 0)
    root = zarr.open_group(str(path), mode="r")
    assert root.attrs["robolearn_store"]["version"] == 3 and root.attrs["robolearn_store"]["frame_layout"] == "sharded"
    assert root.attrs["robolearn_store"]["status_names"] == {"ok": 0, "aborted": 1, "truncated": 2}
    assert s.episodes["status"].tolist() == [0, 0, 0] and s.episodes["missed_ticks"].tolist() == [0, 0, 0]
    assert root["data/images/front"].chunks == (1, 8, 8, 3)  # one frame per chunk


def test_bad_input_is_refused_before_writing(make_store):
    path = make_store((3,))
    frames = episode_frames(1, 4)
    cases = [
        ({**frames, "bogus": frames["state"]}, "unknown key 'bogus'"),
        ({k: v for k, v in frames.items() if k != "state"}, "lacks key 'state'"),
        ({**frames, "state": frames["state"][:, :2]}, "key 'state': expected frames of shape [3]"),
        ({**frames, "images/front": frames["images/front"].astype(np.float32)}, "expected dtype uint8"),
        ({**frames, "action": np.where(np.arange(8).reshape(4, 2) == 3, np.nan, frames["action"])},
         "key 'action': frame 1 holds NaN"),
    ]
    with StoreWriter(path) as w:
        for bad, msg in cases:
            with pytest.raises(StoreError, match=msg.replace("[", r"\[").replace("]", r"\]")):
                w.add_episode(bad)
    s = Store.open(path)
    assert (s.n_episodes, s.n_frames) == (1, 3)
    assert validate_store(path)["ok"]


def test_second_writer_is_refused_and_dead_lock_taken_over(make_store):
    path = make_store((3,))
    w = StoreWriter(path)
    with pytest.raises(StoreError, match="only one writer"):
        StoreWriter(path)
    w.close()
    # A lock left by a process that no longer exists is taken over.
    (path / ".robolearn.lock").write_text(json.dumps({"pid": 2**22 + 12345, "host": os.uname().nodename}))
    with StoreWriter(path) as w2:
        w2.add_episode(episode_frames(1, 2))
    assert Store.open(path).n_episodes == 2


def test_uncommitted_tail_is_invisible_and_repair_is_idempotent(make_store):
    path = make_store((5, 7))
    # Simulate a writer killed after growing the arrays but before the commit marker.
    root = zarr.open_group(str(path), mode="r+")
    for key in FEATURES:
        arr = root[f"data/{key}"]
        arr.resize((20, *arr.shape[1:]))
    root["meta/episode_ends"].resize((3,))  # marker grown, value never written (fill 0)
    s = Store.open(path)
    assert (s.n_episodes, s.n_frames) == (2, 12)
    assert not validate_store(path)["ok"]
    first = repair(path)
    assert first["episodes"] == 2 and first["cut_frames"] == 8 and first["cut_episodes"] == 1
    second = repair(path)
    assert second["cut_frames"] == 0 and second["cut_episodes"] == 0
    assert validate_store(path)["ok"]
    np.testing.assert_array_equal(Store.open(path).episode(1)["state"], episode_frames(1, 7)["state"])


def test_corrupt_chunk_names_episode_and_key(make_store):
    path = make_store((3, 3))
    shard = path / "data" / "images" / "front" / "c.0.0.0.0"  # sharded: frame 4 is a byte range of shard 0
    rows = zarr.open_array(str(path / "data" / "images" / "front"), mode="r").shards[0]
    blob = bytearray(shard.read_bytes())
    off, n = parse_index(bytes(blob[-index_nbytes(rows):]), rows)[4]
    blob[int(off): int(off) + int(n)] = b"\x00" * int(n)
    shard.write_bytes(bytes(blob))
    with pytest.raises(StoreError, match=r"episode 1, key 'images/front'"):
        Store.open(path).episode(1)
    assert not validate_store(path)["ok"]


def test_corrupt_chunk_of_one_file_per_frame_store(tmp_path):
    path = tmp_path / "files.zarr"
    with StoreWriter(path, FEATURES, fps=10.0, frame_layout="files") as w:
        for e in range(2):
            w.add_episode(episode_frames(e, 3))
    chunk = path / "data" / "images" / "front" / "c" / "4" / "0" / "0" / "0"
    assert chunk.is_file()
    chunk.write_bytes(b"garbage")
    with pytest.raises(StoreError, match=r"episode 1, key 'images/front'"):
        Store.open(path).episode(1)
    assert not validate_store(path)["ok"]


def test_stats_are_computed_once_and_stored(make_store):
    path = make_store((5, 7))
    stats = ensure_stats(path)
    state = np.concatenate([episode_frames(0, 5)["state"], episode_frames(1, 7)["state"]])
    np.testing.assert_allclose(stats["state"]["mean"], state.mean(0), rtol=1e-6)
    np.testing.assert_allclose(stats["state"]["max"], state.max(0))
    np.testing.assert_allclose(stats["state"]["q99"], np.quantile(state, 0.99, axis=0), rtol=1e-6)
    assert len(stats["images/front"]["mean"]) == 3
    assert Store.open(path).stats["_frames"] == 12


def test_info_and_missing_store(make_store, tmp_path):
    path = make_store((5, 7))
    info = store_info(path)
    assert info["episodes"] == 2 and info["frames"] == 12 and info["lengths"] == [5, 7]
    assert info["keys"] == ["action", "images/front", "state"] and info["fps"] == 10.0 and info["bytes"] > 0
    with pytest.raises(StoreError, match="does not exist"):
        Store.open(tmp_path / "nope.zarr")


def test_reopen_with_other_features_is_refused(make_store):
    path = make_store((2,))
    other = dict(FEATURES, state=FEATURES["action"])
    with pytest.raises(OutputError, match="it is a robolearn store of schema version .*pass --resume"):
        StoreWriter(path, other, fps=10)  # appending to an existing store is asked for explicitly
    with pytest.raises(StoreError, match="different features"):
        StoreWriter(path, other, fps=10, resume=True)
    with StoreWriter(path) as w:  # lock released after the refusal
        w.add_episode(episode_frames(1, 2), meta=EpisodeMeta(task="x"))
