"""Diffusion Policy: CNN U-Net (DP-C) or transformer (DP-T) denoiser."""

from robolearn.policies.diffusion.config import DiffusionConfig
from robolearn.policies.diffusion.policy import DiffusionPolicy

__all__ = ["DiffusionConfig", "DiffusionPolicy"]
