"""The Model/Policy split and the hooks declared on the base classes (no hasattr in the stack)."""

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch

from robolearn.policies import POLICIES, DataRequirements, Model, Policy, check_compatible, make_policy
from robolearn.policies.base import PolicyConfig
from robolearn.policies.testing import fake_features, fake_stats


class PlainPolicy(Policy):
    """A policy that overrides nothing but the two abstract methods."""

    name = "plain"

    def __init__(self, config, stats):
        super().__init__(config, stats)
        self.head = torch.nn.Linear(1, 1)

    def compute_loss(self, batch):
        return {"loss": self.head.weight.sum()}

    def predict_action_chunk(self, obs, generator=None):
        B = next(iter(obs.values())).shape[0]
        return torch.zeros(B, self.config.horizon, self.action_dim)


def _plain(**cfg) -> PlainPolicy:
    features = fake_features(state_dim=3, action_dim=2, cameras=("front",), image_size=8)
    return PlainPolicy(PolicyConfig(features=features, **cfg), fake_stats(features))


def test_policy_without_overrides_gets_the_hook_defaults():
    policy = _plain(n_obs_steps=3, horizon=5, n_action_steps=2)
    assert policy.uses_language is False
    assert policy.make_action_source(device="cpu") is None
    assert policy.reset() is None
    req = policy.data_requirements()
    assert req == DataRequirements(("state", "images/front"), 3, 5)
    assert dict(req.future_keys) == {} and req.episode_columns == () and req.language is False
    assert policy.data_requirements({"latents/front": {"fingerprint": "x"}}) == req  # latents are opt-in


def test_registry_entries_are_models_and_only_acting_ones_are_policies():
    acting = {name for name, (_, cls) in POLICIES.items() if issubclass(cls, Policy)}
    assert acting == {"diffusion", "flow", "pad", "uwm", "rdp"}
    for name in ("autoencoder", "rdp_tokenizer"):
        cls = POLICIES[name][1]
        assert issubclass(cls, Model) and not issubclass(cls, Policy)
        assert not hasattr(cls, "predict_action_chunk") and not hasattr(cls, "make_action_source")


def test_language_hook_follows_the_config():
    features = fake_features(state_dim=3, action_dim=2)
    tiny = dict(down_dims=(8, 16), diffusion_step_embed_dim=8, horizon=4, n_action_steps=2)
    assert not make_policy("diffusion", features, fake_stats(features), **tiny).uses_language
    policy = make_policy("diffusion", features, fake_stats(features), **tiny, use_language=True)
    assert policy.uses_language and policy.data_requirements().language


def test_a_model_that_does_not_act_is_refused_for_rollouts():
    features = fake_features(state_dim=2, action_dim=2, cameras=("front",), image_size=8)
    ae = make_policy("autoencoder", features, fake_stats(features), channels=(8,))
    obs_space = gym.spaces.Dict({"state": gym.spaces.Box(-1, 1, (2,), np.float32),
                                 "images/front": gym.spaces.Box(0, 255, (8, 8, 3), np.uint8)})
    with pytest.raises(ValueError, match="'autoencoder' is a model that trains but does not act"):
        check_compatible(ae, obs_space, gym.spaces.Box(-1, 1, (2,), np.float32))


def test_policies_import_neither_zarr_nor_the_store():
    code = ("import sys, robolearn.policies, robolearn.policies.latent, robolearn.policies.rdp; "
            "bad = sorted(m for m in sys.modules if m == 'zarr' or m.startswith(('zarr.', 'robolearn.store', "
            "'robolearn.sampling', 'robolearn.train', 'robolearn.eval', 'robolearn.runtime'))); print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]", out.stdout
