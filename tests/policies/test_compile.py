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
from robolearn.policies.aot import AotMethod, aot_cache_dir, package_key
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
    with torch.no_grad():  # inference: the matmul path
        out = conv(x)
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    # training keeps oneDNN's convolution (its backward is faster than unfold's)
    assert type(conv(x).grad_fn).__name__ == "ConvolutionBackward0"


@needs_cxx
def test_compiled_diffusion_gives_the_eager_actions_and_forgets_itself_on_train():
    policy = _tiny()
    obs = fake_obs(FEATURES, B=1, To=2, seed=1)
    eager = _chunk(policy, obs)
    assert compile_for_inference(policy, backend="jit") is True
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
    assert compile_for_inference(policy, backend="jit")
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
        assert compile_for_inference(policy, backend="jit") is False
    assert not is_compiled(policy)
    torch.testing.assert_close(_chunk(policy, obs), eager)


def test_compiled_code_that_changes_the_actions_is_not_kept(monkeypatch):
    policy = _tiny()
    obs = fake_obs(FEATURES, B=1, To=2, seed=1)
    eager = _chunk(policy, obs)
    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: (lambda *a, **k: fn(*a, **k) * 1.01))
    with pytest.warns(UserWarning, match="differ from eager"):
        assert compile_for_inference(policy, backend="jit") is False
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
    assert compile_for_inference(policy, backend="jit")
    torch.testing.assert_close(_chunk(policy, obs), eager, rtol=1e-4, atol=1e-4)


def test_load_with_compile(tmp_path, fake_packages):
    policy = _tiny()
    save_policy(policy, tmp_path / "run")
    loaded = load(tmp_path / "run", compile=True)
    assert is_compiled(loaded)
    obs = fake_obs(FEATURES, B=1, To=2, seed=1)
    torch.testing.assert_close(_chunk(loaded, obs), _chunk(policy, obs), rtol=1e-4, atol=1e-4)
    assert [key[1] for key in fake_packages] == ["forward", "denoise"]  # the packages it asked for: trunk, denoiser


# -- AOTInductor packages (the default backend). The fast tests stand a recording eager runner in for the
# package (`fake_packages`); one slow test builds and reloads real ones.


@pytest.fixture
def fake_packages(monkeypatch):
    """`load_or_build` that compiles nothing: the runner is the eager method, recorded with its inputs."""
    asked = {}

    def fake(module, name, args, options, directory=None):
        eager = getattr(type(module), name).__get__(module)
        calls = asked.setdefault((type(module).__name__, name), [])

        def runner(*a):
            calls.append(tuple(x.shape for x in a))
            return eager(*a)

        return runner, True

    monkeypatch.setattr("robolearn.policies.compile.load_or_build", fake)
    return asked


def test_aot_backend_runs_packages_at_the_warm_up_shapes_and_eager_elsewhere(fake_packages):
    policy = _tiny()
    obs = fake_obs(FEATURES, B=1, To=2, seed=1)
    eager = _chunk(policy, obs)
    assert compile_for_inference(policy) is True and is_compiled(policy)
    calls = fake_packages[("ConditionalUnet1D", "denoise")]
    n = len(calls)
    torch.testing.assert_close(_chunk(policy, obs), eager)
    assert len(calls) == n + policy.config.num_inference_steps and calls[-1] == ((1, 8, 2), calls[-1][1])
    _chunk(policy, fake_obs(FEATURES, B=2, To=2, seed=1))  # another batch size: eager, not the package
    assert len(calls) == n + policy.config.num_inference_steps
    policy.train()
    assert not is_compiled(policy)


def test_aot_method_leaves_gradients_to_the_eager_module():
    """RTC's VJP steps differentiate the denoiser: the package has no autograd, so they run eagerly."""
    lin = torch.nn.Linear(3, 2)
    x = torch.ones(1, 3)
    used = []
    method = AotMethod(lambda a: used.append(a) or torch.zeros(1, 2), lin, "forward", (x,))
    with torch.no_grad():
        assert method(x).abs().sum() == 0 and len(used) == 1
    xg = x.clone().requires_grad_(True)
    y = method(xg)
    (g,) = torch.autograd.grad(y.sum(), xg)
    torch.testing.assert_close(g, lin.weight.sum(0, keepdim=True))
    assert len(used) == 1
    with torch.no_grad():
        assert method(torch.ones(2, 3)).shape == (2, 2) and len(used) == 1  # another shape: eager


def test_package_key_follows_weights_shapes_options_and_threads():
    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 2)
    x = torch.ones(1, 3)
    key = package_key(lin, "forward", (x,), {"freezing": True})
    assert len(key) == 64 and key == package_key(lin, "forward", (x.clone(),), {"freezing": True})
    assert key != package_key(lin, "forward", (torch.ones(2, 3),), {"freezing": True})
    assert key != package_key(lin, "forward", (x,), {"freezing": True, "max_autotune": True})
    threads = torch.get_num_threads()
    torch.set_num_threads(threads + 1)
    try:
        assert key != package_key(lin, "forward", (x,), {"freezing": True})
    finally:
        torch.set_num_threads(threads)
    with torch.no_grad():
        lin.weight[0, 0] += 1e-6
    assert key != package_key(lin, "forward", (x,), {"freezing": True})


def test_packages_are_cached_per_user_not_in_the_run(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert aot_cache_dir() == tmp_path / "xdg" / "robolearn" / "aot"


def test_a_package_that_changes_the_actions_is_not_kept(monkeypatch):
    def wrong(module, name, args, options, directory=None):
        eager = getattr(type(module), name).__get__(module)
        return (lambda *a: eager(*a) * 1.01), True

    monkeypatch.setattr("robolearn.policies.compile.load_or_build", wrong)
    policy = _tiny()
    obs = fake_obs(FEATURES, B=1, To=2, seed=1)
    eager = _chunk(policy, obs)
    with pytest.warns(UserWarning, match="differ from eager"):
        assert compile_for_inference(policy) is False
    assert not is_compiled(policy)
    torch.testing.assert_close(_chunk(policy, obs), eager)


def test_an_unknown_backend_is_refused_by_name():
    with pytest.raises(ValueError, match="'tvm' is not one of \\['aot', 'jit'\\]"):
        compile_for_inference(_tiny(), backend="tvm")


@needs_cxx
@pytest.mark.slow
def test_aot_packages_are_built_once_then_loaded_and_match_eager(monkeypatch, tmp_path):
    """The one real AOTInductor build (the transformer denoiser: no GEMM autotuning, a shorter build): a
    second start of the same weights loads the packages without compiling, and RTC's guided steps work."""
    import torch._inductor as inductor

    from robolearn.policies.rtc import Inpainting

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    kw = {"denoiser": "transformer", "n_layer": 1, "n_head": 2, "n_emb": 16}
    obs = fake_obs(FEATURES, B=1, To=2, seed=1)
    first = _tiny(**kw)
    eager = _chunk(first, obs)
    assert compile_for_inference(first)
    packages = sorted((tmp_path / "xdg" / "robolearn" / "aot").glob("*.pt2"))
    assert len(packages) == 2 and all(p.stat().st_size > 0 for p in packages)
    torch.testing.assert_close(_chunk(first, obs), eager, rtol=1e-4, atol=1e-4)

    def no_build(*a, **k):
        raise AssertionError("a package in the cache was built again")

    monkeypatch.setattr(inductor, "aoti_compile_and_package", no_build)
    second = _tiny(**kw)
    assert compile_for_inference(second) and is_compiled(second)
    torch.testing.assert_close(_chunk(second, obs), eager, rtol=1e-4, atol=1e-4)
    plan = Inpainting.from_plan(torch.ones(6, 2).numpy(), d=2, s=2, horizon=8, vjp_steps=1)
    guided = second.predict_action_chunk(obs, generator=torch.Generator().manual_seed(3), inpaint=plan)
    second.train()
    second.eval()
    torch.testing.assert_close(guided, second.predict_action_chunk(obs, generator=torch.Generator().manual_seed(3),
                                                                   inpaint=plan), rtol=1e-4, atol=1e-4)
    assert sorted((tmp_path / "xdg" / "robolearn" / "aot").glob("*.pt2")) == packages
