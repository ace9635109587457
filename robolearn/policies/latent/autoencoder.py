"""Image autoencoders that give PAD and UWM a latent space to denoise future frames in.

Two kinds share one small interface (``encode``, ``decode``, ``latent_shape``, ``spec``):

- `ConvAutoencoder`: a small KL-regularised convolutional autoencoder (GroupNorm + SiLU residual
  blocks, one stride-2 conv per level), trained on a store's frames with
  ``robolearn train policy=autoencoder``. 64x64x3 images -> 8x8x4 latents with the default three levels.
- `DiffusersAutoencoder`: a diffusers ``AutoencoderKL`` read from a local folder (``save_pretrained``
  layout), for users who have a pretrained VAE on disk. Nothing is fetched from a hub.

Latents are *scaled*: ``encode`` returns ``mean * scale`` so they have roughly unit variance, the
range the diffusion schedules assume. `ConvAutoencoder` estimates its ``scale`` from the data while it
trains (1 / std of the latent means, a running average kept as a buffer); ``AutoencoderKL`` uses its
config's ``scaling_factor``.

Images enter and leave as float (N, 3, H, W) in [0, 1].

Example::

    from robolearn.policies.latent import load_autoencoder

    ae = load_autoencoder("runs/ae")                  # our run dir, or a diffusers AutoencoderKL folder
    z = ae.encode(images)                             # (N, 3, 64, 64) -> (N, 4, 8, 8), scaled
    recon = ae.decode(z)                              # (N, 3, 64, 64) in [0, 1]
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from robolearn.errors import InvalidValueError, MissingPathError

CONV_KIND = "conv"
DIFFUSERS_KIND = "diffusers_kl"


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels), channels)


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv, twice, with a residual (1x1 conv when the width changes)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.block = nn.Sequential(_norm(c_in), nn.SiLU(), nn.Conv2d(c_in, c_out, 3, padding=1),
                                   _norm(c_out), nn.SiLU(), nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.block(x)


class ConvAutoencoder(nn.Module):
    """(N, 3, H, W) in [0, 1] <-> (N, latent_channels, H / 2**L, W / 2**L), L = len(channels).

    Args:
        channels: widths of the L levels; each level ends with a stride-2 conv (encoder) or a
            nearest-neighbour upsample + conv (decoder).
        latent_channels: C of the latent.
        blocks_per_level: residual blocks per level.
    """

    def __init__(self, channels: tuple[int, ...] = (32, 64, 128), latent_channels: int = 4,
                 blocks_per_level: int = 1, in_channels: int = 3):
        super().__init__()
        self.channels, self.latent_channels = tuple(int(c) for c in channels), int(latent_channels)
        self.blocks_per_level, self.in_channels = int(blocks_per_level), int(in_channels)
        enc: list[nn.Module] = [nn.Conv2d(in_channels, channels[0], 3, padding=1)]
        c = channels[0]
        for width in channels:
            for _ in range(blocks_per_level):
                enc.append(ResBlock(c, width))
                c = width
            enc.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
        enc += [ResBlock(c, c), _norm(c), nn.SiLU(), nn.Conv2d(c, 2 * latent_channels, 3, padding=1)]
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = [nn.Conv2d(latent_channels, c, 3, padding=1), ResBlock(c, c)]
        for width in reversed(channels):
            dec += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, width, 3, padding=1)]
            c = width
            for _ in range(blocks_per_level):
                dec.append(ResBlock(c, c))
        dec += [_norm(c), nn.SiLU(), nn.Conv2d(c, in_channels, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)
        self.register_buffer("scale", torch.ones(()))
        """Latent scale factor (1 / std of the latent means), estimated while training."""
        self.register_buffer("scale_count", torch.zeros((), dtype=torch.int64))

    @property
    def downsample(self) -> int:
        return 2 ** len(self.channels)

    def latent_shape(self, hw: tuple[int, int]) -> tuple[int, int, int]:
        h, w = hw
        if h % self.downsample or w % self.downsample:
            raise InvalidValueError(f"image size {h}x{w} must be divisible by {self.downsample} "
                             f"(the autoencoder has {len(self.channels)} levels).")
        return self.latent_channels, h // self.downsample, w // self.downsample

    def moments(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Unscaled posterior mean and log-variance, each (N, C, h, w)."""
        self.latent_shape(tuple(images.shape[-2:]))
        mean, logvar = self.encoder(images * 2.0 - 1.0).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode_unscaled(self, z: torch.Tensor) -> torch.Tensor:
        """Reconstruction in [-1, 1] units (not clamped: the training loss needs the gradient)."""
        return self.decoder(z)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.moments(images)[0] * self.scale

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return ((self.decoder(z / self.scale) + 1.0) / 2.0).clamp(0.0, 1.0)

    @torch.no_grad()
    def update_scale(self, mean: torch.Tensor, momentum: float = 0.02) -> None:
        """Running estimate of 1 / std(latent means); the first batch sets it outright."""
        target = 1.0 / mean.float().std().clamp_min(1e-6)
        if int(self.scale_count) == 0:
            self.scale.copy_(target)
        else:
            self.scale.lerp_(target.to(self.scale), momentum)
        self.scale_count += 1

    def spec(self) -> dict[str, Any]:
        """JSON that rebuilds this architecture (weights not included): see `build_autoencoder`."""
        return {"kind": CONV_KIND, "config": {"channels": list(self.channels), "latent_channels": self.latent_channels,
                                              "blocks_per_level": self.blocks_per_level,
                                              "in_channels": self.in_channels}}


class DiffusersAutoencoder(nn.Module):
    """A diffusers ``AutoencoderKL`` behind the same interface; ``scale`` = its ``scaling_factor``."""

    def __init__(self, vae):
        super().__init__()
        self.vae = vae
        self.register_buffer("scale", torch.tensor(float(vae.config.scaling_factor or 1.0)))
        shift = getattr(vae.config, "shift_factor", None)
        self.register_buffer("shift", torch.tensor(float(shift or 0.0)))
        self.downsample = 2 ** (len(vae.config.block_out_channels) - 1)

    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.latent_channels)

    def latent_shape(self, hw: tuple[int, int]) -> tuple[int, int, int]:
        h, w = hw
        if h % self.downsample or w % self.downsample:
            raise InvalidValueError(f"image size {h}x{w} must be divisible by {self.downsample} for this AutoencoderKL.")
        return self.latent_channels, h // self.downsample, w // self.downsample

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        mean = self.vae.encode(images * 2.0 - 1.0).latent_dist.mean
        return (mean - self.shift) * self.scale

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        x = self.vae.decode(z / self.scale + self.shift).sample
        return ((x + 1.0) / 2.0).clamp(0.0, 1.0)

    def spec(self) -> dict[str, Any]:
        config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(self.vae.config).items()
                  if not k.startswith("_")}
        return {"kind": DIFFUSERS_KIND, "config": config}


Autoencoder = ConvAutoencoder | DiffusersAutoencoder


def build_autoencoder(spec: dict[str, Any]) -> Autoencoder:
    """An autoencoder of the architecture `spec` describes (from ``.spec()``), with fresh weights."""
    kind = spec.get("kind")
    if kind == CONV_KIND:
        cfg = spec["config"]
        return ConvAutoencoder(tuple(cfg["channels"]), cfg["latent_channels"], cfg["blocks_per_level"],
                               cfg.get("in_channels", 3))
    if kind == DIFFUSERS_KIND:
        from diffusers import AutoencoderKL

        return DiffusersAutoencoder(AutoencoderKL.from_config(spec["config"]))
    raise ValueError(f"unknown autoencoder kind {kind!r}: expected {CONV_KIND!r} or {DIFFUSERS_KIND!r}.")


def fingerprint(ae: nn.Module) -> str:
    """A short hash of the autoencoder's weights: cached latents are used only by a policy whose
    autoencoder has the same fingerprint."""
    h = hashlib.sha256()
    for name, t in sorted(ae.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def load_autoencoder(path: str | os.PathLike, use_ema: bool = True) -> Autoencoder:
    """A frozen autoencoder (eval mode, no grad) from a local folder: a run directory written by
    ``robolearn train policy=autoencoder``, or a diffusers ``AutoencoderKL`` saved with
    ``save_pretrained`` (its config.json names ``"_class_name": "AutoencoderKL"``)."""
    path = Path(path)
    config_path = path / "config.json"
    if not config_path.is_file():
        raise MissingPathError(
            f"no config.json in {str(path)!r}: expected a `robolearn train policy=autoencoder` run directory "
            f"or a diffusers AutoencoderKL folder (save_pretrained).")
    config = json.loads(config_path.read_text())
    if config.get("policy") == "autoencoder":
        from robolearn.policies import load

        ae = load(path, use_ema=use_ema).autoencoder
    elif config.get("_class_name") == "AutoencoderKL":
        from diffusers import AutoencoderKL

        ae = DiffusersAutoencoder(AutoencoderKL.from_pretrained(str(path), local_files_only=True))
    else:
        found = config.get("policy") or config.get("_class_name") or "neither 'policy' nor '_class_name'"
        raise InvalidValueError(f"{config_path} describes {found!r}, not an autoencoder run directory "
                         f"(policy 'autoencoder') or a diffusers AutoencoderKL.")
    return ae.eval().requires_grad_(False)


def reconstruction_loss(ae: ConvAutoencoder, images: torch.Tensor, kl_weight: float) -> dict[str, torch.Tensor]:
    """MSE (in [-1, 1] units) of a sampled-latent reconstruction + kl_weight * KL to N(0, I)."""
    mean, logvar = ae.moments(images)
    z = mean + torch.randn_like(mean) * (0.5 * logvar).exp() if ae.training else mean
    recon = ae.decode_unscaled(z)
    mse = F.mse_loss(recon, images * 2.0 - 1.0)
    kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=(1, 2, 3)).mean()
    if ae.training:
        ae.update_scale(mean)
    return {"loss": mse + kl_weight * kl, "mse": mse.detach(), "kl": kl.detach()}
