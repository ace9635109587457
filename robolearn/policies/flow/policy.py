"""FlowPolicy: rectified flow (flow matching) over action chunks, on the diffusion backbones.

Training: x1 = the normalized action chunk (B, T, Da), x0 ~ N(0, I), t ~ U[0, 1] (or logit-normal),
x_t = (1 - t) x0 + t x1; the network predicts the velocity v = x1 - x0 from (x_t, 1000 t, obs),
with an MSE masked by `action_is_pad`. Inference: Euler integration of dx/dt = v from noise at
t = 0 to t = 1 in 1..10 equal steps, then unnormalize. Observation encoding, language conditioning
and the denoiser (U-Net or transformer) are the diffusion policy's (`robolearn.policies.conditioning`).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

from robolearn.policies import conditioning, rtc
from robolearn.policies.base import ACTION_KEY, Policy
from robolearn.policies.flow.config import MAX_INFERENCE_STEPS, FlowConfig
from robolearn.policies.nets.encoders import load_pretrained_encoder

# The denoisers embed their step input sinusoidally with frequencies tuned to a 0..1000 range.
TIME_SCALE = 1000.0


class FlowPolicy(Policy):
    """Rectified-flow visuomotor policy (Liu et al., 2022; Lipman et al., 2022). See `FlowConfig`."""

    name = "flow"
    config: FlowConfig
    conditions_on_lowdim = True

    def __init__(self, config: FlowConfig, stats: Mapping[str, Mapping]):
        super().__init__(config, stats)
        self.encoders = conditioning.build_image_encoders(config, self.image_keys)
        self.obs_feature_dim = conditioning.obs_feature_dim(config, self.image_keys)
        self.language_proj = conditioning.build_language_proj(config)
        conditioning.attach_denoiser(self, self.obs_feature_dim)  # self.unet or self.transformer

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

    def encode_obs(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The velocity network's condition (see `conditioning.denoiser_cond`)."""
        return conditioning.denoiser_cond(self, obs)

    def sample_time(self, B: int, device: torch.device) -> torch.Tensor:
        """(B,) training times in (0, 1) from `config.time_sampling`."""
        cfg = self.config
        if cfg.time_sampling == "uniform":
            return torch.rand(B, device=device)
        return torch.sigmoid(cfg.logit_normal_mean + cfg.logit_normal_std * torch.randn(B, device=device))

    def compute_loss(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        cfg = self.config
        if ACTION_KEY not in batch:
            raise KeyError(f"batch has no {ACTION_KEY!r} key (it has: {sorted(batch)}).")
        x1 = self.normalizer.normalize(ACTION_KEY, batch[ACTION_KEY].to(self.device))  # (B, T, Da)
        B, T, _ = x1.shape
        if T != cfg.horizon:
            raise ValueError(f"batch {ACTION_KEY!r} has {T} steps, but the policy's horizon is {cfg.horizon}.")
        cond = self.encode_obs(batch)
        x0 = torch.randn_like(x1)
        t = self.sample_time(B, x1.device)
        xt = torch.lerp(x0, x1, t[:, None, None])  # (1 - t) x0 + t x1
        frozen = None
        if cfg.rtc_training_max_delay:  # training-time RTC: the prefix sits at flow time 1, flagged, no loss
            frozen = rtc.sample_frozen(B, T, cfg.rtc_training_max_delay, x1.device)
            xt = rtc.flag_frozen(rtc.freeze(xt, x1, frozen), frozen)
        pred = conditioning.get_denoiser(self)(xt, t * TIME_SCALE, cond)
        err = F.mse_loss(pred, x1 - x0, reduction="none")  # (B, T, Da)
        return {"loss": conditioning.chunk_loss(err, batch.get("action_is_pad"), frozen)}

    @torch.no_grad()
    def predict_action_chunk(
        self, obs: Mapping[str, torch.Tensor], generator: torch.Generator | None = None,
        num_inference_steps: int | None = None, inpaint: rtc.Inpainting | None = None,
    ) -> torch.Tensor:
        """(B, T, Da) actions in env units; `num_inference_steps` (1..10) overrides the config's; `inpaint`
        guides the chunk toward a planned prefix (Real-Time Chunking, `robolearn.policies.rtc`), or with
        `rtc_training_max_delay` fixes its first ``inpaint.n_frozen`` actions to it (no guidance)."""
        cfg = self.config
        n = cfg.num_inference_steps if num_inference_steps is None else int(num_inference_steps)
        if not 1 <= n <= MAX_INFERENCE_STEPS:
            raise ValueError(f"num_inference_steps must be in [1, {MAX_INFERENCE_STEPS}] Euler steps, got {n}.")
        cond = self.encode_obs(obs)
        B = cond.shape[0]
        times = torch.arange(n, dtype=torch.float32) / n  # left end of each Euler step
        velocity = conditioning.chunk_denoiser(conditioning.get_denoiser(self), cond, times * TIME_SCALE)
        # Noise is drawn on the generator's device, so a CPU generator reproduces on any device.
        x = torch.randn((B, cfg.horizon, self.action_dim), generator=generator,
                        device=generator.device if generator is not None else cond.device).to(cond)
        frozen = None
        if cfg.rtc_training_max_delay:  # trained with frozen prefixes: fix the prefix, generate the rest
            frozen, clean = rtc.hard_prefix(inpaint, x, lambda a: self.normalizer.normalize(ACTION_KEY, a))
            x = rtc.freeze(x, clean, frozen)
            for i in range(n):
                x = rtc.freeze(x + velocity(i, rtc.flag_frozen(x, frozen)) / n, clean, frozen)
        elif inpaint is None:
            for i in range(n):
                x = x + velocity(i, x) / n
        else:
            inpaint = inpaint.to(x)
            target = self.normalizer.normalize(ACTION_KEY, inpaint.prefix)
            for i in range(n):
                x = x + rtc.guided_velocity(lambda x_, i=i: velocity(i, x_), x, float(times[i]), target, inpaint, i,
                                            dtau=1.0 / n) / n
        if cfg.clip_sample:
            x = x.clamp(-cfg.clip_sample_range, cfg.clip_sample_range)
        actions = self.normalizer.unnormalize(ACTION_KEY, x)
        if frozen is not None and inpaint is not None:  # the prefix exactly, not through normalization
            actions = rtc.freeze(actions, inpaint.prefix.to(actions), frozen)
        return actions
