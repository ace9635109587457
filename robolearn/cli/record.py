"""`robolearn record` (alias `teleop`) and `robolearn replay`: recording demonstrations in sim or on a robot,
and playing a recorded episode back on one. `register(app)` adds them to the `robolearn` command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from robolearn.cli import live_options
from robolearn.cli.errors import friendly
from robolearn.errors import InvalidValueError

__all__ = ["register"]


def _emit(obj: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(obj))
    else:
        from rich import print_json

        print_json(data=obj)


def _one_target(env: Optional[str], robot: Optional[str]) -> None:
    if (env is None) == (robot is None):
        raise InvalidValueError("name exactly one of --env ID (a simulated env) and --robot CONFIG "
                                "(configs/robot/<name>.yaml or a YAML file)")


def record(
    env: Optional[str] = typer.Option(None, "--env", help="Env id, e.g. robolearn/pusht (sim)."),
    robot: Optional[str] = typer.Option(None, "--robot", help="Robot config: a name of configs/robot/ (so101, "
                                                               "koch, so101-emulated, ...) or a YAML file."),
    teleop: Optional[str] = typer.Option(
        None, "--teleop", "--device", "-d",
        help="keyboard | mouse | scripted:<script.json> | a device id (e.g. so101-leader: the robot config's "
             "leader kwargs; spacemouse, gamepad, terminal-teleop, phone: its robot.teleop entry). Default: the "
             "robot config's leader, keyboard in sim."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Store path to create (a new path or an empty "
                                                                 "folder)."),
    fps: Optional[float] = typer.Option(None, "--fps", help="Control and recording rate in Hz (default: the env's "
                                                            "control_hz, the robot config's control_fps)."),
    episodes: Optional[int] = typer.Option(None, "--episodes", "-n",
                                           help="Stop after saving this many (default: until quit)."),
    task: Optional[str] = typer.Option(None, "--task", help="The instruction stored with each episode (default: "
                                                            "the env's or the robot config's)."),
    reset_s: Optional[float] = typer.Option(None, "--reset-s", help="--robot: seconds of reset between episodes, "
                                                                    "nothing recorded (default: the config's)."),
    episode_s: Optional[float] = typer.Option(None, "--episode-s", help="--robot: seconds per episode unless an "
                                                                        "episode key ends it (default: the config's)."),
    seed: int = typer.Option(0, "--seed", help="The n-th episode (re-records excluded) is reset with seed + n."),
    clock: str = typer.Option("real", "--clock", help="--env: real (wall-clock pacing) | virtual (no sleeping: "
                                                      "scripted runs)."),
    resume: bool = typer.Option(False, "--resume", help="Append to the robolearn store at OUT (same features)."),
    overwrite: bool = typer.Option(False, "--overwrite",
                                   help="Replace the robolearn store at OUT (only its own files are deleted)."),
    no_record: bool = typer.Option(False, "--no-record", help="Run the session and write nothing (check a setup)."),
    view: bool = live_options.VIEW,
    view_host: str = live_options.VIEW_HOST,
    view_port: int = live_options.VIEW_PORT,
    allow_remote: bool = live_options.ALLOW_REMOTE,
    view_key_file: Optional[Path] = live_options.VIEW_KEY_FILE,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON summary line."),
):
    """Teleoperate an env or a robot and record the episodes you keep (keyboard/mouse: s/Enter save,
    d/Backspace discard, r re-record, q/Esc quit; a leader arm: episodes of --episode-s, Ctrl-C ends).

    On a robot every action passes the config's safety filter (action and action_commanded are stored); a
    device unplugged mid-episode ends it as 'aborted', committed with what it recorded."""
    from robolearn.view.live import LiveViewConfig

    _one_target(env, robot)
    live = LiveViewConfig.from_flags(view, view_host, view_port, allow_remote, view_key_file)
    if out is None and not no_record:
        raise InvalidValueError("name the store to write with --out STORE (or run with --no-record)")
    if env is not None:
        from robolearn.record.teleop import record_teleop

        if reset_s is not None or episode_s is not None:
            raise InvalidValueError("--reset-s and --episode-s apply to --robot; a simulated env resets at once "
                                    "and ends its episodes itself")
        summary = record_teleop(env, out, device=teleop or "keyboard", episodes=episodes, fps=fps, seed=seed,
                                clock=clock, resume=resume, overwrite=overwrite, task=task, record=not no_record,
                                view=live)
        _emit(summary, as_json)
        return
    from robolearn.devices.robot_config import load_robot_config
    from robolearn.record.robot import RecordingAborted, record_robot

    if clock != "real":
        raise InvalidValueError(f"--clock {clock} applies to --env; a robot runs on the wall clock")
    try:
        summary = record_robot(load_robot_config(robot), out, teleop=teleop, episodes=episodes, fps=fps, task=task,
                               episode_s=episode_s, reset_s=reset_s, seed=seed, resume=resume, overwrite=overwrite,
                               record=not no_record, progress=not as_json, view=live)
    except RecordingAborted as e:
        _emit(e.summary, as_json)  # what was saved, then the one-sentence error
        raise
    _emit(summary, as_json)


def replay(
    store: str = typer.Argument(..., help="The store (local path or s3:// URL)."),
    episode: int = typer.Option(..., "--episode", "-e", help="Index of the episode to play back."),
    robot: Optional[str] = typer.Option(None, "--robot", help="Robot config (configs/robot/<name> or a YAML file)."),
    env: Optional[str] = typer.Option(None, "--env", help="Env id (sim)."),
    fps: Optional[float] = typer.Option(None, "--fps", help="Playback rate in Hz (default: the store's fps)."),
    safety: Optional[str] = typer.Option(None, "--safety", help="configs/safety/<name>.yaml (default: the robot "
                                                                "config's, else default)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON summary line."),
):
    """Play a recorded episode's actions back on a robot (or in an env) at the recorded rate, every action through
    the safety filter; reports what was sent and how far it was from the recording."""
    _one_target(env, robot)
    from robolearn.record.replay import replay_episode

    _emit(replay_episode(store, episode, robot=robot, env=env, fps=fps, safety=safety), as_json)


def register(app: typer.Typer) -> None:
    """Add `record`, its alias `teleop`, and `replay` to the `robolearn` command."""
    app.command("record")(friendly(record))
    app.command("teleop", help="Alias of `robolearn record` (same flags; --device is --teleop).")(friendly(record))
    app.command("replay")(friendly(replay))
