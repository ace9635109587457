import json

import pytest
import torch
import torch.nn.functional as F

from robolearn.experiment import build_config
from robolearn.policies import POLICIES, load, make_policy, save_policy
from robolearn.policies.flow import FlowConfig, FlowPolicy
from robolearn.policies.flow.policy import TIME_SCALE
from robolearn.policies.testing import fake_batch, fake_features, fake_obs, fake_stats

torch.set_num_threads(1)

TINY = dict(horizon=8, down_dims=(16, 32), diffusion_step_embed_dim=16, n_layer=2, n_head=2, n_emb=32,
            p_drop_attn=0.0, image_feature_dim=8, spatial_softmax_num_keypoints=4)


def tiny_policy(features, **kw) -> FlowPolicy:
    return make_policy("flow", features, fake_stats(features), **{**TINY, **kw})


def test_registered():
    assert POLICIES["flow"] == (FlowConfig, FlowPolicy)


@pytest.mark.parametrize(
    "features, kw",
    [
        (fake_features(state_dim=4, action_dim=2), {}),
        (fake_features(state_dim=4, action_dim=2), {"denoiser": "transformer"}),
        (fake_features(state_dim=None, action_dim=3, cameras=("front",), image_size=16), {"crop_shape": (12, 12)}),
        (fake_features(state_dim=5, action_dim=2, cameras=("front", "wrist"), image_size=16),
         {"denoiser": "transformer", "time_sampling": "logit_normal", "share_image_encoder": False}),
    ],
)
def test_loss_and_action_chunk_shapes(features, kw):
    policy = tiny_policy(features, **kw)
    out = policy.compute_loss(fake_batch(features, B=3, To=2, T=8))
    assert out["loss"].dim() == 0 and torch.isfinite(out["loss"])
    out["loss"].backward()
    policy.eval()
    for n in (1, 4, 10):
        actions = policy.predict_action_chunk(fake_obs(features, B=2, To=2), num_inference_steps=n)
        assert actions.shape == (2, 8, features["action"]["shape"][0]) and torch.isfinite(actions).all()
        # clip_sample: inside the stats' [min, max] = [-2, 3]
        assert actions.min() >= -2 - 1e-5 and actions.max() <= 3 + 1e-5


def test_training_target_is_the_velocity_from_noise_to_actions():
    features = fake_features(state_dim=4, action_dim=2)
    policy = tiny_policy(features)
    batch = fake_batch(features, B=3, To=2, T=8)
    seen = {}
    policy.unet.register_forward_hook(lambda m, args, out: seen.update(xt=args[0], k=args[1], pred=out))
    torch.manual_seed(5)
    loss = policy.compute_loss(batch)["loss"]
    torch.manual_seed(5)
    x1 = policy.normalizer.normalize("action", batch["action"])
    x0 = torch.randn_like(x1)
    t = torch.rand(3)
    assert torch.allclose(seen["k"], t * TIME_SCALE)
    assert torch.allclose(seen["xt"], (1 - t[:, None, None]) * x0 + t[:, None, None] * x1, atol=1e-6)
    assert torch.allclose(loss, F.mse_loss(seen["pred"], x1 - x0), atol=1e-6)


def test_padded_action_steps_do_not_contribute_to_the_loss():
    features = fake_features(state_dim=4, action_dim=2)
    policy = tiny_policy(features, denoiser="transformer")
    preds = []

    def keep(module, args, out):
        out.retain_grad()
        preds.append(out)

    policy.transformer.register_forward_hook(keep)
    policy.compute_loss(fake_batch(features, B=3, To=2, T=8, n_pad=3))["loss"].backward()
    grad = preds[0].grad
    assert torch.all(grad[:, -3:] == 0) and torch.all(grad[:, :-3].abs().sum(-1) > 0)


def test_one_euler_step_is_noise_plus_velocity():
    features = fake_features(state_dim=4, action_dim=2)
    policy = tiny_policy(features, clip_sample=False).eval()
    obs = fake_obs(features, B=2, To=2)
    actions = policy.predict_action_chunk(obs, generator=torch.Generator().manual_seed(0), num_inference_steps=1)
    x0 = torch.randn((2, 8, 2), generator=torch.Generator().manual_seed(0))
    v = policy.unet(x0, torch.zeros(2), policy.encode_obs(obs))
    assert torch.allclose(actions, policy.normalizer.unnormalize("action", x0 + v), atol=1e-5)


@pytest.mark.parametrize("denoiser", ["unet", "transformer"])
def test_overfits_a_fixed_batch(denoiser):
    torch.manual_seed(0)
    features = fake_features(state_dim=4, action_dim=2)
    policy = tiny_policy(features, denoiser=denoiser)
    batch = fake_batch(features, B=4, To=2, T=8)
    opt = torch.optim.AdamW(policy.parameters(), lr=3e-3)
    losses = []
    for _ in range(120):
        torch.manual_seed(1)  # the same noise and times every time: a pure regression problem
        loss = policy.compute_loss(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 10


def test_training_pulls_integrated_actions_to_the_demonstrated_ones():
    torch.manual_seed(0)
    features = fake_features(state_dim=4, action_dim=2)
    policy = tiny_policy(features, down_dims=(32, 64), diffusion_step_embed_dim=32)
    batch = fake_batch(features, B=4, To=2, T=8)
    obs = {"state": batch["state"]}

    def sample_error() -> float:
        policy.eval()
        actions = policy.predict_action_chunk(obs, generator=torch.Generator().manual_seed(0), num_inference_steps=10)
        policy.train()
        return F.mse_loss(actions, batch["action"]).item()

    before = sample_error()
    opt = torch.optim.AdamW(policy.parameters(), lr=3e-3)
    for _ in range(300):
        loss = policy.compute_loss(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert sample_error() < before / 3


def test_euler_step_count_is_validated():
    for n in (0, 11):
        with pytest.raises(ValueError, match=r"num_inference_steps must be in \[1, 10\]"):
            FlowConfig(num_inference_steps=n)
    features = fake_features()
    policy = tiny_policy(features).eval()
    with pytest.raises(ValueError, match=r"\[1, 10\] Euler steps, got 11"):
        policy.predict_action_chunk(fake_obs(features, B=1, To=2), num_inference_steps=11)
    with pytest.raises(ValueError, match="time_sampling"):
        FlowConfig(time_sampling="beta")
    with pytest.raises(ValueError, match="horizon 10"):
        FlowConfig(horizon=10, down_dims=(8, 16, 32))
    FlowConfig(horizon=10, denoiser="transformer")


@pytest.mark.parametrize("denoiser", ["unet", "transformer"])
def test_round_trip_gives_identical_actions(denoiser, tmp_path):
    torch.manual_seed(0)
    features = fake_features(state_dim=4, action_dim=2, cameras=("front",), image_size=16)
    policy = tiny_policy(features, denoiser=denoiser, crop_shape=(12, 12))
    save_policy(policy, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["policy"] == "flow" and config["config"]["denoiser"] == denoiser
    loaded = load(tmp_path)
    assert isinstance(loaded, FlowPolicy) and loaded.config == policy.config
    obs = fake_obs(features, B=2, To=2)
    a = policy.eval().predict_action_chunk(obs, generator=torch.Generator().manual_seed(7))
    b = loaded.predict_action_chunk(obs, generator=torch.Generator().manual_seed(7))
    c = loaded.predict_action_chunk(obs, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_preset_builds_a_flow_policy():
    cfg = build_config(["policy=flow", "model.denoiser=transformer", "model.horizon=8"])
    assert cfg.policy == "flow"
    features = fake_features()
    policy = make_policy(cfg.policy, features, fake_stats(features), **cfg.model)
    assert isinstance(policy, FlowPolicy) and policy.config.denoiser == "transformer"
