import json
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import imageio.v2 as imageio
import numpy as np
import pytest
import torch

import robolearn.policies
from robolearn.eval import evaluate, tile_episodes, wilson_interval, write_video

ENV_ID = "TinyReach-v0"


class TinyReachEnv(gym.Env):
    """A point steps 0.1 * action toward a seeded random target; state is target - point;
    success within 0.05. Targets farther than 12 steps per axis cannot be reached in time."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}
    control_hz = 10.0

    def __init__(self, render_mode=None):
        self.observation_space = gym.spaces.Dict({
            "state": gym.spaces.Box(-10, 10, (2,), np.float32),
            "images/front": gym.spaces.Box(0, 255, (8, 8, 3), np.uint8),
        })
        self.action_space = gym.spaces.Box(-1, 1, (2,), np.float32)
        self.render_mode = render_mode

    def _image(self):
        img = np.zeros((8, 8, 3), np.uint8)
        for xy, channel in ((self.target, 0), (self.point, 2)):
            i, j = np.clip(((xy + 2) * 2).astype(int), 0, 7)
            img[i, j, channel] = 255
        return img

    def _obs(self):
        return {"state": (self.target - self.point).astype(np.float32), "images/front": self._image()}

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.target = self.np_random.uniform(-1.8, 1.8, 2).astype(np.float32)
        self.point = np.zeros(2, np.float32)
        return self._obs(), {}

    def step(self, action):
        self.point = self.point + 0.1 * np.clip(np.asarray(action, np.float32), -1, 1)
        success = bool(np.linalg.norm(self.target - self.point) < 0.05)
        return self._obs(), float(success), success, False, {"success": success}

    def render(self):
        return self._image()

    def hold_action(self, obs=None):
        return np.zeros(2, np.float32)  # a delta action: the hold is standing still


gym.register(ENV_ID, entry_point=f"{__name__}:TinyReachEnv", max_episode_steps=12)


@dataclass
class Config:
    n_obs_steps: int = 2
    horizon: int = 8
    n_action_steps: int = 4
    features: dict = field(default_factory=lambda: {
        "state": {"shape": [2], "dtype": "float32"},
        "images/front": {"shape": [8, 8, 3], "dtype": "uint8"},
        "action": {"shape": [2], "dtype": "float32"},
    })


class PlanningPolicy:
    """Plans straight to the target with seeded sampling noise (like a diffusion policy)."""

    input_keys = ["state", "images/front"]
    action_dim = 2
    uses_language = False

    def __init__(self, noise=0.02):
        self.config = Config()
        self.noise = noise
        self.calls = 0

    def reset(self):
        pass

    def make_action_source(self, device="cpu"):
        return None  # the standard PolicySource

    def predict_action_chunk(self, obs, generator=None):
        self.calls += 1
        assert obs["state"].shape == (1, 2, 2) and obs["images/front"].shape == (1, 2, 8, 8, 3)
        rel = obs["state"][0, -1].clone()
        actions = []
        for _ in range(self.config.horizon):
            a = torch.clamp(rel / 0.1, -1, 1)
            rel -= 0.1 * a
            actions.append(a)
        chunk = torch.stack(actions)
        chunk += self.noise * torch.randn(chunk.shape, generator=generator)
        return chunk[None]


def fake_load(path):
    return PlanningPolicy(**json.loads((path / "config.json").read_text()))


def _patch_load_in_worker():
    robolearn.policies.load = fake_load


def test_evaluate_fields_seeds_and_json():
    policy = PlanningPolicy()
    result = evaluate(policy, ENV_ID, episodes=6, seed=100, progress=False)
    assert result.n_episodes == 6 and result.env_id == ENV_ID
    assert [e["seed"] for e in result.episodes] == list(range(100, 106))
    successes = sum(e["success"] for e in result.episodes)
    assert 0 < successes < 6  # the seeded targets give both outcomes
    assert result.success_rate == successes / 6
    assert result.ci95 == wilson_interval(successes, 6)
    assert result.mean_length == pytest.approx(np.mean([e["length"] for e in result.episodes]))
    assert all(e["length"] == 12 for e in result.episodes if not e["success"])
    assert result.video_path is None
    report = json.loads(json.dumps(result.to_json()))
    assert {"success_rate", "ci95", "n_episodes", "mean_length", "episodes", "video_path"} <= set(report)
    assert set(report["episodes"][0]) >= {"seed", "success", "length"}
    assert report["ci95"] == list(result.ci95)
    # Same seeds, same results (env and policy sampling are both seeded per episode).
    again = evaluate(policy, ENV_ID, episodes=6, seed=100, progress=True)
    assert again.episodes == result.episodes


def test_evaluate_max_steps_caps_episodes():
    result = evaluate(PlanningPolicy(), ENV_ID, episodes=3, max_steps=2, progress=False)
    assert [e["length"] for e in result.episodes] == [2, 2, 2]


def test_evaluate_writes_tiled_video(tmp_path):
    path = tmp_path / "videos" / "rollouts.mp4"
    result = evaluate(PlanningPolicy(), ENV_ID, episodes=5, video_path=path, video_episodes=3, progress=False)
    assert result.video_path == str(path) and path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["rollouts.mp4"]  # no temp file left
    reader = imageio.get_reader(path)
    frames = [f for f in reader]
    reader.close()
    assert len(frames) == max(e["length"] for e in result.episodes[:3]) + 1
    h, w = frames[0].shape[:2]
    assert h % 2 == 0 and w % 2 == 0 and (h, w) == (2 * (96 + 6), 2 * 96)
    bar = frames[-1][96 + 3, 48].astype(int)  # middle of episode 0's bar
    green = result.episodes[0]["success"]
    assert (bar[1] > bar[0] + 80) if green else (bar[0] > bar[1] + 80)


def test_evaluate_writes_one_video_per_filmed_episode(tmp_path):
    path = tmp_path / "eval" / "rollouts.mp4"
    result = evaluate(PlanningPolicy(), ENV_ID, episodes=4, video_path=path, video_episodes=2, progress=False,
                      episode_video_dir=tmp_path / "eval" / "rollouts")
    assert sorted(p.name for p in (tmp_path / "eval" / "rollouts").iterdir()) == ["episode_0.mp4", "episode_1.mp4"]
    assert [e.get("video") for e in result.episodes] == ["rollouts/episode_0.mp4", "rollouts/episode_1.mp4", None, None]
    for e in result.episodes[:2]:
        reader = imageio.get_reader(path.parent / e["video"])
        frames = [f for f in reader]
        reader.close()
        assert len(frames) == e["length"] + 1  # the reset frame, then one per step
        assert frames[0].shape[:2] == (8, 8)


def test_write_video_pads_odd_sizes_and_checks_frames(tmp_path):
    frames = [np.full((33, 47, 3), i * 10, np.uint8) for i in range(9)]
    path = write_video(tmp_path / "odd.mp4", frames, fps=5)
    reader = imageio.get_reader(path)
    decoded = [f for f in reader]
    reader.close()
    assert len(decoded) == 9 and decoded[0].shape == (34, 48, 3)
    assert abs(int(decoded[4][16, 20, 0]) - 40) <= 3
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "bad.mp4", [np.zeros((8, 8, 3), np.float32)], fps=5)
    with pytest.raises(ValueError, match="no frames"):
        write_video(tmp_path / "empty.mp4", [], fps=5)
    assert not (tmp_path / "bad.mp4").exists()


def test_tile_episodes_holds_last_frame_and_labels():
    a = [np.full((8, 8, 3), 10, np.uint8)] * 3
    b = [np.full((8, 8, 3), 200, np.uint8)] * 5
    tiled = tile_episodes([a, b], [True, False], min_size=16, bar=2)
    assert len(tiled) == 5 and tiled[0].shape == (18, 32, 3)
    assert tiled[4][0, 0, 0] == 10 and tiled[4][0, 16, 0] == 200
    assert tiled[0][17, 0].tolist() == [40, 200, 60] and tiled[0][17, 16].tolist() == [220, 40, 40]


def test_incompatible_policy_is_rejected(monkeypatch):
    def refuse(policy, observation_space, action_space):
        assert "images/front" in observation_space.spaces and action_space.shape == (2,)
        raise ValueError("Observation key 'images/wrist' expected")

    monkeypatch.setattr(robolearn.policies, "check_compatible", refuse, raising=False)
    with pytest.raises(ValueError, match="images/wrist"):
        evaluate(PlanningPolicy(), ENV_ID, episodes=1, progress=False)


def test_evaluate_from_checkpoint_path(tmp_path, monkeypatch):
    (tmp_path / "config.json").write_text(json.dumps({"noise": 0.02}))
    monkeypatch.setattr(robolearn.policies, "load", fake_load, raising=False)
    from_path = evaluate(str(tmp_path), ENV_ID, episodes=3, progress=False)
    from_object = evaluate(PlanningPolicy(), ENV_ID, episodes=3, progress=False)
    assert from_path.episodes == from_object.episodes
    assert from_path.checkpoint == str(tmp_path)


def test_workers_need_a_checkpoint_path():
    with pytest.raises(ValueError, match="checkpoint directory"):
        evaluate(PlanningPolicy(), ENV_ID, episodes=2, workers=2, progress=False)


@pytest.mark.slow
def test_ray_workers_give_identical_results(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    (tmp_path / "config.json").write_text(json.dumps({"noise": 0.02}))
    monkeypatch.setattr(robolearn.policies, "load", fake_load, raising=False)
    sequential = evaluate(str(tmp_path), ENV_ID, episodes=6, seed=7, video_path=tmp_path / "a.mp4",
                          video_episodes=2, progress=False)
    # Workers import this module (for the hook and the env's entry point) from the repo root.
    root = str(Path(__file__).resolve().parents[2])
    ray.init(num_cpus=2, object_store_memory=200 * 1024**2, include_dashboard=False,
             runtime_env={"worker_process_setup_hook": _patch_load_in_worker,
                          "env_vars": {"PYTHONPATH": root}})
    try:
        parallel = evaluate(str(tmp_path), ENV_ID, episodes=6, seed=7, video_path=tmp_path / "b.mp4",
                            video_episodes=2, progress=False, workers=2)
    finally:
        ray.shutdown()
    assert parallel.episodes == sequential.episodes
    assert parallel.workers == 2
    a, b = imageio.get_reader(tmp_path / "a.mp4"), imageio.get_reader(tmp_path / "b.mp4")
    assert a.count_frames() == b.count_frames()
    a.close(), b.close()


def test_simulated_latency_is_applied_and_reported():
    fresh_policy, late_policy = PlanningPolicy(noise=0.0), PlanningPolicy(noise=0.0)
    fresh = evaluate(fresh_policy, ENV_ID, episodes=6, seed=100, progress=False)
    late = evaluate(late_policy, ENV_ID, episodes=6, seed=100, progress=False, latency_ticks=3)
    assert fresh.latency_ticks == 0 and late.latency_ticks == 3
    assert late.to_json()["latency_ticks"] == 3
    # Ta=4: without latency a chunk every 4 ticks; with L=3 each chunk arrives 3 ticks after its request
    # and only its last action is still fresh, so chunks are asked for every 3 ticks (holding in between)
    assert fresh_policy.calls == sum(-(-e["length"] // 4) for e in fresh.episodes)
    assert late_policy.calls >= sum(e["length"] for e in late.episodes) // 3 > fresh_policy.calls
    with pytest.raises(ValueError, match="latency_ticks must be in"):
        evaluate(PlanningPolicy(), ENV_ID, episodes=1, progress=False, latency_ticks=4)
