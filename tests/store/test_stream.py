"""Episodes streamed into a store while they are recorded: same bytes as a whole-episode write, invisible
to readers until committed, and an abort (discard / re-record) leaves nothing behind."""

from pathlib import Path

import re

import numpy as np
import pytest
import zarr

from robolearn.store import EpisodeMeta, Feature, Store, StoreError, StoreWriter, repair
from robolearn.store.codecs import decode_jpeg, encode_jpeg
from robolearn.store.info import validate_store
from robolearn.store.shards import split_shard
from robolearn.store.writer import set_rows

# force: 16 KiB rows, so 64 rows per chunk: episodes cross chunk boundaries and start mid-chunk.
FEATS = {
    "state": Feature((3,), "float32"),
    "force": Feature((4096,), "float32"),
    "images/front": Feature((8, 8, 3), "uint8"),
    "images/wrist": Feature((16, 24, 3), "uint8", "jpeg", 90),
    "action": Feature((2,), "float32"),
}


def frames_of(e: int, n: int) -> dict[str, np.ndarray]:
    i = np.arange(n, dtype=np.float32)
    rng = np.random.default_rng(e)
    return {
        "state": np.stack([e * 1000 + i, i, np.full(n, e, np.float32)], 1),
        "force": (e * 1000 + i[:, None] + np.arange(4096, dtype=np.float32)[None] / 8).astype(np.float32),
        "images/front": rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8),
        "images/wrist": np.broadcast_to(((np.arange(n) * 7 + e * 31) % 200 + 20).astype(np.uint8)[:, None, None, None],
                                        (n, 16, 24, 3)).copy(),
        "action": np.stack([-(e * 1000 + i), i * 0.5], 1).astype(np.float32),
    }


def stamps_of(e: int, n: int) -> dict[str, np.ndarray]:
    return {k: e * 100.0 + np.arange(n) / 10.0 + j for j, k in enumerate(FEATS)}


def stream(w: StoreWriter, e: int, n: int, blocks=(1, 3, 5, 64, 7), meta: EpisodeMeta | None = None,
           commit: bool = True):
    fr, ts = frames_of(e, n), stamps_of(e, n)
    st = w.begin_episode()
    a, i = 0, 0
    while a < n:
        b = min(n, a + blocks[i % len(blocks)])
        assert st.append({k: v[a:b] for k, v in fr.items()}, {k: v[a:b] for k, v in ts.items()}) == b
        a, i = b, i + 1
    if commit:
        return st.commit(meta or EpisodeMeta(task=f"t{e}", seed=e))
    return st


def chunk_files(path: Path, key: str) -> list[Path]:
    """The files holding key's frames: chunk files of data/<key> (shards of image keys) and, for a sharded
    image key, its frames still staged (one file each in stage/<key>), in frame order."""
    def order(p: Path):
        return (p.relative_to(path).parts[0] == "stage", [int(x) for x in re.findall(r"\d+", str(p.relative_to(path)))])

    files = [p for d in (path / "data" / key, path / "stage" / key) if d.is_dir()
             for p in d.rglob("*") if p.is_file() and p.name != "zarr.json"]
    return sorted(files, key=order)


def expected(e: int, n: int) -> dict[str, np.ndarray]:
    fr = frames_of(e, n)
    fr["images/wrist"] = np.stack([decode_jpeg(encode_jpeg(f, 90), f.shape) for f in fr["images/wrist"]])
    return fr


def test_streamed_episodes_match_whole_episode_writes(tmp_path):
    lengths = [150, 70, 1, 131]
    a, b = tmp_path / "stream.zarr", tmp_path / "whole.zarr"
    with StoreWriter(a, FEATS, fps=10) as w:
        assert [stream(w, e, n) for e, n in enumerate(lengths)] == [0, 1, 2, 3]
    with StoreWriter(b, FEATS, fps=10) as w:
        for e, n in enumerate(lengths):
            w.add_episode(frames_of(e, n), stamps_of(e, n), EpisodeMeta(task=f"t{e}", seed=e))
    sa, sb = Store.open(a), Store.open(b)
    assert sa.lengths.tolist() == lengths and sa.n_frames == sum(lengths)
    for e, n in enumerate(lengths):
        got = sa.episode(e)
        for k, want in expected(e, n).items():
            assert got[k].dtype == want.dtype and np.array_equal(got[k], want), (e, k)
            np.testing.assert_array_equal(sa.timestamps(k, e), stamps_of(e, n)[k])
        assert sa.task(e) == f"t{e}" and sa.episodes["seed"][e] == e
    for key in FEATS:  # the same stored bytes, chunk for chunk
        fa, fb = chunk_files(a, key), chunk_files(b, key)
        assert [p.relative_to(a) for p in fa] == [p.relative_to(b) for p in fb]
        assert all(x.read_bytes() == y.read_bytes() for x, y in zip(fa, fb)), key
    assert validate_store(a)["ok"] and validate_store(a) == validate_store(b)
    assert repair(a)["cut_frames"] == 0


def test_readers_see_a_streamed_episode_only_once_committed(tmp_path):
    path = tmp_path / "s.zarr"
    with StoreWriter(path, FEATS, fps=10) as w:
        stream(w, 0, 20)
        st = stream(w, 1, 90, commit=False)
        # every frame of episode 1 is on disk already: the images one chunk file each
        assert len(chunk_files(path, "images/wrist")) == 110
        s = Store.open(path)
        assert (s.n_episodes, s.n_frames) == (1, 20)
        np.testing.assert_array_equal(s.episode(0)["force"], frames_of(0, 20)["force"])
        st.commit(EpisodeMeta(seed=1))
        s = Store.open(path)
        assert s.lengths.tolist() == [20, 90]
        np.testing.assert_array_equal(s.episode(1)["images/front"], frames_of(1, 90)["images/front"])


def test_abort_cuts_back_and_the_next_take_overwrites(tmp_path):
    path = tmp_path / "s.zarr"
    with StoreWriter(path, FEATS, fps=10) as w:
        stream(w, 0, 70)
        st = stream(w, 9, 200, commit=False)  # a long take, then discarded
        st.abort()
        st.abort()  # idempotent
        for group in ("data", "timestamps"):
            for key in FEATS:
                assert w.root[f"{group}/{key}"].shape[0] == 70, (group, key)
        for key in ("images/front", "images/wrist"):
            assert len(chunk_files(path, key)) == 70  # the take's staged files are gone
            assert len(list((path / "stage" / key).iterdir())) == 71  # one file per frame (+ zarr.json)
        with pytest.raises(StoreError, match="already committed or aborted"):
            st.append(frames_of(9, 1), stamps_of(9, 1))
        stream(w, 1, 40)  # the re-recorded take: shorter than the discarded one
        st = stream(w, 8, 5, commit=False)
    # closing the writer with a stream open drops the stream too
    s = Store.open(path)
    assert s.lengths.tolist() == [70, 40]
    for e, n in ((0, 70), (1, 40)):
        got = s.episode(e)
        for k, want in expected(e, n).items():
            assert np.array_equal(got[k], want), (e, k)
    assert validate_store(path)["ok"]
    assert [p.name for p in chunk_files(path, "images/wrist")] == ["c.0.0.0.0"]  # packed into one shard at close
    assert repair(path) == {"episodes": 2, "frames": 110, "cut_frames": 0, "cut_episodes": 0,
                            "removed_partial_files": 0, "packed_frames": 0, "created_arrays": []}


def test_stream_refuses_bad_blocks_and_keeps_going(tmp_path):
    path = tmp_path / "s.zarr"
    with StoreWriter(path, FEATS, fps=10) as w:
        st = w.begin_episode()
        with pytest.raises(StoreError, match="already open"):
            w.begin_episode()
        with pytest.raises(StoreError, match="already open"):
            w.add_episode(frames_of(0, 2), stamps_of(0, 2))
        with pytest.raises(StoreError, match="needs at least one frame"):
            st.commit()
        fr, ts = frames_of(0, 6), stamps_of(0, 6)
        st.append({k: v[:3] for k, v in fr.items()}, {k: v[:3] for k, v in ts.items()})
        bad = {k: v[3:] for k, v in fr.items()}
        bad["state"] = bad["state"].copy()
        bad["state"][1, 0] = np.nan
        with pytest.raises(StoreError, match="key .state.: frame 4 holds NaN"):
            st.append(bad, {k: v[3:] for k, v in ts.items()})
        with pytest.raises(StoreError, match="lacks key 'action'"):
            st.append({k: v[3:] for k, v in fr.items() if k != "action"}, {k: v[3:] for k, v in ts.items()})
        with pytest.raises(StoreError, match="different lengths"):
            st.append({**{k: v[3:] for k, v in fr.items()}, "action": fr["action"][3:5]},
                      {k: v[3:] for k, v in ts.items()})
        with pytest.raises(StoreError, match="timestamps/force: expected 3 timestamps"):
            st.append({k: v[3:] for k, v in fr.items()}, {**{k: v[3:] for k, v in ts.items()}, "force": ts["force"]})
        with pytest.raises(StoreError, match="not stored one frame per chunk"):
            st.append({k: v[3:] for k, v in fr.items() if k != "state"}, {k: v[3:] for k, v in ts.items()},
                      chunks={"state": [b"x"] * 3})
        st.append({k: v[3:] for k, v in fr.items()}, {k: v[3:] for k, v in ts.items()})
        assert st.commit(EpisodeMeta(seed=0)) == 0
    s = Store.open(path)
    assert s.lengths.tolist() == [6]
    np.testing.assert_array_equal(s.episode(0)["state"], fr["state"])
    np.testing.assert_array_equal(s.timestamps("force", 0), ts["force"])


def test_encoded_chunks_are_stored_as_given(tmp_path):
    path = tmp_path / "s.zarr"
    fr, ts = frames_of(3, 4), stamps_of(3, 4)
    blobs = [encode_jpeg(f, 40) for f in fr["images/wrist"]]  # not what quality 90 would give
    with StoreWriter(path, FEATS, fps=10) as w:
        st = w.begin_episode()
        st.append({k: v for k, v in fr.items() if k != "images/wrist"}, ts, chunks={"images/wrist": blobs})
        st.commit()
    [shard] = chunk_files(path, "images/wrist")  # packed at close, the bytes as given
    assert split_shard(shard.read_bytes(), zarr.open_array(str(path / "data/images/wrist")).shards[0])[:4] == blobs
    s = Store.open(path)
    assert s.chunk_bytes("images/wrist", 0, 4) == blobs
    want = np.stack([decode_jpeg(b, (16, 24, 3)) for b in blobs])
    np.testing.assert_array_equal(s.episode(0)["images/wrist"], want)


def test_set_rows_shrinks_without_leaving_chunks(tmp_path):
    path = tmp_path / "s.zarr"
    with StoreWriter(path, FEATS, fps=10, frame_layout="files") as w:  # one file per frame
        stream(w, 0, 10)
        arr = w.root["data/images/front"]
        set_rows(arr, 4)
        assert arr.shape[0] == 4 and len(chunk_files(path, "images/front")) == 4
        set_rows(arr, 12)  # grown back: the cut frames do not come back
        assert arr.shape[0] == 12 and not arr[4:].any()
        np.testing.assert_array_equal(arr[:4], frames_of(0, 10)["images/front"][:4])
