"""Gymnasium's own way in: `import robolearn_envs` registers every id `robolearn envs` lists, lazily, and
gymnasium's module-prefix form and `make_vec` work in a plain Python session. Each test runs in a fresh
interpreter, so nothing imported by pytest or another test hides a missing import."""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SIMULATORS = ("metaworld", "robosuite", "gym_pusht", "pygame", "pymunk")
needs = {name: pytest.mark.skipif(importlib.util.find_spec(mod) is None, reason=f"needs {mod}")
         for name, mod in (("metaworld", "metaworld"), ("pusht", "gym_pusht"))}


def python(code: str) -> dict:
    """Run `code` in a fresh interpreter; it prints one JSON line last."""
    env = {**os.environ, "MUJOCO_GL": "egl", "PYOPENGL_PLATFORM": "egl", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=Path(__file__).parent,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the interpreter and any vector-env workers it started
        proc.communicate()
        raise
    assert proc.returncode == 0, stderr
    return json.loads(stdout.strip().splitlines()[-1])


def test_import_registers_every_listed_id_and_no_simulator():
    out = python(f"""
        import json, sys
        import gymnasium as gym
        before = set(gym.registry)
        import robolearn_envs
        ids = sorted(set(gym.registry) - before)
        loaded = [m for m in {SIMULATORS!r} if m in sys.modules]
        env_modules = [m for m in sys.modules if m.startswith("robolearn_envs.") and m.endswith(".env")
                       and not m.startswith("robolearn_envs.mujoco")]
        print(json.dumps({{"ids": ids, "loaded": loaded, "env_modules": env_modules,
                          "families": sorted(robolearn_envs.FAMILIES),
                          "unavailable": sorted(robolearn_envs.UNAVAILABLE)}}))
    """)
    assert out["loaded"] == [] and out["env_modules"] == []
    exe = Path(sys.executable).with_name("robolearn")
    listed = subprocess.run([str(exe), "envs", "--json"], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "MUJOCO_GL": "egl"})
    assert listed.returncode == 0, listed.stderr
    cli = json.loads(listed.stdout)
    # the CLI also lists the families of other distributions (robolearn-hardware's twins)
    assert sorted(e["id"] for e in cli["envs"] if e["family"] in out["families"]) == out["ids"]
    assert sorted(set(cli["unavailable"]) & set(out["families"])) == out["unavailable"]
    assert "robolearn/mujoco-reach" in out["ids"] and all(i.startswith("robolearn/") for i in out["ids"])
    for family, some_id in (("metaworld", "robolearn/metaworld-reach-v3"), ("robosuite", "robolearn/robosuite-lift"),
                            ("pusht", "robolearn/pusht")):
        assert (some_id in out["ids"]) == (family not in out["unavailable"]), family


@needs["metaworld"]
@needs["pusht"]
def test_gym_make_in_a_plain_session_loads_only_the_simulator_it_needs():
    out = python(f"""
        import json, sys
        import gymnasium as gym
        import robolearn_envs
        env = gym.make("robolearn/metaworld-reach-v3", image_size=(32, 32))
        obs, info = env.reset(seed=0)
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        after_metaworld = [m for m in {SIMULATORS!r} if m in sys.modules]
        env.close()
        pusht = gym.make("robolearn/pusht", obs_type="environment_state_agent_pos")
        pusht.reset(seed=0)
        pusht.close()
        print(json.dumps({{"keys": sorted(obs), "state": list(obs["state"].shape), "limit": env.spec.max_episode_steps,
                          "after_metaworld": after_metaworld,
                          "after_pusht": [m for m in {SIMULATORS!r} if m in sys.modules]}}))
    """)
    assert out["keys"] == ["images/corner", "state"] and out["state"] == [39] and out["limit"] == 300
    assert out["after_metaworld"] == ["metaworld"]
    assert {"gym_pusht", "pymunk"} <= set(out["after_pusht"]) and "robosuite" not in out["after_pusht"]


@needs["metaworld"]
def test_module_prefix_form_works_in_a_fresh_interpreter():
    out = python("""
        import json, sys
        import gymnasium as gym
        assert "robolearn_envs" not in sys.modules
        env = gym.make("robolearn_envs:robolearn/metaworld-reach-v3", image_size=(32, 32))
        obs, info = env.reset(seed=3)
        print(json.dumps({"id": env.spec.id, "keys": sorted(obs), "task": env.unwrapped.task}))
        env.close()
    """)
    assert out == {"id": "robolearn/metaworld-reach-v3", "keys": ["images/corner", "state"], "task": "reach-v3"}


def test_make_vec_sync_and_async():
    # Async workers are spawned: forking a process that has already rendered (an EGL context) hangs the workers.
    out = python("""
        import json
        import gymnasium as gym
        import numpy as np
        import robolearn_envs
        result = {}
        for mode, env_id, kw in (("sync", "robolearn/mujoco-reach", {}),
                                 ("async", "robolearn_envs:robolearn/mujoco-reach", {"context": "spawn"})):
            envs = gym.make_vec(env_id, num_envs=2, vectorization_mode=mode, vector_kwargs=kw)
            obs, info = envs.reset(seed=[0, 1])
            obs, reward, terminated, truncated, info = envs.step(np.zeros(envs.action_space.shape, np.float32))
            result[mode] = {"shapes": {k: list(v.shape) for k, v in obs.items()}, "reward": reward.tolist(),
                            "action": list(envs.action_space.shape)}
            envs.close()
        print(json.dumps(result))
    """)
    for mode in ("sync", "async"):
        shapes = out[mode]["shapes"]
        assert shapes["state"][0] == 2 and shapes["images/front"][0] == 2 and shapes["images/front"][-1] == 3
        assert out[mode]["action"][0] == 2 and len(out[mode]["reward"]) == 2
    assert out["sync"] == out["async"]  # same seeds, same first step


def test_a_family_whose_package_is_missing_registers_nothing_and_names_the_extra():
    out = python("""
        import json, sys
        sys.modules["metaworld"] = None  # as if `robolearn-envs[metaworld]` were not installed
        import gymnasium as gym
        import robolearn_envs
        from robolearn.env import EnvNotFoundError, make_env
        try:
            make_env("robolearn/metaworld-reach-v3")
        except EnvNotFoundError as e:
            error = str(e)
        try:
            gym.make("robolearn/metaworld-reach-v3")
        except gym.error.NameNotFound as e:
            gym_error = type(e).__name__
        print(json.dumps({"metaworld_ids": [i for i in gym.registry if "metaworld" in i], "error": error,
                          "unavailable": str(robolearn_envs.UNAVAILABLE["metaworld"]), "gym_error": gym_error,
                          "mujoco": "robolearn/mujoco-reach" in gym.registry}))
    """)
    assert out["metaworld_ids"] == [] and out["mujoco"] and out["gym_error"] == "NameNotFound"
    assert "pip install robolearn-envs[metaworld]" in out["unavailable"]
    assert "'metaworld' is not available" in out["error"] and "pip install robolearn-envs[metaworld]" in out["error"]
