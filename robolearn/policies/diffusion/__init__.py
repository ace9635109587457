"""Diffusion Policy, CNN U-Net variant (DP-C)."""

from robolearn.policies.diffusion.config import DiffusionConfig
from robolearn.policies.diffusion.policy import DiffusionPolicy

__all__ = ["DiffusionConfig", "DiffusionPolicy"]
