"""The autoencoder as a trainable `Model` of the registry, so the one Trainer fits it:
``robolearn train policy=autoencoder --store S --out R`` writes a run directory that
`load_autoencoder` (and the `pad`/`uwm` configs' ``autoencoder_path``) accept.

It is a `Model`, not a `Policy`: it trains but does not act.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import torch

from robolearn.errors import ConfigError
from robolearn.policies.base import Model, PolicyConfig
from robolearn.policies.latent.autoencoder import ConvAutoencoder, reconstruction_loss


@dataclasses.dataclass
class AutoencoderConfig(PolicyConfig):
    n_obs_steps: int = 1
    """Frames per window fed to the reconstruction loss (each is an independent sample)."""
    horizon: int = 1
    """Unused by the autoencoder (the sampler still reads one action step)."""
    n_action_steps: int = 1
    """Unused by the autoencoder."""
    channels: tuple[int, ...] = (32, 64, 128)
    """Encoder widths per level; each level halves H and W (three levels: 64x64 -> 8x8)."""
    latent_channels: int = 4
    """C of the latent (Stable Diffusion's VAE uses 4)."""
    blocks_per_level: int = 1
    """Residual blocks per level."""
    kl_weight: float = 1e-6
    """Weight of the KL to N(0, I): keeps the latent smooth without blurring reconstructions."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.channels = tuple(int(c) for c in self.channels)
        if not self.channels or min(self.channels) < 1 or self.latent_channels < 1:
            raise ConfigError(f"channels {self.channels} and latent_channels {self.latent_channels} must be positive.")
        if self.kl_weight < 0:
            raise ConfigError(f"kl_weight must be >= 0, got {self.kl_weight}.")


class AutoencoderModel(Model):
    """Trains a `ConvAutoencoder` on every camera's frames of the batch (one shared autoencoder)."""

    name = "autoencoder"
    config: AutoencoderConfig

    def __init__(self, config: AutoencoderConfig, stats: Mapping[str, Mapping]):
        super().__init__(config, stats)
        if not self.image_keys:
            raise ConfigError(f"the autoencoder needs at least one 'images/<camera>' feature (features: "
                             f"{sorted(config.features)}).")
        sizes = {tuple(config.features[k]["shape"][:2]) for k in self.image_keys}
        if len(sizes) > 1:
            raise ConfigError(f"one autoencoder serves every camera, so all must have one size; got {sorted(sizes)}.")
        self.input_keys = list(self.image_keys)  # state is not needed
        self.autoencoder = ConvAutoencoder(config.channels, config.latent_channels, config.blocks_per_level)
        self.autoencoder.latent_shape(next(iter(sizes)))  # fail now on an indivisible image size

    def images(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Every camera's frames as one (N, 3, H, W) float batch in [0, 1]."""
        frames = []
        for key in self.image_keys:
            if key not in batch:
                raise KeyError(f"batch has no {key!r} (it has: {sorted(batch)}).")
            x = self.normalizer.normalize(key, torch.as_tensor(batch[key], device=self.device))
            frames.append(x.reshape(-1, *x.shape[-3:]).permute(0, 3, 1, 2))
        return torch.cat(frames)

    def compute_loss(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return reconstruction_loss(self.autoencoder, self.images(batch), self.config.kl_weight)
