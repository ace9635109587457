"""LatentConfig: the fields PAD and UWM share (autoencoder, future frames, DiT size, noise schedule)."""

from __future__ import annotations

import dataclasses

from robolearn.errors import ConfigError
from robolearn.policies.base import PolicyConfig


@dataclasses.dataclass
class LatentConfig(PolicyConfig):
    # --- latents ---
    autoencoder_path: str | None = None
    """Local folder of the frozen autoencoder: a `robolearn train policy=autoencoder` run directory or a
    diffusers AutoencoderKL folder. Read by `make_policy` only; the weights then live in the checkpoint."""
    autoencoder: dict = dataclasses.field(default_factory=dict)
    """Architecture of the autoencoder ({"kind", "config"}), filled from `autoencoder_path`; set it by hand
    only for an untrained autoencoder (tests, benchmarks)."""
    autoencoder_fingerprint: str = ""
    """Hash of the autoencoder's weights (filled by `make_policy`): cached store latents are used only
    when they were made by the same weights."""
    use_cached_latents: bool = True
    """Read `latents/<camera>` from the store when cached by this autoencoder (else encode images each step)."""
    cameras: tuple[str, ...] = ()
    """Cameras whose frames are modelled (default: every images/<camera> feature); one latent view each."""
    future_frames: int = 2
    """K: future frames predicted per camera."""
    frame_stride: int = 8
    """Future frame k (1..K) is frame t + k * frame_stride."""

    # --- DiT ---
    width: int = 128
    """Token width (UWM: 768, PAD: 1152)."""
    depth: int = 4
    """adaLN-zero blocks (UWM: 12, PAD: 28)."""
    heads: int = 4
    """Attention heads."""
    patch: int = 2
    """Latent patch size (p x p latent pixels per token)."""
    mlp_ratio: float = 4.0
    """MLP hidden size / width."""
    n_registers: int = 0
    """Learned register tokens (UWM uses 8)."""
    dropout: float = 0.0
    """Attention dropout."""

    # --- noise schedule ---
    num_train_timesteps: int = 100
    """Diffusion steps of the training (DDPM) schedule."""
    beta_schedule: str = "squaredcos_cap_v2"
    """diffusers beta schedule name."""
    prediction_type: str = "epsilon"
    """What the DiT predicts for both modalities: "epsilon" (noise; UWM, PAD) or "sample" (clean data,
    which learns faster on tiny data and budgets)."""
    num_inference_steps: int = 10
    """DDIM steps at inference (<= num_train_timesteps)."""
    clip_sample: bool = True
    """Clip predicted clean actions to [-1, 1] (normalized units) while sampling; latents are not clipped."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.cameras = tuple(self.cameras)
        if self.future_frames < 1 or self.frame_stride < 1:
            raise ConfigError(f"future_frames ({self.future_frames}) and frame_stride ({self.frame_stride}) "
                             f"must be >= 1.")
        if self.width % self.heads:
            raise ConfigError(f"width ({self.width}) must be divisible by heads ({self.heads}).")
        if self.prediction_type not in ("epsilon", "sample"):
            raise ConfigError(f"prediction_type {self.prediction_type!r} must be 'epsilon' or 'sample'.")
        if not 1 <= self.num_inference_steps <= self.num_train_timesteps:
            raise ConfigError(f"num_inference_steps must be in [1, num_train_timesteps={self.num_train_timesteps}].")
