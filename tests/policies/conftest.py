"""A tiny store where a dot moves by the action, and an autoencoder trained on it once per session
(shared by the latent, UWM and PAD tests)."""

import numpy as np
import pytest
import torch

from robolearn.store import EpisodeMeta, Feature, StoreWriter

DOT_SIZE = 16
DOT_FEATURES = {
    "state": Feature((2,), "float32"),
    "images/front": Feature((DOT_SIZE, DOT_SIZE, 3), "uint8"),
    "action": Feature((2,), "float32"),
}


def render_dot(pos: np.ndarray) -> np.ndarray:
    """(N, 2) pixel positions -> (N, 16, 16, 3) uint8: a Gaussian blob in red on a dim blue field."""
    yy, xx = np.mgrid[:DOT_SIZE, :DOT_SIZE].astype(np.float32)
    d2 = (xx[None] - pos[:, 0, None, None]) ** 2 + (yy[None] - pos[:, 1, None, None]) ** 2
    img = np.zeros((len(pos), DOT_SIZE, DOT_SIZE, 3), np.uint8)
    img[..., 0] = (255 * np.exp(-d2 / (2 * 1.3 ** 2))).astype(np.uint8)
    img[..., 2] = 40
    return img


TARGETS = np.array([[3.0, 8.0], [12.0, 8.0]], np.float32)  # task i: move the dot to TARGETS[i]


def dot_episode(rng: np.random.Generator, length: int, target: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The action moves the dot: pos[t+1] = clip(pos[t] + 1.5 * action[t]). Actions are a random walk in
    [-1, 1]^2, or with `target` an expert's steps toward it."""
    pos = np.zeros((length, 2), np.float32)
    pos[0] = rng.uniform(3, DOT_SIZE - 4, 2)
    action = rng.uniform(-1, 1, (length, 2)).astype(np.float32)
    for t in range(length - 1):
        if target is not None:
            action[t] = np.clip((target - pos[t]) / 3.0, -1, 1)
        pos[t + 1] = np.clip(pos[t] + 1.5 * action[t], 2, DOT_SIZE - 3)
    if target is not None:
        action[-1] = np.clip((target - pos[-1]) / 3.0, -1, 1)
    return {"state": pos / DOT_SIZE, "images/front": render_dot(pos), "action": action}


def write_dot_store(path, episodes: int = 12, length: int = 24, seed: int = 0, action_free: int = 0,
                    expert: bool = False):
    """Random-walk episodes (task "move the dot"), or with `expert` episodes alternating between the
    tasks "move the dot left" / "move the dot right". The first `action_free` have has_actions=False."""
    rng = np.random.default_rng(seed)
    tasks = ("move the dot left", "move the dot right") if expert else ("move the dot",)
    with StoreWriter(path, DOT_FEATURES, fps=10.0) as w:
        for e in range(episodes):
            target = TARGETS[e % 2] if expert else None
            w.add_episode(dot_episode(rng, length, target), None,
                          EpisodeMeta(task=tasks[e % len(tasks)], has_actions=e >= action_free, seed=e))
    return path


@pytest.fixture(scope="session")
def dot_store(tmp_path_factory):
    return write_dot_store(tmp_path_factory.mktemp("dot") / "dot.zarr")


@pytest.fixture(scope="session")
def dot_autoencoder(tmp_path_factory, dot_store):
    """A `robolearn train policy=autoencoder` run on the dot store (16x16 -> 4x4x4 latents)."""
    from robolearn.experiment import build_config
    from robolearn.train.run import train_policy

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("ae") / "run"
    cfg = build_config(["policy=autoencoder", "model.channels=[16, 32]", "train.steps=250", "train.batch_size=32",
                        "train.lr=0.002", "train.warmup_steps=20", "train.val_ratio=0", "train.val_every=0",
                        "train.device=cpu", "train.log_every=50", "train.ema_power=0.9"])
    summary = train_policy(cfg, str(dot_store), out, progress=False)
    return out, summary
