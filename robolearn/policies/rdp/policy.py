"""RDP stage 2: a latent diffusion policy over the frozen tokenizer's latents (`rdp`).

The slow policy: DP's ConditionalUnet1D denoises the tokenizer's latent chunk (B, T // r, Dz) (scaled by
the tokenizer's running latent mean/std) conditioned on To observation steps (normalized state + image
keypoint features, optionally the force), DDPM-trained, DDIM-sampled. The fast part: the tokenizer's GRU
decoder turns the latent into actions one control tick at a time with the latest force reading.

- `predict_action_chunk(obs)` samples a latent and decodes the whole chunk holding the CURRENT force
  (obs["force"][:, -1]) at every tick: the chunk a plain PolicySource would run open loop.
- `make_action_source()` returns the dual-rate `robolearn.runtime.rdp.RDPSource` (slow latent every
  `slow_every` ticks, decoder every tick on the latest force): what `robolearn.eval.evaluate` deploys.

Example::

    policy = make_policy("rdp", features, stats, tokenizer="runs/wipe-tok")   # tokenizer frozen inside
    z = policy.sample_latent(obs)                       # (B, T // r, Dz), tokenizer units
    a, h = policy.decode_step(z, k=0, force=obs["force"][:, -1], hidden=None)  # (B, Da) env units
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler
from torch import nn

from robolearn.errors import ConfigError, InvalidValueError, MissingPathError
from robolearn.policies.base import ACTION_KEY, STATE_KEY, Policy
from robolearn.policies.nets.encoders import ResNetEncoder
from robolearn.policies.nets.unet1d import ConditionalUnet1D
from robolearn.policies.normalize import Normalizer
from robolearn.policies.rdp.config import FORCE_KEY, RDPConfig, RDPTokenizerConfig
from robolearn.policies.rdp.tokenizer import ActionTokenizer, check_force_feature, shared_force_stats
from robolearn.spaces import key_name


def _read_tokenizer_config(path: str) -> dict:
    config_path = Path(path) / "config.json"
    if not config_path.is_file():
        raise MissingPathError(f"tokenizer={path!r}: {config_path} not found; expected an `rdp_tokenizer` run "
                                "directory (robolearn train policy=rdp_tokenizer ...).")
    data = json.loads(config_path.read_text())
    if data.get("policy") != ActionTokenizer.name:
        raise InvalidValueError(f"tokenizer={path!r} holds a {data.get('policy')!r} checkpoint; expected "
                         f"{ActionTokenizer.name!r}.")
    return data["config"]


class RDPPolicy(Policy):
    """Reactive Diffusion Policy (Xue et al., RSS 2025): slow latent diffusion + fast force-conditioned decoder."""

    name = "rdp"
    config: RDPConfig

    def __init__(self, config: RDPConfig, stats: Mapping[str, Mapping]):
        super().__init__(config, stats)
        cfg = config
        self.force_dim = check_force_feature(cfg)
        if cfg.tokenizer_config is None:
            if not cfg.tokenizer:
                raise ConfigError("rdp needs a stage-1 tokenizer: set model.tokenizer=<rdp_tokenizer run dir>.")
            cfg.tokenizer_config = _read_tokenizer_config(cfg.tokenizer)
        tok_cfg = RDPTokenizerConfig.from_dict(cfg.tokenizer_config, features=cfg.features)
        if tok_cfg.horizon != cfg.horizon:
            raise ConfigError(f"horizon {cfg.horizon} differs from the tokenizer's ({tok_cfg.horizon}); set "
                             f"model.horizon={tok_cfg.horizon}.")
        self.tokenizer = ActionTokenizer(tok_cfg, stats).requires_grad_(False).eval()
        self.cond_keys = list(self.input_keys) + ([FORCE_KEY] if cfg.cond_on_force else [])
        self.input_keys = list(self.input_keys) + [FORCE_KEY]  # deployment needs the force stream
        used = {k: cfg.features[k] for k in [*self.input_keys, ACTION_KEY]}
        # The slow policy's force condition (cond_on_force) is scaled as the tokenizer scales the decoder's.
        stats_used = (shared_force_stats(self.stats, cfg.normalization.get(FORCE_KEY, "min_max"))
                      if tok_cfg.shared_force_scale else self.stats)
        self.normalizer = Normalizer(used, stats_used,
                                     {k: m for k, m in cfg.normalization.items() if k in used})

        self.encoders = nn.ModuleDict()
        for key in self.image_keys:
            hw = tuple(cfg.features[key]["shape"][:2])
            crop = cfg.crop_shape or tuple(max(1, round(s * 7 / 8)) for s in hw)
            self.encoders[key_name(key)] = ResNetEncoder(hw, crop, cfg.vision_backbone,
                                                                feature_dim=cfg.image_feature_dim)
        state_dim = int(cfg.features[STATE_KEY]["shape"][0]) if STATE_KEY in cfg.features else 0
        obs_dim = (state_dim + len(self.image_keys) * cfg.image_feature_dim
                   + (self.force_dim if cfg.cond_on_force else 0))
        self.latent_steps = cfg.horizon // tok_cfg.downsample
        self.unet = ConditionalUnet1D(tok_cfg.latent_dim, cfg.n_obs_steps * obs_dim, cfg.down_dims, cfg.kernel_size,
                                      cfg.n_groups, cfg.diffusion_step_embed_dim)
        if self.latent_steps % self.unet.min_horizon_multiple:
            raise ConfigError(f"the latent has {self.latent_steps} steps (horizon / downsample), not divisible by "
                             f"{self.unet.min_horizon_multiple} for down_dims {cfg.down_dims}; use fewer levels.")
        sched = dict(num_train_timesteps=cfg.num_train_timesteps, beta_schedule="squaredcos_cap_v2",
                     clip_sample=False, prediction_type="epsilon")
        self.noise_scheduler = DDPMScheduler(**sched)
        self.sampler = DDIMScheduler(**sched)
        self.sampler.set_timesteps(cfg.num_inference_steps)
        abar = self.noise_scheduler.alphas_cumprod.to(torch.float32)
        self.register_buffer("sqrt_abar", abar.sqrt(), persistent=False)
        self.register_buffer("sqrt_one_minus_abar", (1 - abar).sqrt(), persistent=False)

    def init_pretrained(self) -> None:
        """Load the stage-1 weights named by `config.tokenizer` (make_policy calls this; load does not)."""
        from robolearn.policies import load

        if not self.config.tokenizer:
            return
        tokenizer = load(self.config.tokenizer)
        if not isinstance(tokenizer, ActionTokenizer):
            raise InvalidValueError(f"tokenizer={self.config.tokenizer!r} is not an rdp_tokenizer checkpoint.")
        self.tokenizer.load_state_dict(tokenizer.state_dict())

    def train(self, mode: bool = True) -> "RDPPolicy":
        super().train(mode)
        self.tokenizer.eval()  # frozen: always the posterior mean
        return self

    def make_action_source(self, device: str | torch.device = "cpu") -> Any:
        """The dual-rate deployment source (slow latent every `slow_every` ticks, decoder every tick)."""
        from robolearn.runtime.rdp import RDPSource

        return RDPSource(self, slow_every=self.config.slow_every, device=device)

    # ---- latents ----

    def _scale(self, z: torch.Tensor) -> torch.Tensor:
        return (z - self.tokenizer.latent_mean) / self.tokenizer.latent_std

    def _unscale(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.tokenizer.latent_std + self.tokenizer.latent_mean

    def encode_obs(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Global condition (B, To * obs_dim) from obs keys shaped (B, To, ...)."""
        obs = self.check_obs(obs)
        B, To = obs[self.input_keys[0]].shape[:2]
        parts = []
        if STATE_KEY in obs:
            parts.append(self.normalizer.normalize(STATE_KEY, obs[STATE_KEY]))
        for key in self.image_keys:
            img = self.normalizer.normalize(key, obs[key]).flatten(0, 1).permute(0, 3, 1, 2)
            parts.append(self.encoders[key_name(key)](img).view(B, To, -1))
        if self.config.cond_on_force:
            parts.append(self.normalizer.normalize(FORCE_KEY, obs[FORCE_KEY]))
        return torch.cat(parts, dim=-1).flatten(1)

    def compute_loss(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if ACTION_KEY not in batch:
            raise KeyError(f"batch has no {ACTION_KEY!r} key (it has: {sorted(batch)}).")
        with torch.no_grad():
            actions = self.tokenizer.normalizer.normalize(ACTION_KEY, batch[ACTION_KEY].to(self.device))
            z = self._scale(self.tokenizer.encode(actions))  # (B, L, Dz)
        cond = self.encode_obs(batch)
        noise = torch.randn_like(z)
        k = torch.randint(0, self.config.num_train_timesteps, (z.shape[0],), device=z.device)
        noisy = self.sqrt_abar[k, None, None] * z + self.sqrt_one_minus_abar[k, None, None] * noise
        return {"loss": F.mse_loss(self.unet(noisy, k, cond), noise)}

    @torch.no_grad()
    def sample_latent(self, obs: Mapping[str, torch.Tensor], generator: torch.Generator | None = None) -> torch.Tensor:
        """The slow step: a latent chunk (B, T // r, Dz) in tokenizer units for obs keys (B, To, ...)."""
        cond = self.encode_obs(obs)
        B = cond.shape[0]
        timesteps = self.sampler.timesteps
        obs_film = self.unet.obs_film(cond)
        step_films = self.unet.step_film(timesteps.to(cond.device))
        x = torch.randn((B, self.latent_steps, self.tokenizer.config.latent_dim), generator=generator,
                        device=generator.device if generator is not None else cond.device).to(cond)
        for i, t in enumerate(timesteps):
            eps = self.unet.denoise(x, obs_film + step_films[i])
            x = self.sampler.step(eps, t, x, generator=generator).prev_sample
        return self._unscale(x)

    @torch.no_grad()
    def decode_step(self, z: torch.Tensor, k: int, force: torch.Tensor,
                    hidden: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The fast step: tick k of latent chunk z (B, L, Dz) with the latest raw force (B, Dforce) ->
        (action (B, Da) in env units, GRU state to pass to tick k + 1)."""
        tok = self.tokenizer
        a, hidden = tok.decode_step(z, k, tok.normalizer.normalize(FORCE_KEY, force.to(z)), hidden)
        return tok.normalizer.unnormalize(ACTION_KEY, a), hidden

    @torch.no_grad()
    def predict_action_chunk(self, obs: Mapping[str, torch.Tensor], generator: torch.Generator | None = None):
        z = self.sample_latent(obs, generator)
        tok = self.tokenizer
        force = torch.as_tensor(obs[FORCE_KEY], device=z.device)[:, -1:].to(z)  # (B, 1, Dforce): the current one
        forces = tok.normalizer.normalize(FORCE_KEY, force).expand(-1, self.config.horizon, -1)
        return tok.normalizer.unnormalize(ACTION_KEY, tok.decode(z, forces))
