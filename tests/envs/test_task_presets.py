"""configs/task/*.yaml: every task preset loads through build_config, names a registered env id, and its
env_kwargs make that env with the observation the preset promises."""

from __future__ import annotations

import dataclasses

import pytest

from robolearn.config import configs_dir
from robolearn.env.registry import env_ids, load_env_plugins, make_env
from robolearn.experiment import ExperimentConfig, build_config

PRESETS = sorted(p.stem for p in (configs_dir() / "task").glob("*.yaml"))


def _family_or_skip(env_id: str) -> None:
    """Skip when the env's family is installed without its simulator (its entry point recorded an error)."""
    family = env_id.split("/", 1)[1].split("-", 1)[0]
    broken = load_env_plugins().get(family)
    if isinstance(broken, Exception):
        pytest.skip(f"env family {family!r} unavailable here: {broken}")


def test_the_documented_presets_exist():
    assert {"mujoco-push", "mujoco-wipe", "mujoco-reach", "metaworld-reach", "metaworld-mt10", "robosuite-lift",
            "robosuite-stack", "pusht"} <= set(PRESETS)


@pytest.mark.parametrize("name", PRESETS)
def test_preset_loads_and_names_a_registered_env(name):
    cfg = build_config([f"task={name}"])
    assert isinstance(cfg, ExperimentConfig)
    assert cfg.task.env.startswith("robolearn/")
    _family_or_skip(cfg.task.env)
    assert cfg.task.env in env_ids(), f"{name}: {cfg.task.env} is not registered"
    # composes with a policy preset and dotted overrides, as in `robolearn train policy=diffusion task=NAME ...`
    cfg = build_config(["policy=diffusion", f"task={name}", "train.steps=7"])
    assert cfg.policy == "diffusion" and cfg.train.steps == 7 and cfg.task.env.startswith("robolearn/")


@pytest.mark.parametrize("name", PRESETS)
def test_preset_env_kwargs_make_the_env(name):
    cfg = build_config([f"task={name}"])
    _family_or_skip(cfg.task.env)
    env = make_env(cfg.task.env, **cfg.task.env_kwargs)
    try:
        obs, info = env.reset(seed=0)
        assert set(obs) == set(env.observation_space.spaces)
        assert "state" in obs and "success" in info
        kwargs = cfg.task.env_kwargs
        if "cameras" in kwargs:  # exactly the preset's cameras, at the preset's size
            images = sorted(k for k in obs if k.startswith("images/"))
            assert images == sorted(f"images/{c}" for c in kwargs["cameras"])
            for key in images:
                assert obs[key].shape == (*kwargs.get("image_size", obs[key].shape[:2]), 3)
    finally:
        env.close()


def test_robosuite_presets_render_plain():
    for name in ("robosuite-lift", "robosuite-stack"):
        cfg = build_config([f"task={name}"])
        assert cfg.task.env_kwargs["high_quality"] is False
        assert cfg.task.env_kwargs["cameras"] == ["agentview", "robot0_eye_in_hand"]


@pytest.mark.parametrize("order", ["policy_first", "task_first"])
def test_mt10_preset_is_state_only_and_language_conditioned(order):
    args = ["policy=diffusion", "task=metaworld-mt10"]
    cfg = build_config(args if order == "policy_first" else args[::-1])
    assert cfg.task.env_kwargs["cameras"] == []
    assert cfg.model["use_language"] is True
    assert cfg.model["horizon"] == 16  # the policy preset's fields survive the merge
    from robolearn.policies import POLICIES

    config_cls = POLICIES["diffusion"][0]
    assert config_cls(**cfg.model).use_language is True  # a field the policy's config accepts
    assert "use_language" in {f.name for f in dataclasses.fields(POLICIES["flow"][0])}
    assert "use_language" in {f.name for f in dataclasses.fields(POLICIES["pad"][0])}
