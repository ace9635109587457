"""A store on S3 (`s3://bucket/prefix` through fsspec), against moto's server on loopback."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("moto.server")
pytest.importorskip("s3fs")
boto3 = pytest.importorskip("boto3")

from robolearn.sampling import WindowSampler  # noqa: E402
from robolearn.store import EpisodeMeta, Store, StoreWriter  # noqa: E402
from robolearn.store.info import store_info, validate_store  # noqa: E402
from tests.conftest import FEATURES, episode_frames  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
BUCKET = "robolearn-test"
CREDS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
         "AWS_EC2_METADATA_DISABLED": "true"}

READER = """
import json, sys, numpy as np
from robolearn.store import Store
url, opts = sys.argv[1], json.loads(sys.argv[2])
s = Store.open(url, storage_options=opts)
sums = [float(sum(np.asarray(v, np.float64).sum() for v in s.episode(e).values())) for e in range(s.n_episodes)]
frames = s.root["data/images/front"].get_orthogonal_selection((np.array([0, 5, 11]),))  # the sampler's read path
print(json.dumps({"episodes": s.n_episodes, "sums": sums, "red": frames[:, 0, 0, 0].tolist()}))
"""


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    old = {k: os.environ.get(k) for k in CREDS}
    os.environ.update(CREDS)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=BUCKET)
        yield {"endpoint_url": endpoint, "key": "testing", "secret": "testing", "anon": False}
    finally:
        server.stop()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def s3_store(s3, request):
    # moto keeps its buckets per process, not per server: a module that imports these fixtures must not meet
    # another module's store at the same URL
    url = f"s3://{BUCKET}/stores/demo-{request.module.__name__.rsplit('.', 1)[-1]}.zarr"
    with StoreWriter(url, FEATURES, fps=10.0, storage_options=s3) as w:
        for e, n in enumerate([5, 7, 4]):
            w.add_episode(episode_frames(e, n), None, EpisodeMeta(task="push", seed=e))
    return url


def test_write_and_read_by_url(s3, s3_store):
    s = Store.open(s3_store, storage_options=s3)
    assert (s.n_episodes, s.n_frames) == (3, 16) and s.lengths.tolist() == [5, 7, 4]
    for e, n in enumerate([5, 7, 4]):
        for k, v in episode_frames(e, n).items():
            np.testing.assert_array_equal(s.episode(e)[k], v)
    b = WindowSampler(s, ["state", "images/front"], 2, 4, cache_bytes=0).get_batch(np.array([0, 5, 11]))
    assert b["state"][..., 0].tolist() == [[0, 0], [100, 100], [105, 106]]
    assert b["images/front"].shape == (3, 2, 8, 8, 3)
    assert s.nbytes() > 0


def test_append_to_existing_url_store(s3):
    url = f"s3://{BUCKET}/stores/append.zarr"
    with StoreWriter(url, FEATURES, fps=10.0, storage_options=s3) as w:
        w.add_episode(episode_frames(0, 3))
    with StoreWriter(url, storage_options=s3) as w:
        assert w.n_episodes == 1
        w.add_episode(episode_frames(1, 4))
    s = Store.open(url, storage_options=s3)
    assert s.lengths.tolist() == [3, 4]
    np.testing.assert_array_equal(s.episode(1)["action"], episode_frames(1, 4)["action"])


def test_streamed_episode_and_discarded_take_by_url(s3):
    url = f"s3://{BUCKET}/stores/stream.zarr"
    with StoreWriter(url, FEATURES, fps=10.0, storage_options=s3) as w:
        w.add_episode(episode_frames(0, 3))
        with w.begin_episode() as take:  # streamed, then discarded
            fr = episode_frames(7, 9)
            take.append(fr, {k: np.arange(9) / 10 for k in fr})
            take.abort()
        fr = episode_frames(1, 5)
        with w.begin_episode() as st:
            for a in (0, 2, 4):
                st.append({k: v[a:a + 2] for k, v in fr.items()}, {k: np.arange(a, min(a + 2, 5)) / 10 for k in fr})
            assert st.commit() == 1
    s = Store.open(url, storage_options=s3)
    assert s.lengths.tolist() == [3, 5]
    for k, v in fr.items():
        np.testing.assert_array_equal(s.episode(1)[k], v)
    for group in ("data", "timestamps"):  # the discarded take left no tail
        assert all(s.root[f"{group}/{k}"].shape[0] == 8 for k in FEATURES)


def test_two_processes_read_concurrently(s3, s3_store):
    env = {**os.environ, **CREDS, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", READER, s3_store, json.dumps(s3)], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    want = [float(sum(np.asarray(v, np.float64).sum() for v in episode_frames(e, n).values()))
            for e, n in enumerate([5, 7, 4])]
    for r in results:
        assert r["episodes"] == 3
        np.testing.assert_allclose(r["sums"], want)
        assert r["red"] == [0, 1, 1]


def test_validate_by_url(s3, s3_store, monkeypatch):
    # Without storage_options, fsspec takes the endpoint from the environment (as a CLI user would).
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3["endpoint_url"])
    assert validate_store(s3_store)["ok"]
    assert store_info(s3_store)["episodes"] == 3


def _objects(s3, prefix: str) -> dict[str, bytes]:
    client = boto3.client("s3", endpoint_url=s3["endpoint_url"], region_name="us-east-1")
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return {o["Key"]: client.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read() for o in listed}


def test_prefix_with_other_objects_is_refused_and_left_alone(s3):
    from robolearn.output import OutputError

    client = boto3.client("s3", endpoint_url=s3["endpoint_url"], region_name="us-east-1")
    client.put_object(Bucket=BUCKET, Key="mine/notes.txt", Body=b"my notes")
    client.put_object(Bucket=BUCKET, Key="mine/sub/a.bin", Body=b"\x00\x01")
    before = _objects(s3, "mine/")
    url = f"s3://{BUCKET}/mine"
    for flags in ({}, {"resume": True}, {"overwrite": True}):
        with pytest.raises(OutputError, match=f"refusing to write a store at {url}: it holds 1 file and 1 folder "
                                              r"robolearn did not write \(notes.txt, sub/\)"):
            StoreWriter(url, FEATURES, fps=10.0, storage_options=s3, **flags)
    assert _objects(s3, "mine/") == before


def test_transient_s3_error_is_an_error_not_absent(s3, s3_store, monkeypatch):
    import s3fs

    from robolearn.output import OutputError

    prefix = s3_store.split(f"s3://{BUCKET}/", 1)[1] + "/"
    before = _objects(s3, prefix)
    assert before  # the store's objects are there to be compared

    async def slow_down(self, path, *a, **k):
        raise OSError(503, "Slow Down", path)

    monkeypatch.setattr(s3fs.S3FileSystem, "_info", slow_down)
    for flags in ({}, {"overwrite": True}):
        with pytest.raises(OutputError, match=r"^cannot (tell what is at|read) .*Slow Down.*nothing was written") as err:
            StoreWriter(s3_store, FEATURES, fps=10.0, storage_options=s3, **flags)
        assert s3_store in str(err.value)
    monkeypatch.undo()
    assert _objects(s3, prefix) == before
    assert Store.open(s3_store, storage_options=s3).n_episodes == 3


def test_sharded_frames_are_ranged_reads_of_their_shards(s3, monkeypatch):
    from zarr.abc.store import RangeByteRequest, SuffixByteRequest
    from zarr.storage import FsspecStore

    url = f"s3://{BUCKET}/stores/sharded.zarr"
    # episodes 1..3: no frame is all zeros (the fill value, which zarr does not store)
    want = np.concatenate([episode_frames(e, n)["images/front"] for e, n in enumerate([5, 7, 4], 1)])
    with StoreWriter(url, FEATURES, fps=10.0, storage_options=s3, shard_frames=4) as w:
        for e, n in enumerate([5, 7, 4], 1):
            w.add_episode(episode_frames(e, n))
            if e == 1:  # frames 4.. wait in stage/ for their shard: a reader finds them there
                s = Store.open(url, storage_options=s3)
                np.testing.assert_array_equal(s.read_frames("images/front", np.array([4, 1])), want[[4, 1]])
    keys = _objects(s3, "stores/sharded.zarr/").keys()
    assert sorted(k.split("/")[-1] for k in keys if "/data/images/front/" in k) == \
        ["c.0.0.0.0", "c.1.0.0.0", "c.2.0.0.0", "c.3.0.0.0", "zarr.json"]  # 16 frames, 4 objects
    assert [k for k in keys if "/stage/images/front/" in k] == ["stores/sharded.zarr/stage/images/front/zarr.json"]

    gets = []
    orig = FsspecStore.get

    async def spy(self, key, prototype=None, byte_range=None):
        gets.append((key.split("sharded.zarr/", 1)[-1], byte_range))
        return await orig(self, key, prototype, byte_range)

    monkeypatch.setattr(FsspecStore, "get", spy)
    s = Store.open(url, storage_options=s3)
    gets.clear()
    idx = np.array([15, 0, 9, 10, 3, 9])
    np.testing.assert_array_equal(s.read_frames("images/front", idx), want[idx])
    shard_gets = [(k, r) for k, r in gets if k.startswith("data/images/front/c.")]
    assert not [k for k, _ in gets if k.startswith("stage/images/front/c")]  # every frame is in a shard
    assert shard_gets and all(isinstance(r, (RangeByteRequest, SuffixByteRequest)) for _, r in shard_gets)
    indexes = sum(isinstance(r, SuffixByteRequest) for _, r in shard_gets)
    assert indexes == 3  # shards 0, 2, 3: each index read once (complete shards' indexes are kept)
    gets.clear()
    np.testing.assert_array_equal(s.read_frames("images/front", idx[::-1]), want[idx[::-1]])
    assert not any(isinstance(r, SuffixByteRequest) for _, r in gets)
    b = WindowSampler(s, ["images/front"], 2, 4, cache_bytes=0).get_batch(np.array([0, 5, 11]))
    np.testing.assert_array_equal(b["images/front"][:, 1], want[[0, 5, 11]])
