import pytest
import torch

from robolearn.policies import load, make_policy, save_policy
from robolearn.policies.diffusion import DiffusionConfig
from robolearn.policies.nets.transformer import TransformerForDiffusion
from robolearn.policies.testing import fake_batch, fake_features, fake_obs, fake_stats

torch.set_num_threads(1)

TINY_T = dict(denoiser="transformer", horizon=8, n_layer=2, n_head=2, n_emb=32, p_drop_attn=0.0,
              image_feature_dim=8, spatial_softmax_num_keypoints=4)


def tiny_net(**kw) -> TransformerForDiffusion:
    return TransformerForDiffusion(**{**dict(input_dim=3, horizon=8, n_obs_steps=2, cond_dim=5, n_layer=2,
                                             n_head=2, n_emb=32, p_drop_attn=0.0), **kw}).eval()


def test_shapes_and_cached_memory_matches_forward():
    torch.manual_seed(0)
    net = tiny_net()
    x, k, cond = torch.randn(4, 8, 3), torch.tensor([0, 10, 50, 99]), torch.randn(4, 2, 5)
    out = net(x, k, cond)
    assert out.shape == (4, 8, 3)
    assert torch.allclose(net.denoise(x, k, net.obs_memory(cond)), out, atol=1e-6)
    assert net(x, 7, cond).shape == (4, 8, 3)  # scalar step
    with pytest.raises(ValueError, match="horizon 8"):
        net(torch.randn(4, 6, 3), k, cond)
    with pytest.raises(ValueError, match=r"\(B, 2, cond_dim\)"):
        net(x, k, torch.randn(4, 3, 5))


@pytest.mark.parametrize("causal", [True, False])
def test_causal_mask_hides_later_action_tokens(causal):
    torch.manual_seed(0)
    net = tiny_net(causal_attn=causal)
    x, k, cond = torch.randn(2, 8, 3), torch.tensor([5, 5]), torch.randn(2, 2, 5)
    x2 = x.clone()
    x2[:, 5] += 1.0  # change action token 5 only
    diff = (net(x2, k, cond) - net(x, k, cond)).abs().amax(dim=(0, 2))  # (T,)
    assert torch.all(diff[5:] > 1e-4)
    if causal:
        assert torch.all(diff[:5] == 0)  # tokens 0..4 never attend to token 5
    else:
        assert torch.all(diff[:5] > 1e-6)


def test_every_action_token_sees_every_observation_step():
    # No memory mask: the chunk starts at the current step, after all To observation steps.
    torch.manual_seed(0)
    net = tiny_net()
    x, k, cond = torch.randn(1, 8, 3), torch.tensor([5]), torch.randn(1, 2, 5)
    cond2 = cond.clone()
    cond2[:, 1] += 1.0  # the latest observation step
    assert torch.all((net(x, k, cond2) - net(x, k, cond)).abs().amax(-1) > 1e-6)


@pytest.mark.parametrize("features", [
    fake_features(state_dim=4, action_dim=2),
    fake_features(state_dim=3, action_dim=2, cameras=("front", "wrist"), image_size=16),
])
def test_dp_t_policy_shapes(features):
    policy = make_policy("diffusion", features, fake_stats(features), **TINY_T, crop_shape=None)
    assert "transformer" in dict(policy.named_children()) and not hasattr(policy, "unet")
    out = policy.compute_loss(fake_batch(features, B=3, To=2, T=8, n_pad=2))
    assert out["loss"].dim() == 0 and torch.isfinite(out["loss"])
    out["loss"].backward()
    actions = policy.eval().predict_action_chunk(fake_obs(features, B=2, To=2))
    assert actions.shape == (2, 8, 2) and torch.isfinite(actions).all()


def test_dp_t_overfits_a_fixed_batch():
    torch.manual_seed(0)
    features = fake_features(state_dim=4, action_dim=2)
    policy = make_policy("diffusion", features, fake_stats(features), **TINY_T)
    batch = fake_batch(features, B=4, To=2, T=8)
    opt = torch.optim.AdamW(policy.parameters(), lr=3e-3)
    losses = []
    for _ in range(120):
        torch.manual_seed(1)  # the same noise and steps every time: a pure regression problem
        loss = policy.compute_loss(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 10


def test_dp_t_round_trip_gives_identical_actions(tmp_path):
    torch.manual_seed(0)
    features = fake_features(state_dim=4, action_dim=2, cameras=("front",), image_size=16)
    policy = make_policy("diffusion", features, fake_stats(features), **TINY_T, crop_shape=(12, 12))
    save_policy(policy, tmp_path)
    loaded = load(tmp_path)
    assert loaded.config.denoiser == "transformer"
    obs = fake_obs(features, B=2, To=2)
    a = policy.eval().predict_action_chunk(obs, generator=torch.Generator().manual_seed(7))
    b = loaded.predict_action_chunk(obs, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


def test_config_validation():
    DiffusionConfig(denoiser="transformer", horizon=10)  # DP-T's horizon; no U-Net divisibility rule
    with pytest.raises(ValueError, match="horizon 10"):
        DiffusionConfig(denoiser="unet", horizon=10)
    with pytest.raises(ValueError, match="denoiser 'dit'"):
        DiffusionConfig(denoiser="dit")
    with pytest.raises(ValueError, match="n_emb"):
        DiffusionConfig(denoiser="transformer", n_emb=30, n_head=4)
