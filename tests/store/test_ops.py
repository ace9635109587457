import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from robolearn.cli.main import app
from robolearn.eval.view import view_episode
from robolearn.output import OutputError
from robolearn.store import EpisodeMeta, Feature, Store, StoreError, StoreWriter
from robolearn.store.info import validate_store
from robolearn.store.ops import filter_store, merge, split
from tests.conftest import FEATURES, episode_frames


def cli(*args, ok=True):
    result = CliRunner().invoke(app, ["data", *[str(a) for a in args]])
    if ok:
        assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def last_json(output: str) -> dict:
    return json.loads([line for line in output.splitlines() if line.startswith("{")][-1])


def assert_same_episode(a: Store, i: int, b: Store, j: int) -> None:
    ea, eb = a.episode(i), b.episode(j)
    for k in a.features:
        np.testing.assert_array_equal(ea[k], eb[k])
        np.testing.assert_array_equal(a.timestamps(k, i), b.timestamps(k, j))
    assert a.task(i) == b.task(j)
    for col in ("success", "seed", "declared_fps", "late_frames", "dropped_frames", "rate_flagged"):
        assert a.episodes[col][i] == b.episodes[col][j], col


def test_merge_remaps_tasks_and_keeps_everything(make_store, tmp_path):
    a = make_store((5, 7), name="a.zarr", tasks=["push", "pick"])
    b = make_store((4, 3, 6), name="b.zarr", tasks=["stack", "push", "stack"])
    out = merge([a, b], tmp_path / "ab.zarr")
    assert out["episodes"] == 5 and out["frames"] == 25
    m, sa, sb = Store.open(tmp_path / "ab.zarr"), Store.open(a), Store.open(b)
    assert m.tasks == ["push", "pick", "stack"]
    assert [m.task(i) for i in range(5)] == ["push", "pick", "stack", "push", "stack"]
    for i in range(2):
        assert_same_episode(sa, i, m, i)
    for i in range(3):
        assert_same_episode(sb, i, m, 2 + i)
    assert m.info["derived"]["op"] == "merge"


def test_merge_refuses_different_features_and_existing_out(make_store, tmp_path):
    a = make_store((3,), name="a.zarr")
    other = tmp_path / "other.zarr"
    with StoreWriter(other, {**FEATURES, "state": Feature((4,), "float32")}, fps=10) as w:
        fr = episode_frames(0, 2)
        w.add_episode({**fr, "state": np.zeros((2, 4), np.float32)})
    with pytest.raises(StoreError, match="features differ \\(state\\)"):
        merge([a, other], tmp_path / "m.zarr")
    assert not (tmp_path / "m.zarr").exists()
    with pytest.raises(OutputError, match="other.zarr: it is a robolearn store of schema version .*--overwrite"):
        merge([a], other)


def test_split_by_episode_is_deterministic(make_store, tmp_path):
    src = make_store((3, 4, 5, 6, 7, 8, 9, 10, 11, 12))
    out = split(src, tmp_path / "tr.zarr", tmp_path / "va.zarr", val_ratio=0.2, seed=3)
    from robolearn.sampling import split_episodes

    train, val = split_episodes(10, 0.2, 3)
    assert out["train"]["source_episodes"] == train.tolist() and out["val"]["source_episodes"] == val.tolist()
    s, tr, va = Store.open(src), Store.open(tmp_path / "tr.zarr"), Store.open(tmp_path / "va.zarr")
    assert (tr.n_episodes, va.n_episodes) == (8, 2)
    for j, i in enumerate(val):
        assert_same_episode(s, int(i), va, j)
    assert tr.n_frames + va.n_frames == s.n_frames


def test_filter_by_success_task_and_length(make_store, tmp_path):
    src = make_store((5, 7, 4, 9), tasks=["a", "b", "a", "a"])  # success: episodes 0 and 2
    out = filter_store(src, tmp_path / "f.zarr", success=True, task="a", min_length=5)
    assert out["source_episodes"] == [0]
    out = filter_store(src, tmp_path / "g.zarr", success=False, max_length=8)
    assert out["source_episodes"] == [1]
    out = filter_store(src, tmp_path / "h.zarr", min_length=5, max_length=9)
    assert out["source_episodes"] == [0, 1, 3]
    assert Store.open(tmp_path / "h.zarr").lengths.tolist() == [5, 7, 9]
    with pytest.raises(StoreError, match="no episode of .* matches min_length=100"):
        filter_store(src, tmp_path / "x.zarr", min_length=100)
    with pytest.raises(StoreError, match="task 'zzz' is not in"):
        filter_store(src, tmp_path / "x.zarr", task="zzz")
    assert not (tmp_path / "x.zarr").exists()


def test_action_free_copies_keep_frames_drop_actions_and_stay_out_of_action_stats(make_store, tmp_path):
    from robolearn.store.stats import compute_stats

    src = make_store((5, 7, 4, 9))
    cli("filter", src, "--out", tmp_path / "free.zarr", "--episodes", "1,3", "--action-free")
    free = Store.open(tmp_path / "free.zarr")
    orig = Store.open(src)
    assert free.lengths.tolist() == [7, 9] and not free.episodes["has_actions"].any()
    assert not free.read_all("action").any()  # zeroed: nothing of the actions is left
    for k in orig.features:
        if k != "action":
            np.testing.assert_array_equal(free.episode(0)[k], orig.episode(1)[k])
    with pytest.raises(ValueError, match="no episode with actions"):
        compute_stats(free, ["action"])
    # A store mixing labeled and action-free episodes: action stats come from the labeled ones only.
    filter_store(src, tmp_path / "lab.zarr", episodes=[0, 2])
    mixed = merge([tmp_path / "lab.zarr", tmp_path / "free.zarr"], tmp_path / "mixed.zarr")
    m = Store.open(mixed["store"])
    assert m.episodes["has_actions"].tolist() == [True, True, False, False]
    labeled = np.concatenate([orig.episode(0)["action"], orig.episode(2)["action"]]).astype(np.float64)
    stats = compute_stats(m, ["action", "state"])
    np.testing.assert_allclose(stats["action"]["mean"], labeled.mean(0), rtol=1e-6)
    assert stats["state"]["count"] == 5 + 7 + 4 + 9


def test_filter_episode_list_errors(make_store, tmp_path):
    src = make_store((5, 7))
    with pytest.raises(StoreError, match=r"episodes \[5\] are not in"):
        filter_store(src, tmp_path / "x.zarr", episodes=[0, 5])
    bad = cli("filter", src, "--out", tmp_path / "y.zarr", "--episodes", "3:1", ok=False)
    assert bad.exit_code != 0 and "3:1" in bad.output
    assert not (tmp_path / "x.zarr").exists() and not (tmp_path / "y.zarr").exists()


def test_view_writes_video_and_traces(make_store, tmp_path):
    src = make_store((5, 7))
    out = view_episode(src, 1, tmp_path / "view")
    video, png = tmp_path / "view" / "episode_1.mp4", tmp_path / "view" / "episode_1_traces.png"
    assert out["video"] == str(video) and out["traces"] == str(png)
    assert video.stat().st_size > 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import imageio.v2 as imageio

    frames = imageio.mimread(video)
    assert len(frames) == 7 and frames[0].shape[:2] == (8, 8)
    with pytest.raises(StoreError, match="episode 5 does not exist"):
        view_episode(src, 5, tmp_path / "view")


def test_cli_view_merge_split_filter(make_store, tmp_path):
    a = make_store((5, 7, 4), name="a.zarr", tasks=["push", "pick", "push"])
    b = make_store((6, 3), name="b.zarr", tasks=["pick", "pick"])
    r = last_json(cli("view", a, "--episode", 2, "--out", tmp_path / "v", "--json").output)
    assert r["length"] == 4 and (tmp_path / "v" / "episode_2.mp4").is_file()
    assert (tmp_path / "v" / "episode_2_traces.png").is_file()
    r = last_json(cli("merge", a, b, "--out", tmp_path / "ab.zarr", "--json").output)
    assert r["episodes"] == 5
    r = last_json(cli("split", tmp_path / "ab.zarr", "--out-train", tmp_path / "tr.zarr", "--out-val",
                      tmp_path / "va.zarr", "--val-ratio", 0.4, "--seed", 1, "--json").output)
    assert len(r["val"]["source_episodes"]) == 2 and r["train"]["episodes"] == 3
    r = last_json(cli("filter", tmp_path / "ab.zarr", "--out", tmp_path / "f.zarr", "--no-success", "--task", "pick",
                      "--min-length", 3, "--json").output)
    assert r["source_episodes"] == [1, 4] and r["episodes"] == 2
    bad = cli("view", a, "--episode", 9, ok=False)
    assert bad.exit_code == 2 and "episode 9 does not exist" in bad.output
    bad = cli("merge", a, "--out", b, ok=False)
    assert bad.exit_code == 2 and "it is a robolearn store" in bad.output


JPEG_FEATURES = {**FEATURES, "images/wrist": Feature((24, 32, 3), "uint8", "jpeg", 75)}


def jpeg_store(path, lengths, tasks=None):
    """A store of the older layout (one file per frame): copies write the sharded layout from it."""
    with StoreWriter(path, JPEG_FEATURES, fps=10.0, frame_layout="files") as w:
        for e, n in enumerate(lengths):
            fr = episode_frames(e, n)
            yy, xx = np.mgrid[:24, :32]
            fr["images/wrist"] = np.stack([np.stack([(xx * 5 + i + e) % 256, (yy * 7 + 3 * e) % 256,
                                                     (xx + yy + i) % 256], -1).astype(np.uint8) for i in range(n)])
            w.add_episode(fr, None, EpisodeMeta(task=(tasks or ["push"] * len(lengths))[e], seed=e, success=e % 2 == 0))
    return path


def frame_files(path, key, start, stop) -> list[bytes]:
    return [(path / "data" / key / "c" / str(i) / "0" / "0" / "0").read_bytes() for i in range(start, stop)]


def test_split_and_merge_copy_jpeg_chunks_bit_identical(tmp_path, monkeypatch):
    a = jpeg_store(tmp_path / "a.zarr", (5, 7, 4, 6), tasks=["x", "y", "x", "y"])
    b = jpeg_store(tmp_path / "b.zarr", (3, 8))
    # Copies never encode a JPEG: the stored chunk bytes go over as they are.
    import robolearn.store.codecs as codecs
    import robolearn.store.writer as writer

    def no_encode(*_a, **_k):
        raise AssertionError("a JPEG frame was re-encoded")

    monkeypatch.setattr(writer, "encode_jpeg", no_encode)
    monkeypatch.setattr(codecs, "encode_jpeg", no_encode)
    out = split(a, tmp_path / "tr.zarr", tmp_path / "va.zarr", val_ratio=0.5, seed=1)
    merge([tmp_path / "va.zarr", b], tmp_path / "m.zarr")
    filter_store(a, tmp_path / "f.zarr", task="y")
    sa, sb = Store.open(a), Store.open(b)
    m, va, f = Store.open(tmp_path / "m.zarr"), Store.open(tmp_path / "va.zarr"), Store.open(tmp_path / "f.zarr")
    val = out["val"]["source_episodes"]
    pairs = [(sa, i, va, j) for j, i in enumerate(val)]
    pairs += [(sa, i, m, j) for j, i in enumerate(val)] + [(sb, i, m, len(val) + i) for i in range(2)]
    pairs += [(sa, i, f, j) for j, i in enumerate([1, 3])]
    for src, i, dst, j in pairs:
        s0, e0 = int(src.episode_starts[i]), int(src.episode_ends[i])
        d0, d1 = int(dst.episode_starts[j]), int(dst.episode_ends[j])
        want = frame_files(Path(src.path), "images/wrist", s0, e0)
        assert dst.chunk_bytes("images/wrist", d0, d1) == want  # the source's files, now in dst's shards
        assert dst.chunk_bytes("images/wrist", d0, d1) == src.chunk_bytes("images/wrist", s0, e0)
        assert_same_episode(src, i, dst, j)  # decoded frames equal too, and every other key
    for p in ("tr.zarr", "va.zarr", "m.zarr", "f.zarr"):
        assert validate_store(tmp_path / p)["ok"]


def test_copy_reports_a_truncated_jpeg_chunk(tmp_path):
    a = jpeg_store(tmp_path / "a.zarr", (4, 5))
    chunk = tmp_path / "a.zarr" / "data" / "images" / "wrist" / "c" / "6" / "0" / "0" / "0"
    chunk.write_bytes(chunk.read_bytes()[:40])
    with pytest.raises(StoreError, match="corrupt data in episode 1, key 'images/wrist'"):
        filter_store(a, tmp_path / "f.zarr", min_length=5)
    assert not (tmp_path / "f.zarr").exists()
