"""`robolearn data export STORE OUT.rrd --format rerun`, read back with rerun's own API (rerun.dataframe)."""

import json

import cv2
import numpy as np
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from robolearn.cli.main import app
from robolearn.output import OutputError
from robolearn.store import Store
from robolearn.store.interop import export_dataset
from robolearn.store.interop.rerun_rrd import APP_ID, recording_id
from tests.store.test_s3 import s3, s3_store  # noqa: F401  (moto's server on loopback, a 3-episode store)
from tests.view.conftest import FEATURES, LENGTHS, TASKS, episode, make_view_store

rd = pytest.importorskip("rerun.dataframe", reason="the rerun extra is installed by `make install`")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("rerun")
    store = make_view_store(root / "demo.zarr")
    result = CliRunner().invoke(app, ["data", "export", str(store), str(root / "demo.rrd"), "--format", "rerun", "--json"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return store, root / "demo.rrd", json.loads(result.output.strip().splitlines()[-1])


def _by_entity(table: pa.Table, entity: str, component: str) -> tuple[np.ndarray, np.ndarray, list]:
    """(frame indices, time stamps in s, values) of the rows of one entity, in frame order."""
    col = f"/{entity}:{component}"
    rows = [i for i, v in enumerate(table.column(col).to_pylist()) if v is not None]
    frames = np.array(table.column("frame").to_pylist())[rows]
    ns = table.column("time").cast(pa.int64()).to_numpy(zero_copy_only=False)[rows]
    values = [table.column(col)[i].as_py() for i in rows]
    order = np.argsort(frames, kind="stable")
    return frames[order], ns[order] / 1e9, [values[i] for i in order]


def test_every_key_and_stamp_reads_back(exported):
    store, rrd, summary = exported
    assert summary["episodes"] == 3 and summary["frames"] == sum(LENGTHS) and summary["recordings"] == "one per episode"
    archive = rd.load_archive(str(rrd))
    recordings = {r.recording_id(): r for r in archive.all_recordings()}
    assert set(recordings) == {recording_id(str(store), e) for e in range(3)}
    assert {r.application_id() for r in recordings.values()} == {APP_ID}
    e = 1
    frames, stamps = episode(e, LENGTHS[e])
    rec = recordings[recording_id(str(store), e)]
    table = rec.view(index="time", contents="/**").select().read_all()
    # one entity per key, on the recording's own clock: each stream at its own capture stamps
    for key, component in [("state", "Scalar"), ("force", "Scalar"), ("reward", "Scalar"), ("action", "Scalar"),
                           ("action_commanded", "Scalar")]:
        idx, t, values = _by_entity(table, key, component)
        assert idx.tolist() == list(range(LENGTHS[e])), key
        np.testing.assert_allclose(t, stamps[key], rtol=0, atol=1e-9, err_msg=key)
        np.testing.assert_allclose(np.array(values).reshape(LENGTHS[e], -1),
                                   frames[key].reshape(LENGTHS[e], -1), rtol=1e-6, err_msg=key)
    # the lagging, jittering camera keeps its own stamps (12 ms behind the state, +-2 ms)
    idx, t, _ = _by_entity(table, "images/front", "ImageBuffer")
    np.testing.assert_allclose(t, stamps["images/front"], rtol=0, atol=1e-9)
    assert np.allclose(stamps["state"] - t, 0.012 - (np.arange(LENGTHS[e]) % 2) * 0.002)
    # lossless camera: the exact pixels
    _, _, buffers = _by_entity(table, "images/front", "ImageBuffer")
    _, _, fmts = _by_entity(table, "images/front", "ImageFormat")
    assert fmts[0][0]["width"] == 24 and fmts[0][0]["height"] == 16
    for i, buf in enumerate(buffers):
        np.testing.assert_array_equal(np.array(buf[0], np.uint8).reshape(16, 24, 3), frames["images/front"][i])
    # JPEG camera: the stored JPEG as an EncodedImage (or decoded where the store keeps frames in shards)
    blob_col = "/images/wrist:Blob"
    if blob_col in table.column_names:
        _, t, blobs = _by_entity(table, "images/wrist", "Blob")
        got = [cv2.imdecode(np.array(b[0], np.uint8), cv2.IMREAD_COLOR)[..., ::-1] for b in blobs]
    else:
        _, t, bufs = _by_entity(table, "images/wrist", "ImageBuffer")
        got = [np.array(b[0], np.uint8).reshape(16, 16, 3) for b in bufs]
    assert len(got) == LENGTHS[e]
    np.testing.assert_allclose(t, stamps["images/wrist"], rtol=0, atol=1e-9)
    assert max(np.abs(g.astype(int) - f.astype(int)).max() for g, f in zip(got, frames["images/wrist"])) <= 6
    # depth in metres (float32), tactile as a tensor of the taxel grid
    _, _, depth = _by_entity(table, "depth/front", "ImageBuffer")
    np.testing.assert_array_equal(np.frombuffer(bytes(depth[3][0]), np.float32).reshape(16, 24), frames["depth/front"][3])
    _, _, tactile = _by_entity(table, "tactile/finger", "TensorData")
    assert tactile[0][0]["shape"] == [4, 6, 3]
    np.testing.assert_allclose(np.array(tactile[2][0]["buffer"]).reshape(4, 6, 3), frames["tactile/finger"][2], rtol=1e-6)
    # timing: ms after the tick's stamp, NaN where the stage did not run
    _, _, timing = _by_entity(table, "timing/inference_end", "Scalar")
    timing = np.array([v[0] for v in timing], dtype=float)
    ran = ~np.isnan(frames["timing/inference_end"])
    np.testing.assert_allclose(timing[ran], 4.0, atol=1e-6)
    assert np.isnan(timing[~ran]).all()
    # the episode's row is a recording property
    props = rec.view(index="frame", contents="/__properties/**").select_static().read_all().to_pylist()[0]
    assert props["/__properties/episode:task"] == [TASKS[e]] and props["/__properties/episode:success"] == [False]
    assert props["/__properties/episode:length"] == [LENGTHS[e]] and props["/__properties/episode:dropped_frames"] == [3]
    assert len({k.split(":")[0] for k in table.column_names if k.startswith("/")}) == len(FEATURES)


def test_export_claims_its_output(exported, tmp_path):
    store, rrd, _ = exported
    before = rrd.read_bytes()
    with pytest.raises(OutputError, match="already exists; pass --overwrite"):
        export_dataset(store, rrd, "rerun")
    assert rrd.read_bytes() == before
    out = export_dataset(store, rrd, "rerun", overwrite=True)  # its own earlier export: replaced
    assert out["out"] == str(rrd) and len(list(rd.load_archive(str(rrd)).all_recordings())) == 3
    assert not list(rrd.parent.glob(".*partial*"))
    mine = tmp_path / "mine.rrd"  # a file the user named .rrd: never replaced, not even with --overwrite
    mine.write_bytes(b"my notes")
    with pytest.raises(OutputError, match="not a rerun recording"):
        export_dataset(store, mine, "rerun", overwrite=True)
    assert mine.read_bytes() == b"my notes"
    with pytest.raises(ValueError, match=r"does not end in \.rrd"):
        export_dataset(store, tmp_path / "out.bin", "rerun")
    with pytest.raises(ValueError, match="--overwrite applies to rerun exports only"):
        export_dataset(store, tmp_path / "x.hdf5", "robomimic", overwrite=True)
    with pytest.raises(ValueError, match="exported only"):
        from robolearn.store.interop import import_dataset

        import_dataset(rrd, tmp_path / "back.zarr", "rerun")
    assert Store.open(store).n_episodes == 3


def test_a_failed_export_leaves_nothing_and_deletes_nothing_of_the_users(exported, tmp_path, monkeypatch):
    """The partial recording lives in a fresh folder of its own: a user's file named like the old fixed temporary
    name (.OUT.partial-PID) survives a failed export, and nothing else is left beside it."""
    import os

    from robolearn.store.interop import rerun_rrd

    store, _, _ = exported
    mine = tmp_path / f".out.rrd.partial-{os.getpid()}"
    mine.write_bytes(b"my notes")

    def broken(*args, **kwargs):
        raise RuntimeError("encoding failed")

    monkeypatch.setattr(rerun_rrd, "_episode_rrd", broken)
    with pytest.raises(RuntimeError, match="encoding failed"):
        export_dataset(store, tmp_path / "out.rrd", "rerun")
    assert mine.read_bytes() == b"my notes" and sorted(p.name for p in tmp_path.iterdir()) == [mine.name]


def test_an_s3_store_exports_too(s3, s3_store, tmp_path):
    """A store on S3 (moto's server on loopback: the fixtures of test_s3) exports like a local one."""
    from robolearn.store.interop.rerun_rrd import export_rerun

    out = export_rerun(s3_store, tmp_path / "s3.rrd", storage_options=s3)
    assert out["episodes"] == 3
    recordings = {r.recording_id(): r for r in rd.load_archive(str(tmp_path / "s3.rrd")).all_recordings()}
    assert set(recordings) == {recording_id(s3_store, e) for e in range(3)}
    store = Store.open(s3_store, storage_options=s3)
    table = recordings[recording_id(s3_store, 1)].view(index="frame", contents="/**").select().read_all()
    _, t, state = _by_entity(table, "state", "Scalar")
    np.testing.assert_allclose(np.array(state), store.episode(1)["state"], rtol=1e-6)
    np.testing.assert_allclose(t, store.timestamps("state", 1), rtol=0, atol=1e-9)
