"""One training loop for every policy: policies differ in `compute_loss`, not here."""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from robolearn.errors import InvalidValueError, MissingPathError, UserError
from robolearn.policies.base import Model
from robolearn.sampling import WindowSampler, infinite_batches, make_loader
from robolearn.train.config import TrainConfig
from robolearn.train.ema import EMA
from robolearn.train.memory import keep_freed_memory
from robolearn.train.plots import plot_curves


_RANK_SEED_STRIDE = 1_000_003


class TrainingDivergedError(UserError, FloatingPointError):
    """The loss became NaN or infinite: the settings (learning rate, data scale) are the user's to change."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidValueError(f"device {name!r} asked for, but torch sees no CUDA GPU here; use device=cpu")
    return torch.device(name)


def cosine_with_warmup(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / max(1, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _tensorboard(path: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional; metrics.jsonl always exists
        return None
    return SummaryWriter(str(path))


class _LossModule(torch.nn.Module):
    """`forward(batch)` is the policy's `compute_loss`: the call a DistributedDataParallel wrapper hooks
    its gradient all-reduce into. It owns no parameters of its own."""

    def __init__(self, policy: torch.nn.Module):
        super().__init__()
        self.policy = policy

    def forward(self, batch: dict) -> dict:
        return self.policy.compute_loss(batch)


class Trainer:
    """Trains `policy` (any `Model`: a policy, or a model that only trains) on windows from `train_sampler`;
    writes the run directory `out`:
    model.safetensors, ema.safetensors, config.json, stats.json, metrics.jsonl, train_curve.png.

    Data-parallel training runs this same loop on every rank (`robolearn.train.distributed`): `rank`
    and `world_size` split each global batch of `cfg.batch_size` windows across the ranks, `wrap_model`
    wraps the loss module (forward = `policy.compute_loss`) in DistributedDataParallel, and only rank 0
    writes the run directory. The optimizer, EMA and checkpoints always hold the unwrapped policy.
    """

    def __init__(self, policy: Model, train_sampler: WindowSampler, cfg: TrainConfig, out: str | Path,
                 val_sampler: WindowSampler | None = None, extra: dict | None = None, progress: bool = True,
                 rank: int = 0, world_size: int = 1,
                 wrap_model: Callable[[torch.nn.Module], torch.nn.Module] | None = None):
        if not isinstance(policy, Model):
            raise TypeError(f"Trainer fits a robolearn.policies.base.Model (a policy, the latent autoencoder, RDP's "
                            f"tokenizer); got {type(policy).__name__}.")
        self.cfg, self.out, self.extra, self.progress = cfg, Path(out), dict(extra or {}), progress
        if cfg.batch_size % world_size:
            raise InvalidValueError(f"train.batch_size={cfg.batch_size} is not divisible by {world_size} workers: "
                             f"pick a multiple of {world_size} so the global batch matches one worker")
        self.rank, self.world_size, self.is_main = rank, world_size, rank == 0
        self.device = resolve_device(cfg.device)
        if cfg.threads and self.device.type == "cpu":
            torch.set_num_threads(cfg.threads)
        if cfg.keep_freed_memory and self.device.type == "cpu":
            keep_freed_memory()
        # Ranks draw different noise; rank 0 draws what a single-process run draws.
        torch.manual_seed(cfg.seed + _RANK_SEED_STRIDE * rank)
        np.random.seed(cfg.seed + _RANK_SEED_STRIDE * rank)
        self.policy = policy.to(self.device)
        # DDP broadcasts rank 0's weights when it wraps, so the EMA is copied after wrapping.
        self.loss_module = (wrap_model or (lambda m: m))(_LossModule(self.policy))
        self.train_sampler, self.val_sampler = train_sampler, val_sampler
        # fused AdamW: one kernel for all parameters (the CPU optimizer step drops ~4x).
        self.optimizer = torch.optim.AdamW(self.policy.parameters(), lr=cfg.lr, betas=tuple(cfg.betas),
                                           weight_decay=cfg.weight_decay, fused=True)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: cosine_with_warmup(s, cfg.warmup_steps, cfg.steps))
        self.ema = EMA(self.policy, cfg.ema_power, cfg.ema_max) if cfg.ema else None
        self.step = 0
        self.records: list[dict] = []

    def _to_device(self, batch: dict) -> dict:
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    @torch.no_grad()
    def validation_loss(self) -> float | None:
        if self.val_sampler is None or len(self.val_sampler) == 0:
            return None
        model = self.ema.model if self.ema else self.policy
        was_training = model.training
        model.eval()
        losses = []
        bs = min(self.cfg.batch_size, len(self.val_sampler))
        for i, batch in enumerate(make_loader(self.val_sampler, bs, shuffle=True, seed=self.cfg.seed + 1)):
            if i >= self.cfg.val_batches:
                break
            losses.append(float(model.compute_loss(self._to_device(batch))["loss"]))
        model.train(was_training)
        return float(np.mean(losses)) if losses else None

    def _resume(self, directory: Path) -> tuple[int, int]:
        from safetensors.torch import load_file

        from robolearn.train.state import load_trainer_state, optimizer_from_flat, set_rng_state

        tensors, meta = load_trainer_state(directory)
        self.policy.load_state_dict(load_file(str(directory / "model.safetensors")))
        if self.ema:
            self.ema.model.load_state_dict(load_file(str(directory / "ema.safetensors")))
            self.ema.step = int(meta["ema_step"])
        optimizer_from_flat(self.optimizer, tensors, meta["optimizer"])
        self.scheduler.load_state_dict(meta["scheduler"])
        set_rng_state(tensors, meta["rng"])
        self.step = int(meta["step"])
        if not self.is_main:  # the checkpoint holds rank 0's RNG; other ranks keep drawing their own noise
            torch.manual_seed(self.cfg.seed + _RANK_SEED_STRIDE * self.rank + self.step)
        metrics = self.out / "metrics.jsonl"
        if self.is_main and metrics.is_file():  # keep the records up to the checkpoint, drop the ones after it
            rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
            self.records = [r for r in rows if r["step"] <= self.step]
            metrics.write_text("".join(json.dumps(r) + "\n" for r in self.records))
        return int(meta["epoch"]), int(meta["batch"]) + 1

    def fit(self, resume: bool = False, eval_fn=None, stop_at: int | None = None) -> dict:
        """Train to cfg.steps. `resume` continues from out/checkpoints/last exactly (same batches, noise
        and weights as an uninterrupted run). `eval_fn(model) -> dict` runs every cfg.eval_every steps.
        `stop_at` ends this session after that step with a resumable checkpoint (the schedule still
        spans cfg.steps)."""
        cfg, main = self.cfg, self.is_main
        if main:
            self.out.mkdir(parents=True, exist_ok=True)
        last = self.out / "checkpoints" / "last"
        epoch0, batch0 = 0, 0
        if resume:
            if not (last / "trainer_state.json").is_file():
                raise MissingPathError(f"cannot resume: {last} holds no trainer state (train without --resume)")
            epoch0, batch0 = self._resume(last)
        elif main and (self.out / "metrics.jsonl").exists():
            (self.out / "metrics.jsonl").unlink()
        metrics_path = self.out / "metrics.jsonl"
        tb = _tensorboard(self.out / "tb") if main else None
        rank_batch = min(cfg.batch_size, len(self.train_sampler)) // self.world_size
        if rank_batch == 0:
            raise InvalidValueError(f"{len(self.train_sampler)} training windows cannot fill a batch on each of "
                             f"{self.world_size} workers")
        batches = infinite_batches(self.train_sampler, rank_batch, seed=cfg.seed, num_workers=cfg.num_workers,
                                   start_epoch=epoch0, start_batch=batch0, rank=self.rank,
                                   world_size=self.world_size)
        autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if self.device.type == "cuda" and cfg.bf16
                    else contextlib.nullcontext())
        self.policy.train()
        t0, samples, first_step = time.perf_counter(), 0, self.step
        columns = [TextColumn("[bold]train"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                   TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn()]
        with (Progress(*columns, disable=not (self.progress and main), transient=False) as bar,
              open(metrics_path, "a") if main else contextlib.nullcontext() as log):
            task = bar.add_task("train", total=cfg.steps, completed=self.step, info="")
            running = []
            end = cfg.steps if stop_at is None else min(stop_at, cfg.steps)
            # Where the last consumed batch sits; the loop may not run (resumed at or past `end`, steps=0).
            epoch, batch_index = epoch0, batch0 - 1
            while self.step < end:
                epoch, batch_index, batch = next(batches)
                batch = self._to_device(batch)
                with autocast:
                    loss = self.loss_module(batch)["loss"]
                if not torch.isfinite(loss):
                    raise TrainingDivergedError(f"loss became {float(loss)} at step {self.step}; lower train.lr")
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(self.policy.parameters(), cfg.grad_clip)
                self.optimizer.step()
                self.scheduler.step()
                if self.ema:
                    self.ema.update(self.policy)
                self.step += 1
                samples += len(next(iter(batch.values()))) * self.world_size
                running.append(loss.item())
                record = {}
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    record = {"loss": self._mean_over_ranks(float(np.mean(running))),
                              "lr": self.scheduler.get_last_lr()[0],
                              "samples_per_s": samples / (time.perf_counter() - t0)}
                    running = []
                if main and cfg.val_every and (self.step % cfg.val_every == 0 or self.step == cfg.steps):
                    val = self.validation_loss()
                    if val is not None:
                        record["val_loss"] = val
                if (main and eval_fn and cfg.eval_every
                        and (self.step % cfg.eval_every == 0 or self.step == cfg.steps)):
                    record.update({f"eval_{k}": v for k, v in eval_fn(self.ema.model if self.ema else self.policy).items()})
                if record and main:
                    record = {"step": self.step, **record}
                    self.records.append(record)
                    log.write(json.dumps(record) + "\n")
                    log.flush()
                    if tb:
                        for k, v in record.items():
                            if k != "step" and isinstance(v, (int, float)):
                                tb.add_scalar(k, v, self.step)
                    bar.update(task, info=f"loss {record.get('loss', float('nan')):.4f}")
                if main and cfg.save_every and self.step % cfg.save_every == 0 and self.step < cfg.steps:
                    self.save_last(epoch, batch_index)
                bar.update(task, completed=self.step)
        if tb:
            tb.close()
        elapsed = time.perf_counter() - t0
        if not main:
            return {"steps": self.step, "seconds": elapsed, "rank": self.rank}
        ran = self.step > first_step
        if ran or not resume:  # a resumed session that ran no step leaves its run and checkpoint as they were
            self.save(self.out)
            if cfg.save_every or self.step < cfg.steps:
                self.save_last(epoch, batch_index)
        plot = plot_curves(self.records, self.out / "train_curve.png", title=f"{self.policy.name} training")
        summary = {"steps": self.step, "seconds": elapsed,
                   "samples_per_s": samples / max(elapsed, 1e-9) if ran else 0.0,
                   "final_loss": self.records[-1].get("loss") if self.records else None,
                   "val_loss": next((r["val_loss"] for r in reversed(self.records) if "val_loss" in r), None),
                   "checkpoint": str(self.out.resolve()), "plot": str(plot.resolve())}
        if self.world_size > 1:
            summary.update({"workers": self.world_size, "global_batch_size": rank_batch * self.world_size})
        (self.out / "train_summary.json").write_text(json.dumps(summary, indent=2))
        return summary

    def _mean_over_ranks(self, value: float) -> float:
        """The logged loss is the mean over every rank's windows (a collective: all ranks call it)."""
        if self.world_size == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(t)
        return float(t) / self.world_size

    def save_last(self, epoch: int, batch_index: int) -> Path:
        """Everything needed to resume, written to a temp folder and swapped in whole."""
        from robolearn.train.state import replace_dir, save_trainer_state

        final = self.out / "checkpoints" / "last"
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=".last.tmp-"))  # a fresh name: nothing else is touched
        try:
            self.save(tmp)
            save_trainer_state(tmp, self.optimizer, self.scheduler, self.ema,
                               {"step": self.step, "epoch": epoch, "batch": batch_index})
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)  # ours alone: created by mkdtemp above
            raise
        replace_dir(tmp, final)
        return final

    def save(self, directory: Path) -> None:
        from robolearn.policies import save_policy

        extra = {**self.extra, "train": asdict(self.cfg), "step": self.step}
        save_policy(self.policy, directory, ema_policy=self.ema.model if self.ema else None, extra=extra)
