"""``lowdim_keys``: a policy conditions on 1-D observation features besides ``state`` (e.g. a wrench ``force``),
normalized and concatenated after it; policies that do not take them refuse, and a bad key names what exists."""

import pytest
import torch

from robolearn.errors import InvalidValueError
from robolearn.policies import load, make_policy, save_policy
from robolearn.policies.testing import fake_batch, fake_features, fake_obs, fake_stats

torch.set_num_threads(1)

TINY = dict(horizon=8, down_dims=(16, 32), diffusion_step_embed_dim=16, n_action_steps=4)


def force_features():
    return {**fake_features(state_dim=3, action_dim=2), "force": {"shape": [6], "dtype": "float32"}}


@pytest.mark.parametrize("name", ["flow", "diffusion"])
def test_force_is_an_input_and_changes_the_chunk(name, tmp_path):
    features = force_features()
    policy = make_policy(name, features, fake_stats(features), lowdim_keys=("force",), **TINY)
    assert policy.input_keys == ["state", "force"] and policy.obs_feature_dim == 3 + 6
    assert policy.data_requirements().obs_keys == ("state", "force")
    loss = policy.compute_loss(fake_batch(features, B=2, To=2, T=8))["loss"]
    assert torch.isfinite(loss)
    obs = fake_obs(features, B=1, To=2)
    policy.eval()
    torch.manual_seed(0)
    a = policy.predict_action_chunk(obs)
    torch.manual_seed(0)
    b = policy.predict_action_chunk({**obs, "force": obs["force"] + 2.0})
    assert a.shape == (1, 8, 2) and not torch.allclose(a, b)  # the wrench reaches the denoiser
    with pytest.raises(KeyError, match="observation has no key 'force'"):
        policy.predict_action_chunk({"state": obs["state"]})
    save_policy(policy, tmp_path / "ckpt")
    again = load(tmp_path / "ckpt")
    assert again.config.lowdim_keys == ("force",) and again.input_keys == ["state", "force"]


def test_policies_without_lowdim_inputs_refuse_and_bad_keys_are_named():
    features = force_features()
    with pytest.raises(InvalidValueError, match="lowdim_keys names 'torque'.*features have: \\['force'\\]"):
        make_policy("flow", features, fake_stats(features), lowdim_keys=("torque",), **TINY)
    with pytest.raises(InvalidValueError, match="lowdim_keys names 'state'"):
        make_policy("flow", features, fake_stats(features), lowdim_keys=("state",), **TINY)
    with pytest.raises(InvalidValueError, match="RDPPolicy does not condition on lowdim_keys"):
        make_policy("rdp", features, fake_stats(features), lowdim_keys=("force",))
