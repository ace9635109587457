"""UWMConfig: Unified World Model (Zhu et al., 2025), CPU-sized by default.

The paper's scale is width 768, depth 12, 12 heads, 8 registers, To=2, T=16, two future frames after
the chunk, a frozen SDXL VAE at 224x224; set those fields (and a diffusers VAE folder) on a GPU.
"""

from __future__ import annotations

import dataclasses

from robolearn.policies.latent.config import LatentConfig


@dataclasses.dataclass
class UWMConfig(LatentConfig):
    n_registers: int = 4
    """Learned register tokens (UWM: 8, 24 for LIBERO)."""
    use_language: bool = False
    """Condition on the task's language embedding, the batch/observation key "task_embedding" (B, 384)
    (see `robolearn.language`): a token and part of the adaLN condition, as in PAD."""
    action_loss_weight: float = 1.0
    """Weight of the action noise loss against the future-frame noise loss."""
