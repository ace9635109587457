"""The output guard: whatever robolearn did not write is refused with a sentence naming it, byte for byte
left in place; robolearn's own output is appended to only with --resume and replaced only with --overwrite."""

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from robolearn.cli.main import app
from robolearn.output import MARKER, OutputError, check_output, claim_output, inspect_output
from robolearn.store import EpisodeMeta, Store, StoreError, StoreWriter, repair
from robolearn.store.backend import SyncingLocalStore
from tests.conftest import FEATURES, episode_frames

LEROBOT = Path(__file__).resolve().parents[1] / "fixtures" / "lerobot_v30_small"


def tree_hash(path: Path) -> str:
    """Every file's relative path and bytes, every folder's relative path."""
    h = hashlib.sha256()
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    for p in sorted(path.rglob("*")):
        h.update(str(p.relative_to(path)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def user_folder(tmp_path: Path) -> Path:
    d = tmp_path / "mine"
    (d / "photos").mkdir(parents=True)
    (d / "notes.txt").write_text("my notes")
    (d / "data.csv").write_text("a,b\n1,2\n")
    (d / "photos" / "cat.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return d


def write_store(path, n=1) -> Path:
    with StoreWriter(path, FEATURES, fps=10.0) as w:
        for e in range(n):
            w.add_episode(episode_frames(e, 3), meta=EpisodeMeta(task="t"))
    return Path(path)


def collect_cli(out: Path, *flags) -> object:
    return CliRunner().invoke(app, ["collect", "--env", "robolearn/mujoco-reach", "--episodes", "1", "--out", str(out),
                                    *flags])


@pytest.mark.parametrize("what", ["user_files", "single_file", "lerobot"])
def test_foreign_paths_are_refused_by_library_and_cli(tmp_path, what):
    if what == "user_files":
        target, said = user_folder(tmp_path), "it holds 2 files and 1 folder robolearn did not write " \
                                              "(data.csv, notes.txt, photos/)"
    elif what == "single_file":
        target, said = tmp_path / "out.zarr", "it is a single file"
        target.write_bytes(b"my single file")
    else:
        target, said = tmp_path / "lerobot", "it is a LeRobot dataset (meta/info.json)"
        shutil.copytree(LEROBOT, target)
    before = tree_hash(target)
    for flags in ({}, {"resume": True}, {"overwrite": True}):
        with pytest.raises(OutputError) as err:
            StoreWriter(target, FEATURES, fps=10.0, **flags)
        assert str(err.value).startswith(f"refusing to write a store at {target}: {said}")
        assert tree_hash(target) == before
    for flags in ([], ["--resume"], ["--overwrite"]):
        res = collect_cli(target, *flags)
        assert res.exit_code == 2, res.output
        assert f"refusing to write a store at {target}: {said}" in " ".join(res.output.split())
        assert tree_hash(target) == before


def test_a_store_of_a_newer_schema_is_refused(tmp_path):
    path = write_store(tmp_path / "s.zarr")
    meta = json.loads((path / "zarr.json").read_text())
    meta["attributes"]["robolearn_store"]["version"] = 9
    (path / "zarr.json").write_text(json.dumps(meta))
    before = tree_hash(path)
    for flags in ({"resume": True}, {"overwrite": True}, {}):
        with pytest.raises(OutputError, match=r"it is a robolearn store of schema version 9, newer than this "
                                              r"robolearn \(\d\): upgrade robolearn"):
            StoreWriter(path, FEATURES, fps=10.0, **flags)
    with pytest.raises(OutputError, match="schema version 9, newer"):
        repair(path)
    assert tree_hash(path) == before


def test_unreadable_or_corrupt_root_metadata_is_an_error_never_absent(tmp_path, monkeypatch):
    path = write_store(tmp_path / "s.zarr", n=2)
    before = tree_hash(path)

    # 1. the guard cannot read zarr.json (tests run as root: chmod cannot make it unreadable)
    import fsspec.implementations.local as fs_local

    def denied(self, path, *a, **k):
        raise PermissionError(13, "Permission denied", path)

    with monkeypatch.context() as m:
        m.setattr(fs_local.LocalFileSystem, "cat_file", denied)
        for flags in ({}, {"resume": True}, {"overwrite": True}):
            with pytest.raises(OutputError, match=f"cannot read {path}/zarr.json .*PermissionError.*nothing was written"):
                StoreWriter(path, FEATURES, fps=10.0, **flags)
        res = collect_cli(path, "--overwrite")
        assert res.exit_code == 2 and "PermissionError" in res.output
    assert tree_hash(path) == before

    # 2. the store backend fails to read once the guard has passed (a writer resuming, a reader)
    async def failing_get(self, key, *a, **k):
        raise OSError(5, "Input/output error", key)

    with monkeypatch.context() as m:
        m.setattr(SyncingLocalStore, "get", failing_get)
        with pytest.raises(StoreError, match=f"cannot read the store at {path} .*Input/output error.*nothing was written"):
            StoreWriter(path, resume=True)
        with pytest.raises(StoreError, match="cannot open"):
            Store.open(path)
    assert tree_hash(path) == before

    # 3. a corrupt zarr.json
    (path / "zarr.json").write_text('{"zarr_format": 3, "node_type": "gro')
    before = tree_hash(path)
    with pytest.raises(OutputError, match="cannot read .*zarr.json .*JSONDecodeError"):
        StoreWriter(path, FEATURES, fps=10.0, overwrite=True)
    assert tree_hash(path) == before


def test_resume_appends_and_no_flag_refuses(tmp_path):
    path = write_store(tmp_path / "s.zarr")
    before = tree_hash(path)
    with pytest.raises(OutputError, match=f"refusing to write a store at {path}: it is a robolearn store of "
                                          f"schema version \\d; pass --resume to append to it, or --overwrite"):
        StoreWriter(path, FEATURES, fps=10.0)
    assert tree_hash(path) == before
    with StoreWriter(path, FEATURES, fps=10.0, resume=True) as w:
        assert w.n_episodes == 1
        w.add_episode(episode_frames(1, 4))
    assert Store.open(path).lengths.tolist() == [3, 4]


def test_overwrite_replaces_only_robolearn_output(tmp_path):
    path = write_store(tmp_path / "s.zarr", n=2)
    (path / "README.md").write_text("what this store is")  # the user's, inside the store folder
    (path / "extra").mkdir()
    (path / "extra" / "keep.txt").write_text("keep")
    with StoreWriter(path, FEATURES, fps=10.0, overwrite=True) as w:
        assert w.n_episodes == 0
        w.add_episode(episode_frames(5, 2))
    s = Store.open(path)
    assert s.lengths.tolist() == [2] and s.episode(0)["state"][0, 0] == 500
    assert (path / "README.md").read_text() == "what this store is"
    assert (path / "extra" / "keep.txt").read_text() == "keep"


def test_overwrite_refused_while_a_live_writer_holds_the_store(tmp_path):
    path = write_store(tmp_path / "s.zarr")
    with StoreWriter(path) as w:
        with pytest.raises(OutputError, match=f"refusing to overwrite the store at {path}: it is being written by pid"):
            StoreWriter(path, FEATURES, fps=10.0, overwrite=True)
        w.add_episode(episode_frames(1, 2))
    assert Store.open(path).n_episodes == 2


def test_cli_collect_resume_and_overwrite(tmp_path):
    out = tmp_path / "c.zarr"
    assert collect_cli(out).exit_code == 0
    res = collect_cli(out)
    assert res.exit_code == 2 and "pass --resume to append to it, or --overwrite to replace it" in " ".join(
        res.output.split())
    assert Store.open(out).n_episodes == 1
    assert collect_cli(out, "--resume").exit_code == 0
    assert Store.open(out).n_episodes == 2
    assert collect_cli(out, "--overwrite").exit_code == 0
    assert Store.open(out).n_episodes == 1
    res = collect_cli(out, "--resume", "--overwrite")
    assert res.exit_code == 2 and "exclude each other" in res.output
    assert "--resume" in CliRunner().invoke(app, ["collect", "--help"]).output


def test_data_ops_refuse_and_overwrite(tmp_path):
    from robolearn.store.ops import filter_store, merge

    src = write_store(tmp_path / "src.zarr", n=3)
    mine = user_folder(tmp_path)
    before = tree_hash(mine)
    with pytest.raises(OutputError, match=f"refusing to write a store at {mine}: it holds 2 files and 1 folder"):
        merge([src], mine, overwrite=True)
    with pytest.raises(OutputError, match=f"refusing to write a store at {mine}"):
        filter_store(src, mine, min_length=1)
    assert tree_hash(mine) == before
    out = write_store(tmp_path / "out.zarr", n=1)
    with pytest.raises(OutputError, match="pass --resume to append to it, or --overwrite"):
        merge([src], out)
    assert merge([src], out, overwrite=True)["episodes"] == 3


@pytest.mark.parametrize("op", ["merge", "migrate"])
def test_a_failed_data_op_removes_only_what_it_created(tmp_path, monkeypatch, op):
    """A Ctrl-C after the first copied episode: a new path stays absent, a user's empty folder stays (empty), a
    store being replaced with --overwrite stays whole with the user's file in it, a user's folder named like the
    staging folder is untouched, and nothing else is left beside them."""
    from robolearn.store import migrate as migrate_module
    from robolearn.store import ops

    src = write_store(tmp_path / "src.zarr", n=3)
    module = ops if op == "merge" else migrate_module
    real, calls = module.copy_episode, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "copy_episode", interrupted)

    def fails(out, **kw):
        calls.clear()
        with pytest.raises(KeyboardInterrupt):
            ops.merge([src], out, **kw) if op == "merge" else migrate_module.migrate(src, out, **kw)
        assert len(calls) == 2

    outs = tmp_path / "outs"
    lookalike = outs / ".new.zarr.partial-mine"
    lookalike.mkdir(parents=True)
    (lookalike / "keep.txt").write_text("mine")
    fails(outs / "new.zarr")
    (outs / "empty").mkdir()
    fails(outs / "empty")
    old = write_store(outs / "old.zarr", n=1)
    (old / "README.md").write_text("what this store is")
    before = tree_hash(old)
    fails(old, overwrite=True)
    assert tree_hash(old) == before and Store.open(old).n_episodes == 1
    assert sorted(p.name for p in outs.iterdir()) == [".new.zarr.partial-mine", "empty", "old.zarr"]
    assert not list((outs / "empty").iterdir()) and (lookalike / "keep.txt").read_text() == "mine"
    monkeypatch.undo()
    done = ops.merge([src], old, overwrite=True) if op == "merge" else migrate_module.migrate(src, old, overwrite=True)
    assert done["episodes"] == 3 and Store.open(old).n_episodes == 3
    assert (old / "README.md").read_text() == "what this store is"
    assert sorted(p.name for p in outs.iterdir()) == [".new.zarr.partial-mine", "empty", "old.zarr"]


def test_inspect_recognises_each_kind(tmp_path):
    assert inspect_output(tmp_path / "nope").what == "absent"
    (tmp_path / "empty").mkdir()
    assert inspect_output(tmp_path / "empty").what == "empty"
    (tmp_path / "cut").mkdir()
    (tmp_path / "cut" / ".robolearn.lock").write_text('{"pid": 1, "host": "x"}')
    assert inspect_output(tmp_path / "cut").what == "empty"  # a creation cut off before zarr.json
    assert inspect_output(write_store(tmp_path / "s.zarr")).what == "store"
    run = tmp_path / "legacy_run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "model.safetensors").write_bytes(b"x")
    assert inspect_output(run).what == "run"
    with pytest.raises(OutputError, match=f"refusing to write a store at {run}: it is a robolearn run "
                                          r"\(config.json, model.safetensors\); store output goes to a folder"):
        check_output(run, "store", resume=True)
    with pytest.raises(OutputError, match=r"is a URL: choose a local path"):
        check_output("s3://bucket/run", "run")


def test_run_and_eval_claims(tmp_path):
    run = tmp_path / "run"
    assert claim_output(run, "run").mode == "create"
    assert json.loads((run / MARKER).read_text())["kind"] == "run"
    assert claim_output(run, "run").mode == "create"  # claimed, nothing written yet: still empty
    for name in ("model.safetensors", "config.json", "metrics.jsonl"):
        (run / name).write_text(name)
    (run / "checkpoints" / "last").mkdir(parents=True)
    (run / "checkpoints" / "last" / "state.json").write_text("{}")
    (run / "my_notes.md").write_text("keep")
    with pytest.raises(OutputError, match=f"refusing to write a run at {run}: it is a robolearn run "
                                          f"\\({MARKER}\\); pass --resume to continue it, or --overwrite"):
        claim_output(run, "run")
    assert claim_output(run, "run", resume=True).mode == "resume"
    assert (run / "model.safetensors").exists()
    assert claim_output(run, "run", overwrite=True).mode == "overwrite"
    assert sorted(p.name for p in run.iterdir()) == ["my_notes.md", MARKER]
    ev = tmp_path / "ev"
    claim_output(ev, "eval")
    (ev / "eval.json").write_text("{}")
    with pytest.raises(OutputError, match="it is a robolearn evaluation folder .*pass --overwrite to replace it"):
        claim_output(ev, "eval")
    with pytest.raises(OutputError, match="cannot be resumed"):
        claim_output(ev, "eval", resume=True)
    claim_output(ev, "eval", overwrite=True)
    assert sorted(p.name for p in ev.iterdir()) == [MARKER]
    old = tmp_path / "old-eval"  # written before the marker: eval.json, the tiled video, one video per episode
    (old / "rollouts").mkdir(parents=True)
    for name in ("eval.json", "rollouts.mp4", "rollouts/episode_0.mp4"):
        (old / name).write_text(name)
    with pytest.raises(OutputError, match="it is a robolearn evaluation folder \\(eval.json\\); pass --overwrite"):
        claim_output(old, "eval")
    claim_output(old, "eval", overwrite=True)
    assert sorted(p.name for p in old.iterdir()) == [MARKER]


def test_train_and_eval_refuse_a_folder_of_user_files(tmp_path, make_store):
    from robolearn.eval.run import evaluate_checkpoint
    from robolearn.experiment import build_config
    from robolearn.train.run import train_policy

    mine = user_folder(tmp_path)
    before = tree_hash(mine)
    cfg = build_config(["train.steps=1"])
    store = str(make_store((3,)))
    with pytest.raises(OutputError, match=f"refusing to write a run at {mine}: it holds 2 files and 1 folder"):
        train_policy(cfg, store, mine, progress=False)
    with pytest.raises(OutputError, match=f"refusing to write a run at {mine}"):
        train_policy(cfg, store, mine, progress=False, overwrite=True)
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text(json.dumps({"env_id": "robolearn/mujoco-reach"}))
    with pytest.raises(OutputError, match=f"refusing to write an evaluation at {mine}: it holds 2 files"):
        evaluate_checkpoint(ckpt, cfg, out=mine, progress=False, overwrite=True)
    (ckpt / "eval").mkdir()
    (ckpt / "eval" / "eval.json").write_text("{}")  # an earlier evaluation, written before the marker existed
    with pytest.raises(OutputError, match="it is a robolearn evaluation folder \\(eval.json\\); pass --overwrite"):
        evaluate_checkpoint(ckpt, cfg, progress=False)
    assert tree_hash(mine) == before
    res = CliRunner().invoke(app, ["train", "--store", store, "--out", str(mine), "train.steps=1"])
    assert res.exit_code == 2 and "it holds 2 files and 1 folder robolearn did not write" in " ".join(res.output.split())
    res = CliRunner().invoke(app, ["eval", "--checkpoint", str(ckpt), "--out", str(mine)])
    assert res.exit_code == 2 and f"refusing to write an evaluation at {mine}" in " ".join(res.output.split())
    assert tree_hash(mine) == before


def test_latents_replace_their_own_cache_without_overwrite_mode(tmp_path):
    from robolearn.store.latents import latent_features, write_latents

    path = write_store(tmp_path / "s.zarr", n=2)
    n = Store.open(path).n_frames
    for value in (1.0, 2.0):
        write_latents(path, "front", [np.full((n, 2, 2, 2), value, np.float16)], (2, 2, 2), "float16", {})
    from robolearn.store.latents import read_latents

    s = Store.open(path)
    assert "latents/front" in latent_features(s)
    assert np.all(read_latents(s, "latents/front") == 2.0)


def test_data_view_replaces_its_files_only_with_overwrite(tmp_path):
    src = write_store(tmp_path / "s.zarr", n=1)
    out = tmp_path / "view"
    out.mkdir()
    (out / "notes.txt").write_text("mine")  # other files in the folder are fine: view adds named files
    video = out / "episode_0.mp4"
    video.write_bytes(b"my own video, not robolearn's")
    before = tree_hash(out)
    res = CliRunner().invoke(app, ["data", "view", str(src), "--episode", "0", "--out", str(out)])
    msg = " ".join(res.output.split())
    assert res.exit_code == 2, res.output
    assert f"error: refusing to overwrite: {video} already exists; pass --overwrite to replace it" in msg
    assert msg.count(". ") == 0 and "Traceback" not in res.output  # one sentence
    assert tree_hash(out) == before  # nothing rendered, the traces PNG not written either
    res = CliRunner().invoke(app, ["data", "view", str(src), "--episode", "0", "--out", str(out), "--overwrite",
                                   "--json"])
    assert res.exit_code == 0, res.output
    assert video.read_bytes()[4:8] == b"ftyp" and (out / "episode_0_traces.png").stat().st_size > 0
    assert (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in out.iterdir()) == ["episode_0.mp4", "episode_0_traces.png", "notes.txt"]
    res = CliRunner().invoke(app, ["data", "view", str(src), "--episode", "0", "--out", str(out)])
    assert res.exit_code == 2 and "2 files already exist" in " ".join(res.output.split())
    (tmp_path / "f").write_text("x")
    res = CliRunner().invoke(app, ["data", "view", str(src), "--episode", "0", "--out", str(tmp_path / "f")])
    assert res.exit_code == 2 and "it is a single file, not a folder" in res.output
    assert "--overwrite" in CliRunner().invoke(app, ["data", "view", "--help"]).output


def test_data_import_overwrite_replaces_only_a_robolearn_store(tmp_path):
    robomimic = LEROBOT.parent / "robomimic_lift_image" / "image.hdf5"
    out = write_store(tmp_path / "s.zarr", n=2)  # FEATURES: state, images/front, action
    (out / "README.md").write_text("what this store is")  # the user's, inside the store folder
    before = tree_hash(out)

    def imp(target, *flags):
        return CliRunner().invoke(app, ["data", "import", str(robomimic), str(target), "--format", "robomimic",
                                        "--json", *flags])

    res = imp(out)
    assert res.exit_code == 2 and f"refusing to write a store at {out}: it is a robolearn store" in " ".join(
        res.output.split()) and "--overwrite to replace it" in res.output
    assert tree_hash(out) == before
    res = imp(out, "--overwrite")
    assert res.exit_code == 0, res.output
    s = Store.open(out)
    assert s.n_episodes == 3 and "images/front" not in s.features and "images/agentview" in s.features
    assert (out / "README.md").read_text() == "what this store is"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.zarr"]  # no staging folder left behind
    mine = user_folder(tmp_path)
    before = tree_hash(mine)
    res = imp(mine, "--overwrite")
    assert res.exit_code == 2 and f"refusing to write a store at {mine}: it holds 2 files and 1 folder" in " ".join(
        res.output.split())
    assert tree_hash(mine) == before
    assert "--overwrite" in CliRunner().invoke(app, ["data", "import", "--help"]).output


def test_import_overwrite_refuses_a_name_the_new_store_needs(tmp_path):
    from robolearn.store.interop import import_dataset

    out = write_store(tmp_path / "s.zarr", n=1)
    shutil.rmtree(out / "timestamps")  # a store whose timestamps/ is now a folder of the user's
    (out / "timestamps").mkdir()
    (out / "timestamps" / "mine.txt").write_text("mine")
    before = tree_hash(out)
    with pytest.raises(ValueError, match=f"cannot replace the store at {out}: {out}/timestamps is not robolearn's"):
        import_dataset(LEROBOT.parent / "robomimic_lift_image" / "image.hdf5", out, "robomimic", overwrite=True)
    assert tree_hash(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.zarr"]


def test_latents_touch_only_their_own_arrays_of_a_known_store(tmp_path):
    import zarr

    from robolearn.store.latents import read_latents, write_latents
    from robolearn.train.latents import cache_latents

    def cache(path, value=1.0):
        n = Store.open(path).n_frames
        return write_latents(path, "front", [np.full((n, 2, 2, 2), value, np.float16)], (2, 2, 2), "float16", {})

    # a store of a newer schema: refused by the guard before the autoencoder loads, by the CLI, left byte for byte
    newer = write_store(tmp_path / "newer.zarr")
    meta = json.loads((newer / "zarr.json").read_text())
    meta["attributes"]["robolearn_store"]["version"] = 9
    (newer / "zarr.json").write_text(json.dumps(meta))
    before = tree_hash(newer)
    with pytest.raises(OutputError, match=f"refusing to write a store at {newer}: it is a robolearn store of schema "
                                          r"version 9, newer than this robolearn \(\d\)"):
        cache_latents(newer, tmp_path / "no-autoencoder")
    with pytest.raises(OutputError, match="schema version 9, newer"):
        write_latents(newer, "front", [np.ones((3, 2, 2, 2), np.float16)], (2, 2, 2), "float16", {})
    res = CliRunner().invoke(app, ["data", "latents", str(newer), "--autoencoder", str(tmp_path / "no-autoencoder")])
    assert res.exit_code == 2 and "schema version 9, newer than this robolearn" in " ".join(res.output.split())
    assert tree_hash(newer) == before
    mine = user_folder(tmp_path)
    before = tree_hash(mine)
    res = CliRunner().invoke(app, ["data", "latents", str(mine), "--autoencoder", str(tmp_path / "no-autoencoder")])
    assert res.exit_code == 2 and f"refusing to write a store at {mine}: it holds 2 files" in " ".join(
        res.output.split())
    assert tree_hash(mine) == before

    # latents/front that robolearn did not write: a user's zarr array, a user's plain folder
    path = write_store(tmp_path / "s.zarr", n=2)
    zarr.open_group(path, mode="r+").create_array("latents/front", shape=(3,), dtype="int32", fill_value=7)
    before = tree_hash(path)
    with pytest.raises(OutputError, match=f"refusing to write latents/front into the store at {path}: latents/front "
                                          "is not a latent cache robolearn wrote \\(it is a zarr array without "
                                          "'robolearn_latents' attrs\\); move it away"):
        cache(path)
    assert tree_hash(path) == before
    shutil.rmtree(path / "latents")
    (path / "latents").mkdir()
    (path / "latents" / "notes.txt").write_text("mine")
    before = tree_hash(path)
    with pytest.raises(OutputError, match="its latents entry is not robolearn's latent cache group \\(it holds 1 file"):
        cache(path)
    assert tree_hash(path) == before

    # robolearn's own cache, even one cut off before its attrs were committed, is replaced
    shutil.rmtree(path / "latents")

    def broken():
        yield np.zeros((1, 2, 2, 2), np.float16)
        raise RuntimeError("encoder crashed")

    with pytest.raises(RuntimeError, match="encoder crashed"):
        write_latents(path, "front", broken(), (2, 2, 2), "float16", {})
    cache(path, 3.0)
    assert np.all(read_latents(Store.open(path), "latents/front") == 3.0)


def test_eval_overwrite_keeps_a_rollouts_folder_holding_user_files(tmp_path):
    ev = tmp_path / "ev"
    claim_output(ev, "eval")
    (ev / "rollouts").mkdir()
    for name in ("eval.json", "rollouts.mp4", "rollouts/episode_0.mp4", "rollouts/my_clip.mov"):
        (ev / name).write_text(name)
    before = tree_hash(ev)
    with pytest.raises(OutputError, match=r"rollouts/ folder holds 1 file\(s\) robolearn did not write \(my_clip.mov\)"):
        claim_output(ev, "eval", overwrite=True)
    assert tree_hash(ev) == before
    (ev / "rollouts" / "my_clip.mov").unlink()
    claim_output(ev, "eval", overwrite=True)
    assert sorted(p.name for p in ev.iterdir()) == [MARKER]
