"""Real-Time Chunking: the soft mask, the clipped weight, and guided sampling that follows the planned prefix."""

import math

import numpy as np
import pytest
import torch

from robolearn.policies import make_policy
from robolearn.policies.rtc import DEFAULT_VJP_STEPS, Inpainting, guidance_weight, guided_velocity, prefix_weights
from robolearn.policies.testing import fake_features, fake_obs, fake_stats

torch.set_num_threads(1)

TINY = dict(horizon=8, n_action_steps=4, down_dims=(16, 32), diffusion_step_embed_dim=16,
            image_feature_dim=8, spatial_softmax_num_keypoints=4)


def test_prefix_weights_match_the_papers_schedule():
    # kinetix get_prefix_weights(start=2, end=6, total=10): linear 1 1 4/5 3/5 2/5 1/5 0 0 0 0, then c (e^c - 1)/(e - 1)
    linear = np.array([1, 1, 4 / 5, 3 / 5, 2 / 5, 1 / 5, 0, 0, 0, 0])
    expect = np.where(np.arange(10) < 2, 1.0, linear * np.expm1(linear) / (math.e - 1))
    assert prefix_weights(2, 6, 10).numpy() == pytest.approx(expect, abs=1e-6)
    assert prefix_weights(0, 0, 4).tolist() == [0, 0, 0, 0]
    assert prefix_weights(3, 3, 5).tolist() == [1, 1, 1, 0, 0]


def test_guidance_weight_is_clipped():
    assert guidance_weight(0.0, 5.0) == 5.0 and guidance_weight(0.1, 5.0) == 5.0
    assert guidance_weight(0.9, 100.0) == pytest.approx(0.1 / 0.9 * (0.81 + 0.01) / 0.01)
    assert guidance_weight(0.5, 100.0) == pytest.approx(2.0) and guidance_weight(0.9, 5.0) == 5.0


def test_guidance_clip_rises_to_the_step_bound_on_fine_steps():
    """The clip on a step of flow time dtau is max(beta, 1 / dtau): the paper's beta = 5 for 5 flow steps stays,
    a finer step may correct up to its whole residual."""
    pigdm = (0.975**2 + 0.025**2) / (0.975 * 0.025)
    assert guidance_weight(0.975, 5.0) == 5.0  # a fixed beta: 1/8 of the residual on DDIM-10's last step
    assert guidance_weight(0.975, 5.0, dtau=0.025) == pytest.approx(pigdm)  # the clip (40) is above PiGDM's weight
    assert guidance_weight(0.9, 5.0, dtau=0.05) == pytest.approx(0.1 / 0.9 * (0.81 + 0.01) / 0.01)
    assert guidance_weight(0.1, 5.0, dtau=0.25) == guidance_weight(0.1, 5.0) == 5.0  # coarse steps: beta
    assert guidance_weight(0.0, 5.0, dtau=0.1) == 10.0 and guidance_weight(0.0, 5.0, dtau=0.0) == 5.0


def test_ddim_follows_the_prefix_closely_on_its_fine_last_steps(monkeypatch):
    """DDIM-10 ends at flow time ~0.97: with the clip at a fixed beta its guidance fades out there; with the step
    bound the frozen prefix is followed several times closer."""
    import robolearn.policies.rtc as rtc

    torch.manual_seed(0)
    features = fake_features(state_dim=4, action_dim=2)
    policy = make_policy("diffusion", features, fake_stats(features), **TINY, num_inference_steps=10).eval()
    obs = fake_obs(features, B=1, To=2)
    planned = np.tile(np.array([[0.8, -0.6]], np.float32), (6, 1))
    inp = Inpainting.from_plan(planned, d=3, s=2, horizon=8)

    def prefix_error():
        chunk = policy.predict_action_chunk(obs, generator=torch.Generator().manual_seed(0), inpaint=inp)[0].numpy()
        return float(np.abs(chunk[:3] - planned[:3]).mean())

    stepped = prefix_error()
    fixed = rtc.guidance_weight
    monkeypatch.setattr(rtc, "guidance_weight", lambda tau, beta, dtau=None: fixed(tau, beta))
    assert stepped < 0.25 * prefix_error()


def test_inpainting_weighs_only_what_is_planned():
    planned = np.arange(6, dtype=np.float32).reshape(3, 2) + 1  # P = 3 planned actions
    inp = Inpainting.from_plan(planned, d=2, s=2, horizon=8)
    assert inp.prefix.shape == (1, 8, 2) and np.array_equal(inp.prefix[0, :3].numpy(), planned)
    assert np.array_equal(inp.prefix[0, 3:].numpy(), np.repeat(planned[-1:], 5, 0))  # the plan's end, not zeros
    w = inp.weights.numpy()
    assert w[:2].tolist() == [1, 1] and 0 < w[2] < 1 and not w[3:].any()
    assert Inpainting.from_plan(np.zeros((0, 2), np.float32), 0, 2, 8) is None  # nothing planned: unguided


@pytest.mark.parametrize("vjp_steps", [DEFAULT_VJP_STEPS, None])
@pytest.mark.parametrize("name", ["flow", "diffusion"])
def test_guided_chunk_follows_the_frozen_prefix(name, vjp_steps):
    torch.manual_seed(0)  # the untrained net's weights come from the global generator: fix them, whatever ran before
    features = fake_features(state_dim=4, action_dim=2)
    kw = {} if name == "flow" else {"num_inference_steps": 4}
    policy = make_policy(name, features, fake_stats(features), **TINY, **kw).eval()
    obs = fake_obs(features, B=1, To=2)
    planned = np.tile(np.array([[2.5, -1.5]], np.float32), (6, 1))  # far from what the untrained net samples
    inp = Inpainting.from_plan(planned, d=3, s=2, horizon=8, max_guidance=5.0, vjp_steps=vjp_steps)

    def sample(**extra):
        return policy.predict_action_chunk(obs, generator=torch.Generator().manual_seed(0), **extra)[0].numpy()

    free, guided = sample(), sample(inpaint=inp)
    assert guided.shape == free.shape == (8, 2) and np.isfinite(guided).all()
    err_free = np.abs(free[:3] - planned[:3]).mean()
    err_guided = np.abs(guided[:3] - planned[:3]).mean()
    assert err_guided < 0.5 * err_free  # the frozen prefix is pulled to the plan
    # the robot executes planned[:3], then the chunk from index 3 on: the join is closer than the free chunk's
    assert np.abs(guided[3] - planned[2]).max() < np.abs(free[3] - planned[2]).max()
    assert np.array_equal(sample(), free)  # the unguided path is unchanged and repeatable


def test_guided_diffusion_clips_only_the_finished_chunk():
    """The clip of each step's x0 estimate would undo the guidance at the range's edge: guided sampling steps
    without it and clips the finished chunk to the same range; unguided sampling keeps the per-step clip."""
    torch.manual_seed(0)
    features = fake_features(state_dim=4, action_dim=2)
    stats = fake_stats(features)
    policy = make_policy("diffusion", features, stats, **TINY, num_inference_steps=4).eval()
    assert policy.config.clip_sample and policy.sampler.config.clip_sample
    assert not policy.guided_sampler.config.clip_sample
    assert list(policy.guided_sampler.timesteps) == list(policy.sampler.timesteps)
    obs = fake_obs(features, B=1, To=2)
    edge = policy.normalizer.unnormalize("action", torch.ones(1, 1, 2))[0, 0].numpy()  # normalized +1: the clip
    planned = np.tile(edge, (6, 1)).astype(np.float32)  # a plan at the range's edge, as saturated commands are
    inp = Inpainting.from_plan(planned, d=3, s=2, horizon=8, max_guidance=5.0)
    guided = policy.predict_action_chunk(obs, generator=torch.Generator().manual_seed(0), inpaint=inp)
    x = policy.normalizer.normalize("action", guided)
    assert x.abs().max() <= policy.config.clip_sample_range + 1e-5  # still inside the clip range
    assert np.abs(guided[0, :3].numpy() - planned[:3]).mean() < 0.5 * np.abs(planned[:3]).mean()


@pytest.mark.parametrize("vjp_steps,expect", [(None, [True] * 4), (1, [True, False, False, False]),
                                              (0, [False] * 4)])
@pytest.mark.parametrize("name", ["flow", "diffusion"])
def test_one_denoiser_pass_per_step_and_a_backward_only_in_the_vjp_steps(name, vjp_steps, expect):
    features = fake_features(state_dim=4, action_dim=2)
    policy = make_policy(name, features, fake_stats(features), **TINY, num_inference_steps=4).eval()
    unet, calls = policy.unet, []
    denoise = unet.denoise

    def spy(x, film):
        calls.append(torch.is_grad_enabled())
        return denoise(x, film)

    unet.denoise = spy
    inp = Inpainting.from_plan(np.ones((6, 2), np.float32), d=3, s=2, horizon=8, vjp_steps=vjp_steps)
    policy.predict_action_chunk(fake_obs(features, B=1, To=2), generator=torch.Generator().manual_seed(0),
                                inpaint=inp)
    assert calls == expect  # never a second forward per step; a graph (and a backward) only where asked
    assert [inp.uses_vjp(i) for i in range(4)] == expect


def test_low_noise_guidance_moves_the_clean_prediction_toward_the_prefix():
    """Past the VJP steps the flow velocity changes by w * W * (Y - clean): at flow time tau the clean
    prediction x + (1 - tau) v moves by (1 - tau) w W (Y - clean), toward Y where W > 0, nowhere else."""
    x = torch.zeros(1, 4, 1)
    target = torch.full((1, 4, 1), 2.0)
    weights = torch.tensor([1.0, 0.5, 0.0, 0.0])
    inp = Inpainting(target, weights, max_guidance=5.0, vjp_steps=0)
    v = guided_velocity(lambda x_: torch.ones_like(x_), x, 0.5, target, inp)  # clean = 0.5 everywhere
    w = guidance_weight(0.5, 5.0)
    assert v[0, :, 0].tolist() == pytest.approx([1 + w * 1.5, 1 + w * 0.75, 1, 1])


@pytest.mark.parametrize("vjp_steps,grads", [(0, 0), (None, 4)])
def test_deploy_adapter_guides_with_the_configured_vjp_steps(vjp_steps, grads):
    """deploy's rtc_vjp_steps reaches the guidance: a backward pass per VJP step, none by default."""
    from robolearn.runtime.backends import ChunkPrefix, ChunkRequest
    from robolearn.runtime.chunk_policy import ChunkPolicyAdapter

    features = fake_features(state_dim=4, action_dim=2)
    policy = make_policy("flow", features, fake_stats(features), **TINY, num_inference_steps=4).eval()
    calls, denoise = [], policy.unet.denoise
    policy.unet.denoise = lambda x, film: calls.append(torch.is_grad_enabled()) or denoise(x, film)
    chunks = ChunkPolicyAdapter(policy, vjp_steps=vjp_steps)
    chunks.reset(seed=0)
    planned = np.tile(np.array([[2.5, -1.5]], np.float32), (5, 1))
    request = ChunkRequest({"state": np.zeros((2, 4), np.float32)}, tick=5, mark=5, delay=2,
                           prefix=ChunkPrefix(planned, d=2, s=4, hold=planned[0]))
    chunk = chunks(request)
    assert chunk.shape == (8, 2) and chunks.n_guided == 1 and sum(calls) == grads and len(calls) == 4
    assert np.abs(chunk[:2] - planned[:2]).mean() < 0.5
