"""DiffusionPolicy: DDPM-trained CNN U-Net over action chunks, conditioned on To observation steps.

Observation features per step = concat(normalized state, image features of every camera); the
To steps are flattened into the U-Net's global FiLM condition. Training noises normalized action
chunks with the DDPM schedule and regresses the noise (masked by `action_is_pad`); inference runs
DDIM (default) or DDPM from Gaussian noise and unnormalizes.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler
from torch import nn

from robolearn.policies.base import ACTION_KEY, STATE_KEY, Policy
from robolearn.policies.diffusion.config import DiffusionConfig
from robolearn.policies.nets.encoders import ResNetEncoder, load_pretrained_encoder
from robolearn.policies.nets.unet1d import ConditionalUnet1D


def _default_crop(hw: tuple[int, int]) -> tuple[int, int]:
    return tuple(max(1, round(s * 7 / 8)) for s in hw)


class DiffusionPolicy(Policy):
    """Diffusion Policy (Chi et al., 2023), CNN variant. See `DiffusionConfig` for every knob."""

    name = "diffusion"
    config: DiffusionConfig

    def __init__(self, config: DiffusionConfig, stats: Mapping[str, Mapping]):
        super().__init__(config, stats)
        cfg = config
        feats = cfg.features
        image_shapes = {k: tuple(feats[k]["shape"][:2]) for k in self.image_keys}
        if cfg.share_image_encoder and len(set(image_shapes.values())) > 1:
            raise ValueError(
                f"share_image_encoder needs cameras of one size, got {image_shapes}; set share_image_encoder=False."
            )

        def encoder(hw: tuple[int, int]) -> ResNetEncoder:
            return ResNetEncoder(hw, cfg.crop_shape or _default_crop(hw), cfg.vision_backbone, cfg.image_pool,
                                 cfg.spatial_softmax_num_keypoints, cfg.image_feature_dim, cfg.encoder_dtype)

        self.encoders = nn.ModuleDict()
        if self.image_keys and cfg.share_image_encoder:
            self.encoders["shared"] = encoder(image_shapes[self.image_keys[0]])
        elif self.image_keys:
            for k in self.image_keys:
                self.encoders[self._camera_module_name(k)] = encoder(image_shapes[k])

        state_dim = int(feats[STATE_KEY]["shape"][0]) if STATE_KEY in feats else 0
        self.obs_feature_dim = state_dim + len(self.image_keys) * cfg.image_feature_dim
        self.unet = ConditionalUnet1D(
            input_dim=self.action_dim,
            global_cond_dim=cfg.n_obs_steps * self.obs_feature_dim,
            down_dims=cfg.down_dims,
            kernel_size=cfg.kernel_size,
            n_groups=cfg.n_groups,
            step_embed_dim=cfg.diffusion_step_embed_dim,
            film_scale=cfg.film_scale,
        )
        sched_kwargs = dict(
            num_train_timesteps=cfg.num_train_timesteps, beta_start=cfg.beta_start, beta_end=cfg.beta_end,
            beta_schedule=cfg.beta_schedule, clip_sample=cfg.clip_sample, clip_sample_range=cfg.clip_sample_range,
            prediction_type=cfg.prediction_type,
        )
        self.noise_scheduler = DDPMScheduler(**sched_kwargs)
        sampler_cls = DDIMScheduler if cfg.inference_scheduler == "ddim" else DDPMScheduler
        self.sampler = sampler_cls(**sched_kwargs)
        self.sampler.set_timesteps(cfg.num_inference_steps)
        alphas_cumprod = self.noise_scheduler.alphas_cumprod.to(torch.float32)
        self.register_buffer("sqrt_alpha_bar", alphas_cumprod.sqrt(), persistent=False)
        self.register_buffer("sqrt_one_minus_alpha_bar", (1 - alphas_cumprod).sqrt(), persistent=False)

    def init_pretrained(self) -> None:
        if self.config.pretrained_encoder_path:
            for enc in self.encoders.values():
                load_pretrained_encoder(enc, self.config.pretrained_encoder_path)

    @staticmethod
    def _camera_module_name(key: str) -> str:
        return key.split("/", 1)[1].replace(".", "_")

    def encode_obs(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Global condition (B, To * obs_feature_dim) from obs keys shaped (B, To, ...)."""
        obs = self.check_obs(obs)
        B, To = obs[self.input_keys[0]].shape[:2]
        parts = []
        if STATE_KEY in obs:
            parts.append(self.normalizer.normalize(STATE_KEY, obs[STATE_KEY]))
        if self.image_keys:
            # (B, To, H, W, 3) uint8 per camera -> float [0, 1]; the NHWC -> NCHW permute is a
            # (channels-last) view, so cropping happens before any copy.
            images = [self.normalizer.normalize(k, obs[k]) for k in self.image_keys]
            if "shared" in self.encoders:
                x = torch.stack(images, dim=2).flatten(0, 2).permute(0, 3, 1, 2)  # (B*To*Ncam, 3, H, W)
                parts.append(self.encoders["shared"](x).view(B, To, -1))
            else:
                for k, img in zip(self.image_keys, images):
                    enc = self.encoders[self._camera_module_name(k)]
                    parts.append(enc(img.flatten(0, 1).permute(0, 3, 1, 2)).view(B, To, -1))
        return torch.cat(parts, dim=-1).flatten(1)

    def compute_loss(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        cfg = self.config
        if ACTION_KEY not in batch:
            raise KeyError(f"batch has no {ACTION_KEY!r} key (it has: {sorted(batch)}).")
        actions = self.normalizer.normalize(ACTION_KEY, batch[ACTION_KEY].to(self.device))  # (B, T, Da)
        B, T, _ = actions.shape
        if T != cfg.horizon:
            raise ValueError(f"batch {ACTION_KEY!r} has {T} steps, but the policy's horizon is {cfg.horizon}.")
        cond = self.encode_obs(batch)
        noise = torch.randn_like(actions)
        k = torch.randint(0, cfg.num_train_timesteps, (B,), device=actions.device)
        noisy = self.sqrt_alpha_bar[k, None, None] * actions + self.sqrt_one_minus_alpha_bar[k, None, None] * noise
        pred = self.unet(noisy, k, cond)
        target = noise if cfg.prediction_type == "epsilon" else actions
        err = F.mse_loss(pred, target, reduction="none")  # (B, T, Da)
        is_pad = batch.get("action_is_pad")
        if is_pad is None:
            return {"loss": err.mean()}
        valid = (~is_pad.to(err.device, torch.bool)).to(err.dtype)  # (B, T)
        loss = (err.mean(-1) * valid).sum() / valid.sum().clamp_min(1.0)
        return {"loss": loss}

    @torch.no_grad()
    def predict_action_chunk(
        self, obs: Mapping[str, torch.Tensor], generator: torch.Generator | None = None
    ) -> torch.Tensor:
        cond = self.encode_obs(obs)
        B = cond.shape[0]
        timesteps = self.sampler.timesteps
        obs_film = self.unet.obs_film(cond)  # (B, F), shared by every step
        step_films = self.unet.step_film(timesteps.to(cond.device))  # (K, F), one call for all K steps
        # Noise is drawn on the generator's device, so a CPU generator reproduces on any device.
        x = torch.randn((B, self.config.horizon, self.action_dim), generator=generator,
                        device=generator.device if generator is not None else cond.device).to(cond)
        for i, t in enumerate(timesteps):
            eps = self.unet.denoise(x, obs_film + step_films[i])
            x = self.sampler.step(eps, t, x, generator=generator).prev_sample
        return self.normalizer.unnormalize(ACTION_KEY, x)
