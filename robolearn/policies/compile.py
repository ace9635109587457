"""Compile a policy for inference with TorchInductor, weights frozen into the generated code.

`compile_for_inference(policy)` compiles the two places a diffusion or flow policy spends its time
at deployment: every image encoder's ResNet trunk (run once per chunk) and the denoiser's per-step
function (run once per integration step). Weights are frozen (inductor ``freezing``): convolutions
become prepacked oneDNN kernels with their GroupNorm/ReLU fused, the U-Net's temporal convs become
prepacked GEMMs (``max_autotune`` picks the kernel), and elementwise chains (GroupNorm, Mish, FiLM)
fuse. Only input tensors are guarded. The compiled chunk is checked against eager on the warm-up
observation (tested to float32 rounding).

The compiled functions are tied to the weights at compile time, so the policy forgets them
(`uncompile`) as soon as it is put back in training mode or gets new weights through
`load_state_dict`. Compilation happens during a warm-up call at batch 1 (the deployment batch);
another batch size runs eagerly (``aot``) or recompiles once without freezing (``jit``). It needs a C++ compiler (gcc/clang) on CPU;
when compilation fails the policy stays eager and a warning says why.

Two backends (`BACKENDS`), the same targets, options and check against eager:

- ``aot`` (default): each target becomes an AOTInductor package (`robolearn.policies.aot`), built once per
  weights, code, torch version, CPU flags and thread count, kept in ``~/.cache/robolearn/aot`` and loaded in
  well under a second on the next start. It runs for the warm-up's shapes outside autograd; another batch
  size, or RTC's VJP through the denoiser, runs that call eagerly instead of recompiling. Measured on the
  shared 2-core machine (nice 10, load 6-10), DP with one 96x96 camera ("small" ResNet, U-Net 64/128/256,
  DDIM-10): process backend start to ready cold 891 s (build), warm 6.3-7.6 s (8.4-10.8 s from the parent's
  start; ``jit`` in-process: cold 575 s, warm 125 s); chunk CPU p50 interleaved: aot 32.6 ms, jit 43.5 ms,
  eager 93.6 ms.
- ``jit``: ``torch.compile``. Its kernels persist in ``compile_cache_dir()`` (``$TORCHINDUCTOR_CACHE_DIR``
  when set, else ``~/.cache/robolearn/inductor``): inductor's FX graph cache, AOTAutograd cache and autotuning
  results. With the oneDNN weight prepacking that freezing does on CPU the FX graph cache is bypassed
  ("mkldnn tensors unpickleable"): a second start skips C++ compilation and GEMM autotuning but redoes
  inductor's code generation. Measured on the shared 2-core machine (nice 10, load 6-8), DP with 2 cameras
  (ResNet18, U-Net 64/128/256, DDIM-10) in the process backend, start to ready: cold 729 s, warm 65 s. With
  ``torch._inductor.config.cpp.weight_prepack = False`` the graph cache hits (warm compile 12 s, cold 130 s)
  but chunks were ~25% slower (146 vs 117 ms, interleaved, eager 196 ms). That is why ``aot`` is the default.

Measured on a 2-core EPYC (benchmarks/results/policies_vs_lerobot.json): DDIM-10 chunk at LeRobot's
small size, 35.0 ms eager -> 15.5 ms compiled. Compiling takes ~100 s the first time (GEMM
autotuning) and ~30 s once inductor's on-disk cache (``TORCHINDUCTOR_CACHE_DIR``) is warm.

    policy = robolearn.policies.load("runs/push", compile=True)   # or compile_for_inference(policy)
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from robolearn.errors import InvalidValueError
from robolearn.policies.aot import AotMethod, load_or_build
from robolearn.policies.base import Policy
from robolearn.language import EMBED_DIM, TASK_EMBEDDING_KEY
from robolearn.policies.nets.unet1d import ConditionalUnet1D

_TOLERANCE = 1e-4  # max |compiled - eager| per unit of action scale, on the warm-up chunk
_COMPILED_ATTR = "_robolearn_compiled"  # instance attributes this module set, per module: [names]


def _targets(policy: Policy) -> list[tuple[torch.nn.Module, str]]:
    """(module, method name) pairs to compile: encoder trunks and the denoiser's per-step function."""
    denoiser = getattr(policy, getattr(policy.config, "denoiser", ""), None)
    if denoiser is None or not hasattr(denoiser, "denoise"):
        raise InvalidValueError(
            f"compile_for_inference supports the diffusion and flow policies (U-Net or transformer "
            f"denoiser); {type(policy).__name__} has none."
        )
    targets = [(enc.backbone, "forward") for enc in getattr(policy, "encoders", {}).values()]
    targets.append((denoiser, "denoise"))
    return targets


def supports_compile(policy: Policy) -> bool:
    """Whether `compile_for_inference` applies (a diffusion or flow policy with a denoiser)."""
    try:
        _targets(policy)
    except InvalidValueError:
        return False
    return True


def compile_if_supported(policy: Policy) -> bool:
    """`compile_for_inference` for the policies it supports; False (eager) for the others."""
    return supports_compile(policy) and compile_for_inference(policy)


def compile_cache_dir() -> Path:
    """Where compiled kernels persist between runs (module doc)."""
    if os.environ.get("TORCHINDUCTOR_CACHE_DIR"):
        return Path(os.environ["TORCHINDUCTOR_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "robolearn" / "inductor"


def use_compile_cache() -> Path:
    """Point inductor at `compile_cache_dir()` with its on-disk caches on; returns the folder."""
    import torch._functorch.config as functorch_config
    import torch._inductor.config as inductor_config

    path = compile_cache_dir()
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(path)
    inductor_config.fx_graph_cache = True
    inductor_config.autotune_local_cache = True
    functorch_config.enable_autograd_cache = True
    return path


def dummy_observation(policy: Policy, batch_size: int = 1) -> dict[str, torch.Tensor]:
    """A zero observation with every input the policy reads, shaped (B, To, ...) like the real ones."""
    To, device = policy.config.n_obs_steps, policy.device
    obs = {}
    for key in policy.input_keys:
        feat = policy.features[key]
        dtype = torch.uint8 if feat.get("dtype") == "uint8" else torch.float32
        obs[key] = torch.zeros(batch_size, To, *feat["shape"], dtype=dtype, device=device)
    if policy.uses_language:
        obs[TASK_EMBEDDING_KEY] = torch.zeros(batch_size, EMBED_DIM, device=device)
    return obs


def is_compiled(policy: Policy) -> bool:
    return any(getattr(m, _COMPILED_ATTR, None) for m in policy.modules())


def uncompile(policy: Policy) -> Policy:
    """Drop the compiled functions: the policy runs eagerly again (no-op if it was not compiled)."""
    for module in policy.modules():
        for name in module.__dict__.pop(_COMPILED_ATTR, []):
            module.__dict__.pop(name, None)
    return policy


BACKENDS = ("aot", "jit")
"""``aot``: AOTInductor packages cached per checkpoint (`robolearn.policies.aot`), the default;
``jit``: ``torch.compile`` with inductor's own caches."""


def compile_for_inference(policy: Policy, example_obs: Mapping[str, torch.Tensor] | None = None,
                          backend: str = "aot") -> bool:
    """Compile `policy` (in place, put in eval mode) for fast `predict_action_chunk`; returns whether it did.

    `example_obs` (default: `dummy_observation(policy)`) is the warm-up input during which the
    compilation happens; give a real observation to compile for its batch size. The compiled chunk
    for that input is checked against the eager one (same noise): a mismatch beyond float32
    rounding, like a failed compilation, leaves the policy eager with a warning. `backend` is one of
    `BACKENDS` (module doc).
    """
    if backend not in BACKENDS:
        raise InvalidValueError(f"compile backend {backend!r} is not one of {list(BACKENDS)}.")
    targets = _targets(policy)
    use_compile_cache()
    uncompile(policy)
    policy.eval()
    obs = dict(example_obs) if example_obs is not None else dummy_observation(policy)
    examples: dict[tuple[int, str], tuple] = {}
    if backend == "aot":  # the eager warm-up records each target's first inputs: the shapes to build for
        for module, name in targets:
            module.__dict__[name] = _recorder(module, name, examples)
            module.__dict__.setdefault(_COMPILED_ATTR, []).append(name)
    try:
        with torch.no_grad():
            eager = policy.predict_action_chunk(obs, generator=torch.Generator().manual_seed(0))
    finally:
        uncompile(policy)
    # Guards only on the input tensors (shape/dtype/device): module attributes cannot change under
    # a compiled policy (training mode and load_state_dict uncompile it). max_autotune lets inductor
    # pick its prepacked CPU GEMM for the U-Net's small-row matmuls (~2x over MKL there); it is
    # left off for the transformer, where that GEMM lost precision in testing.
    max_autotune = isinstance(targets[-1][0], ConditionalUnet1D)
    try:
        import torch._inductor.config as inductor_config

        if backend == "aot":
            for module, name in targets:
                args = examples[(id(module), name)]
                runner, _ = load_or_build(module, name, args, {"freezing": True, "max_autotune": max_autotune})
                module.__dict__[name] = AotMethod(runner, module, name, args)
                module.__dict__.setdefault(_COMPILED_ATTR, []).append(name)
        else:
            opts = {"max_autotune": max_autotune}
            guard_filter = getattr(torch.compiler, "keep_tensor_guards_unsafe", None)  # torch >= 2.8
            if guard_filter is not None:
                opts["guard_filter_fn"] = guard_filter
            for module, name in targets:
                module.__dict__[name] = torch.compile(getattr(module, name), dynamic=False, options=opts)
                module.__dict__.setdefault(_COMPILED_ATTR, []).append(name)
        with torch.no_grad(), inductor_config.patch(freezing=True):
            compiled = policy.predict_action_chunk(obs, generator=torch.Generator().manual_seed(0))
        err = (compiled - eager).abs().max().item()
        tol = _TOLERANCE * (1.0 + eager.abs().max().item())
        if not err <= tol:
            raise RuntimeError(f"compiled actions differ from eager ones by {err:.2e} (tolerance {tol:.2e})")
    except Exception as exc:  # no C++ compiler, an unsupported op, a wrong kernel ...: stay eager, say why
        uncompile(policy)
        torch._dynamo.reset()
        warnings.warn(f"torch.compile failed, the policy runs eagerly: {type(exc).__name__}: {exc}", stacklevel=2)
        return False
    return True


def _recorder(module: torch.nn.Module, name: str, into: dict) -> Callable:
    """``module.name`` that keeps its first call's inputs in ``into[(id(module), name)]``."""
    method = getattr(type(module), name)

    def call(*args):
        into.setdefault((id(module), name), tuple(a.detach() for a in args))
        return method(module, *args)

    return call
