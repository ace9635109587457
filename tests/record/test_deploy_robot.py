"""`robolearn deploy --robot CONFIG`: a tiny policy trained on demos recorded on the emulated SO-101 runs in the
deploy loop on the same emulated follower (RobotEnv from the config, the config's safety preset)."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

pytest.importorskip("robolearn_hardware")

from tests.cli.test_smoke import last_json, run  # noqa: E402
from tests.hardware.conftest import emulator  # noqa: E402,F401 - the fixture
from tests.record.robot_rigs import so101_rig  # noqa: E402

TINY = ["policy=flow", "model.down_dims=[16,32]", "model.horizon=8", "model.n_action_steps=4",
        "model.num_inference_steps=3", "train.steps=4", "train.batch_size=8", "train.val_ratio=0"]


@pytest.mark.slow  # ~40 s on a loaded 2-core machine: record, train, deploy
def test_deploy_on_the_emulated_so101(emulator, tmp_path):  # noqa: F811
    rig = so101_rig(emulator, tmp_path, episode_s=0.4, reset_s=0.0)
    cfg = yaml.safe_load(rig.config.read_text())
    cfg["robot"]["cameras"] = []  # state only: the policy trains in seconds
    rig.config.write_text(yaml.safe_dump(cfg))
    store, ckpt = tmp_path / "demos.zarr", tmp_path / "run"
    run("record", "--robot", rig.config, "--out", store, "--episodes", 2, "--json")
    run("train", *TINY, "--store", store, "--out", ckpt, "--json")
    res = run("deploy", "--no-compile", "--checkpoint", ckpt, "--robot", rig.config, "--realtime", "--episodes", 1,
              "task.max_steps=12", "--out", tmp_path / "deployed.zarr", "--json")
    summary = last_json(res.output)
    assert summary["env"] == "robot:robot" and summary["safety"] == "so101" and summary["fps"] == 30.0
    assert summary["per_episode"][0]["steps"] == 12 and summary["safety_holds"] == 0
    from robolearn.store import open_store

    deployed = open_store(tmp_path / "deployed.zarr").episode(0)
    sent = deployed["action"]
    assert sent.shape == (12, 6) and np.all(np.isfinite(sent))
    # configs/safety/so101.yaml: 10 degrees per tick, plus the servo's rounding to its 4096 ticks per turn
    assert np.all(np.abs(np.diff(sent, axis=0)) <= 10.0 + 360 / 4095)
    goal = (rig.follower.state(2)["registers"]["Goal_Position"] - 2048) * 360 / 4095
    assert goal == pytest.approx(float(sent[-1][1]), abs=0.1)  # the last action reached the servo


def test_deploy_robot_errors_are_one_sentence(tmp_path):
    bad = run("deploy", "--checkpoint", tmp_path, "--robot", "so101-emulated", ok=False)
    assert bad.exit_code == 2 and "--robot runs on the wall clock: add --realtime" in bad.output
    bad = run("deploy", "--checkpoint", tmp_path, "--robot", "so101-emulated", "--env", "robolearn/mujoco-reach",
              "--realtime", ok=False)
    assert bad.exit_code == 2 and "name one of --env robolearn/mujoco-reach and --robot so101-emulated" in bad.output
