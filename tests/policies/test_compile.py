"""compile_for_inference: same actions as eager, forgotten on train()/load_state_dict, eager fallback."""

from __future__ import annotations

import shutil

import pytest
import torch

from robolearn.policies import load, make_policy, save_policy
from robolearn.policies.compile import (
    compile_cache_dir,
    compile_for_inference,
    compile_if_supported,
    dummy_observation,
    is_compiled,
    supports_compile,
    uncompile,
    use_compile_cache,
)
from robolearn.policies.nets.unet1d import Conv1d
from robolearn.policies.testing import fake_features, fake_obs, fake_stats

# Inductor generates C++ on CPU: without a compiler the policy stays eager (tested below with a fake
# failure), so the tests that need real compiled code skip.
needs_cxx = pytest.mark.skipif(not (shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")),
                               reason="TorchInductor needs a C++ compiler on CPU")

FEATURES = fake_features(state_dim=3, action_dim=2, cameras=("front",), image_size=20)


def _tiny(name: str = "diffusion", **kw):
    kw = {"horizon": 8, "n_obs_steps": 2, "n_action_steps": 4, "crop_shape": (16, 16), "vision_backbone": "small",
          **kw}
    if kw.get("denoiser", "unet") == "unet":
        kw.setdefault("down_dims", (16, 32))
    torch.manual_seed(0)
    return make_policy(name, FEATURES, fake_stats(FEATURES), **kw).eval()


def _chunk(policy, obs):
    return policy.predict_action_chunk(obs, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("stride", [1, 2])
def test_conv1d_matmul_path_matches_the_convolution(stride):
    torch.manual_seed(0)
    conv = Conv1d(80, 24, 5 if stride == 1 else 3, stride=stride, padding=None if stride == 1 else 1)
    conv._use_matmul = True
    x = torch.randn(2, 80, 16)
    expected = torch.nn.functional.conv1d(x, conv.weight, conv.bias, stride, conv.padding)
    assert conv(x).shape == expected.shape
    torch.testing.assert_close(conv(x), expected, rtol=1e-5, atol=1e-5)


@needs_cxx
def test_compiled_diffusion_gives_the_eager_actions_and_forgets_itself_on_train():
    policy = _tiny()
    obs = fake_obs(FEATURES, B=1, To=2, seed=1)
    eager = _chunk(policy, obs)
    assert compile_for_inference(policy) is True
    assert is_compiled(policy)
    torch.testing.assert_close(_chunk(policy, obs), eager, rtol=1e-4, atol=1e-4)
    # Another observation goes through the same compiled code and still matches eager.
    obs2 = fake_obs(FEATURES, B=1, To=2, seed=2)
    compiled2 = _chunk(policy, obs2)
    policy.train()
    assert not is_compiled(policy)
    policy.eval()
    torch.testing.assert_close(compiled2, _chunk(policy, obs2), rtol=1e-4, atol=1e-4)


@needs_cxx
def test_load_state_dict_drops_the_frozen_weights():
    policy, other = _tiny(), _tiny()
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.05 * torch.randn_like(p))
    obs = fake_obs(FEATURES, B=1, To=2, seed=1)
    assert compile_for_inference(policy)
    policy.load_state_dict(other.state_dict())
    assert not is_compiled(policy)
    torch.testing.assert_close(_chunk(policy, obs), _chunk(other, obs))


def test_compile_failure_leaves_an_eager_policy_with_a_warning(monkeypatch):
    policy = _tiny()
    obs = fake_obs(FEATURES, B=1, To=2, seed=1)
    eager = _chunk(policy, obs)

    def broken(fn, **kwargs):
        def call(*a, **k):
            raise RuntimeError("no C++ compiler")
        return call

    monkeypatch.setattr(torch, "compile", broken)
    with pytest.warns(UserWarning, match="no C\\+\\+ compiler"):
        assert compile_for_inference(policy) is False
    assert not is_compiled(policy)
    torch.testing.assert_close(_chunk(policy, obs), eager)


def test_compiled_code_that_changes_the_actions_is_not_kept(monkeypatch):
    policy = _tiny()
    obs = fake_obs(FEATURES, B=1, To=2, seed=1)
    eager = _chunk(policy, obs)
    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: (lambda *a, **k: fn(*a, **k) * 1.01))
    with pytest.warns(UserWarning, match="differ from eager"):
        assert compile_for_inference(policy) is False
    assert not is_compiled(policy)
    torch.testing.assert_close(_chunk(policy, obs), eager)


def test_policies_without_a_denoiser_are_refused_by_name():
    no_denoiser = type("NoDenoiser", (), {"config": object(), "features": fake_features(state_dim=3)})()
    with pytest.raises(ValueError, match="diffusion and flow"):
        compile_for_inference(no_denoiser)


def test_compile_if_supported_leaves_other_policies_eager():
    no_denoiser = type("NoDenoiser", (), {"config": object(), "features": fake_features(state_dim=3)})()
    assert not supports_compile(no_denoiser) and compile_if_supported(no_denoiser) is False
    assert supports_compile(_tiny())


def test_the_compile_cache_persists_in_a_per_user_folder(monkeypatch, tmp_path):
    """Inductor's on-disk caches go to ~/.cache/robolearn/inductor (XDG_CACHE_HOME respected), or to the user's
    TORCHINDUCTOR_CACHE_DIR; use_compile_cache points inductor there with its FX graph cache on."""
    import torch._inductor.config as inductor_config
    from torch._inductor.runtime.cache_dir_utils import cache_dir

    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(inductor_config, "fx_graph_cache", False)
    assert compile_cache_dir() == tmp_path / "xdg" / "robolearn" / "inductor"
    assert use_compile_cache() == tmp_path / "xdg" / "robolearn" / "inductor"
    assert cache_dir() == str(tmp_path / "xdg" / "robolearn" / "inductor") and inductor_config.fx_graph_cache
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    assert compile_cache_dir() == tmp_path / "mine"


def test_uncompile_of_an_eager_policy_is_a_no_op():
    policy = _tiny()
    obs = fake_obs(FEATURES, B=1, To=2, seed=1)
    eager = _chunk(policy, obs)
    assert uncompile(policy) is policy and not is_compiled(policy)
    torch.testing.assert_close(_chunk(policy, obs), eager)


def test_dummy_observation_matches_the_policy_inputs():
    policy = _tiny(use_language=True)
    obs = dummy_observation(policy, batch_size=2)
    assert obs["images/front"].shape == (2, 2, 20, 20, 3) and obs["images/front"].dtype == torch.uint8
    assert obs["state"].shape == (2, 2, 3) and obs["task_embedding"].shape == (2, 384)


@needs_cxx
@pytest.mark.slow
@pytest.mark.parametrize("name,kw", [("flow", {}), ("diffusion", {"denoiser": "transformer", "n_layer": 1,
                                                                  "n_head": 2, "n_emb": 16})])
def test_compiled_flow_and_transformer_match_eager(name, kw):
    policy = _tiny(name, **kw)
    obs = fake_obs(FEATURES, B=1, To=2, seed=1)
    eager = _chunk(policy, obs)
    assert compile_for_inference(policy)
    torch.testing.assert_close(_chunk(policy, obs), eager, rtol=1e-4, atol=1e-4)


@needs_cxx
def test_load_with_compile(tmp_path):
    policy = _tiny()
    save_policy(policy, tmp_path / "run")
    loaded = load(tmp_path / "run", compile=True)
    assert is_compiled(loaded)
    obs = fake_obs(FEATURES, B=1, To=2, seed=1)
    torch.testing.assert_close(_chunk(loaded, obs), _chunk(policy, obs), rtol=1e-4, atol=1e-4)
