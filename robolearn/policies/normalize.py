"""Per-key normalization fitted from store stats, stored inside the policy's state dict.

A `Normalizer` is built from the dataset `features` (key -> {"shape", "dtype"}) and `stats`
(key -> {"mean", "std", "min", "max", ...} per-dimension lists). For every low-dimensional key it
holds a `scale` and an `offset` buffer so that ``normalize(key, x) = x * scale + offset``; the
buffers travel with `model.safetensors`, so a loaded policy normalizes exactly as it did in training.

Modes (per key):

- ``"min_max"``: maps [min, max] to [-1, 1] (default for `state` and `action`). A dimension whose
  range is below 1e-4 is centred on 0 with scale 1 instead of being blown up.
- ``"mean_std"``: ``(x - mean) / std``; a std below 1e-6 gets scale 1.
- ``"identity"``: no change, no stats needed.

Image keys (``images/<camera>``, uint8 (..., H, W, 3)) are not normalized by stats: they are
scaled to float32 in [0, 1] and keep their layout.

Nothing passes through silently: a key without stats, a key the normalizer was not built for, a
wrong trailing shape or a non-uint8 image raises an error that names the key.

Example::

    norm = Normalizer(features, stats)            # modes default to min_max
    x = norm.normalize("state", batch["state"])   # (B, To, Do) -> in [-1, 1]
    a = norm.unnormalize("action", a_norm)        # (B, T, Da) back in env units
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from robolearn.errors import ConfigError, UnknownKeyError
from robolearn.spaces import IMAGES as IMAGE_PREFIX  # noqa: F401  (re-exported)
from robolearn.spaces import is_image_key  # noqa: F401  (re-exported: image keys are scaled, not normalized)

MODES = ("min_max", "mean_std", "identity")
_MIN_RANGE = 1e-4
_MIN_STD = 1e-6


def _buffer_name(key: str, what: str) -> str:
    # Buffer names may not contain "."; "/" is legal but keep names plain for safetensors readers.
    return f"{key.replace('/', '__')}__{what}"


def _stat(stats: Mapping, key: str, name: str, shape: tuple[int, ...]) -> torch.Tensor:
    if key not in stats:
        raise KeyError(f"stats has no entry for key {key!r} (stats keys: {sorted(stats)}).")
    if name not in stats[key]:
        raise KeyError(f"stats[{key!r}] has no {name!r} (it has: {sorted(stats[key])}).")
    value = torch.as_tensor(stats[key][name], dtype=torch.float32)
    if tuple(value.shape) != shape:
        raise ValueError(
            f"stats[{key!r}][{name!r}] has shape {tuple(value.shape)}, but feature {key!r} has shape {shape}."
        )
    return value


class Normalizer(nn.Module):
    """Normalizes low-dim keys by fitted stats and scales uint8 images to [0, 1].

    Args:
        features: key -> {"shape": [...], "dtype": "float32"|"uint8"}; every key is handled.
        stats: key -> per-dimension lists ("min", "max", "mean", "std", ...); required for every
            non-image key whose mode is not "identity". Image stats are ignored.
        modes: key -> "min_max" | "mean_std" | "identity"; keys not listed use "min_max".
    """

    def __init__(self, features: Mapping, stats: Mapping, modes: Mapping[str, str] | None = None):
        super().__init__()
        modes = dict(modes or {})
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.modes: dict[str, str] = {}
        for key, feature in features.items():
            shape = tuple(int(s) for s in feature["shape"])
            self.shapes[key] = shape
            if is_image_key(key):
                if feature.get("dtype", "uint8") != "uint8" or len(shape) != 3 or shape[-1] != 3:
                    raise ValueError(
                        f"image feature {key!r} must be uint8 with shape (H, W, 3), got "
                        f"{feature.get('dtype')} {shape}."
                    )
                self.modes[key] = "image"
                continue
            mode = modes.get(key, "min_max")
            if mode not in MODES:
                raise ConfigError(f"normalization mode {mode!r} for key {key!r} is not one of {MODES}.")
            self.modes[key] = mode
            scale, offset = torch.ones(shape), torch.zeros(shape)
            if mode == "min_max":
                lo, hi = _stat(stats, key, "min", shape), _stat(stats, key, "max", shape)
                rng = hi - lo
                flat = rng < _MIN_RANGE
                scale = torch.where(flat, torch.ones_like(rng), 2.0 / rng.clamp_min(_MIN_RANGE))
                offset = torch.where(flat, -(lo + hi) / 2, -1.0 - lo * scale)
            elif mode == "mean_std":
                mean, std = _stat(stats, key, "mean", shape), _stat(stats, key, "std", shape)
                scale = torch.where(std < _MIN_STD, torch.ones_like(std), 1.0 / std.clamp_min(_MIN_STD))
                offset = -mean * scale
            self.register_buffer(_buffer_name(key, "scale"), scale)
            self.register_buffer(_buffer_name(key, "offset"), offset)
        unused = set(modes) - set(self.modes)
        if unused:
            raise UnknownKeyError(
                f"normalization modes given for unknown keys {sorted(unused)} (features: {sorted(self.modes)})."
            )

    def _check(self, key: str, x: torch.Tensor) -> None:
        if key not in self.shapes:
            raise KeyError(f"normalizer has no key {key!r} (it knows: {sorted(self.shapes)}).")
        shape = self.shapes[key]
        if x.dim() < len(shape) or tuple(x.shape[x.dim() - len(shape):]) != shape:
            dims = ", ".join(map(str, shape))
            raise ValueError(f"{key!r} has shape {tuple(x.shape)}, expected (..., {dims}).")

    def _params(self, key: str) -> tuple[torch.Tensor, torch.Tensor]:
        return getattr(self, _buffer_name(key, "scale")), getattr(self, _buffer_name(key, "offset"))

    def normalize(self, key: str, x: torch.Tensor) -> torch.Tensor:
        """Env units -> network units; uint8 images (..., H, W, 3) -> float32 in [0, 1]."""
        self._check(key, x)
        mode = self.modes[key]
        if mode == "image":
            if x.dtype != torch.uint8:
                raise ValueError(f"image {key!r} must be uint8 (H, W, 3), got dtype {x.dtype}.")
            return x.to(torch.float32).mul_(1.0 / 255.0)
        if mode == "identity":
            return x.to(torch.float32)
        scale, offset = self._params(key)
        return torch.addcmul(offset, x.to(torch.float32), scale)

    def unnormalize(self, key: str, x: torch.Tensor) -> torch.Tensor:
        """Network units -> env units (the inverse of `normalize`; images are not invertible here)."""
        self._check(key, x)
        mode = self.modes[key]
        if mode == "image":
            raise ValueError(f"unnormalize is not defined for image key {key!r}.")
        if mode == "identity":
            return x
        scale, offset = self._params(key)
        return (x - offset) / scale

    def extra_repr(self) -> str:
        return ", ".join(f"{k}: {m}" for k, m in self.modes.items())
