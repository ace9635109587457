"""Sharded image arrays (store.shards): files on disk, exact random access, packing, the fast reader."""

import numpy as np
import pytest
import zarr

from robolearn.store import EpisodeMeta, Feature, Store, StoreWriter, repair
from robolearn.store.backend import SyncingLocalStore
from robolearn.store.frames import FrameReader
from robolearn.store.info import validate_store
from robolearn.store.latents import read_latents, write_latents
from robolearn.store.shards import file_count, shard_frames, split_shard

FEATS = {
    "images/jpg": Feature((12, 16, 3), "uint8", "jpeg", 90),
    "images/raw": Feature((12, 16, 3), "uint8"),
    "state": Feature((2,), "float32"),
    "action": Feature((2,), "float32"),
}
S = 16  # frames per shard in these tests


def frames_of(e: int, n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(e)
    img = rng.integers(0, 256, (n, 12, 16, 3)).astype(np.uint8)
    img[:, :, :8] = (np.arange(n)[:, None, None, None] * 3 + e) % 256  # smooth half: JPEG keeps it recognisable
    i = np.arange(n, dtype=np.float32)
    return {"images/jpg": img, "images/raw": img[:, ::-1].copy(), "state": np.stack([i + 100 * e, i], 1),
            "action": np.stack([-i, i * 0 + e], 1).astype(np.float32)}


def write(path, lengths, start=0, **kw):
    with StoreWriter(path, FEATS if start == 0 else None, fps=10.0, shard_frames=S if start == 0 else None, **kw) as w:
        for e, n in enumerate(lengths, start):
            w.add_episode(frames_of(e, n), None, EpisodeMeta(seed=e))
    return path


def all_frames(lengths, key, start=0):
    return np.concatenate([frames_of(e, n)[key] for e, n in enumerate(lengths, start)])


def image_files(path, key):
    return sorted(p.name for d in (path / "data" / key, path / "stage" / key) for p in d.iterdir()
                  if p.name != "zarr.json")


def test_shards_on_disk_and_exact_random_access(tmp_path):
    lengths = [23, 9, 17, 31]
    path = write(tmp_path / "s.zarr", lengths[:2])
    write(path, lengths[2:], start=2)  # a second writer session adds to the partial last shard
    n = sum(lengths)
    for key in ("images/jpg", "images/raw"):  # one file per shard, nothing left staged
        assert image_files(path, key) == sorted(f"c.{j}.0.0.0" for j in range(-(-n // S)))
    s = Store.open(path)
    arr = s.root["data/images/raw"]
    assert arr.shards == (S, 12, 16, 3) and arr.chunks == (1, 12, 16, 3)  # one frame per inner chunk
    want = all_frames(lengths, "images/raw")
    idx = np.random.default_rng(0).permutation(n)[:40]
    np.testing.assert_array_equal(s.read_frames("images/raw", idx), want[idx])  # lossless: exact
    np.testing.assert_array_equal(s.read_frames("images/raw", idx[::-1]), want[idx[::-1]])
    jpg = np.asarray(zarr.open_array(str(path / "data/images/jpg"), mode="r")[:])  # zarr's own decoding
    np.testing.assert_array_equal(s.read_frames("images/jpg", idx), jpg[idx])
    assert np.abs(jpg[:, :, :6].astype(int) - all_frames(lengths, "images/jpg")[:, :, :6]).mean() < 6  # frames in place
    for e in range(len(lengths)):
        np.testing.assert_array_equal(s.episode(e)["images/raw"], frames_of(e, lengths[e])["images/raw"])
    assert validate_store(path)["ok"]


def test_fast_path_equals_zarr_path_and_stored_bytes(tmp_path):
    path = write(tmp_path / "s.zarr", [20, 30])
    s = Store.open(path)
    for key in ("images/jpg", "images/raw"):
        arr = s.root[f"data/{key}"]
        idx = np.array([49, 0, 17, 16, 15, 33, 33, 2])
        fast = FrameReader(arr).read(idx)
        np.testing.assert_array_equal(fast, np.asarray(arr.get_orthogonal_selection((idx,))))
        # the bytes it reads are the shard's inner chunks as zarr stored them
        shard0 = split_shard((path / "data" / key / "c.0.0.0.0").read_bytes(), S)
        assert s.chunk_bytes(key, 0, S) == shard0


def test_frames_are_staged_while_recording_and_packed_after_commit(tmp_path):
    path = tmp_path / "s.zarr"
    with StoreWriter(path, FEATS, fps=10.0, shard_frames=S) as w:
        w.add_episode(frames_of(0, 10))  # 10 < S: committed, still staged
        assert image_files(path, "images/raw") == sorted(f"c.{i}.0.0.0" for i in range(10))
        reader = Store.open(path)  # opened while frames are staged
        np.testing.assert_array_equal(reader.episode(0)["images/raw"], frames_of(0, 10)["images/raw"])
        with w.begin_episode() as st:
            fr = frames_of(1, 12)
            st.append(fr, {k: np.arange(12) / 10 for k in fr})
            assert Store.open(path).n_episodes == 1  # the episode in progress is invisible
            st.commit()
        # frames 0..15 filled shard 0: packed once the commit marker was written, their staged files gone
        assert image_files(path, "images/raw") == ["c.0.0.0.0"] + sorted(f"c.{i}.0.0.0" for i in range(16, 22))
        # the reader opened before the packing still finds every frame (now in the shard)
        np.testing.assert_array_equal(reader.episode(0)["images/raw"], frames_of(0, 10)["images/raw"])
        np.testing.assert_array_equal(Store.open(path).episode(1)["images/raw"], fr["images/raw"])
    assert image_files(path, "images/raw") == ["c.0.0.0.0", "c.1.0.0.0"]  # the partial shard, at close


def test_a_killed_writer_leaves_staged_frames_that_repair_packs(tmp_path):
    path = tmp_path / "s.zarr"
    w = StoreWriter(path, FEATS, fps=10.0, shard_frames=S)
    w.add_episode(frames_of(0, 7))
    with_tail = w.begin_episode()  # an episode in progress, never committed
    fr = frames_of(9, 5)
    with_tail.append(fr, {k: np.arange(5) / 10 for k in fr})
    w._lock.release()  # as a kill -9 leaves it: staged frames, an uncommitted tail, no packing
    assert len(image_files(path, "images/raw")) == 12
    first = repair(path)
    assert (first["episodes"], first["frames"], first["packed_frames"]) == (1, 7, 2 * 7)  # 7 frames x 2 cameras
    assert first["cut_frames"] >= 5  # the take's frames (and the rows grown ahead for it)
    assert image_files(path, "images/raw") == ["c.0.0.0.0"]
    again = repair(path)
    assert (again["cut_frames"], again["cut_episodes"], again["packed_frames"]) == (0, 0, 0)
    np.testing.assert_array_equal(Store.open(path).episode(0)["images/raw"], frames_of(0, 7)["images/raw"])


def test_write_amplification_is_two_within_a_writer_session(tmp_path, monkeypatch):
    written: dict[str, int] = {}
    orig = SyncingLocalStore.set

    async def counting(self, key, value):
        if key.startswith("stage/images/raw/c") or key.startswith("data/images/raw/c"):
            written[key.split("/")[0]] = written.get(key.split("/")[0], 0) + len(value)
        await orig(self, key, value)

    monkeypatch.setattr(SyncingLocalStore, "set", counting)
    path = write(tmp_path / "s.zarr", [13, 25, 10])  # 48 frames: three full shards
    stored = sum(p.stat().st_size for p in (path / "data/images/raw").glob("c.*"))
    assert written["data"] == stored  # each shard written once
    assert written["stage"] + written["data"] == pytest.approx(2 * stored, rel=0.05)  # + 3 indexes of 260 bytes


def test_shard_size_from_frame_size():
    assert shard_frames(Feature((96, 96, 3), "uint8", "jpeg")) == 4096
    assert shard_frames(Feature((224, 224, 3), "uint8", "jpeg")) == 2048
    assert shard_frames(Feature((480, 640, 3), "uint8", "jpeg")) == 256
    assert shard_frames(Feature((480, 640, 3), "uint8", "zstd")) == 64
    big = Feature((224, 224, 3), "uint8", "jpeg")
    est = 224 * 224 * 3 // 10 * shard_frames(big)
    assert 16 << 20 <= est <= 64 << 20  # ~16-64 MB of stored frames per shard


def test_old_one_file_per_frame_store_stays_readable(tmp_path):
    path = tmp_path / "old.zarr"
    with StoreWriter(path, FEATS, fps=10.0, frame_layout="files") as w:
        w.add_episode(frames_of(0, 6))
    assert (path / "data/images/raw/c/5/0/0/0").is_file() and not (path / "stage").exists()
    s = Store.open(path)
    np.testing.assert_array_equal(s.read_frames("images/raw", np.array([5, 0])), frames_of(0, 6)["images/raw"][[5, 0]])
    with StoreWriter(path) as w:  # appending keeps the store's layout
        w.add_episode(frames_of(1, 3))
    assert (path / "data/images/raw/c/8/0/0/0").is_file()
    np.testing.assert_array_equal(Store.open(path).episode(1)["images/raw"], frames_of(1, 3)["images/raw"])


def test_latents_are_sharded_and_read_exactly(tmp_path):
    path = write(tmp_path / "s.zarr", [20, 15])
    rows = np.random.default_rng(3).standard_normal((35, 4, 3, 3)).astype(np.float16)
    write_latents(path, "raw", [rows[:10], rows[10:12], rows[12:]], (4, 3, 3), "float16", {"autoencoder": "x"})
    s = Store.open(path)
    arr = s.root["latents/raw"]
    assert arr.shards is not None and arr.chunks == (1, 4, 3, 3)
    assert file_count(path / "latents" / "raw") == 2  # zarr.json + one shard
    np.testing.assert_array_equal(read_latents(s, "latents/raw"), rows)
    np.testing.assert_array_equal(s.read_frames("latents/raw", np.array([34, 3, 3])), rows[[34, 3, 3]])
