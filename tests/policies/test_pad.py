"""PAD: joint frame + action denoising under one timestep, language and depth conditioning, and a
two-task model trained on the moving-dot store that follows its instruction."""

import numpy as np
import pytest
import torch

from robolearn.policies import load, make_policy, save_policy
from robolearn.train.latents import cache_latents, cached_latents
from robolearn.policies.testing import fake_batch, fake_features, fake_stats
from robolearn.sampling import WindowSampler
from robolearn.store import Store, ensure_stats
from robolearn.train.run import store_features

from .conftest import DOT_SIZE, TARGETS, render_dot, write_dot_store

torch.set_num_threads(1)

FEATURES = {**fake_features(state_dim=3, action_dim=2, cameras=("front",), image_size=16),
            "depth/front": {"shape": [16, 16], "dtype": "float32"}}
STATS = {**fake_stats({k: v for k, v in FEATURES.items() if k != "depth/front"}),
         "depth/front": {"mean": np.full((16, 16), 1.0).tolist(), "std": np.full((16, 16), 0.5).tolist()}}
AE = {"kind": "conv", "config": {"channels": [8, 16], "latent_channels": 4, "blocks_per_level": 1}}
TINY = dict(autoencoder=AE, horizon=4, n_action_steps=2, future_frames=2, frame_stride=2, width=32, depth=2, heads=2,
            num_inference_steps=3, use_language=True, use_depth=True)


def batch(B=3):
    g = torch.Generator().manual_seed(0)
    b = fake_batch({k: v for k, v in FEATURES.items() if k != "depth/front"}, B=B, To=1, T=4)
    b["future/images/front"] = torch.randint(0, 256, (B, 2, 16, 16, 3), dtype=torch.uint8, generator=g)
    b["depth/front"] = torch.rand(B, 1, 16, 16, generator=g)
    b["future/depth/front"] = torch.rand(B, 2, 16, 16, generator=g)
    b["task_embedding"] = torch.randn(B, 384, generator=g)
    return b


@pytest.fixture
def policy():
    torch.manual_seed(0)
    return make_policy("pad", FEATURES, STATS, **TINY)


def test_shapes_language_and_depth(policy):
    out = policy.compute_loss(batch())
    assert set(out) == {"loss", "action_loss", "obs_loss"} and out["loss"] > 0
    policy.eval()
    obs = {k: v for k, v in batch(2).items() if not k.startswith(("future/", "action"))}
    out = policy.sample(obs, decode=True)
    # 4 latent channels + 1 depth channel per frame; decoded images use the latent channels only
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "action": (2, 4, 2), "latents": (2, 2, 5, 4, 4), "images/front": (2, 2, 16, 16, 3)}
    assert policy.predict_action_chunk(obs).shape == (2, 4, 2)
    with pytest.raises(KeyError, match="no 'task_embedding' key"):
        policy.predict_action_chunk({k: v for k, v in obs.items() if k != "task_embedding"})
    with pytest.raises(ValueError, match=r"use_depth needs \['depth/front'\]"):
        make_policy("pad", {k: v for k, v in FEATURES.items() if k != "depth/front"}, STATS, **TINY)


def test_action_free_windows_keep_the_frame_loss(policy):
    b = batch()
    b["has_actions"] = torch.tensor([False, False, False])
    out = policy.compute_loss(b)
    assert out["action_loss"] == 0 and out["obs_loss"] > 0


def test_checkpoint_round_trip(policy, tmp_path):
    save_policy(policy, tmp_path / "ckpt")
    loaded = load(tmp_path / "ckpt")
    policy.eval()
    obs = {k: v for k, v in batch(2).items() if not k.startswith(("future/", "action"))}
    a = policy.sample(obs, generator=torch.Generator().manual_seed(1))
    b = loaded.sample(obs, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a["action"], b["action"]) and torch.equal(a["latents"], b["latents"])


def test_two_task_model_follows_its_instruction(dot_autoencoder, tmp_path):
    """An expert moves the dot left or right, by task. One language-conditioned PAD overfits the store
    (loss falls 10x) and, from the same frame, acts toward the instructed side."""
    path = write_dot_store(tmp_path / "dot.zarr", episodes=8, length=16, seed=1, expert=True)
    cache_latents(path, dot_autoencoder[0])
    store = Store.open(path)
    torch.manual_seed(0)
    policy = make_policy("pad", store_features(store), ensure_stats(path), autoencoder_path=str(dot_autoencoder[0]),
                         horizon=4, n_action_steps=2, future_frames=2, frame_stride=2, width=64, depth=2, heads=2,
                         patch=1, prediction_type="sample", use_language=True)
    req = policy.data_requirements(cached_latents(store))
    assert req.language
    sampler = WindowSampler(store, list(req.obs_keys), 1, 4, future_keys=req.future_keys,
                            episode_columns=(*req.episode_columns, "task_index"))
    task_table = torch.randn(2, 384, generator=torch.Generator().manual_seed(0))  # stands in for TaskEmbedder

    def get(idx):
        b = {k: torch.from_numpy(v) for k, v in sampler.get_batch(idx).items()}
        b["task_embedding"] = task_table[b["task_index"].long()]
        return b

    fixed = get(np.arange(0, len(sampler), 2))
    torch.manual_seed(0)
    with torch.no_grad():
        before = float(policy.compute_loss(fixed)["loss"])
    opt = torch.optim.AdamW(policy.parameters(), lr=2e-3)
    rng = np.random.default_rng(0)
    for _ in range(200):
        loss = policy.compute_loss(get(rng.integers(0, len(sampler), 32)))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    policy.eval()
    torch.manual_seed(0)
    with torch.no_grad():
        after = float(policy.compute_loss(fixed)["loss"])
    print("pad loss", before, after)
    assert before / after > 10

    centre = np.array([[DOT_SIZE / 2 - 0.5, 8.0]], np.float32)
    obs = {"state": torch.from_numpy(centre / DOT_SIZE)[None].expand(2, 1, 2),
           "images/front": torch.from_numpy(render_dot(centre))[None].expand(2, 1, -1, -1, -1),
           "task_embedding": task_table}
    first = policy.predict_action_chunk(obs, generator=torch.Generator().manual_seed(0))[:, 0]
    print("first actions", first.tolist())
    direction = np.sign(TARGETS[:, 0] - centre[0, 0])  # left task: -1, right task: +1
    assert first[0, 0] * direction[0] > 0.3 and first[1, 0] * direction[1] > 0.3, first
