"""PADConfig: Prediction with Action (Guo et al., NeurIPS 2024), CPU-sized by default.

The paper's scale is DiT-XL/2 (width 1152, depth 28, 16 heads) on 32x32x4 sd-vae-ft-mse latents of
256x256 frames, three future frames at stride 4, CLIP text embeddings; set those fields (and a
diffusers VAE folder) on a GPU.
"""

from __future__ import annotations

import dataclasses

from robolearn.policies.latent.config import LatentConfig


@dataclasses.dataclass
class PADConfig(LatentConfig):
    n_obs_steps: int = 1
    """To: PAD conditions on the current frame only."""
    future_frames: int = 3
    """K: future frames predicted per camera (PAD: predict_horizon=3)."""
    frame_stride: int = 4
    """Future frame k is t + k * frame_stride (PAD: skip_step=4, frames t+4, t+8, t+12)."""
    use_language: bool = False
    """Condition on the task's language embedding, the batch/observation key "task_embedding" (B, 384)
    (see `robolearn.language`): one policy for many tasks."""
    use_depth: bool = False
    """Also predict depth: "depth/<camera>" of every modelled camera, average-pooled to the latent grid,
    becomes one more latent channel (current frame concatenated, future frames denoised)."""
    action_loss_weight: float = 1.0
    """Weight of the action loss against the future-frame loss."""
