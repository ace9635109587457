"""Image latents for PAD and UWM: autoencoders, latent caching, and the shared latent-policy parts."""

from robolearn.policies.latent.autoencoder import (
    ConvAutoencoder,
    DiffusersAutoencoder,
    build_autoencoder,
    fingerprint,
    load_autoencoder,
)
from robolearn.policies.latent.cache import cache_latents
from robolearn.policies.latent.model import AutoencoderConfig, AutoencoderPolicy

__all__ = ["AutoencoderConfig", "AutoencoderPolicy", "ConvAutoencoder", "DiffusersAutoencoder", "build_autoencoder",
           "cache_latents", "fingerprint", "load_autoencoder"]
