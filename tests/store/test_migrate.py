"""`robolearn data migrate`: a one-file-per-frame store rewritten into shards, bit for bit."""

import json

import numpy as np
import pytest
import zarr
from typer.testing import CliRunner

from robolearn.cli.main import app
from robolearn.output import OutputError
from robolearn.store import EpisodeMeta, Store, StoreError, StoreWriter, ensure_stats
from robolearn.store import migrate as migrate_module
from robolearn.store.info import validate_store
from robolearn.store.latents import read_latents, write_latents
from robolearn.store.migrate import migrate, verify_same
from robolearn.store.shards import file_count
from tests.store.test_shards import FEATS, frames_of

LENGTHS = [9, 14, 6]


def old_store(path):
    """A schema-2 style store: one file per frame, with stats, latents and a custom attr."""
    with StoreWriter(path, FEATS, fps=10.0, frame_layout="files", attrs={"env_id": "Demo-v0"}) as w:
        for e, n in enumerate(LENGTHS):
            w.add_episode(frames_of(e, n), None, EpisodeMeta(task=f"t{e % 2}", seed=e, success=e == 1,
                                                             source="bench", dropped_frames=e))
    ensure_stats(path)
    rows = np.arange(sum(LENGTHS) * 4, dtype=np.float16).reshape(-1, 4, 1, 1)
    write_latents(path, "raw", [rows], (4, 1, 1), "float16", {"autoencoder": "x", "scale": 0.5})
    return path


def snapshot(path):
    return {p.relative_to(path): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_migrate_to_a_new_store_bit_for_bit(tmp_path):
    src = old_store(tmp_path / "old.zarr")
    before = snapshot(src)
    result = CliRunner().invoke(app, ["data", "migrate", str(src), "--out", str(tmp_path / "new.zarr"),
                                      "--shard-frames", "8", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output.strip().splitlines()[-1])
    assert out["episodes"] == 3 and out["frames"] == 29 and out["verified"] == "bit for bit"
    assert out["latents"] == ["latents/raw"]
    assert snapshot(src) == before  # the source is not touched
    a, b = Store.open(src), Store.open(tmp_path / "new.zarr")
    assert b.info["frame_layout"] == "sharded" and b.info["env_id"] == "Demo-v0" and b.version == 3
    for key in ("images/jpg", "images/raw"):
        assert b.root[f"data/{key}"].shards[0] == 8
        assert b.chunk_bytes(key, 0, 29) == a.chunk_bytes(key, 0, 29)  # the same JPEG/zstd bytes
        np.testing.assert_array_equal(b.read(key, 0, 29), a.read(key, 0, 29))
        assert file_count(tmp_path / "new.zarr" / "data" / key) == 1 + 4  # zarr.json + 4 shards of 8
        assert file_count(src / "data" / key) == 1 + 29
    assert b.stats == a.stats and [b.task(e) for e in range(3)] == ["t0", "t1", "t0"]
    np.testing.assert_array_equal(read_latents(b, "latents/raw"), read_latents(a, "latents/raw"))
    assert validate_store(tmp_path / "new.zarr")["ok"]
    with StoreWriter(tmp_path / "new.zarr") as w:  # the migrated store records on
        w.add_episode(frames_of(3, 5))
    np.testing.assert_array_equal(Store.open(tmp_path / "new.zarr").episode(3)["images/raw"],
                                  frames_of(3, 5)["images/raw"])


def test_verification_finds_a_changed_frame(tmp_path):
    src = old_store(tmp_path / "old.zarr")
    migrate(src, tmp_path / "new.zarr")
    chunk = src / "data" / "images" / "raw" / "c" / "20" / "0" / "0" / "0"
    other = src / "data" / "images" / "raw" / "c" / "21" / "0" / "0" / "0"
    chunk.write_bytes(other.read_bytes())
    with pytest.raises(StoreError, match=r"differs from .* in the stored bytes of images/raw frames 9\.\.23"):
        verify_same(Store.open(src), Store.open(tmp_path / "new.zarr"))


def test_an_unverified_migration_leaves_nothing_at_out(tmp_path, monkeypatch):
    """The bit-for-bit check runs before the new store moves in: a difference leaves nothing at `out`."""
    src = old_store(tmp_path / "old.zarr")
    out = tmp_path / "new.zarr"
    real = migrate_module.verify_same

    def differs(a, b, name=None):
        assert not out.exists() and real(a, b, name)["frames"] == a.n_frames  # the staged copy, complete
        raise StoreError(f"migration check failed: {name} differs from {a.path} in images/raw")

    monkeypatch.setattr(migrate_module, "verify_same", differs)
    with pytest.raises(StoreError, match=f"the migrated copy of {out} differs"):
        migrate(src, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.zarr"]


def test_migrate_refusals(tmp_path):
    src = old_store(tmp_path / "old.zarr")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    with pytest.raises(OutputError, match="refusing to write a store at .*mine"):
        migrate(src, tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "x"
    with pytest.raises(StoreError, match="exactly one of"):
        migrate(src)
    with pytest.raises(StoreError, match="exactly one of"):
        migrate(src, tmp_path / "x.zarr", in_place=True)
    with pytest.raises(StoreError, match="is the source store itself"):
        migrate(src, src)
    result = CliRunner().invoke(app, ["data", "migrate", str(src)])
    assert result.exit_code != 0 and "exactly one of" in result.output
    # --in-place deletes a migrated array's old chunk folder (data/<key>/c): never in a zarr group robolearn did
    # not write, whose files look the same
    mine = tmp_path / "theirs.zarr"
    (mine / "data" / "images" / "c").mkdir(parents=True)
    (mine / "data" / "images" / "c" / "0").write_text("x")
    (mine / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group", "attributes": {}}')
    with pytest.raises(OutputError, match="robolearn did not write"):
        migrate(mine, in_place=True)
    assert (mine / "data" / "images" / "c" / "0").read_text() == "x"
    result = CliRunner().invoke(app, ["data", "migrate", str(mine), "--in-place"])
    assert result.exit_code != 0 and (mine / "data" / "images" / "c" / "0").read_text() == "x"


def test_in_place_switches_each_array_atomically(tmp_path, monkeypatch):
    src = old_store(tmp_path / "old.zarr")
    ref = old_store(tmp_path / "ref.zarr")  # an identical copy to compare against

    # Killed before the first switch: shards written beside the old files, nothing switched.
    def die(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(migrate_module, "_switch", die)
    with pytest.raises(KeyboardInterrupt):
        migrate(src, in_place=True, shard_frames=8)
    monkeypatch.undo()
    s = Store.open(src)
    assert s.root["data/images/jpg"].shards is None and (src / "data/images/jpg/c.0.0.0.0").is_file()
    verify_same(Store.open(ref), s)  # still reads every frame from the old files

    # Killed after the first key's switch, before its old files were deleted.
    monkeypatch.setattr(migrate_module, "_drop_old_chunks", die)
    with pytest.raises(KeyboardInterrupt):
        migrate(src, in_place=True, shard_frames=8)
    monkeypatch.undo()
    s = Store.open(src)
    assert s.root["data/images/jpg"].shards == (8, 12, 16, 3) and (src / "data/images/jpg/c").is_dir()
    verify_same(Store.open(ref), s)  # reads the shards now

    out = migrate(src, in_place=True, shard_frames=8)  # run again: it finishes
    assert out["migrated_keys"] == ["images/raw"] and out["already_sharded"] == ["images/jpg"]
    for key in ("images/jpg", "images/raw"):
        assert sorted(p.name for p in (src / "data" / key).iterdir()) == ["c.0.0.0.0", "c.1.0.0.0", "c.2.0.0.0",
                                                                          "c.3.0.0.0", "zarr.json"]
        assert zarr.open_array(str(src / "data" / key), mode="r").shards[0] == 8
    s = Store.open(src)
    assert s.version == 3 and s.info["frame_layout"] == "sharded"
    verify_same(Store.open(ref), s)
    with StoreWriter(src) as w:  # and it records on, sharded
        w.add_episode(frames_of(3, 5))
    assert (src / "data/images/raw/c.4.0.0.0").is_file()
    np.testing.assert_array_equal(Store.open(src).episode(3)["images/raw"], frames_of(3, 5)["images/raw"])
