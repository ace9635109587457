"""PAD (Prediction with Action): future frames and actions denoised jointly under one timestep."""

from robolearn.policies.pad.config import PADConfig
from robolearn.policies.pad.policy import PADPolicy

__all__ = ["PADConfig", "PADPolicy"]
