import json

import gymnasium as gym
import numpy as np
import pytest
import torch

from robolearn.errors import ConfigError
from robolearn.policies import POLICIES, check_compatible, load, make_policy, save_policy
from robolearn.policies.diffusion import DiffusionConfig, DiffusionPolicy
from robolearn.policies.testing import fake_features, fake_obs, fake_stats

torch.set_num_threads(1)

FEATURES = fake_features(state_dim=4, action_dim=2, cameras=("front",), image_size=16)
TINY = dict(horizon=8, down_dims=(16, 32), diffusion_step_embed_dim=16, image_feature_dim=8,
            spatial_softmax_num_keypoints=4, crop_shape=(12, 12))


@pytest.fixture
def policy():
    torch.manual_seed(0)
    return make_policy("diffusion", FEATURES, fake_stats(FEATURES), **TINY)


def test_registry_is_a_plain_dict():
    assert POLICIES["diffusion"] == (DiffusionConfig, DiffusionPolicy)


def test_round_trip_gives_identical_actions(policy, tmp_path):
    save_policy(policy, tmp_path / "ckpt", extra={"env_id": "Fake-v0"})
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["config.json", "model.safetensors", "stats.json"]
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["policy"] == "diffusion" and config["env_id"] == "Fake-v0"
    assert config["features"] == FEATURES and config["config"]["down_dims"] == [16, 32]
    assert json.loads((tmp_path / "ckpt" / "stats.json").read_text()) == fake_stats(FEATURES)

    loaded = load(tmp_path / "ckpt")
    assert not loaded.training and loaded.config == policy.config
    policy.eval()
    obs = fake_obs(FEATURES, B=2, To=2)
    a = policy.predict_action_chunk(obs, generator=torch.Generator().manual_seed(7))
    b = loaded.predict_action_chunk(obs, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


def test_ema_weights_preferred_unless_disabled(policy, tmp_path):
    ema = make_policy("diffusion", FEATURES, fake_stats(FEATURES), **TINY)
    with torch.no_grad():
        for p in ema.unet.parameters():
            p.add_(1.0)
    save_policy(policy, tmp_path, ema_policy=ema)
    assert torch.equal(load(tmp_path).unet.film.weight, ema.unet.film.weight)
    assert torch.equal(load(tmp_path, use_ema=False).unet.film.weight, policy.unet.film.weight)
    save_policy(policy, tmp_path)  # no EMA this time: the stale file goes
    assert not (tmp_path / "ema.safetensors").exists()


def test_missing_file_names_file_and_directory(policy, tmp_path):
    save_policy(policy, tmp_path)
    for name in ("model.safetensors", "stats.json", "config.json"):
        (tmp_path / name).unlink()
        with pytest.raises(FileNotFoundError, match=name) as err:
            load(tmp_path)
        assert str(tmp_path) in str(err.value)


def test_weights_that_do_not_fit_the_config_raise(policy, tmp_path):
    save_policy(policy, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["config"]["down_dims"] = [16, 32, 64]
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="model.safetensors"):
        load(tmp_path)


def test_inference_overrides_change_how_it_acts_and_nothing_else(policy, tmp_path):
    save_policy(policy, tmp_path)
    trained = policy.config.n_action_steps
    loaded = load(tmp_path, overrides={"n_action_steps": 2, "num_inference_steps": 3, "down_dims": [16, 32]})
    assert (loaded.config.n_action_steps, loaded.config.num_inference_steps) == (2, 3) != (trained, 3)
    assert loaded.config.down_dims == (16, 32)  # equal to the trained value: accepted, list or tuple
    for p, q in zip(loaded.parameters(), policy.parameters()):
        assert torch.equal(p, q)
    with pytest.raises(ConfigError, match=r"model.down_dims=\[16, 64\] differs from the \[16, 32\] .*"
                                          r"only model.n_action_steps, model.num_inference_steps can change"):
        load(tmp_path, overrides={"down_dims": [16, 64]})
    with pytest.raises(ConfigError, match="model.no_such_field: the 'diffusion' policy in .* has no such field"):
        load(tmp_path, overrides={"no_such_field": 1})
    with pytest.raises(ConfigError, match="n_action_steps .9. must not exceed horizon .8."):
        load(tmp_path, overrides={"n_action_steps": 9})


def test_extra_may_not_override_reserved_keys(policy, tmp_path):
    with pytest.raises(ValueError, match="features"):
        save_policy(policy, tmp_path, extra={"features": {}})


def spaces(state_shape=(4,), image_shape=(16, 16, 3), action_shape=(2,), image_dtype=np.uint8):
    obs = {"images/front": gym.spaces.Box(0, 255, image_shape, image_dtype)}
    if state_shape is not None:
        obs["state"] = gym.spaces.Box(-1, 1, state_shape, np.float32)
    return gym.spaces.Dict(obs), gym.spaces.Box(-1, 1, action_shape, np.float32)


def test_check_compatible_accepts_matching_spaces(policy):
    obs_space, act_space = spaces()
    obs_space.spaces["timestamps/state"] = gym.spaces.Box(0, np.inf, (1,), np.float64)  # extra keys are fine
    check_compatible(policy, obs_space, act_space)


@pytest.mark.parametrize(
    "kw, pattern",
    [
        (dict(state_shape=None), r"'state'.*\(4,\).*no such key"),
        (dict(state_shape=(5,)), r"'state'.*\(4,\).*\(5,\)"),
        (dict(image_shape=(32, 32, 3)), r"'images/front'.*\(16, 16, 3\).*\(32, 32, 3\)"),
        (dict(image_dtype=np.float32), r"'images/front'.*uint8"),
        (dict(action_shape=(3,)), r"'action'.*\(2,\).*\(3,\)"),
    ],
)
def test_check_compatible_refuses_mismatch_naming_the_key(policy, kw, pattern):
    with pytest.raises(ValueError, match=pattern):
        check_compatible(policy, *spaces(**kw))
