"""LeRobot v3.0 and robomimic hdf5 import/export, checked against the fixtures' FIXTURE.md formulas."""

import json
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from robolearn.store import Store, StoreError
from robolearn.store.interop import export_dataset, import_dataset
from robolearn.store.interop.video import VideoReader

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
LEROBOT = FIXTURES / "lerobot_v30_small"
ROBOMIMIC = FIXTURES / "robomimic_lift_image" / "image.hdf5"
LR_LENGTHS = [12, 15, 9]
LR_TASKS = ["pick the red cube", "push the block", "open the drawer"]
PIXEL_TOL = 8  # FIXTURE.md: every pixel within +-8 of the formula (observed 3)


def lerobot_formula(e: int, n: int) -> dict[str, np.ndarray]:
    i = np.arange(n)[:, None]
    k = np.arange(6)[None, :]
    img = np.zeros((n, 64, 80, 3), np.int64)
    img[..., 0] = (10 * e) % 256
    img[..., 1] = ((7 * np.arange(n)) % 256)[:, None, None]
    img[..., 2] = 128
    return {"state": (e * 100 + i + 0.1 * k).astype(np.float32),
            "action": (-(e * 100 + i) - 0.1 * k).astype(np.float32), "images/front": img,
            "timestamps": (np.arange(n) / 10).astype(np.float32).astype(np.float64)}


def check_lerobot_store(s: Store) -> None:
    assert s.fps == 10.0 and s.n_episodes == 3 and s.lengths.tolist() == LR_LENGTHS
    assert s.episode_ends.tolist() == [12, 27, 36]
    assert [s.task(e) for e in range(3)] == LR_TASKS
    assert s.features["images/front"].shape == (64, 80, 3) and s.features["images/front"].dtype == "uint8"
    assert s.features["state"].shape == (6,) and s.features["state"].dtype == "float32"
    assert s.info["feature_names"]["state"] == [f"j{k}" for k in range(6)]
    for e, n in enumerate(LR_LENGTHS):
        want, got = lerobot_formula(e, n), s.episode(e)
        np.testing.assert_array_equal(got["state"], want["state"])
        np.testing.assert_array_equal(got["action"], want["action"])
        assert np.abs(got["images/front"].astype(np.int64) - want["images/front"]).max() <= PIXEL_TOL
        for key in s.features:
            np.testing.assert_array_equal(s.timestamps(key, e), want["timestamps"])


def test_lerobot_import_matches_fixture(tmp_path):
    out = import_dataset(LEROBOT, tmp_path / "lr.zarr", "lerobot")
    assert out["episodes"] == 3 and out["frames"] == 36 and out["tasks"] == LR_TASKS
    s = Store.open(tmp_path / "lr.zarr")
    check_lerobot_store(s)
    assert s.info["source_format"] == "lerobot_v3" and s.info["codebase_version"] == "v3.0"
    assert s.info["robot_type"] == "synthetic_fixture"
    assert sorted(s.features) == ["action", "images/front", "state"]


def _schema(path: Path) -> list[tuple[str, str]]:
    return [(f.name, str(f.type)) for f in pq.read_schema(path)]


def test_lerobot_export_matches_fixture_layout_and_round_trips(tmp_path):
    import_dataset(LEROBOT, tmp_path / "a.zarr", "lerobot")
    out = export_dataset(tmp_path / "a.zarr", tmp_path / "exported", "lerobot")
    assert out["episodes"] == 3 and out["frames"] == 36
    dst = tmp_path / "exported"
    # Same files, parquet schemas and info.json as LeRobot 0.4.4 wrote (only the video codec differs).
    files = sorted(str(p.relative_to(LEROBOT)) for p in LEROBOT.rglob("*") if p.is_file() and p.name != "FIXTURE.md")
    assert sorted(str(p.relative_to(dst)) for p in dst.rglob("*") if p.is_file()) == files
    for rel in ["meta/tasks.parquet", "meta/episodes/chunk-000/file-000.parquet", "data/chunk-000/file-000.parquet"]:
        assert _schema(dst / rel) == _schema(LEROBOT / rel), rel
    ref, got = json.loads((LEROBOT / "meta/info.json").read_text()), json.loads((dst / "meta/info.json").read_text())
    assert list(got) == list(ref)
    ref["features"]["observation.images.front"]["info"]["video.codec"] = "h264"
    assert got == ref
    ref_stats, got_stats = (json.loads((d / "meta/stats.json").read_text()) for d in (LEROBOT, dst))
    assert {k: sorted(v) for k, v in got_stats.items()} == {k: sorted(v) for k, v in ref_stats.items()}
    for key in ("observation.state", "action"):
        for stat in ("min", "max", "mean"):
            np.testing.assert_allclose(got_stats[key][stat], ref_stats[key][stat], rtol=1e-6)
    eps = pq.read_table(dst / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    ref_eps = pq.read_table(LEROBOT / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    for col in ["episode_index", "tasks", "length", "dataset_from_index", "dataset_to_index", "data/file_index"]:
        assert [r[col] for r in eps] == [r[col] for r in ref_eps], col
    for col in ["videos/observation.images.front/from_timestamp", "videos/observation.images.front/to_timestamp"]:
        assert [r[col] for r in eps] == pytest.approx([r[col] for r in ref_eps]), col
    assert pq.read_table(dst / "data/chunk-000/file-000.parquet").equals(
        pq.read_table(LEROBOT / "data/chunk-000/file-000.parquet"))
    # import(export(import(fixture))): same episodes, tasks, timestamps, exact state/action, frames within codec error.
    import_dataset(dst, tmp_path / "b.zarr", "lerobot")
    a, b = Store.open(tmp_path / "a.zarr"), Store.open(tmp_path / "b.zarr")
    check_lerobot_store(b)
    for e in range(3):
        diff = np.abs(a.episode(e)["images/front"].astype(int) - b.episode(e)["images/front"].astype(int))
        assert diff.max() <= PIXEL_TOL


def test_lerobot_export_starts_new_files_past_the_size_limits(tmp_path, monkeypatch):
    from robolearn.store.interop import lerobot

    monkeypatch.setattr(lerobot, "DATA_FILE_MB", 0)  # every episode opens a new data file and mp4
    monkeypatch.setattr(lerobot, "VIDEO_FILE_MB", 0)
    import_dataset(LEROBOT, tmp_path / "a.zarr", "lerobot")
    export_dataset(tmp_path / "a.zarr", tmp_path / "lr", "lerobot")
    eps = pq.read_table(tmp_path / "lr/meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [r["data/file_index"] for r in eps] == [0, 1, 2]
    assert [r["videos/observation.images.front/file_index"] for r in eps] == [0, 1, 2]
    assert [r["videos/observation.images.front/from_timestamp"] for r in eps] == [0.0, 0.0, 0.0]
    assert len(list((tmp_path / "lr/videos").rglob("*.mp4"))) == 3
    import_dataset(tmp_path / "lr", tmp_path / "b.zarr", "lerobot")
    check_lerobot_store(Store.open(tmp_path / "b.zarr"))


def test_lerobot_refuses_other_versions_and_leaves_nothing(tmp_path):
    src = tmp_path / "old"
    shutil.copytree(LEROBOT, src)
    info = json.loads((src / "meta/info.json").read_text())
    (src / "meta/info.json").write_text(json.dumps({**info, "codebase_version": "v2.1"}))
    with pytest.raises(StoreError, match=r"LeRobot v2\.1 dataset; robolearn reads format v3\.0 only"):
        import_dataset(src, tmp_path / "s.zarr", "lerobot")
    assert not (tmp_path / "s.zarr").exists()
    # A video that cannot be decoded fails the import midway: no store, no partial folder left behind.
    (src / "meta/info.json").write_text(json.dumps(info))
    (src / "videos/observation.images.front/chunk-000/file-000.mp4").write_bytes(b"not an mp4")
    with pytest.raises(StoreError, match="cannot open video"):
        import_dataset(src, tmp_path / "s.zarr", "lerobot")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]
    # a folder of the user's that looks like a partial output is never taken for one (nor emptied)
    lookalike = tmp_path / f".s.zarr.partial-{os.getpid()}"
    lookalike.mkdir()
    (lookalike / "keep.txt").write_text("mine")
    with pytest.raises(StoreError, match="cannot open video"):
        import_dataset(src, tmp_path / "s.zarr", "lerobot")
    assert sorted(p.name for p in tmp_path.iterdir()) == [lookalike.name, "old"]
    assert (lookalike / "keep.txt").read_text() == "mine"


def test_video_reader_walks_forward_and_seeks_back():
    with VideoReader(LEROBOT / "videos/observation.images.front/chunk-000/file-000.mp4") as r:
        for e, start in [(2, 2.7), (0, 0.0), (1, 1.2), (2, 2.7)]:  # backwards, then in order
            n = LR_LENGTHS[e]
            got = r.frames_at(start + np.arange(n) / 10, tolerance_s=0.04).astype(int)
            assert got.shape == (n, 64, 80, 3)
            assert np.abs(got - lerobot_formula(e, n)["images/front"]).max() <= PIXEL_TOL
        with pytest.raises(StoreError, match=r"no frame within 0.0100 s of 0.0500 s"):
            r.frames_at(np.array([0.0, 0.05, 0.1]), tolerance_s=0.01)


ROBOMIMIC_DEMOS = {  # FIXTURE.md: T, sum(actions), sum of image bytes, image[0][42, 42], #reward=1
    "demo_1": (44, 2.8268985378149765, 202494449, (46, 15, 18), 13),
    "demo_2": (48, 6.527190818939065, 222144445, (139, 46, 54), 17),
    "demo_3": (40, -6.678174090220978, 184680305, (250, 250, 244), 9),
}


def test_robomimic_import_matches_fixture(tmp_path):
    out = import_dataset(ROBOMIMIC, tmp_path / "rm.zarr", "robomimic")
    assert out["episodes"] == 3 and out["frames"] == 132 and out["env_name"] == "Lift"
    assert {"states", "next_obs", "action_dict"} <= set(out["skipped"])
    s = Store.open(tmp_path / "rm.zarr")
    assert s.fps == 20.0 and s.lengths.tolist() == [44, 48, 40] and s.tasks == ["Lift"]
    assert s.features["images/agentview"].shape == (84, 84, 3) and s.features["action"].dtype == "float64"
    env = s.info["env_args"]
    assert env["env_name"] == "Lift" and env["env_version"] == "1.5.2" and env["env_kwargs"]["robots"] == ["Panda"]
    layout = {name: (a, b) for name, a, b in s.info["state_layout"]}
    assert [n for n, _, _ in s.info["state_layout"]][:4] == ["robot0_eef_pos", "robot0_eef_quat",
                                                            "robot0_gripper_qpos", "object"]
    assert len(layout) == 11 and s.features["state"].shape == (60,)
    assert s.info["robomimic"]["demos"] == list(ROBOMIMIC_DEMOS)
    assert s.info["robomimic"]["masks"] == {"train": list(ROBOMIMIC_DEMOS), "valid": []}
    with h5py.File(ROBOMIMIC, "r") as f:
        for e, (name, (n, act_sum, img_sum, px, n_reward)) in enumerate(ROBOMIMIC_DEMOS.items()):
            demo = f["data"][name]
            ep = s.episode(e)
            assert ep["action"].sum() == act_sum
            np.testing.assert_array_equal(ep["action"], demo["actions"][()])
            assert ep["images/agentview"].astype(np.int64).sum() == img_sum
            assert tuple(ep["images/agentview"][0][42, 42]) == px
            np.testing.assert_array_equal(ep["reward"][:, 0], demo["rewards"][()])
            assert int(ep["reward"].sum()) == n_reward
            assert s.info["robomimic"]["dones"][name] == np.flatnonzero(demo["dones"][()]).tolist()
            for key, (a, b) in layout.items():
                np.testing.assert_array_equal(ep["state"][:, a:b], demo["obs"][key][()])
            a, b = layout["robot0_joint_pos"]
            np.testing.assert_array_equal(ep["state"][:, a:b], demo["states"][()][:, 1:8])
            np.testing.assert_allclose(s.timestamps("action", e), np.arange(n) / 20.0)


def test_robomimic_round_trip(tmp_path):
    import_dataset(ROBOMIMIC, tmp_path / "rm.zarr", "robomimic")
    out = export_dataset(tmp_path / "rm.zarr", tmp_path / "out.hdf5", "robomimic")
    assert out["demos"] == list(ROBOMIMIC_DEMOS) and out["frames"] == 132
    with h5py.File(ROBOMIMIC, "r") as f, h5py.File(tmp_path / "out.hdf5", "r") as g:
        assert g["data"].attrs["total"] == 132
        assert json.loads(g["data"].attrs["env_args"]) == json.loads(f["data"].attrs["env_args"])
        assert g["mask/train"][()].tolist() == f["mask/train"][()].tolist() and g["mask/valid"].shape == (0,)
        for name in ROBOMIMIC_DEMOS:
            src, dst = f["data"][name], g["data"][name]
            assert dst.attrs["num_samples"] == src.attrs["num_samples"]
            assert sorted(dst["obs"]) == sorted(src["obs"])
            for key in src["obs"]:
                assert dst["obs"][key].dtype == src["obs"][key].dtype, key
                np.testing.assert_array_equal(dst["obs"][key][()], src["obs"][key][()])
            for key in ("actions", "rewards", "dones"):
                assert dst[key].dtype == src[key].dtype
                np.testing.assert_array_equal(dst[key][()], src[key][()])
    import_dataset(tmp_path / "out.hdf5", tmp_path / "again.zarr", "robomimic")
    a, b = Store.open(tmp_path / "rm.zarr"), Store.open(tmp_path / "again.zarr")
    assert b.lengths.tolist() == a.lengths.tolist() and b.info["state_layout"] == a.info["state_layout"]
    for e in range(3):
        for key, v in a.episode(e).items():
            np.testing.assert_array_equal(b.episode(e)[key], v)


def test_robomimic_demos_sort_numerically_and_tasks_survive_export(tmp_path):
    src = tmp_path / "tiny.hdf5"
    with h5py.File(src, "w") as f:
        for i in (10, 2, 1):  # lexicographic order would be demo_1, demo_10, demo_2
            g = f.create_group(f"data/demo_{i}")
            g.attrs["num_samples"] = i
            g.create_dataset("obs/eef_pos", data=np.full((i, 3), float(i)))
            g.create_dataset("actions", data=np.full((i, 2), -float(i)))
            g.attrs["ep_meta"] = json.dumps({"lang": f"task {i}"})
        f["data"].attrs["env_args"] = json.dumps({"env_name": "Tiny", "type": 1, "env_kwargs": {"control_freq": 5}})
    import_dataset(src, tmp_path / "t.zarr", "robomimic")
    s = Store.open(tmp_path / "t.zarr")
    assert s.lengths.tolist() == [1, 2, 10] and s.fps == 5.0 and "reward" not in s.features
    assert [s.task(e) for e in range(3)] == ["task 1", "task 2", "task 10"]
    assert s.episode(2)["state"][0].tolist() == [10.0] * 3
    # A LeRobot-imported store exported to robomimic keeps its tasks and fps on the way back.
    import_dataset(LEROBOT, tmp_path / "lr.zarr", "lerobot")
    export_dataset(tmp_path / "lr.zarr", tmp_path / "lr.hdf5", "robomimic")
    import_dataset(tmp_path / "lr.hdf5", tmp_path / "back.zarr", "robomimic")
    back = Store.open(tmp_path / "back.zarr")
    assert back.fps == 10.0 and [back.task(e) for e in range(3)] == LR_TASKS
    lr = Store.open(tmp_path / "lr.zarr")
    for key in ("state", "action", "images/front"):
        np.testing.assert_array_equal(back.read_all(key), lr.read_all(key))


def test_robomimic_store_exports_to_lerobot(tmp_path):
    import_dataset(ROBOMIMIC, tmp_path / "rm.zarr", "robomimic")
    export_dataset(tmp_path / "rm.zarr", tmp_path / "lr", "lerobot")
    info = json.loads((tmp_path / "lr/meta/info.json").read_text())
    assert info["fps"] == 20 and info["robot_type"] == "Panda"
    assert info["features"]["observation.state"]["names"][:3] == [f"robot0_eef_pos_{j}" for j in range(3)]
    assert info["features"]["next.reward"] == {"dtype": "float32", "shape": [1], "names": ["reward_0"]}
    import_dataset(tmp_path / "lr", tmp_path / "back.zarr", "lerobot")
    a, b = Store.open(tmp_path / "rm.zarr"), Store.open(tmp_path / "back.zarr")
    assert b.lengths.tolist() == [44, 48, 40] and b.tasks == ["Lift"]
    np.testing.assert_array_equal(b.read_all("state"), a.read_all("state").astype(np.float32))
    np.testing.assert_array_equal(b.read_all("reward"), a.read_all("reward").astype(np.float32))
    diff = np.abs(b.read_all("images/agentview").astype(int) - a.read_all("images/agentview").astype(int))
    assert diff.mean() < 3  # yuv420p h264: sharp rendered edges lose chroma detail, the mean stays small


def test_bad_input_gets_one_sentence(tmp_path):
    cases = [
        (lambda: import_dataset(LEROBOT, tmp_path / "a", None), ValueError, "no format given"),
        (lambda: import_dataset(LEROBOT, tmp_path / "a", "rlds"), ValueError, "unknown format 'rlds'"),
        (lambda: import_dataset(ROBOMIMIC, tmp_path / "a", "lerobot"), StoreError, "not a LeRobot dataset folder"),
        (lambda: import_dataset(LEROBOT, tmp_path / "a", "robomimic"), StoreError, "not a file"),
        (lambda: import_dataset(LEROBOT / "meta/info.json", tmp_path / "a", "robomimic"), StoreError,
         "not an HDF5 file"),
        (lambda: import_dataset(tmp_path / "nope", tmp_path / "a", "lerobot"), FileNotFoundError, "does not exist"),
        (lambda: export_dataset(tmp_path / "nope.zarr", tmp_path / "a", "lerobot"), StoreError, "no store at"),
    ]
    for call, err, msg in cases:
        with pytest.raises(err, match=msg):
            call()
    with h5py.File(tmp_path / "empty.hdf5", "w") as f:
        f.create_group("other")
    with pytest.raises(StoreError, match="no 'data' group"):
        import_dataset(tmp_path / "empty.hdf5", tmp_path / "a", "robomimic")
    import_dataset(LEROBOT, tmp_path / "s.zarr", "lerobot")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("keep me")
    with pytest.raises(ValueError, match="taken: it holds 1 file robolearn did not write \\(x\\)"):
        export_dataset(tmp_path / "s.zarr", tmp_path / "taken", "lerobot")
    with pytest.raises(ValueError, match="taken: it holds 1 file robolearn did not write \\(x\\)"):
        import_dataset(LEROBOT, tmp_path / "taken", "lerobot")
    assert (tmp_path / "taken" / "x").read_text() == "keep me"
    assert not (tmp_path / "a").exists()


def test_cli_import_export(tmp_path):
    from robolearn.cli.main import app

    runner = CliRunner()
    res = runner.invoke(app, ["data", "import", str(ROBOMIMIC), str(tmp_path / "s.zarr"), "--format", "robomimic",
                              "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["episodes"] == 3
    res = runner.invoke(app, ["data", "export", str(tmp_path / "s.zarr"), str(tmp_path / "o.hdf5"),
                              "--format", "robomimic", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["frames"] == 132 and (tmp_path / "o.hdf5").is_file()
    res = runner.invoke(app, ["data", "export", str(tmp_path / "s.zarr"), str(tmp_path / "o.hdf5"),
                              "--format", "robomimic"])
    assert res.exit_code == 2 and "o.hdf5: it is a single file" in res.output


def test_lerobot_image_features_stored_in_parquet(tmp_path):
    """dtype "image" features (PNG bytes in the data parquet, no mp4) are decoded too."""
    import io

    import pyarrow as pa
    from PIL import Image

    src = tmp_path / "img"
    shutil.copytree(LEROBOT, src)
    shutil.rmtree(src / "videos")
    info = json.loads((src / "meta/info.json").read_text())
    info["features"]["observation.images.front"] = {"dtype": "image", "shape": [64, 80, 3],
                                                   "names": ["height", "width", "channels"]}
    (src / "meta/info.json").write_text(json.dumps(info))
    path = src / "data/chunk-000/file-000.parquet"
    table = pq.read_table(path)
    cells = []
    for e, i in zip(table.column("episode_index").to_pylist(), table.column("frame_index").to_pylist()):
        buf = io.BytesIO()
        Image.fromarray(lerobot_formula(e, i + 1)["images/front"][i].astype(np.uint8)).save(buf, format="PNG")
        cells.append({"bytes": buf.getvalue(), "path": None})
    pq.write_table(table.append_column("observation.images.front", pa.array(cells)), path)
    import_dataset(src, tmp_path / "s.zarr", "lerobot")
    s = Store.open(tmp_path / "s.zarr")
    for e, n in enumerate(LR_LENGTHS):
        np.testing.assert_array_equal(s.episode(e)["images/front"], lerobot_formula(e, n)["images/front"])
