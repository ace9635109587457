"""DiffusionPolicy speed side by side with LeRobot 0.4.4's, in one process, calls interleaved.

Both policies are built at LeRobot's "small" size (shared/bench/lerobot/policy_bench.py): one
96x96 camera (84x84 crop) + 7-d state -> 7-d action, To=2, T=16, ResNet-18 from scratch with
GroupNorm and spatial softmax, U-Net down_dims (64, 128, 256). Calls alternate LeRobot / ours
(float32 encoder) / ours (bfloat16 encoder) / ours compiled (float32, `compile_for_inference`,
latency only), so a busy machine slows all of them alike.

- Latency: predict_action_chunk, batch 1, DDIM-10, eval mode. LeRobot gets pre-normalized float
  images (as in its harness); ours gets raw uint8 images and normalizes inside.
- Training: batch 64, forward + backward + clip_grad_norm(10) + optimizer step. LeRobot uses its
  preset (Adam, lr 1e-4); ours uses AdamW with the same hyper-parameters, fused CPU kernel.
  LeRobot 0.4.4's config has no crop by default (crop_shape None: its ResNet sees 96x96, 1.3x the
  pixels of our 84x84 crop), so training also runs "lerobot_crop84", LeRobot with crop_shape (84, 84)
  (a random window per batch), the same input size as ours: `train_speedup_vs_lerobot_crop84`.
  Neither side sets `robolearn.train.memory.keep_freed_memory` (our Trainer does; it is process-wide).

Run with the interpreter of a venv that has lerobot 0.4.4 (shared/bench/lerobot/make-venv.sh), with
this repository on PYTHONPATH:

    PYTHONPATH=. /path/to/lerobot-venv/bin/python benchmarks/policies_vs_lerobot.py --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import torch  # noqa: E402

from benchmarks.policies_quick import DA, DO, SIZE, T, TO, batch, features_and_stats  # noqa: E402
from robolearn.policies import make_policy  # noqa: E402
from robolearn.policies.compile import compile_for_inference  # noqa: E402

IMG = "observation.images.front"


def lerobot_policy(crop_shape: tuple[int, int] | None = None):
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig
    from lerobot.policies.diffusion.modeling_diffusion import DiffusionPolicy

    cfg = DiffusionConfig(
        input_features={IMG: PolicyFeature(type=FeatureType.VISUAL, shape=(3, SIZE, SIZE)),
                        "observation.state": PolicyFeature(type=FeatureType.STATE, shape=(DO,))},
        output_features={"action": PolicyFeature(type=FeatureType.ACTION, shape=(DA,))},
        device="cpu", down_dims=(64, 128, 256), vision_backbone="resnet18", pretrained_backbone_weights=None,
        noise_scheduler_type="DDIM", num_inference_steps=10, n_obs_steps=TO, horizon=T, n_action_steps=8,
        crop_shape=crop_shape,
    )
    return cfg, DiffusionPolicy(cfg)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calls", type=int, default=15)
    ap.add_argument("--train-steps", type=int, default=4)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    lr_cfg, lr_pol = lerobot_policy()
    lr84_cfg, lr84_pol = lerobot_policy(crop_shape=(84, 84))
    features, stats = features_and_stats()
    ours = {dt: make_policy("diffusion", features, stats, vision_backbone="resnet18", crop_shape=(84, 84),
                            encoder_dtype=dt) for dt in ("float32", "bfloat16")}
    names = ["lerobot", "ours_float32", "ours_bfloat16"]
    compiled = make_policy("diffusion", features, stats, vision_backbone="resnet18", crop_shape=(84, 84)).eval()
    compiled.load_state_dict(ours["float32"].state_dict())

    # --- latency ---
    lr_pol.eval()
    lr_pol.reset()
    lr_obs = {IMG: torch.rand(1, 3, SIZE, SIZE), "observation.state": torch.randn(1, DO)}
    lr_pol.select_action(lr_obs)  # fills LeRobot's observation queues, as its harness does
    lr_batch = {**lr_obs, "observation.images": torch.stack([lr_obs[IMG]], dim=-4)}
    our_obs = {k: v for k, v in batch(1).items() if not k.startswith("action")}
    for p in ours.values():
        p.eval()
    t0 = time.perf_counter()
    if not compile_for_inference(compiled, our_obs):
        raise SystemExit("compile_for_inference failed (see the warning)")
    compile_s = time.perf_counter() - t0
    calls = {
        "lerobot": lambda: lr_pol.predict_action_chunk(lr_batch),
        "ours_float32": lambda: ours["float32"].predict_action_chunk(our_obs),
        "ours_bfloat16": lambda: ours["bfloat16"].predict_action_chunk(our_obs),
        "ours_float32_compiled": lambda: compiled.predict_action_chunk(our_obs),
    }
    lat = {n: [] for n in calls}
    for i in range(args.calls + 2):
        for n in calls:
            t0 = time.perf_counter()
            calls[n]()
            if i >= 2:
                lat[n].append(time.perf_counter() - t0)

    # --- training ---
    lr_pol.train()
    preset = lr_cfg.get_optimizer_preset()
    lr_opt = preset.build(lr_pol.get_optim_params())
    lr84_pol.train()
    lr84_opt = lr84_cfg.get_optimizer_preset().build(lr84_pol.get_optim_params())
    lr_b = {IMG: torch.rand(args.batch, TO, 3, SIZE, SIZE), "observation.state": torch.randn(args.batch, TO, DO),
            "action": torch.randn(args.batch, T, DA), "action_is_pad": torch.zeros(args.batch, T, dtype=torch.bool)}
    our_b = batch(args.batch)
    our_opts = {dt: torch.optim.AdamW(p.parameters(), lr=1e-4, betas=(0.95, 0.999), weight_decay=1e-6, fused=True)
                for dt, p in ours.items()}
    for p in ours.values():
        p.train()

    def lr_step(pol=lr_pol, opt=lr_opt):
        loss, _ = pol.forward(lr_b)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(pol.parameters(), preset.grad_clip_norm)
        opt.step()
        opt.zero_grad()

    def our_step(dt):
        loss = ours[dt].compute_loss(our_b)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ours[dt].parameters(), 10.0)
        our_opts[dt].step()
        our_opts[dt].zero_grad(set_to_none=True)

    steps = {"lerobot": lr_step, "lerobot_crop84": lambda: lr_step(lr84_pol, lr84_opt), "ours_float32": lambda: our_step("float32"), "ours_bfloat16": lambda: our_step("bfloat16")}
    train = {n: [] for n in steps}
    for i in range(args.train_steps + 1):
        for n in steps:
            t0 = time.perf_counter()
            steps[n]()
            if i >= 1:
                train[n].append(time.perf_counter() - t0)

    out = {"args": vars(args), "torch": torch.__version__, "threads": torch.get_num_threads(), "load_avg_1min_end": os.getloadavg()[0]}
    for n in names:
        out[n] = {
            "chunk_ms_median": round(1e3 * statistics.median(lat[n]), 1),
            "chunk_ms_min": round(1e3 * min(lat[n]), 1),
            "train_samples_per_s": round(args.batch / statistics.median(train[n]), 1),
            "train_step_s_all": [round(t, 2) for t in train[n]],
        }
    out["ours_float32_compiled"] = {
        "chunk_ms_median": round(1e3 * statistics.median(lat["ours_float32_compiled"]), 1),
        "chunk_ms_min": round(1e3 * min(lat["ours_float32_compiled"]), 1),
        "compile_s": round(compile_s, 1),
        "latency_speedup_vs_lerobot": round(
            statistics.median(lat["lerobot"]) / statistics.median(lat["ours_float32_compiled"]), 2),
    }
    out["lerobot_crop84"] = {"crop_shape": [84, 84],
                             "train_samples_per_s": round(args.batch / statistics.median(train["lerobot_crop84"]), 1),
                             "train_step_s_all": [round(t, 2) for t in train["lerobot_crop84"]]}
    for n in names[1:]:
        out[n]["latency_speedup_vs_lerobot"] = round(out["lerobot"]["chunk_ms_median"] / out[n]["chunk_ms_median"], 2)
        out[n]["train_speedup_vs_lerobot"] = round(out[n]["train_samples_per_s"] / out["lerobot"]["train_samples_per_s"], 2)
        out[n]["train_speedup_vs_lerobot_crop84"] = round(
            out[n]["train_samples_per_s"] / out["lerobot_crop84"]["train_samples_per_s"], 2)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
