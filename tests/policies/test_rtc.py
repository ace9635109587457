"""Real-Time Chunking: the soft mask, the clipped weight, and guided sampling that follows the planned prefix."""

import math

import numpy as np
import pytest
import torch

from robolearn.policies import make_policy
from robolearn.policies.rtc import Inpainting, guidance_weight, prefix_weights
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


def test_inpainting_weighs_only_what_is_planned():
    planned = np.arange(6, dtype=np.float32).reshape(3, 2) + 1  # P = 3 planned actions
    inp = Inpainting.from_plan(planned, d=2, s=2, horizon=8)
    assert inp.prefix.shape == (1, 8, 2) and np.array_equal(inp.prefix[0, :3].numpy(), planned)
    assert np.array_equal(inp.prefix[0, 3:].numpy(), np.repeat(planned[-1:], 5, 0))  # the plan's end, not zeros
    w = inp.weights.numpy()
    assert w[:2].tolist() == [1, 1] and 0 < w[2] < 1 and not w[3:].any()
    assert Inpainting.from_plan(np.zeros((0, 2), np.float32), 0, 2, 8) is None  # nothing planned: unguided


@pytest.mark.parametrize("name", ["flow", "diffusion"])
def test_guided_chunk_follows_the_frozen_prefix(name):
    features = fake_features(state_dim=4, action_dim=2)
    kw = {} if name == "flow" else {"num_inference_steps": 4}
    policy = make_policy(name, features, fake_stats(features), **TINY, **kw).eval()
    obs = fake_obs(features, B=1, To=2)
    planned = np.tile(np.array([[2.5, -1.5]], np.float32), (6, 1))  # far from what the untrained net samples
    inp = Inpainting.from_plan(planned, d=3, s=2, horizon=8, max_guidance=5.0)

    def sample(**extra):
        return policy.predict_action_chunk(obs, generator=torch.Generator().manual_seed(0), **extra)[0].numpy()

    free, guided = sample(), sample(inpaint=inp)
    assert guided.shape == free.shape == (8, 2) and np.isfinite(guided).all()
    err_free = np.abs(free[:3] - planned[:3]).mean()
    err_guided = np.abs(guided[:3] - planned[:3]).mean()
    assert err_guided < 0.5 * err_free  # the frozen prefix is pulled to the plan
    assert np.array_equal(sample(), free)  # the unguided path is unchanged and repeatable
