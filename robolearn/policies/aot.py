"""Ahead-of-time compiled policy parts: AOTInductor packages, cached per weights, code, torch and CPU.

A package (``.pt2``) is one method of one module (an image encoder's trunk, the denoiser's per-step
function) exported at fixed input shapes and compiled by inductor into a shared library, its weights frozen
in (prepacked oneDNN kernels on CPU, which the JIT path's FX graph cache cannot store: `robolearn.policies.
compile`). Building one costs as much as a cold ``torch.compile``; loading one takes a fraction of a second,
so a second start of the same checkpoint is ready at once.

Packages live in `aot_cache_dir()` (``~/.cache/robolearn/aot``, under ``$XDG_CACHE_HOME`` when set), never
beside the user's run. The file name is a SHA-256 over everything the compiled code depends on
(`package_key`): the module's tensors (parameters and buffers, by value), the source files of its classes,
the method, the input shapes and dtypes, the inductor options, torch's version, the CPU's instruction set
flags and the thread count inductor tuned for. Change any of them and a new package is built; an old one is
never overwritten, only replaced atomically by an identical build. The caller checks the compiled result
against eager before it trusts a package (`compile_for_inference`).

`AotMethod` stands in for the method: it runs the package for the shapes it was built for, outside
autograd; any other call (another batch size, a gradient through the denoiser as RTC's guidance takes) runs
the module eagerly.

    runner, built = load_or_build(unet, "denoise", (x, film), {"freezing": True})
    unet.__dict__["denoise"] = AotMethod(runner, unet, "denoise", (x, film))
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import platform
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

__all__ = ["AotMethod", "aot_cache_dir", "load_or_build", "package_key"]

FORMAT = 1  # bump when what a package holds, or how it is keyed, changes


def aot_cache_dir() -> Path:
    """Where packages persist between runs (module doc)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "robolearn" / "aot"


def _cpu_flags() -> str:
    """The CPU's instruction set flags (inductor emits code for the ISA it finds)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return " ".join(sorted(line.split(":", 1)[1].split()))
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _signature(args: Sequence[torch.Tensor]) -> tuple:
    return tuple((tuple(a.shape), str(a.dtype), str(a.device)) for a in args)


def package_key(module: nn.Module, method: str, args: Sequence[torch.Tensor], options: Mapping) -> str:
    """SHA-256 hex of everything a package of ``module.method`` at ``args`` depends on (module doc)."""
    sources = {}
    for cls in sorted({type(m) for m in module.modules()}, key=lambda c: f"{c.__module__}.{c.__qualname__}"):
        try:
            path = inspect.getsourcefile(cls)
        except TypeError:  # a builtin
            path = None
        if path and path not in sources:
            sources[path] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    head = {
        "format": FORMAT, "torch": torch.__version__, "cpu": torch.backends.cpu.get_cpu_capability(),
        "cpu_flags": hashlib.sha256(_cpu_flags().encode()).hexdigest(), "threads": torch.get_num_threads(),
        "class": f"{type(module).__module__}.{type(module).__qualname__}", "method": method,
        "args": [list(map(str, s)) for s in _signature(args)], "options": {k: str(v) for k, v in options.items()},
        "sources": sorted(sources.values()),
    }
    h = hashlib.sha256(json.dumps(head, sort_keys=True).encode())
    for name, t in [*module.named_parameters(), *module.named_buffers()]:
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        # reshape(-1): a channels-last 1x1 conv weight counts as contiguous but keeps stride(-1) != 1
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


class _Method(nn.Module):
    """``module.<method>`` as a module's forward, for `torch.export` (the class's function: an instance
    attribute may already stand in for it)."""

    def __init__(self, module: nn.Module, method: str):
        super().__init__()
        self.module, self.method = module, method

    def forward(self, *args):
        return getattr(type(self.module), self.method)(self.module, *args)


def load_or_build(module: nn.Module, method: str, args: Sequence[torch.Tensor], options: Mapping,
                  directory: Path | None = None) -> tuple[Callable, bool]:
    """The compiled ``module.method`` for inputs like ``args`` (``(runner, built)``; ``built`` is False when
    it came from the cache). Builds and stores the package when `package_key` has none."""
    import torch._inductor as inductor

    directory = aot_cache_dir() if directory is None else Path(directory)
    path = directory / f"{package_key(module, method, args, options)}.pt2"
    built = not path.is_file()
    if built:
        directory.mkdir(parents=True, exist_ok=True)
        with torch.no_grad():
            program = torch.export.export(_Method(module, method), tuple(args))
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.pt2")
        try:
            inductor.aoti_compile_and_package(program, package_path=str(tmp), inductor_configs=dict(options))
            os.replace(tmp, path)  # atomic: a concurrent start sees the whole package or none
        finally:
            tmp.unlink(missing_ok=True)
    return _load(path), built


def _load(path: Path) -> Callable:
    """``aoti_load_package`` without its CPU ISA probe: to compare the package's ISA with this machine's it
    builds a probe library per ISA and dlopens each in a fresh Python (~3 s idle, ~12 s on a loaded 2-core
    machine), only to log a mismatch. The package key holds the CPU flags already, so the probe trusts them
    (``cpp.vec_isa_ok``), then forgets its answer for any compilation that follows."""
    import torch._inductor as inductor
    import torch._inductor.codecache  # noqa: F401  (torch 2.10's load path uses it without importing it)
    import torch._inductor.config as inductor_config
    from torch._inductor import cpu_vec_isa

    try:
        with inductor_config.patch({"cpp.vec_isa_ok": True}):
            return inductor.aoti_load_package(str(path))
    finally:
        cpu_vec_isa.valid_vec_isa_list.cache_clear()


class AotMethod:
    """Stands in for ``module.method``: the package for the shapes it was built for, outside autograd;
    eager otherwise (module doc)."""

    def __init__(self, runner: Callable, module: nn.Module, method: str, args: Sequence[torch.Tensor]):
        self.runner = runner
        self.eager = getattr(type(module), method).__get__(module)
        self.signature = _signature(args)

    def __call__(self, *args):
        if torch.is_grad_enabled() or _signature(args) != self.signature:
            return self.eager(*args)
        return self.runner(*args)
