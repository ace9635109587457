"""DiffusionConfig: Diffusion Policy with the CNN U-Net (DP-C) or transformer (DP-T) denoiser."""

from __future__ import annotations

import dataclasses

from robolearn.errors import ConfigError
from robolearn.policies.base import PolicyConfig
from robolearn.policies.conditioning import check_config
from robolearn.policies.nets.encoders import RESNET_PRESETS


@dataclasses.dataclass
class DiffusionConfig(PolicyConfig):
    # --- vision ---
    vision_backbone: str = "small"
    """ResNet preset per camera: "small" (blocks 1,1,1,1, widths 32..256) or "resnet18"."""
    crop_shape: tuple[int, int] | None = None
    """(h, w) crop: random per image in training, centred at inference. None: 7/8 of each image
    side (84x84 for 96x96 images, LeRobot's default); (H, W) disables cropping."""
    image_pool: str = "spatial_softmax"
    """Head on the ResNet feature map: "spatial_softmax" (keypoints) or "avg" (global average pool)."""
    spatial_softmax_num_keypoints: int = 32
    """K keypoints when image_pool is "spatial_softmax"."""
    image_feature_dim: int = 64
    """Features per camera per observation step."""
    share_image_encoder: bool = True
    """One encoder for all cameras (all must have the same H, W) or a separate one per camera."""
    encoder_dtype: str = "float32"
    """Image encoder compute dtype: "float32", "bfloat16" (autocast; weights stay float32): ~1.8x faster
    training and inference on CPUs with AVX512-BF16/AMX, much slower without; or "auto": bfloat16 where the
    CPU has native bf16, else float32 (resolved when the config is built: config.json names the choice)."""
    pretrained_encoder_path: str | None = None
    """Local .safetensors with backbone weights (torchvision names), loaded by `make_policy`."""

    # --- denoiser ---
    down_dims: tuple[int, ...] = (64, 128, 256)
    """U-Net channels per level (Diffusion Policy's paper size is (512, 1024, 2048))."""
    kernel_size: int = 5
    """Temporal kernel of the U-Net convolutions."""
    n_groups: int = 8
    """GroupNorm groups in the U-Net."""
    diffusion_step_embed_dim: int = 128
    """Size of the diffusion-step embedding."""
    film_scale: bool = True
    """FiLM with scale and bias (True) or bias only (False)."""
    denoiser: str = "unet"
    """Denoiser network: "unet" (DP-C, the fields above) or "transformer" (DP-T, the fields below)."""
    n_layer: int = 4
    """Transformer decoder layers (Diffusion Policy's DP-T: 8)."""
    n_head: int = 4
    """Transformer attention heads."""
    n_emb: int = 128
    """Transformer token width (DP-T: 256); divisible by n_head."""
    p_drop_emb: float = 0.0
    """Transformer dropout on the token embeddings."""
    p_drop_attn: float = 0.3
    """Transformer dropout inside the decoder layers (DP-T: 0.3)."""
    causal_attn: bool = True
    """Causal self-attention over the action tokens (DP-T's default)."""

    # --- language ---
    use_language: bool = False
    """Condition on the batch/obs key "task_embedding" (B, 384), see robolearn.language."""
    language_feature_dim: int = 64
    """Size of the Linear projection of the task embedding added to the condition."""

    # --- noise schedule ---
    num_train_timesteps: int = 100
    """Diffusion steps of the training (DDPM) schedule."""
    beta_schedule: str = "squaredcos_cap_v2"
    """diffusers beta schedule name."""
    beta_start: float = 1e-4
    """First beta (ignored by squaredcos_cap_v2)."""
    beta_end: float = 0.02
    """Last beta (ignored by squaredcos_cap_v2)."""
    prediction_type: str = "epsilon"
    """What the network predicts: "epsilon" (noise) or "sample" (clean actions)."""
    clip_sample: bool = True
    """Clip the predicted clean sample to [-clip_sample_range, clip_sample_range] while sampling."""
    clip_sample_range: float = 1.0
    """Clip bound, in normalized action units."""
    inference_scheduler: str = "ddim"
    """Sampler at inference: "ddim" (deterministic, few steps) or "ddpm"."""
    num_inference_steps: int = 10
    """Denoising steps per chunk at inference (<= num_train_timesteps)."""

    # --- real-time chunking ---
    rtc_training_max_delay: int = 0
    """Training-time RTC: d_max, the largest simulated inference delay in actions (0: off, < horizon). Each
    training chunk freezes its first d ~ U{0..d_max} actions (clean input, flagged by an extra denoiser input
    channel, no loss); at inference an ``inpaint=`` prefix is then fixed exactly, without guidance
    (`robolearn.policies.rtc`); a longer prefix is fixed whole but was never trained on: d_max >= the deploy
    delay. Off, the model is the plain one."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.vision_backbone not in RESNET_PRESETS:
            raise ConfigError(f"vision_backbone {self.vision_backbone!r} is not one of {sorted(RESNET_PRESETS)}.")
        if self.inference_scheduler not in ("ddim", "ddpm"):
            raise ConfigError(f"inference_scheduler {self.inference_scheduler!r} must be 'ddim' or 'ddpm'.")
        if self.prediction_type not in ("epsilon", "sample"):
            raise ConfigError(f"prediction_type {self.prediction_type!r} must be 'epsilon' or 'sample'.")
        if not 1 <= self.num_inference_steps <= self.num_train_timesteps:
            raise ConfigError(f"num_inference_steps must be in [1, num_train_timesteps={self.num_train_timesteps}].")
        check_config(self)
        if self.crop_shape is not None:
            self.crop_shape = tuple(self.crop_shape)
        self.down_dims = tuple(self.down_dims)
