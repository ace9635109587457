"""Reactive Diffusion Policy: the tokenizer reacts to force, both stages overfit, dual-rate deployment."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
import torch

from robolearn.policies import Model, Policy, load, make_policy, save_policy
from robolearn.policies.rdp.tokenizer import shared_force_stats
from robolearn.policies.testing import fake_features, fake_stats
from robolearn.runtime import ControlLoop, VirtualClock
from robolearn.runtime.rdp import RDPSource

T, DA, DF, DO, B = 8, 3, 6, 4, 16


@pytest.fixture(scope="module", autouse=True)
def _one_thread():  # module scope: before the module-scoped training fixtures
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _features() -> dict:
    features = fake_features(state_dim=DO, action_dim=DA)
    features["force"] = {"shape": [DF], "dtype": "float32"}
    return features


def _batch(seed: int = 0) -> dict[str, torch.Tensor]:
    """Actions whose z follows the force (like the wipe expert): the decoder must read the force."""
    g = torch.Generator().manual_seed(seed)
    force = torch.randn(B, T, DF, generator=g)
    base = torch.linspace(-1, 1, T)[None, :, None].expand(B, T, DA).clone()
    base[..., 2] += 0.5 * force[..., 2].cumsum(1) / T
    return {"state": torch.randn(B, 2, DO, generator=g), "force": force[:, :1],
            "future/force": force[:, 1:], "action": base, "action_is_pad": torch.zeros(B, T, dtype=torch.bool)}


def _tokenizer(**kw):
    features = _features()
    return make_policy("rdp_tokenizer", features, fake_stats(features), horizon=T, n_action_steps=4, downsample=4, **kw)


def _fit(policy, batch, steps: int, lr: float) -> list[float]:
    opt = torch.optim.Adam([p for p in policy.parameters() if p.requires_grad], lr=lr)
    losses = []
    policy.train()
    for _ in range(steps):
        loss = policy.compute_loss(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.fixture(scope="module")
def trained_tokenizer_dir(tmp_path_factory):
    torch.manual_seed(0)
    tok = _tokenizer(encoder_channels=(16, 32), decoder_hidden=32)
    losses = _fit(tok, _batch(), 150, 5e-3)
    path = tmp_path_factory.mktemp("tok")
    save_policy(tok, path)
    return path, losses


def test_registered_and_tokenizer_cannot_act():
    tok = _tokenizer()
    assert tok.name == "rdp_tokenizer"
    assert isinstance(tok, Model) and not isinstance(tok, Policy)  # trains, does not act
    req = tok.data_requirements()
    assert (req.obs_keys, dict(req.future_keys), req.horizon) == (("force",), {"force": (T - 1, 1)}, T)


def test_needs_force_feature():
    features = fake_features(state_dim=DO, action_dim=DA)
    with pytest.raises(KeyError, match="needs a 'force' feature"):
        make_policy("rdp_tokenizer", features, fake_stats(features), horizon=T)


def test_shapes():
    tok = _tokenizer()
    z = tok.encode(torch.zeros(2, T, DA))
    assert z.shape == (2, T // 4, 3)
    assert tok.decode(z, torch.zeros(2, T, DF)).shape == (2, T, DA)
    a, h = tok.decode_step(z, 0, torch.zeros(2, DF), None)
    assert a.shape == (2, DA) and h.shape == (1, 2, tok.config.decoder_hidden)


def _wipe_like_stats() -> dict:
    """Force stats shaped like a wipe store's: fz varies, fy and the torques barely do (the expert wipes along x)."""
    features = _features()
    stats = fake_stats(features)
    stats["force"] = {"mean": [-1.2, 0.0, 4.0, 0.0, 0.014, 0.0], "std": [0.63, 0.014, 2.1, 0.0, 0.0073, 0.0],
                      "min": [-2.1, -0.07, -0.13, 0.0, 0.0, 0.0], "max": [0.07, 0.07, 7.4, 0.0, 0.021, 0.0]}
    return stats


def test_force_is_normalized_with_one_shared_scale():
    """A 1.6 N sideways push (never seen in the demos) must read as ~1 shared std, not as 100 of fy's own."""
    features, stats = _features(), _wipe_like_stats()
    force = torch.tensor([[0.5, -1.6, 5.0, 0.01, 0.02, 0.0]])
    expected = (force - torch.tensor(stats["force"]["mean"])) / 2.1
    shared = make_policy("rdp_tokenizer", features, stats, horizon=T, downsample=4)
    torch.testing.assert_close(shared.normalizer.normalize("force", force), expected)
    per_dim = make_policy("rdp_tokenizer", features, stats, horizon=T, downsample=4, shared_force_scale=False)
    assert per_dim.normalizer.normalize("force", force)[0, 1].abs() > 100


def test_shared_force_stats_min_max_keeps_each_midpoint():
    stats = shared_force_stats(_wipe_like_stats(), "min_max")
    lo, hi = np.array(stats["force"]["min"]), np.array(stats["force"]["max"])
    np.testing.assert_allclose(hi - lo, 7.53)  # the widest range (fz), for every dimension
    np.testing.assert_allclose((hi + lo) / 2, [-1.015, 0.0, 3.635, 0.0, 0.0105, 0.0])
    assert shared_force_stats(_wipe_like_stats(), "identity")["force"] == _wipe_like_stats()["force"]


def test_rdp_force_condition_uses_the_tokenizers_scale(tmp_path):
    features, stats = _features(), _wipe_like_stats()
    save_policy(make_policy("rdp_tokenizer", features, stats, horizon=T, downsample=4), tmp_path / "tok")
    rdp = make_policy("rdp", features, stats, tokenizer=str(tmp_path / "tok"), horizon=T, cond_on_force=True,
                      down_dims=(32,))
    force = torch.tensor([[0.5, -1.6, 5.0, 0.01, 0.02, 0.0]])
    torch.testing.assert_close(rdp.normalizer.normalize("force", force),
                               rdp.tokenizer.normalizer.normalize("force", force))
    assert rdp.normalizer.normalize("force", force).abs().max() < 3


def test_decode_step_matches_sequence_decode():
    tok = _tokenizer().eval()
    z, forces = torch.randn(2, T // 4, 3), torch.randn(2, T, DF)
    full = tok.decode(z, forces)
    h, steps = None, []
    for k in range(T):
        a, h = tok.decode_step(z, k, forces[:, k], h)
        steps.append(a)
    torch.testing.assert_close(torch.stack(steps, 1), full, atol=1e-5, rtol=1e-5)


def test_decoder_output_changes_with_force(trained_tokenizer_dir):
    tok = load(trained_tokenizer_dir[0])
    z = tok.encode(torch.zeros(1, T, DA))
    f = torch.zeros(1, DF)
    a0, h = tok.decode_step(z, 0, f, None)
    pushed = f.clone()
    pushed[0, 2] = 3.0
    a1, _ = tok.decode_step(z, 0, pushed, None)
    assert (a1 - a0).abs().max() > 1e-2
    # and later in the chunk, after the same history
    b0, _ = tok.decode_step(z, 1, f, h)
    b1, _ = tok.decode_step(z, 1, pushed, h)
    assert (b1 - b0).abs()[0, 2] > 1e-2


def test_tokenizer_overfits(trained_tokenizer_dir):
    losses = trained_tokenizer_dir[1]
    assert np.mean(losses[-10:]) < np.mean(losses[:3]) / 10


@pytest.fixture(scope="module")
def trained_rdp(trained_tokenizer_dir):
    features = _features()
    torch.manual_seed(0)
    rdp = make_policy("rdp", features, fake_stats(features), tokenizer=str(trained_tokenizer_dir[0]), horizon=T,
                      n_action_steps=4, slow_every=4, down_dims=(32, 64), num_inference_steps=5,
                      diffusion_step_embed_dim=32)
    batch = _batch()
    batch["state"] = torch.randn(B, 2, DO)
    batch["force"] = torch.randn(B, 2, DF)
    frozen = {k: v.clone() for k, v in rdp.tokenizer.state_dict().items()}
    losses = _fit(rdp, batch, 150, 3e-3)
    return rdp, losses, frozen


def test_rdp_overfits_and_tokenizer_stays_frozen(trained_rdp):
    rdp, losses, frozen = trained_rdp
    assert np.mean(losses[-20:]) < 0.5 * np.mean(losses[:5])
    for k, v in rdp.tokenizer.state_dict().items():
        torch.testing.assert_close(v, frozen[k])
    assert rdp.tokenizer.training is False


def test_predict_action_chunk_uses_current_force(trained_rdp):
    rdp = trained_rdp[0].eval()
    obs = {"state": torch.zeros(1, 2, DO), "force": torch.zeros(1, 2, DF)}
    a = rdp.predict_action_chunk(obs, generator=torch.Generator().manual_seed(0))
    assert a.shape == (1, T, DA) and a.dtype == torch.float32
    obs["force"][:, -1, 2] = 3.0
    b = rdp.predict_action_chunk(obs, generator=torch.Generator().manual_seed(0))
    assert (a - b).abs().max() > 1e-3


def test_checkpoint_round_trip_without_stage1_dir(trained_rdp, trained_tokenizer_dir, tmp_path):
    rdp = trained_rdp[0].eval()
    save_policy(rdp, tmp_path / "rdp")
    loaded = load(tmp_path / "rdp", use_ema=False)
    assert loaded.config.tokenizer_config == rdp.config.tokenizer_config
    loaded.config.tokenizer = str(tmp_path / "gone")  # the stage-1 dir is not read again by load
    obs = {"state": torch.randn(1, 2, DO), "force": torch.randn(1, 2, DF)}
    a = rdp.predict_action_chunk(obs, generator=torch.Generator().manual_seed(1))
    b = loaded.predict_action_chunk(obs, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b)


def test_rdp_needs_a_tokenizer():
    features = _features()
    with pytest.raises(ValueError, match="model.tokenizer="):
        make_policy("rdp", features, fake_stats(features), horizon=T)
    with pytest.raises(FileNotFoundError, match="rdp_tokenizer"):
        make_policy("rdp", features, fake_stats(features), horizon=T, tokenizer="/nonexistent")


class _Counting:
    """Wraps an RDPPolicy and counts slow calls per tick."""

    def __init__(self, policy):
        self.p, self.slow_ticks, self.forces = policy, [], []
        self.config, self.input_keys = policy.config, policy.input_keys

    def reset(self):
        self.p.reset()

    def sample_latent(self, obs, generator=None):
        self.slow_ticks.append(None)
        return self.p.sample_latent(obs, generator)

    def decode_step(self, z, k, force, hidden):
        self.forces.append(force.clone())
        return self.p.decode_step(z, k, force, hidden)


def test_rdp_source_runs_dual_rate_on_the_contact_env(trained_tokenizer_dir):
    import robolearn_envs  # noqa: F401

    env = gymnasium.make("robolearn/mujoco-wipe", cameras=())
    try:
        obs_space = env.observation_space
        features = {"state": {"shape": list(obs_space["state"].shape), "dtype": "float32"},
                    "force": {"shape": [6], "dtype": "float32"}, "action": {"shape": [3], "dtype": "float32"}}
        # The wipe env has Do = 4, Da = 3 like the fake features: the trained tokenizer fits.
        rdp = make_policy("rdp", features, fake_stats(features), tokenizer=str(trained_tokenizer_dir[0]),
                          horizon=T, n_action_steps=4, down_dims=(32, 64), num_inference_steps=2).eval()
        assert hasattr(rdp, "make_action_source") and isinstance(rdp.make_action_source(), RDPSource)
        counting = _Counting(rdp)
        source = RDPSource(counting, slow_every=4)
        result = ControlLoop(env, source, VirtualClock(24.0), max_steps=10).run_episode(seed=0)
        assert result.steps == 10
        assert source.n_slow == 3 and len(counting.slow_ticks) == 3  # ticks 0, 4, 8
        assert source.n_fast == 10
        assert len(counting.forces) == 10 and all(f.shape == (1, 6) for f in counting.forces)
    finally:
        env.close()


def test_rdp_source_reacts_within_a_chunk(trained_rdp):
    rdp = trained_rdp[0].eval()
    source = RDPSource(rdp, slow_every=4)
    obs = {"state": np.zeros(DO, np.float32), "force": np.zeros(DF, np.float32)}
    pushed = {"state": obs["state"], "force": np.array([0, 0, 3, 0, 0, 0], np.float32)}
    source.reset(seed=0)
    source.act(obs, 0)
    calm = source.act(obs, 1)
    source.reset(seed=0)
    source.act(obs, 0)
    reacting = source.act(pushed, 1)  # same latent (no slow call at tick 1), different force
    assert source.n_slow == 1
    assert np.abs(calm - reacting).max() > 1e-3


def test_rdp_source_validates():
    with pytest.raises(TypeError, match="RDPPolicy"):
        RDPSource(object())
