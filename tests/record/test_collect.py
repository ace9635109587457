import numpy as np
import pytest

from robolearn.record.collect import collect, collect_recipe
from robolearn.store import Store

KW = {"image_size": [32, 32]}


def test_collect_writes_expert_episodes_with_seeds_and_tasks(tmp_path):
    out = collect("robolearn/mujoco-push", tmp_path / "a.zarr", 3, seed=5, env_kwargs=KW, progress=False)
    assert out["episodes"] == 3 and out["expert_success_rate"] == 1.0
    s = Store.open(tmp_path / "a.zarr")
    assert s.episodes["seed"].tolist() == [5, 6, 7] and s.episodes["success"].tolist() == [1, 1, 1]
    assert s.info["env_id"] == "robolearn/mujoco-push" and s.task(0) == "push the block onto the target"
    assert s.features["images/front"].shape == (32, 32, 3)
    ts = s.timestamps("action", 0)
    np.testing.assert_allclose(np.diff(ts), 0.1)  # the control loop's tick times at 10 Hz


def test_ray_workers_give_the_same_store(tmp_path):
    collect("robolearn/mujoco-push", tmp_path / "one.zarr", 4, seed=11, env_kwargs=KW, progress=False)
    collect("robolearn/mujoco-push", tmp_path / "two.zarr", 4, seed=11, env_kwargs=KW, progress=False, workers=2)
    a, b = Store.open(tmp_path / "one.zarr"), Store.open(tmp_path / "two.zarr")
    assert a.episodes["seed"].tolist() == b.episodes["seed"].tolist() == [11, 12, 13, 14]
    for key in a.features:
        np.testing.assert_array_equal(a.read_all(key), b.read_all(key))


def test_recipe_and_bad_input(tmp_path):
    out = collect_recipe("mujoco-reach", tmp_path / "r.zarr", episodes_per_env=2, progress=False)
    assert out["episodes"] == 2 and Store.open(tmp_path / "r.zarr").n_episodes == 2
    with pytest.raises(FileNotFoundError, match="no recipe 'nope'"):
        collect_recipe("nope", tmp_path / "x.zarr")
    with pytest.raises(ValueError, match="episodes must be >= 1"):
        collect("robolearn/mujoco-push", tmp_path / "y.zarr", 0)


def test_collect_records_through_the_recorder_what_the_loop_ran(tmp_path, monkeypatch):
    """The store holds exactly the loop's ticks (frames, applied actions, tick stamps, lengths, success), and
    gets them through the Recorder, never through a second writing path."""
    from robolearn.env.registry import make_env
    from robolearn.record import recorder as recorder_mod
    from robolearn.runtime import ControlLoop, ExpertSource, VirtualClock
    from robolearn.store import StoreWriter

    def no_second_path(*a, **k):
        raise AssertionError("collect wrote an episode without the Recorder")

    monkeypatch.setattr(StoreWriter, "add_episode", no_second_path)
    ticks_seen = []
    add_tick = recorder_mod.Recorder.add_tick
    monkeypatch.setattr(recorder_mod.Recorder, "add_tick",
                        lambda self, *a, **k: (ticks_seen.append(1), add_tick(self, *a, **k))[1])
    kw = {"image_size": [16, 16]}
    collect("robolearn/mujoco-reach", tmp_path / "c.zarr", 2, seed=3, env_kwargs=kw, progress=False,
            record_commanded=True)
    s = Store.open(tmp_path / "c.zarr")
    assert sum(ticks_seen) == s.n_frames
    assert sorted(s.features) == ["action", "action_commanded", "images/front", "state"]

    env = make_env("robolearn/mujoco-reach", **kw)  # the same episodes, recorded by hand from the loop
    try:
        for e, seed in enumerate((3, 4)):
            recs = []
            loop = ControlLoop(env, ExpertSource(env.unwrapped.get_expert()), VirtualClock(10.0), on_step=recs.append)
            result = loop.run_episode(seed=seed)
            ep = s.episode(e)
            assert s.lengths[e] == len(recs) and s.episodes["success"][e] == int(result.success) == 1
            for key in ("state", "images/front"):
                np.testing.assert_array_equal(ep[key], np.stack([r.obs[key] for r in recs]))
                np.testing.assert_array_equal(s.timestamps(key, e), [r.t for r in recs])
            np.testing.assert_array_equal(ep["action"], np.stack([r.info["action"] for r in recs]))
            np.testing.assert_array_equal(ep["action_commanded"], np.stack([r.commanded for r in recs]))
    finally:
        env.close()
    assert s.episodes["status"].tolist() == [0, 0] and s.episodes["missed_ticks"].tolist() == [0, 0]


def test_a_step_budget_marks_episodes_truncated(tmp_path):
    collect("robolearn/mujoco-reach", tmp_path / "t.zarr", 2, env_kwargs={"image_size": [16, 16]}, max_steps=2,
            only_success=False, progress=False)
    s = Store.open(tmp_path / "t.zarr")
    assert s.lengths.tolist() == [2, 2] and s.episodes["status"].tolist() == [2, 2]  # STATUS["truncated"]


def test_cli_record_commanded(tmp_path):
    from typer.testing import CliRunner

    from robolearn.cli.main import app

    out = tmp_path / "cmd.zarr"
    res = CliRunner().invoke(app, ["collect", "--env", "robolearn/mujoco-reach", "--episodes", "1", "--out", str(out),
                                   "--record-commanded", "--json"])
    assert res.exit_code == 0, res.output
    s = Store.open(out)
    assert s.features["action_commanded"] == s.features["action"] and s.n_episodes == 1
