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
