"""Flow policy: rectified-flow action chunks on the diffusion backbones (U-Net or transformer)."""

from robolearn.policies.flow.config import FlowConfig
from robolearn.policies.flow.policy import FlowPolicy

__all__ = ["FlowConfig", "FlowPolicy"]
