"""Every subcommand on a tiny budget, through the real `robolearn` command line."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from robolearn.cli.main import app

TINY_MODEL = ["model.down_dims=[16,32]", "model.vision_backbone=small", "model.image_feature_dim=16",
              "model.spatial_softmax_num_keypoints=8", "model.diffusion_step_embed_dim=16", "model.horizon=8",
              "model.n_action_steps=4", "model.crop_shape=[28,28]", "model.num_inference_steps=3"]
TASK = ["task=mujoco-push", "task.env_kwargs.image_size=[32,32]", "task.max_steps=30"]


def run(*args, ok=True):
    result = CliRunner().invoke(app, [str(a) for a in args])
    if ok:
        assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def last_json(output: str) -> dict:
    return json.loads([line for line in output.splitlines() if line.startswith("{")][-1])


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    store, run_dir = root / "store.zarr", root / "run"
    col = last_json(run("collect", *TASK, "--episodes", 3, "--out", store, "--json").output)
    tr = last_json(run("train", *TASK, *TINY_MODEL, "train.steps=4", "train.batch_size=8", "train.val_ratio=0.34",
                       "train.val_every=2", "--store", store, "--out", run_dir, "--json").output)
    return root, store, run_dir, col, tr


def test_envs_lists_the_push_task():
    out = last_json(run("envs", "--json").output)
    assert "robolearn/mujoco-push" in [e["id"] for e in out["envs"]]


def test_collect_train_eval(pipeline):
    root, store, run_dir, col, tr = pipeline
    assert col["episodes"] == 3 and col["expert_success_rate"] > 0
    assert tr["steps"] == 4 and Path(tr["plot"]).is_file()
    for f in ("model.safetensors", "ema.safetensors", "config.json", "stats.json", "metrics.jsonl"):
        assert (run_dir / f).is_file(), f
    ev = last_json(run("eval", *TASK, "--checkpoint", run_dir, "--episodes", 2, "--latency-ticks", 1, "--out", root / "eval", "--json").output)
    assert ev["n_episodes"] == 2 and 0.0 <= ev["success_rate"] <= 1.0 and len(ev["ci95"]) == 2
    assert Path(ev["video_path"]).stat().st_size > 0 and (root / "eval" / "eval.json").is_file()
    assert ev["latency_ticks"] == 1
    for e in ev["episodes"]:  # one rollout video per episode beside the tiled one, named in eval.json
        assert (root / "eval" / e["video"]).stat().st_size > 0


@pytest.mark.slow
def test_eval_compiled_policy_repeats_the_eager_rollouts(pipeline):
    root, store, run_dir, *_ = pipeline
    args = ["eval", *TASK, "--checkpoint", run_dir, "--episodes", 2, "--json"]
    eager_out = run(*args, "--out", root / "eager").output
    compiled_out = run(*args, "--compile", "--out", root / "compiled").output
    eager, compiled = last_json(eager_out), last_json(compiled_out)
    # (Once, in a whole slow-suite run, one of these had no "compile": the output is kept in the message.)
    assert "compile" in eager, eager_out[-3000:]
    assert "compile" in compiled, compiled_out[-3000:]
    assert compiled["compile"] is True and eager["compile"] is False
    assert compiled["n_episodes"] == 2 and compiled["mean_length"] == eager["mean_length"]


def test_a_second_train_or_eval_into_the_same_folder_is_refused(pipeline, tmp_path):
    _, store, run_dir, *_ = pipeline
    res = run("train", *TASK, *TINY_MODEL, "train.steps=4", "train.batch_size=8", "--store", store, "--out", run_dir,
              ok=False)
    msg = " ".join(res.output.split())
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert f"error: refusing to write a run at {run_dir}: it is a robolearn run (robolearn-output.json); pass " \
           f"--resume to continue it, or --overwrite to replace it." in msg
    ckpt = tmp_path / "ckpt"  # a copy: the default eval folder lands inside the checkpoint
    shutil.copytree(run_dir, ckpt, ignore=shutil.ignore_patterns("checkpoints", "eval"))
    first = last_json(run("eval", *TASK, "--checkpoint", ckpt, "--episodes", 1, "--json").output)
    assert Path(first["video_path"]).parent == ckpt / "eval"
    before = (ckpt / "eval" / "eval.json").read_bytes()
    res = run("eval", *TASK, "--checkpoint", ckpt, "--episodes", 1, "--json", ok=False)
    msg = " ".join(res.output.split())
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert f"error: refusing to write an evaluation at {ckpt / 'eval'}: it is a robolearn evaluation folder " \
           f"(robolearn-output.json); pass --overwrite to replace it." in msg
    assert (ckpt / "eval" / "eval.json").read_bytes() == before
    assert last_json(run("eval", *TASK, "--checkpoint", ckpt, "--episodes", 1, "--overwrite", "--json").output)[
        "n_episodes"] == 1


def test_data_subcommands(pipeline):
    _, store, *_ = pipeline
    info = last_json(run("data", "info", store, "--json").output)
    assert info["episodes"] == 3 and info["frames"] == sum(info["lengths"]) and "images/front" in info["keys"]
    assert last_json(run("data", "validate", store, "--json").output)["ok"] is True
    assert last_json(run("data", "repair", store).output)["cut_frames"] == 0
    assert "state" in last_json(run("data", "stats", store).output)
    moved = Path(store).parent / "migrated.zarr"  # a collected store is sharded already: migrate copies it
    out = last_json(run("data", "migrate", store, "--out", moved, "--json").output)
    assert out["episodes"] == 3 and out["verified"] == "bit for bit" and (moved / "stage").is_dir()


def test_demo_quick_json(tmp_path):
    res = run("demo", "--quick", "--out", tmp_path / "demo", "--json", *TASK[1:], *TINY_MODEL, "collect.episodes=2",
              "train.steps=2", "train.batch_size=8", "train.val_ratio=0", "eval.episodes=1", "eval.video_episodes=1")
    out = last_json(res.output)
    assert set(out) >= {"store", "episodes", "checkpoint", "success_rate", "ci95", "video", "plot"}
    for key in ("store", "checkpoint", "video", "plot"):
        assert Path(out[key]).is_absolute() and Path(out[key]).exists(), key


@pytest.mark.parametrize("args,msg", [
    (["data", "info", "/nonexistent/store.zarr"], "no store at /nonexistent/store.zarr"),
    (["collect", "--env", "robolearn/mujoco-psh", "--episodes", 1, "--out", "/tmp/x.zarr"],
     "unknown env id 'robolearn/mujoco-psh'; did you mean robolearn/mujoco-push"),
    (["train", "train.stpes=3", "--store", "/tmp/none.zarr", "--out", "/tmp/r"], "unknown config key 'train.stpes'"),
    (["train", "train.batch_size=8", "--workers", 3, "--store", "/tmp/none.zarr", "--out", "/tmp/r"],
     "train.batch_size=8 is not divisible by --workers 3"),
])
def test_bad_input_is_one_sentence(args, msg):
    res = run(*args, ok=False)
    assert res.exit_code == 2
    assert msg in res.output and "Traceback" not in res.output


def test_checkpoint_mismatching_env_is_refused(pipeline):
    _, _, run_dir, *_ = pipeline
    res = run("eval", "--checkpoint", run_dir, "--episodes", 1, "task.env_kwargs.image_size=[48,48]", ok=False)
    assert res.exit_code == 2 and "'images/front'" in res.output and "Traceback" not in res.output


def test_eval_applies_inference_overrides_and_refuses_architecture_ones(pipeline, tmp_path):
    _, _, run_dir, *_ = pipeline
    ev = last_json(run("eval", "--checkpoint", run_dir, "--episodes", 1, "--out", tmp_path / "ev", "--json",
                       "model.n_action_steps=2", "model.num_inference_steps=2").output)
    assert ev["model_overrides"] == {"n_action_steps": 2, "num_inference_steps": 2}
    assert json.loads((tmp_path / "ev" / "eval.json").read_text())["model_overrides"] == ev["model_overrides"]
    res = run("eval", "--checkpoint", run_dir, "--episodes", 1, "--out", tmp_path / "bad", "model.down_dims=[8,16]",
              ok=False)
    assert res.exit_code == 2 and "model.down_dims=[8, 16] differs from the [16, 32]" in res.output
    assert not (tmp_path / "bad").exists()  # refused before any output


def test_console_script_reports_errors_without_traceback():
    exe = Path(sys.executable).with_name("robolearn")
    proc = subprocess.run([str(exe), "data", "info", "/nonexistent.zarr"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "error: no store at /nonexistent.zarr" in proc.stderr and "Traceback" not in proc.stderr
