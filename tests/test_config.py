import pytest

from robolearn.config import ConfigError
from robolearn.experiment import ExperimentConfig, build_config


def test_presets_and_overrides_are_typed():
    cfg = build_config(["task=mujoco-push", "train.steps=123", "train.lr=0.001", "eval.episodes=3",
                        "task.env_kwargs.image_size=[32,32]"])
    assert isinstance(cfg, ExperimentConfig)
    assert cfg.task.env == "robolearn/mujoco-push"
    assert cfg.train.steps == 123 and cfg.train.lr == 0.001 and cfg.eval.episodes == 3
    assert cfg.task.env_kwargs["image_size"] == [32, 32]


def test_float_in_exponent_notation_without_a_dot():
    assert build_config(["train.lr=1e-4"]).train.lr == 1e-4  # YAML 1.1 reads "1e-4" as a string


@pytest.mark.parametrize("args,msg", [
    (["train.stpes=5"], "unknown config key 'train.stpes'"),
    (["train.steps=many"], "train.steps: expected int"),
    (["train.lr=fast"], "train.lr: expected float, got 'fast'"),
    (["task=nope"], "no task preset 'nope'"),
    (["steps"], "not of the form key=value"),
])
def test_bad_config_is_a_clear_error(args, msg):
    with pytest.raises(ConfigError, match=msg):
        build_config(args)
