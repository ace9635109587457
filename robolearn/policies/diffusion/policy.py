"""DiffusionPolicy: DDPM-trained denoiser over action chunks, conditioned on To observation steps.

Observation features per step = concat(normalized state, image features of every camera); the
To steps are flattened into the U-Net's global FiLM condition (DP-C), or are the transformer's
conditioning tokens (DP-T, ``denoiser="transformer"``); see `robolearn.policies.conditioning`,
shared with the flow policy. Training noises normalized action
chunks with the DDPM schedule and regresses the noise (masked by `action_is_pad`); inference runs
DDIM (default) or DDPM from Gaussian noise and unnormalizes.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler

from robolearn.policies import conditioning, rtc
from robolearn.policies.base import ACTION_KEY, Policy
from robolearn.policies.diffusion.config import DiffusionConfig
from robolearn.policies.nets.encoders import load_pretrained_encoder


class DiffusionPolicy(Policy):
    """Diffusion Policy (Chi et al., 2023), CNN or transformer variant. See `DiffusionConfig` for every knob."""

    name = "diffusion"
    config: DiffusionConfig
    conditions_on_lowdim = True

    def __init__(self, config: DiffusionConfig, stats: Mapping[str, Mapping]):
        super().__init__(config, stats)
        cfg = config
        self.encoders = conditioning.build_image_encoders(cfg, self.image_keys)
        self.obs_feature_dim = conditioning.obs_feature_dim(cfg, self.image_keys)
        self.language_proj = conditioning.build_language_proj(cfg)
        conditioning.attach_denoiser(self, self.obs_feature_dim)  # self.unet or self.transformer
        sched_kwargs = dict(
            num_train_timesteps=cfg.num_train_timesteps, beta_start=cfg.beta_start, beta_end=cfg.beta_end,
            beta_schedule=cfg.beta_schedule, clip_sample=cfg.clip_sample, clip_sample_range=cfg.clip_sample_range,
            prediction_type=cfg.prediction_type,
        )
        self.noise_scheduler = DDPMScheduler(**sched_kwargs)
        sampler_cls = DDIMScheduler if cfg.inference_scheduler == "ddim" else DDPMScheduler
        self.sampler = sampler_cls(**sched_kwargs)
        self.sampler.set_timesteps(cfg.num_inference_steps)
        # Guided RTC samples without clipping the x0 estimate at each step: the clip (and the epsilon diffusers
        # re-derives from the clipped x0) undoes the guidance wherever the planned prefix sits at the edge of the
        # action range, where saturated commands put it (planar-catch, D = 4, 400 seeds: 0.87 -> 0.99 success);
        # the finished chunk is clipped to the same range instead.
        self.guided_sampler = sampler_cls(**{**sched_kwargs, "clip_sample": False})
        self.guided_sampler.set_timesteps(cfg.num_inference_steps)
        alphas_cumprod = self.noise_scheduler.alphas_cumprod.to(torch.float32)
        self.register_buffer("sqrt_alpha_bar", alphas_cumprod.sqrt(), persistent=False)
        self.register_buffer("sqrt_one_minus_alpha_bar", (1 - alphas_cumprod).sqrt(), persistent=False)

    @property
    def uses_language(self) -> bool:
        return self.config.use_language

    @property
    def supports_inpainting(self) -> bool:
        return True

    @property
    def rtc_variant(self) -> str:
        return "trained" if self.config.rtc_training_max_delay else "guided"

    def init_pretrained(self) -> None:
        if self.config.pretrained_encoder_path:
            for enc in self.encoders.values():
                load_pretrained_encoder(enc, self.config.pretrained_encoder_path)

    @staticmethod
    def _camera_module_name(key: str) -> str:
        return conditioning.camera_module_name(key)

    def encode_obs(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The denoiser's condition from obs keys shaped (B, To, ...): (B, To * obs_feature_dim [+ L])
        for the U-Net, (B, To, obs_feature_dim [+ L]) for the transformer (L: language features)."""
        return conditioning.denoiser_cond(self, obs)

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
        frozen = None
        if cfg.rtc_training_max_delay:  # training-time RTC: the prefix stays clean at every level, flagged, no loss
            frozen = rtc.sample_frozen(B, T, cfg.rtc_training_max_delay, actions.device)
            noisy = rtc.flag_frozen(rtc.freeze(noisy, actions, frozen), frozen)
        pred = conditioning.get_denoiser(self)(noisy, k, cond)
        target = noise if cfg.prediction_type == "epsilon" else actions
        err = F.mse_loss(pred, target, reduction="none")  # (B, T, Da)
        return {"loss": conditioning.chunk_loss(err, batch.get("action_is_pad"), frozen)}

    @torch.no_grad()
    def predict_action_chunk(
        self, obs: Mapping[str, torch.Tensor], generator: torch.Generator | None = None,
        inpaint: rtc.Inpainting | None = None,
    ) -> torch.Tensor:
        """(B, T, Da) actions in env units; `inpaint` guides the chunk toward a planned prefix (Real-Time
        Chunking, `robolearn.policies.rtc.guided_epsilon`), or with `rtc_training_max_delay` fixes its first
        ``inpaint.n_frozen`` actions to it (no guidance)."""
        cond = self.encode_obs(obs)
        B = cond.shape[0]
        timesteps = self.sampler.timesteps
        denoise = conditioning.chunk_denoiser(conditioning.get_denoiser(self), cond, timesteps)
        # Noise is drawn on the generator's device, so a CPU generator reproduces on any device.
        x = torch.randn((B, self.config.horizon, self.action_dim), generator=generator,
                        device=generator.device if generator is not None else cond.device).to(cond)
        frozen = None
        if self.config.rtc_training_max_delay:  # trained with frozen prefixes: fix the prefix, generate the rest
            frozen, clean = rtc.hard_prefix(inpaint, x, lambda a: self.normalizer.normalize(ACTION_KEY, a))
            x = rtc.freeze(x, clean, frozen)
        elif inpaint is not None:
            inpaint = inpaint.to(x)
            target = self.normalizer.normalize(ACTION_KEY, inpaint.prefix)
            alpha_bar = self.noise_scheduler.alphas_cumprod
            # where each step lands (the last one on the clean sample): its flow-time step clips the weight
            next_alpha_bar = [float(alpha_bar[int(t)]) for t in timesteps[1:]] + [1.0]
        guided = frozen is None and inpaint is not None
        sampler = self.guided_sampler if guided else self.sampler
        for i, t in enumerate(timesteps):
            if frozen is not None:
                eps = denoise(i, rtc.flag_frozen(x, frozen))
            elif inpaint is None:
                eps = denoise(i, x)
            else:
                eps = rtc.guided_epsilon(lambda x_, i=i: denoise(i, x_), x, float(alpha_bar[int(t)]), target, inpaint,
                                         self.config.prediction_type, i, next_alpha_bar[i])
            x = sampler.step(eps, t, x, generator=generator).prev_sample
            if frozen is not None:
                x = rtc.freeze(x, clean, frozen)
        if guided and self.config.clip_sample:
            x = x.clamp(-self.config.clip_sample_range, self.config.clip_sample_range)
        actions = self.normalizer.unnormalize(ACTION_KEY, x)
        if frozen is not None and inpaint is not None:  # the prefix exactly, not through normalization
            actions = rtc.freeze(actions, inpaint.prefix.to(actions), frozen)
        return actions
