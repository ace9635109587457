import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from robolearn.experiment import build_config
from robolearn.train.run import train_policy

TINY = ["model.down_dims=[16,32]", "model.vision_backbone=small", "model.image_feature_dim=16",
        "model.spatial_softmax_num_keypoints=8", "model.diffusion_step_embed_dim=16", "model.horizon=4",
        "model.n_action_steps=2", "model.crop_shape=[6,6]", "train.batch_size=4", "train.val_ratio=0",
        "train.log_every=1", "train.warmup_steps=2", "train.lr=0.001"]


def losses(run_dir):
    return [r["loss"] for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())]


def test_resume_equals_uninterrupted_run(make_store, tmp_path):
    store = str(make_store((6, 7, 5)))
    cfg = build_config([*TINY, "train.steps=8", "train.save_every=4"])
    full = tmp_path / "full"
    train_policy(cfg, store, full, progress=False)
    part = tmp_path / "part"
    s1 = train_policy(cfg, store, part, progress=False, stop_at=3)
    assert s1["steps"] == 3 and (part / "checkpoints" / "last" / "trainer_state.json").is_file()
    s2 = train_policy(cfg, store, part, progress=False, resume=True)
    assert s2["steps"] == 8
    assert losses(part) == pytest.approx(losses(full), rel=1e-6, abs=1e-7)
    a, b = load_file(str(full / "ema.safetensors")), load_file(str(part / "ema.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)


def test_checkpoint_swaps_touch_nothing_but_their_own_folders(make_store, tmp_path):
    """checkpoints/last is written into a fresh mkdtemp folder and the previous one is moved into another before
    it is deleted: folders a user keeps beside it, even under the names the swap used to take, survive."""
    out, store = tmp_path / "run", str(make_store((5, 6)))
    cfg = build_config([*TINY, "train.steps=2", "train.save_every=1"])
    mine = {name: out / "checkpoints" / name for name in ("last.old", "last.tmp", "mine")}
    train_policy(cfg, store, out, progress=False, stop_at=1)
    for path in mine.values():
        path.mkdir()
        (path / "notes.txt").write_text("mine")
    train_policy(cfg, store, out, progress=False, resume=True)  # another swap of checkpoints/last
    assert all((p / "notes.txt").read_text() == "mine" for p in mine.values())
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["last", "last.old", "last.tmp", "mine"]
    assert json.loads((out / "checkpoints" / "last" / "trainer_state.json").read_text())["step"] == 2


def test_training_reduces_loss_and_writes_run(make_store, tmp_path):
    store = str(make_store((6, 7, 5)))
    out = tmp_path / "run"
    summary = train_policy(build_config([*TINY, "train.steps=150", "train.batch_size=16", "train.lr=0.003"]), store,
                           out, progress=False)
    ls = losses(out)
    assert np.mean(ls[-10:]) < 0.6 * np.mean(ls[:5])
    for f in ("model.safetensors", "ema.safetensors", "config.json", "stats.json", "train_curve.png"):
        assert (out / f).is_file(), f
    assert any((out / "tb").iterdir())  # tensorboard events
    assert summary["parameters"] > 0 and summary["samples_per_s"] > 0


def test_resume_without_checkpoint_is_an_error(make_store, tmp_path):
    with pytest.raises(FileNotFoundError, match="cannot resume"):
        train_policy(build_config([*TINY, "train.steps=2"]), str(make_store((5,))), tmp_path / "r", resume=True)


def test_language_conditioned_policy_trains_and_deploys(make_store, tmp_path):
    from robolearn.policies import load
    from robolearn.runtime import PolicySource

    store = str(make_store((6, 7, 5), tasks=["push left", "push right", "push left"]))
    out = tmp_path / "lang"
    train_policy(build_config(["policy=flow", *TINY, "model.use_language=true", "train.steps=3"]), store, out,
                 progress=False)
    policy = load(out)
    assert policy.config.use_language
    with pytest.raises(ValueError, match="language-conditioned"):
        PolicySource(policy)
    source = PolicySource(policy, task="push left")
    obs = {"state": np.zeros(3, np.float32), "images/front": np.zeros((8, 8, 3), np.uint8)}
    source.reset(seed=0)
    assert source.act(obs, 0).shape == (2,)


@pytest.mark.parametrize("stop_at", [3, 2])
def test_resume_at_or_after_the_stop_step_runs_no_step_and_keeps_the_checkpoint(make_store, tmp_path, stop_at):
    store = str(make_store((6, 7, 5)))
    cfg = build_config([*TINY, "train.steps=8"])
    out = tmp_path / "run"
    first = train_policy(cfg, store, out, progress=False, stop_at=3)
    state = json.loads((out / "checkpoints" / "last" / "trainer_state.json").read_text())
    weights = load_file(str(out / "model.safetensors"))
    again = train_policy(cfg, store, out, progress=False, resume=True, stop_at=stop_at)
    assert again["steps"] == 3 and again["samples_per_s"] == 0.0
    assert again["final_loss"] == first["final_loss"] and len(losses(out)) == 3
    assert json.loads((out / "checkpoints" / "last" / "trainer_state.json").read_text()) == state
    for k, v in load_file(str(out / "model.safetensors")).items():
        torch.testing.assert_close(v, weights[k], rtol=0, atol=0)
    done = train_policy(cfg, store, out, progress=False, resume=True)  # the checkpoint still resumes to the end
    assert done["steps"] == 8 and len(losses(out)) == 8


def test_zero_steps_writes_a_resumable_checkpoint(make_store, tmp_path):
    store = str(make_store((6, 7, 5)))
    out = tmp_path / "run"
    summary = train_policy(build_config([*TINY, "train.steps=4"]), store, out, progress=False, stop_at=0)
    assert summary["steps"] == 0 and summary["final_loss"] is None and summary["samples_per_s"] == 0.0
    assert (out / "model.safetensors").is_file()
    resumed = train_policy(build_config([*TINY, "train.steps=4"]), store, out, progress=False, resume=True)
    assert resumed["steps"] == 4
    full = tmp_path / "full"
    train_policy(build_config([*TINY, "train.steps=4"]), store, full, progress=False)
    assert losses(out) == pytest.approx(losses(full), rel=1e-6, abs=1e-7)  # resumed from batch 0 of epoch 0
