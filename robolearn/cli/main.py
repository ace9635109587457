"""The `robolearn` command. Each subcommand parses its config and calls the library: no logic here."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import typer

from robolearn.cli.data import app as data_app
from robolearn.cli import live_options
from robolearn.cli.errors import friendly
from robolearn.cli.hardware import register as register_hardware
from robolearn.cli.record import register as register_record

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Record demonstrations, train visuomotor policies, evaluate and deploy them.")
app.add_typer(data_app, name="data")
register_hardware(app)  # find-port, find-cameras, setup-motors, calibrate, doctor (robolearn-hardware)
register_record(app)  # record (alias teleop), replay

OVERRIDES = typer.Argument(None, help="Presets and overrides: policy=diffusion task=mujoco-push train.steps=2000")
MAX_GUIDANCE = typer.Option(None, "--max-guidance", help="RTC: the clip on the guidance weight (beta, a number > 0; "
                                                         "default 5; a step finer than 1/beta may go up to 1/dtau).")
INFERENCE_STEPS = typer.Option(None, "--inference-steps", help="Denoising/integration steps per chunk instead of "
                                                               "the checkpoint's num_inference_steps.")
RTC_VJP_STEPS = typer.Option("0", "--rtc-vjp-steps", help="RTC: denoising steps guided through the denoiser's VJP "
                                                          "(an integer >= 0, each about one more forward pass; "
                                                          "'all': the paper's; default 0, ~free).")


def _emit(obj: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(obj))
    else:
        from rich import print_json

        print_json(data=obj)


def _abs(path) -> str:
    return str(path) if "://" in str(path) else str(Path(path).resolve())


@app.command()
@friendly
def envs(as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")):
    """List the registered environments."""
    from robolearn.env.registry import describe, env_ids, load_env_plugins

    plugins = load_env_plugins()
    out = {"envs": [describe(i) for i in env_ids()],
           "unavailable": {k: str(v) for k, v in plugins.items() if isinstance(v, Exception)}}
    if as_json:
        print(json.dumps(out))
    else:
        for e in out["envs"]:
            typer.echo(f"{e['id']:40s} family={e['family']}")
        for fam, why in out["unavailable"].items():
            typer.echo(f"({fam} unavailable: {why})")


@app.command()
@friendly
def collect(
    overrides: Optional[list[str]] = OVERRIDES,
    env: Optional[str] = typer.Option(None, "--env", help="Env id (default: the task preset's)."),
    episodes: Optional[int] = typer.Option(None, "--episodes", "-n", help="Episodes to write (per env with --recipe)."),
    out: Path = typer.Option(..., "--out", "-o", help="Store path to create (a new path or an empty folder)."),
    resume: bool = typer.Option(False, "--resume", help="Append to the robolearn store at OUT (same features)."),
    overwrite: bool = typer.Option(False, "--overwrite",
                                   help="Replace the robolearn store at OUT (only its own files are deleted)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Episode i is reset with seed + i."),
    only_success: Optional[bool] = typer.Option(None, "--only-success/--all", help="Keep only expert successes."),
    workers: int = typer.Option(1, "--workers", "-k", help="Ray actors running the expert (1: in process)."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster address (default: a local Ray)."),
    recipe: Optional[str] = typer.Option(None, "--recipe", help="datasets/<name>/recipe.yaml, or its name."),
    record_commanded: bool = typer.Option(False, "--record-commanded",
                                          help="Also store what the expert asked (action_commanded) beside the "
                                               "action the env applied (a new store only)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON summary line."),
):
    """Run a scripted expert and record its episodes into a zarr store.

    OUT must be new or an empty folder; an existing store is appended to only with --resume (what collect
    did silently before) and replaced only with --overwrite. Anything else at OUT is refused."""
    from robolearn.experiment import build_config
    from robolearn.record.collect import collect as run_collect
    from robolearn.record.collect import collect_recipe

    if recipe:
        _emit(collect_recipe(recipe, out, workers=workers, progress=not as_json, address=address,
                             episodes_per_env=episodes, resume=resume, overwrite=overwrite), as_json)
        return
    cfg = build_config(overrides or [])
    summary = run_collect(env or cfg.task.env, out, episodes or cfg.collect.episodes,
                          seed=cfg.collect.seed if seed is None else seed, env_kwargs=cfg.task.env_kwargs,
                          max_steps=cfg.task.max_steps,
                          only_success=cfg.collect.only_success if only_success is None else only_success,
                          progress=not as_json, workers=workers, address=address, resume=resume,
                          overwrite=overwrite, record_commanded=record_commanded)
    _emit(summary, as_json)


@app.command()
@friendly
def train(
    overrides: Optional[list[str]] = OVERRIDES,
    store: str = typer.Option(..., "--store", "-s", help="Store path or URL to train from."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory (becomes the checkpoint): a new path or an "
                                                       "empty folder."),
    resume: bool = typer.Option(False, "--resume", help="Continue exactly from OUT/checkpoints/last."),
    overwrite: bool = typer.Option(False, "--overwrite",
                                   help="Replace the robolearn run at OUT (only a run's own files are deleted)."),
    stop_at: Optional[int] = typer.Option(None, "--stop-at", help="End this session after that step (resumable)."),
    workers: int = typer.Option(1, "--workers", "-k",
                                help="Data-parallel Ray Train workers (DDP); train.batch_size is the global batch."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster address (default: a local Ray)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON summary line."),
):
    """Train a policy on a store; writes model.safetensors, config.json, stats.json and a training curve.

    An OUT that holds a run is continued only with --resume and replaced only with --overwrite (a rerun used
    to write over it); anything else at OUT is refused."""
    from robolearn.experiment import build_config

    cfg = build_config(overrides or [])
    if workers == 1 and address is None:
        from robolearn.train.run import train_policy

        summary = train_policy(cfg, store, out, progress=not as_json, resume=resume, stop_at=stop_at,
                               overwrite=overwrite)
    else:
        from robolearn.train.distributed import train_distributed

        summary = train_distributed(cfg, store, out, workers, address=address, progress=not as_json, resume=resume,
                                    stop_at=stop_at, overwrite=overwrite)
    _emit(summary, as_json)


@app.command("eval")
@friendly
def evaluate(
    overrides: Optional[list[str]] = OVERRIDES,
    checkpoint: Path = typer.Option(..., "--checkpoint", "-c", help="Run directory written by `robolearn train`."),
    env: Optional[str] = typer.Option(None, "--env", help="Env id (default: the one the policy was trained on)."),
    episodes: Optional[int] = typer.Option(None, "--episodes", "-n", help="Rollouts."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Episode i is reset with seed + i."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Ray actors for rollouts."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster address (default: a local Ray)."),
    latency_ticks: Optional[int] = typer.Option(
        None, "--latency-ticks", help="Simulated inference latency in control ticks (eval.latency_ticks)."),
    compile: bool = typer.Option(False, "--compile", help="Compile the policy for inference first (eval.compile)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o",
                                       help="Folder for eval.json, rollouts.mp4 and rollouts/episode_<i>.mp4 "
                                            "(default CHECKPOINT/eval)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier evaluation in that folder."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON summary line."),
):
    """Roll a trained policy out in its env: success rate with a Wilson 95% interval, and an mp4.

    An earlier evaluation in the output folder is replaced only with --overwrite (a rerun used to write over
    it); anything else there is refused."""
    from robolearn.experiment import build_config, model_overrides
    from robolearn.eval.run import evaluate_checkpoint

    extra = [f"eval.latency_ticks={latency_ticks}"] if latency_ticks is not None else []
    cfg = build_config([*(overrides or []), *extra, *(["eval.compile=true"] if compile else [])])
    result = evaluate_checkpoint(checkpoint, cfg, env=env, episodes=episodes, seed=seed, workers=workers, out=out,
                                 progress=not as_json, address=address, overwrite=overwrite,
                                 model_overrides=model_overrides(overrides or [], cfg))
    _emit(result, as_json)


@app.command()
@friendly
def deploy(
    overrides: Optional[list[str]] = OVERRIDES,
    checkpoint: Path = typer.Option(..., "--checkpoint", "-c", help="Run directory written by `robolearn train`."),
    env: Optional[str] = typer.Option(None, "--env", help="Env id (default: the one the policy was trained on)."),
    robot: Optional[str] = typer.Option(None, "--robot", help="Robot config (configs/robot/<name> or a YAML file): "
                                                              "deploy on the robot, with its safety preset; needs "
                                                              "--realtime."),
    fps: Optional[float] = typer.Option(None, "--fps", help="Control rate in Hz (default: the env's control_hz)."),
    inference: str = typer.Option("sync", "--inference", help="sync (inside the tick) | async (in a backend)."),
    join: str = typer.Option("naive", "--join", help="naive | ensemble | rtc (Real-Time Chunking, async only)."),
    max_guidance: Optional[float] = MAX_GUIDANCE,
    rtc_vjp_steps: str = RTC_VJP_STEPS,
    inference_steps: Optional[int] = INFERENCE_STEPS,
    backend: Optional[str] = typer.Option(
        None, "--backend", help="async: thread | process | server | sim:D (D ticks of virtual latency; default: "
                                "thread with --realtime, else sim:0)."),
    connect: Optional[str] = typer.Option(None, "--connect", help="--backend server: tcp://host:port of "
                                                                  "`robolearn serve` (default 127.0.0.1:5555)."),
    key_file: Optional[Path] = typer.Option(None, "--key-file", help="--backend server: the HMAC key file shared "
                                                                     "with the server (default: serve's)."),
    realtime: bool = typer.Option(False, "--realtime", help="Step the env on the wall clock at --fps."),
    compile: bool = typer.Option(True, "--compile/--no-compile",
                                 help="Compile diffusion/flow policies (checked against eager; cached on disk)."),
    rt_priority: Optional[int] = typer.Option(None, "--rt-priority",
                                              help="--backend process: run the loop at SCHED_FIFO priority N (1..99)."),
    require_rt: bool = typer.Option(False, "--require-rt", help="Fail when --rt-priority is not permitted."),
    episodes: int = typer.Option(10, "--episodes", "-n", help="Episodes to run."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Episode i is reset with seed + i (default eval.seed)."),
    safety: Optional[str] = typer.Option(None, "--safety",
                                         help="configs/safety/<name>.yaml (default: the env's preset, else default)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Record the episodes into this store (a new path "
                                                                 "or an empty folder)."),
    resume: bool = typer.Option(False, "--resume", help="Append to the robolearn store at OUT (same features)."),
    overwrite: bool = typer.Option(False, "--overwrite",
                                   help="Replace the robolearn store at OUT (only its own files are deleted)."),
    view: bool = live_options.VIEW,
    view_host: str = live_options.VIEW_HOST,
    view_port: int = live_options.VIEW_PORT,
    allow_remote: bool = live_options.ALLOW_REMOTE,
    view_key_file: Optional[Path] = live_options.VIEW_KEY_FILE,
    teleop: Optional[str] = typer.Option(
        None, "--teleop", help="A device a person can take over with: keyboard | mouse | scripted:<script.json>; "
                               "with --robot the config's leader or a device id (spacemouse, gamepad, "
                               "terminal-teleop, phone: the config's robot.teleop entry). Taken-over steps are marked "
                               "'intervention' in --out."),
    takeover_key: Optional[str] = typer.Option(
        None, "--takeover-key", help="The device's key that hands control to it and back (default: takeover -- t in "
                                     "the keyboard window or a terminal, L1 on a gamepad -- or the robot config's "
                                     "takeover_key for the device, e.g. save: a SpaceMouse's right button)."),
    takeover_tolerance: float = typer.Option(0.05, "--takeover-tolerance",
                                             help="Hand over once the device agrees with the robot's target within "
                                                  "this fraction of each action axis's range."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON summary line."),
):
    """Run a trained policy in the deploy loop: the policy computes while the env ticks, every action passes the
    safety filter; success rate with a Wilson 95% interval, holds, skipped/late counts and latency p50/p99."""
    from robolearn.view.live import LiveViewConfig

    live = LiveViewConfig.from_flags(view, view_host, view_port, allow_remote, view_key_file)
    from robolearn.deploy import DeployAborted, DeployConfig, deploy_checkpoint
    from robolearn.experiment import build_config, model_overrides
    from robolearn.policies.rtc import parse_vjp_steps

    cfg = build_config(overrides or [])
    dcfg = DeployConfig(inference=inference, join=join, max_guidance=max_guidance,
                        rtc_vjp_steps=parse_vjp_steps(rtc_vjp_steps), inference_steps=inference_steps,
                        backend=backend, connect=connect,
                        key_file=None if key_file is None else str(key_file), realtime=realtime, fps=fps,
                        episodes=episodes, seed=cfg.eval.seed if seed is None else seed, safety=safety,
                        max_steps=cfg.task.max_steps, threads=cfg.eval.threads, compile=compile,
                        rt_priority=rt_priority, require_rt=require_rt, robot=robot, teleop=teleop,
                        takeover_key=takeover_key, takeover_tolerance=takeover_tolerance,
                        model_overrides=model_overrides(overrides or [], cfg))
    try:
        summary = deploy_checkpoint(checkpoint, dcfg, env=env, env_kwargs=cfg.task.env_kwargs, out=out,
                                    resume=resume, overwrite=overwrite, progress=not as_json, view=live)
    except DeployAborted as e:
        _emit(e.summary, as_json)  # what ran, then the one-sentence error
        raise
    _emit(summary, as_json)


@app.command()
@friendly
def serve(
    checkpoint: Path = typer.Option(..., "--checkpoint", "-c", help="Run directory written by `robolearn train`."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind: loopback unless --allow-remote."),
    port: int = typer.Option(5555, "--port", "-p", help="TCP port (0: a free one; the address is printed)."),
    key_file: Optional[Path] = typer.Option(
        None, "--key-file", help="HMAC key shared with the clients (default ~/.config/robolearn/policy-server.key; "
                                 "created with mode 0600 if missing, never overwritten)."),
    allow_remote: bool = typer.Option(False, "--allow-remote",
                                      help="Permit a --host that is not loopback (frames are signed, not encrypted)."),
    device: str = typer.Option("cpu", "--device", help="Torch device the policy runs on."),
    max_guidance: Optional[float] = MAX_GUIDANCE,
    rtc_vjp_steps: str = RTC_VJP_STEPS,
    inference_steps: Optional[int] = INFERENCE_STEPS,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON summary line when stopped."),
):
    """Serve a trained policy's chunks to robots (`deploy --backend server`) over ZeroMQ until Ctrl-C/SIGTERM:
    msgpack frames with raw arrays, HMAC-SHA256 on every frame, one policy state per client; the server guides
    the RTC prefixes its clients send (`--max-guidance`, `--rtc-vjp-steps`)."""
    from robolearn.policies.rtc import parse_vjp_steps
    from robolearn.runtime.server import serve_checkpoint

    summary = serve_checkpoint(checkpoint, host, port, key_file=key_file, allow_remote=allow_remote, device=device,
                               max_guidance=max_guidance, vjp_steps=parse_vjp_steps(rtc_vjp_steps),
                               inference_steps=inference_steps, announce=lambda line: typer.echo(line, err=True))
    _emit(summary, as_json)


@app.command()
@friendly
def view(
    path: str = typer.Argument(..., help="A store (local path or s3:// URL) or a run/evaluation folder."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind: loopback unless --allow-remote."),
    port: int = typer.Option(8765, "--port", "-p", help="TCP port (0: a free one; the URL is printed)."),
    allow_remote: bool = typer.Option(False, "--allow-remote",
                                      help="Permit a --host that is not loopback; every request then needs the "
                                           "token of --key-file, printed in the URL (traffic is not encrypted)."),
    key_file: Optional[Path] = typer.Option(None, "--key-file", help="--allow-remote: the token's key file (mode "
                                            "0600, created if missing; default ~/.config/robolearn/view.key)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON summary line when stopped."),
):
    """Look at a store or a run in the browser: episode table, cameras and streams on one cursor, training
    curves and rollout videos. Serves until Ctrl-C/SIGTERM; everything is served locally (no network)."""
    from robolearn.view import serve

    summary = serve(path, host, port, allow_remote=allow_remote, key_file=key_file,
                    announce=lambda line: typer.echo(line, err=True))
    _emit(summary, as_json)


@app.command()
@friendly
def demo(
    overrides: Optional[list[str]] = OVERRIDES,
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="Folder for the store, run and videos."),
    quick: bool = typer.Option(False, "--quick", help="Small budget (< 10 min on 2 cores)."),
    as_json: bool = typer.Option(False, "--json", help="Print one final JSON line."),
):
    """collect -> train -> eval on the native MuJoCo push task, all in one folder."""
    from robolearn.demo import run_demo
    from robolearn.experiment import build_config

    cfg = build_config([f"demo={'quick' if quick else 'default'}", *(overrides or [])])
    result = run_demo(cfg, out, progress=not as_json)
    if as_json:
        print(json.dumps(result))
    else:
        _emit(result, False)


def main() -> None:
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
    app()


if __name__ == "__main__":
    main()
