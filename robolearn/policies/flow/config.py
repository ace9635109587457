"""FlowConfig: rectified-flow (flow matching) policy on the U-Net (DP-C) or transformer (DP-T) denoiser.

The vision, denoiser and language fields have the same names, meanings and defaults as
`DiffusionConfig`'s, so a diffusion preset carries over by changing the policy name and dropping
the noise-schedule fields.
"""

from __future__ import annotations

import dataclasses

from robolearn.errors import ConfigError
from robolearn.policies.base import PolicyConfig
from robolearn.policies.conditioning import check_config

MAX_INFERENCE_STEPS = 10
TIME_SAMPLINGS = ("uniform", "logit_normal")


@dataclasses.dataclass
class FlowConfig(PolicyConfig):
    # --- vision ---
    vision_backbone: str = "small"
    """ResNet preset per camera: "small" (blocks 1,1,1,1, widths 32..256) or "resnet18"."""
    crop_shape: tuple[int, int] | None = None
    """(h, w) crop: random per image in training, centred at inference. None: 7/8 of each image
    side (84x84 for 96x96 images); (H, W) disables cropping."""
    image_pool: str = "spatial_softmax"
    """Head on the ResNet feature map: "spatial_softmax" (keypoints) or "avg" (global average pool)."""
    spatial_softmax_num_keypoints: int = 32
    """K keypoints when image_pool is "spatial_softmax"."""
    image_feature_dim: int = 64
    """Features per camera per observation step."""
    share_image_encoder: bool = True
    """One encoder for all cameras (all must have the same H, W) or a separate one per camera."""
    encoder_dtype: str = "float32"
    """Image encoder compute dtype: "float32", "bfloat16" (autocast; fast only on CPUs with bf16 units) or
    "auto" (bfloat16 where the CPU has native bf16; resolved when the config is built, saved resolved)."""
    pretrained_encoder_path: str | None = None
    """Local .safetensors with backbone weights (torchvision names), loaded by `make_policy`."""

    # --- denoiser (velocity network) ---
    denoiser: str = "unet"
    """Velocity network: "unet" (DP-C, the U-Net fields) or "transformer" (DP-T, the transformer fields)."""
    down_dims: tuple[int, ...] = (64, 128, 256)
    """U-Net channels per level."""
    kernel_size: int = 5
    """Temporal kernel of the U-Net convolutions."""
    n_groups: int = 8
    """GroupNorm groups in the U-Net."""
    diffusion_step_embed_dim: int = 128
    """Size of the U-Net's time embedding (the flow time t in [0, 1] enters as 1000 t)."""
    film_scale: bool = True
    """U-Net FiLM with scale and bias (True) or bias only (False)."""
    n_layer: int = 4
    """Transformer decoder layers."""
    n_head: int = 4
    """Transformer attention heads."""
    n_emb: int = 128
    """Transformer token width; divisible by n_head."""
    p_drop_emb: float = 0.0
    """Transformer dropout on the token embeddings."""
    p_drop_attn: float = 0.3
    """Transformer dropout inside the decoder layers."""
    causal_attn: bool = True
    """Causal self-attention over the action tokens."""

    # --- language ---
    use_language: bool = False
    """Condition on the batch/obs key "task_embedding" (B, 384), see robolearn.language."""
    language_feature_dim: int = 64
    """Size of the Linear projection of the task embedding added to the condition."""

    # --- flow ---
    time_sampling: str = "uniform"
    """Training time distribution: "uniform" on [0, 1] or "logit_normal" (sigmoid of a normal,
    more weight on mid-path times, as in Stable Diffusion 3)."""
    logit_normal_mean: float = 0.0
    """Mean of the normal under the sigmoid for "logit_normal"."""
    logit_normal_std: float = 1.0
    """Std of the normal under the sigmoid for "logit_normal"."""
    num_inference_steps: int = 4
    """Euler steps from noise (t=0) to actions (t=1) at inference, 1 to 10."""
    clip_sample: bool = True
    """Clip the integrated chunk to [-clip_sample_range, clip_sample_range] before unnormalizing."""
    clip_sample_range: float = 1.0
    """Clip bound, in normalized action units."""

    # --- real-time chunking ---
    rtc_training_max_delay: int = 0
    """Training-time RTC: d_max, the largest simulated inference delay in actions (0: off, < horizon). Each
    training chunk freezes its first d ~ U{0..d_max} actions (clean input, flagged by an extra denoiser input
    channel, no loss); at inference an ``inpaint=`` prefix is then fixed exactly, without guidance
    (`robolearn.policies.rtc`); a longer prefix is fixed whole but was never trained on: d_max >= the deploy
    delay. Off, the model is the plain one."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_config(self)
        if not 1 <= self.num_inference_steps <= MAX_INFERENCE_STEPS:
            raise ConfigError(f"num_inference_steps must be in [1, {MAX_INFERENCE_STEPS}] Euler steps, "
                             f"got {self.num_inference_steps}.")
        if self.time_sampling not in TIME_SAMPLINGS:
            raise ConfigError(f"time_sampling {self.time_sampling!r} must be one of {list(TIME_SAMPLINGS)}.")
        if self.logit_normal_std <= 0:
            raise ConfigError(f"logit_normal_std must be > 0, got {self.logit_normal_std}.")
        if self.crop_shape is not None:
            self.crop_shape = tuple(self.crop_shape)
        self.down_dims = tuple(self.down_dims)
