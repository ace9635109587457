"""Unified World Model (UWM): action and future-frame diffusion in one transformer, independent timesteps."""

from robolearn.policies.uwm.config import UWMConfig
from robolearn.policies.uwm.policy import MODES, UWMPolicy

__all__ = ["MODES", "UWMConfig", "UWMPolicy"]
