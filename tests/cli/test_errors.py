"""How a command ends: a user's mistake is one sentence and exit 2; a bug is its traceback, a request for a
bug report and exit 1; Ctrl-C exits 130."""

import subprocess
import sys
import textwrap

import pytest
from typer.testing import CliRunner

import robolearn.store.info
import robolearn.train.run
from robolearn.cli.main import app
from robolearn.errors import ConfigError, InvalidValueError, MissingPathError, UnknownKeyError, UserError

BUG_LINE = "please report it on the robolearn issue tracker with the command you ran"


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def one_error_line(res) -> str:
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert res.exit_code == 2, res.output
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    assert "Traceback" not in res.output and BUG_LINE not in res.output
    return lines[0]


def test_training_from_a_missing_store_is_one_sentence(tmp_path):
    line = one_error_line(run("train", "--store", "/nonexistent/store.zarr", "--out", tmp_path / "run"))
    assert "no store at /nonexistent/store.zarr" in line
    assert not (tmp_path / "run").exists()


def test_evaluating_a_missing_checkpoint_is_one_sentence():
    line = one_error_line(run("eval", "--checkpoint", "/nonexistent/run"))
    assert "no checkpoint at /nonexistent/run" in line


def test_evaluating_a_folder_that_is_not_a_checkpoint_is_one_sentence(tmp_path):
    line = one_error_line(run("eval", "--checkpoint", tmp_path))
    assert f"{tmp_path} is not a checkpoint: it has no config.json" in line


def test_a_missing_teleop_script_is_one_sentence(tmp_path):
    line = one_error_line(run("teleop", "--env", "robolearn/mujoco-reach", "--out", tmp_path / "s.zarr",
                              "--device", f"scripted:{tmp_path / 'none.json'}", "--clock", "virtual"))
    assert f"teleop script {tmp_path / 'none.json'} does not exist" in line


def test_a_bad_policy_config_value_is_one_sentence(tmp_path, make_store):
    line = one_error_line(run("train", "model.prediction_type=noise", "--store", make_store((5,)),
                              "--out", tmp_path / "run"))
    assert "prediction_type 'noise' must be 'epsilon' or 'sample'" in line


def test_a_bad_env_option_is_one_sentence(tmp_path):
    line = one_error_line(run("collect", "task=mujoco-push", "task.env_kwargs.cameras=[nope]", "--episodes", 1,
                              "--out", tmp_path / "s.zarr"))
    assert "unknown camera 'nope' in cameras; accepted values: " in line
    assert not (tmp_path / "s.zarr").exists()


def test_an_option_the_env_does_not_take_is_one_sentence(tmp_path):
    line = one_error_line(run("collect", "task=mujoco-push", "task.env_kwargs.colour=red", "--episodes", 1,
                              "--out", tmp_path / "s.zarr"))
    assert "env 'robolearn/mujoco-push' takes no option 'colour'; accepted: image_size, cameras," in line


def test_a_diverging_run_is_one_sentence(tmp_path, make_store):
    tiny = ["model.down_dims=[16,32]", "model.vision_backbone=small", "model.image_feature_dim=16",
            "model.spatial_softmax_num_keypoints=8", "model.diffusion_step_embed_dim=16", "model.horizon=4",
            "model.n_action_steps=2", "model.crop_shape=[6,6]", "train.batch_size=4", "train.val_ratio=0",
            "train.warmup_steps=0", "train.grad_clip=0", "train.steps=20"]
    line = one_error_line(run("train", *tiny, "train.lr=1e30", "--json", "--store", make_store((6, 7)),
                              "--out", tmp_path / "run"))
    assert "loss became" in line and "lower train.lr" in line


@pytest.mark.parametrize("exc", [ValueError("bad value"), KeyError("key"), RuntimeError("broken"),
                                 ZeroDivisionError("division by zero"), FileNotFoundError("/internal/file")])
def test_an_internal_error_prints_its_traceback_and_asks_for_a_bug_report(monkeypatch, exc):
    def broken(path):
        raise exc

    monkeypatch.setattr(robolearn.store.info, "store_info", broken)
    res = run("data", "info", "/any/store.zarr")
    assert res.exit_code == 1, res.output
    assert "Traceback (most recent call last)" in res.output and "in broken" in res.output
    assert f"{type(exc).__name__}: " in res.output
    assert BUG_LINE in res.output.splitlines()[-1]
    assert "error: " not in res.output


def test_a_bug_in_training_is_not_reported_as_a_user_mistake(monkeypatch, tmp_path):
    def broken(cfg, store, out, **kwargs):
        return {}["steps"]  # a KeyError inside the library

    monkeypatch.setattr(robolearn.train.run, "train_policy", broken)
    res = run("train", "--store", "/some/store.zarr", "--out", tmp_path / "run")
    assert res.exit_code == 1 and "KeyError: 'steps'" in res.output and BUG_LINE in res.output


def test_ctrl_c_exits_130(monkeypatch):
    def interrupted(path):
        raise KeyboardInterrupt

    monkeypatch.setattr(robolearn.store.info, "store_info", interrupted)
    res = run("data", "info", "/any/store.zarr")
    assert res.exit_code == 130 and "Traceback" not in res.output


def test_robolearn_debug_shows_the_traceback_of_a_user_error(monkeypatch):
    monkeypatch.setenv("ROBOLEARN_DEBUG", "1")
    res = run("data", "info", "/nonexistent/store.zarr")
    assert res.exit_code != 0 and "no store at /nonexistent/store.zarr" in str(res.exception)


def test_user_errors_keep_the_builtin_type_callers_catch():
    assert issubclass(InvalidValueError, ValueError) and issubclass(ConfigError, ValueError)
    assert issubclass(MissingPathError, FileNotFoundError) and issubclass(UnknownKeyError, KeyError)
    assert str(UnknownKeyError("no key 'x' in the store")) == "no key 'x' in the store"  # no KeyError quotes
    from robolearn.env.registry import EnvNotFoundError
    from robolearn.store import StoreError
    for cls in (StoreError, ConfigError, EnvNotFoundError):
        assert issubclass(cls, UserError)
    assert issubclass(StoreError, RuntimeError) and issubclass(EnvNotFoundError, LookupError)


def test_console_script_reports_a_bug_with_its_traceback_on_stderr():
    code = textwrap.dedent("""
        import sys
        import robolearn.store.info
        robolearn.store.info.store_info = lambda path: 1 / 0
        from robolearn.cli.main import main
        sys.argv = ["robolearn", "data", "info", "/any/store.zarr"]
        main()
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr and "ZeroDivisionError" in proc.stderr
    assert BUG_LINE in proc.stderr.splitlines()[-1]
