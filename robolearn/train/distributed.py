"""Data-parallel training on Ray Train (`robolearn train --workers N`).

Every worker runs the one `Trainer` loop on its own rank: it builds the same policy and samplers as
`train_policy`, takes a disjoint share of each global batch (`cfg.train.batch_size / N` windows per
rank, so the global batch matches one worker), and averages gradients through DistributedDataParallel
(gloo on CPU, NCCL on GPUs). Rank 0 writes the run directory exactly like a single-process run.

>>> summary = train_distributed(cfg, "runs/push.zarr", "runs/push-ddp", workers=2)  # doctest: +SKIP
>>> summary["global_batch_size"] == cfg.train.batch_size  # doctest: +SKIP

The store may be a URL (`s3://...`) every worker reads; a local run directory must be on a file
system rank 0 can write and, for --resume, every rank can read (one machine, or a shared mount).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

from robolearn.errors import InvalidValueError, MissingExtraError
from robolearn.experiment import ExperimentConfig
from robolearn.output import claim_output
from robolearn.store import ensure_stats
from robolearn.train.run import build_run
from robolearn.train.trainer import Trainer


def _train_worker(config: dict) -> None:
    """One Ray Train rank: the same run as `train_policy`, with DDP around the loss."""
    import ray.train
    import ray.train.torch
    from torch.nn.parallel import DistributedDataParallel

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    cfg: ExperimentConfig = config["cfg"]
    device = ray.train.torch.get_device()
    if device.type == "cuda":
        torch.cuda.set_device(device)  # train.device=auto/cuda then means this rank's GPU

    def wrap(module: torch.nn.Module) -> torch.nn.Module:
        return DistributedDataParallel(module, device_ids=[device] if device.type == "cuda" else None)

    run = build_run(cfg, config["store"])
    trainer = Trainer(run.policy, run.train_sampler, cfg.train, config["out"], val_sampler=run.val_sampler,
                      extra=run.extra, progress=config["progress"], rank=rank, world_size=world, wrap_model=wrap)
    summary = trainer.fit(resume=config["resume"], eval_fn=run.eval_fn if rank == 0 else None,
                          stop_at=config["stop_at"])
    # Every rank reports once (Ray Train's report is a barrier). Ray Train v2 hands the driver only
    # metrics that come with a checkpoint, so rank 0 attaches an empty one; the weights are in `out`.
    if rank != 0:
        ray.train.report({})
        return
    with tempfile.TemporaryDirectory() as empty:
        ray.train.report({"summary": json.dumps({**summary, **run.summary()})},
                         checkpoint=ray.train.Checkpoint.from_directory(empty))


def train_distributed(cfg: ExperimentConfig, store_path: str, out: str | Path, workers: int,
                      address: str | None = None, progress: bool = True, resume: bool = False,
                      stop_at: int | None = None, overwrite: bool = False) -> dict:
    """Fit the configured policy on `workers` Ray Train workers (DDP); returns rank 0's summary.

    `address` joins a running Ray cluster (default: start a local Ray with `workers` CPUs). GPUs are
    used when train.device is cuda, or auto and this machine sees one. `out`, `resume` and `overwrite`
    as in `train_policy`: the driver claims the run directory before any rank starts.
    """
    if workers < 1:
        raise InvalidValueError(f"--workers must be >= 1, got {workers}")
    if cfg.train.batch_size % workers:
        raise InvalidValueError(f"train.batch_size={cfg.train.batch_size} is not divisible by --workers {workers}: "
                         f"pick a multiple of {workers} so the global batch matches one worker")
    claim_output(out, "run", resume=resume, overwrite=overwrite)
    store_path = str(store_path) if "://" in str(store_path) else str(Path(store_path).resolve())
    ensure_stats(store_path)  # computed once here, not raced by every rank
    use_gpu = cfg.train.device.startswith("cuda") or (cfg.train.device == "auto" and torch.cuda.is_available())
    loop_config = {"cfg": cfg, "store": store_path, "out": str(Path(out).resolve()), "progress": progress,
                   "resume": resume, "stop_at": stop_at}
    from robolearn.cluster import ray_session

    with ray_session(workers, address, log_to_driver=progress, purpose="train --workers") as ray:
        try:
            from ray.train import RunConfig, ScalingConfig
            from ray.train.torch import TorchTrainer
        except ImportError as e:
            raise MissingExtraError("train --workers needs Ray Train: pip install 'ray[train]'") from e
        # Ray Train's own bookkeeping (no checkpoints go there: rank 0 writes the run directory).
        with tempfile.TemporaryDirectory(prefix="robolearn-ray-train-") as storage:
            trainer = TorchTrainer(_train_worker, train_loop_config=loop_config,
                                   scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu),
                                   run_config=RunConfig(name="train", storage_path=storage))
            try:
                result = trainer.fit()
            except ray.train.WorkerGroupError as e:
                # Surface the first failing rank's own error (a bad config, a missing key) to the user.
                raise _unwrap(e.worker_failures[min(e.worker_failures)]) from e
    return json.loads(result.metrics["summary"])


def _unwrap(error: BaseException) -> BaseException:
    cause = getattr(error, "cause", None)
    return cause if isinstance(cause, BaseException) else error
