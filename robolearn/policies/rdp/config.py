"""Configs of Reactive Diffusion Policy's two stages: the asymmetric tokenizer and the latent diffusion policy."""

from __future__ import annotations

import dataclasses

from robolearn.errors import ConfigError
from robolearn.policies.base import ACTION_KEY, STATE_KEY, PolicyConfig
from robolearn.policies.nets.encoders import RESNET_PRESETS
from robolearn.spaces import FORCE

FORCE_KEY = FORCE


def _modes() -> dict[str, str]:
    return {STATE_KEY: "min_max", ACTION_KEY: "min_max", FORCE_KEY: "mean_std"}


@dataclasses.dataclass
class RDPTokenizerConfig(PolicyConfig):
    """Stage 1: Conv1d encoder of the action chunk -> latent; GRU decoder of latent + force -> actions."""

    n_obs_steps: int = 1
    """Unused by the tokenizer (it reads actions and the force at every action step)."""
    normalization: dict[str, str] = dataclasses.field(default_factory=_modes)
    """Per-key mode; `force` is standardised (mean_std): contact spikes would squash a min_max range."""
    latent_dim: int = 3
    """Dz: latent channels per latent step (RDP: 4). Small on purpose: what the latent cannot carry (fast
    contact corrections) the decoder must take from the force."""
    downsample: int = 4
    """r: action steps per latent step (a power of 2 dividing the horizon); the latent is (T // r, Dz)."""
    encoder_channels: tuple[int, ...] = (32, 64)
    """Conv1d widths of the encoder at the action rate; log2(downsample) stride-2 convs at the last width
    then bring the time axis down to T // r."""
    kernel_size: int = 5
    """Temporal kernel of the encoder convolutions."""
    kl_weight: float = 1e-6
    """Weight of the VAE's KL term (RDP: 1e-6): a nearly deterministic autoencoder with a bounded latent scale."""
    force_embed_dim: int = 16
    """E: size of the force embedding fed to the decoder every tick (RDP: a 15-D PCA of tactile markers, or the
    6-D wrench)."""
    decoder_hidden: int = 64
    """GRU hidden size (RDP: 32)."""
    latent_upsample_dim: int = 32
    """Per-tick features of a latent step: a Linear makes r of them from each latent step."""
    latent_momentum: float = 0.01
    """Momentum of the running latent mean/std (buffers) that stage 2 uses to scale latents to ~unit variance."""
    shared_force_scale: bool = True
    """Normalize every `force` dimension with ONE scale (the largest per-dimension std, or range for min_max)
    around its own mean, instead of a scale per dimension. A dimension that barely varies in the demonstrations
    (on mujoco-wipe: fy, std 0.014 N, since the expert wipes along x) would otherwise turn a 1.6 N sideways
    force at deployment into a 100-sigma input, and the decoder's action jumps out of the workspace."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.encoder_channels = tuple(self.encoder_channels)
        r = self.downsample
        if r < 1 or r & (r - 1):
            raise ConfigError(f"downsample {r} must be a power of 2.")
        if self.horizon % r:
            raise ConfigError(f"horizon {self.horizon} must be divisible by downsample {r}.")
        if min(self.latent_dim, self.force_embed_dim, self.decoder_hidden, self.latent_upsample_dim) < 1:
            raise ConfigError("latent_dim, force_embed_dim, decoder_hidden and latent_upsample_dim must be >= 1.")
        if not self.encoder_channels:
            raise ConfigError("encoder_channels must name at least one width.")


@dataclasses.dataclass
class RDPConfig(PolicyConfig):
    """Stage 2: a latent diffusion policy (DP's U-Net) over the frozen tokenizer's latents, at a low rate."""

    normalization: dict[str, str] = dataclasses.field(default_factory=_modes)
    """Per-key mode (see `RDPTokenizerConfig.normalization`)."""
    tokenizer: str | None = None
    """Stage-1 run directory (`policy=rdp_tokenizer`), read by `make_policy`; its config is copied into
    `tokenizer_config` and its weights into this policy, so an RDP checkpoint stands alone."""
    tokenizer_config: dict | None = None
    """The tokenizer's config (set from `tokenizer`; do not set by hand)."""
    slow_every: int = 4
    """Deployment: control ticks between slow-policy calls (24 Hz control / 6 Hz slow = 4); every tick in
    between, the GRU decoder turns the current latent step and the latest force into the action."""
    cond_on_force: bool = False
    """Also condition the slow policy on the To latest force readings (RDP's visual-tactile variant)."""

    # --- vision ---
    vision_backbone: str = "small"
    """ResNet preset per camera (see robolearn.policies.nets.encoders.RESNET_PRESETS)."""
    crop_shape: tuple[int, int] | None = None
    """(h, w) random crop in training, centre crop at inference; None: 7/8 of each side."""
    image_feature_dim: int = 64
    """Features per camera per observation step (spatial-softmax keypoints -> Linear)."""

    # --- latent denoiser ---
    down_dims: tuple[int, ...] = (64, 128)
    """U-Net channels per level over the latent sequence (T // r steps, e.g. 4)."""
    kernel_size: int = 3
    """Temporal kernel of the U-Net (the latent sequence is short)."""
    n_groups: int = 8
    """GroupNorm groups in the U-Net."""
    diffusion_step_embed_dim: int = 64
    """Size of the diffusion-step embedding."""
    num_train_timesteps: int = 100
    """DDPM training steps (squaredcos_cap_v2 schedule, epsilon prediction)."""
    num_inference_steps: int = 10
    """DDIM steps per latent chunk at inference."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.vision_backbone not in RESNET_PRESETS:
            raise ConfigError(f"vision_backbone {self.vision_backbone!r} is not one of {sorted(RESNET_PRESETS)}.")
        if not 1 <= self.num_inference_steps <= self.num_train_timesteps:
            raise ConfigError(f"num_inference_steps must be in [1, num_train_timesteps={self.num_train_timesteps}].")
        if self.slow_every < 1:
            raise ConfigError(f"slow_every must be >= 1, got {self.slow_every}.")
        self.down_dims = tuple(self.down_dims)
        if self.crop_shape is not None:
            self.crop_shape = tuple(self.crop_shape)
