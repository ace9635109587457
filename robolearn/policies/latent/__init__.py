"""Image latents for PAD and UWM: autoencoders and the shared latent-policy parts (caching lives in
robolearn.train.latents, above both the store and the policies)."""

from robolearn.policies.latent.autoencoder import (
    ConvAutoencoder,
    DiffusersAutoencoder,
    build_autoencoder,
    fingerprint,
    load_autoencoder,
)
from robolearn.policies.latent.model import AutoencoderConfig, AutoencoderModel

__all__ = ["AutoencoderConfig", "AutoencoderModel", "ConvAutoencoder", "DiffusersAutoencoder", "build_autoencoder",
           "fingerprint", "load_autoencoder"]
