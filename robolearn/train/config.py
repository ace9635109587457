"""Trainer settings (one trainer for every policy)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainConfig:
    steps: int = 2000
    """Optimizer steps."""
    batch_size: int = 64
    """Windows per batch (B)."""
    lr: float = 1e-4
    """Peak AdamW learning rate."""
    weight_decay: float = 1e-6
    """AdamW weight decay."""
    betas: tuple[float, float] = (0.95, 0.999)
    """AdamW betas (diffusion_policy's values)."""
    warmup_steps: int = 200
    """Linear warm-up before the cosine decay."""
    grad_clip: float = 10.0
    """Max gradient norm (0 disables)."""
    ema: bool = True
    """Keep an exponential moving average of the weights; it is what gets evaluated."""
    ema_power: float = 0.75
    """EMA warm-up power: decay = 1 - (1 + step)^-power, capped by ema_max."""
    ema_max: float = 0.9999
    """Upper bound of the EMA decay."""
    val_ratio: float = 0.05
    """Fraction of episodes held out for the validation loss."""
    include_aborted: bool = False
    """Train on episodes whose recording was aborted (episode status "aborted") too; skipped by default."""
    val_every: int = 500
    """Steps between validation losses (0 disables)."""
    val_batches: int = 4
    """Batches per validation loss."""
    save_every: int = 0
    """Steps between resumable checkpoints in checkpoints/last (0: only the final policy)."""
    eval_every: int = 0
    """Steps between rollout evaluations in the task's env (0: none during training)."""
    eval_episodes: int = 10
    """Rollouts per periodic evaluation."""
    bf16: bool = True
    """bf16 autocast when training on a GPU (ignored on CPU)."""
    log_every: int = 25
    """Steps between metric lines in metrics.jsonl."""
    num_workers: int = 0
    """DataLoader worker processes (0: gather batches in the training process)."""
    seed: int = 0
    """Seeds weights, noise and batch order."""
    device: str = "auto"
    """'auto' (cuda if present, else cpu), 'cpu' or 'cuda'."""
    threads: int = 0
    """torch intra-op threads on CPU (0: torch's default)."""
    keep_freed_memory: bool = True
    """On CPU, let malloc keep freed memory for the next step instead of returning it to the OS (glibc only;
    process-wide, see `robolearn.train.memory`): ~7% shorter image-policy steps, peak memory unchanged."""
