"""UWM: shapes and modes, action-free co-training, checkpoints, and a model trained on the moving-dot
store whose modes follow their conditioning."""

import numpy as np
import pytest
import torch

from robolearn.experiment import build_config
from robolearn.policies import load, make_policy, save_policy
from robolearn.train.latents import cache_latents, cached_latents
from robolearn.policies.testing import fake_batch, fake_features, fake_obs, fake_stats
from robolearn.policies.uwm import MODES
from robolearn.sampling import WindowSampler
from robolearn.store import Store, ensure_stats
from robolearn.train.run import store_features, train_policy

from .conftest import write_dot_store

torch.set_num_threads(1)

FEATURES = fake_features(state_dim=3, action_dim=2, cameras=("front",), image_size=16)
AE = {"kind": "conv", "config": {"channels": [8, 16], "latent_channels": 4, "blocks_per_level": 1}}
TINY = dict(autoencoder=AE, horizon=4, n_action_steps=2, future_frames=2, frame_stride=2, width=32, depth=2, heads=2,
            num_inference_steps=3)


@pytest.fixture
def policy():
    torch.manual_seed(0)
    return make_policy("uwm", FEATURES, fake_stats(FEATURES), **TINY)


def batch(B=3, has_actions=(True, False, True)):
    b = fake_batch(FEATURES, B=B, To=2, T=4)
    b["future/images/front"] = torch.randint(0, 256, (B, 2, 16, 16, 3), dtype=torch.uint8)
    b["has_actions"] = torch.tensor(has_actions)
    return b


def test_modes_give_the_right_outputs(policy):
    policy.eval()
    obs = fake_obs(FEATURES, B=2, To=2)
    future = {"images/front": batch()["future/images/front"][:2]}
    shapes = {
        "policy": {"action": (2, 4, 2)},
        "video": {"latents": (2, 2, 4, 4, 4), "images/front": (2, 2, 16, 16, 3)},
        "joint": {"action": (2, 4, 2), "latents": (2, 2, 4, 4, 4), "images/front": (2, 2, 16, 16, 3)},
        "forward_dynamics": {"action": (2, 4, 2), "latents": (2, 2, 4, 4, 4), "images/front": (2, 2, 16, 16, 3)},
        "inverse_dynamics": {"action": (2, 4, 2), "latents": (2, 2, 4, 4, 4), "images/front": (2, 2, 16, 16, 3)},
    }
    given = torch.rand(2, 4, 2)
    for mode in MODES:
        out = policy.sample(obs, mode, actions=given, future=future, decode=True)
        assert {k: tuple(v.shape) for k, v in out.items()} == shapes[mode], mode
    assert torch.equal(policy.sample(obs, "forward_dynamics", actions=given)["action"], given)
    assert policy.sample(obs, "video", decode=True)["images/front"].dtype == torch.uint8
    assert policy.predict_action_chunk(obs).shape == (2, 4, 2)
    with pytest.raises(ValueError, match="unknown mode 'dream'"):
        policy.sample(obs, "dream")
    with pytest.raises(ValueError, match="needs `actions`"):
        policy.sample(obs, "forward_dynamics")
    with pytest.raises(ValueError, match="needs `future`"):
        policy.sample(obs, "inverse_dynamics")


def test_action_free_windows_train_frames_only(policy):
    out = policy.compute_loss(batch(has_actions=(False, False, False)))
    assert out["action_loss"] == 0 and out["obs_loss"] > 0
    b = batch(has_actions=(True, True, True))
    b["action_is_pad"][:] = True  # every action step padded counts as action-free too
    assert policy.compute_loss(b)["action_loss"] == 0
    out = policy.compute_loss(batch())
    out["loss"].backward()
    assert out["action_loss"] > 0
    assert all(p.grad is None for p in policy.autoencoder.parameters())  # the autoencoder stays frozen


def test_checkpoint_round_trip(policy, tmp_path):
    save_policy(policy, tmp_path / "ckpt")
    loaded = load(tmp_path / "ckpt")
    policy.eval()
    obs = fake_obs(FEATURES, B=2, To=2)
    for mode in ("policy", "video"):
        a = policy.sample(obs, mode, generator=torch.Generator().manual_seed(1))
        b = loaded.sample(obs, mode, generator=torch.Generator().manual_seed(1))
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_needs_an_autoencoder():
    with pytest.raises(ValueError, match="needs an autoencoder"):
        make_policy("uwm", FEATURES, fake_stats(FEATURES), horizon=4, n_action_steps=2)


def test_trained_modes_follow_their_conditioning(dot_autoencoder, tmp_path):
    """Random-walk actions move a dot. Trained with the one Trainer on cached latents, forward dynamics
    of the logged actions lands closer to the logged future than video prediction does."""
    store_path = write_dot_store(tmp_path / "dot.zarr", episodes=12, length=24, seed=0)
    cache_latents(store_path, dot_autoencoder[0])
    store = Store.open(store_path)
    overrides = ["policy=uwm", f"model.autoencoder_path={dot_autoencoder[0]}", "model.n_obs_steps=1",
                 "model.horizon=4", "model.n_action_steps=2", "model.future_frames=1", "model.frame_stride=2",
                 "model.width=64", "model.depth=2", "model.heads=2", "model.patch=1", "model.n_registers=0",
                 "model.prediction_type=sample", "train.steps=800", "train.batch_size=32", "train.lr=0.002",
                 "train.warmup_steps=30", "train.val_ratio=0", "train.val_every=0", "train.device=cpu",
                 "train.log_every=100"]
    torch.manual_seed(0)
    untrained = make_policy("uwm", store_features(store), ensure_stats(store_path), **build_config(overrides).model)
    req = untrained.data_requirements(cached_latents(store))
    assert req.obs_keys == ("state", "latents/front")  # the cache made by this autoencoder is used
    sampler = WindowSampler(store, list(req.obs_keys), 1, 4, future_keys=req.future_keys,
                            episode_columns=req.episode_columns)
    b = {k: torch.from_numpy(v) for k, v in sampler.get_batch(np.arange(0, len(sampler), 3)).items()}
    torch.manual_seed(0)
    before = untrained.compute_loss(b)["obs_loss"]
    train_policy(build_config(overrides), str(store_path), tmp_path / "run", progress=False)
    policy = load(tmp_path / "run")
    torch.manual_seed(0)
    assert before / policy.compute_loss(b)["obs_loss"] > 10

    keep = ~b["future/latents/front_is_pad"].any(1) & ~b["action_is_pad"].any(1)
    b = {k: v[keep] for k, v in b.items()}
    true = b["future/latents/front"].float()

    def sample(mode, **kw):
        return policy.sample(b, mode, generator=torch.Generator().manual_seed(0), **kw)

    fd = (sample("forward_dynamics", actions=b["action"])["latents"] - true).pow(2).mean()
    video = (sample("video")["latents"] - true).pow(2).mean()
    print("forward dynamics", float(fd), "video", float(video))
    assert fd < 0.75 * video, (float(fd), float(video))


def test_language_conditioning_changes_the_output_and_is_required():
    torch.manual_seed(0)
    policy = make_policy("uwm", FEATURES, fake_stats(FEATURES), **TINY, use_language=True).eval()
    b = batch(2, has_actions=(True, True))
    b["task_embedding"] = torch.randn(2, 384)
    assert policy.compute_loss(b)["loss"] > 0
    obs = {**fake_obs(FEATURES, B=2, To=2), "task_embedding": torch.randn(2, 384)}
    with torch.no_grad():  # adaLN-zero starts at identity: give the language path some weight first
        for p in policy.dit.parameters():
            p.add_(0.05 * torch.randn_like(p))
    g = lambda: torch.Generator().manual_seed(4)  # noqa: E731
    a = policy.predict_action_chunk(obs, generator=g())
    other = policy.predict_action_chunk({**obs, "task_embedding": -obs["task_embedding"]}, generator=g())
    assert not torch.allclose(a, other)
    with pytest.raises(KeyError, match="no 'task_embedding' key"):
        policy.predict_action_chunk({k: v for k, v in obs.items() if k != "task_embedding"})
    with pytest.raises(ValueError, match=r"expected \(2, 384\)"):
        policy.predict_action_chunk({**obs, "task_embedding": torch.randn(2, 10)})
