"""Deploying a checkpoint (what `robolearn deploy` calls): a trained policy in the deploy loop, in sim.

Modes (``DeployConfig``):

- ``inference="sync"``: the policy runs inside the tick (``InlineBackend``): the robot waits for each chunk.
  In virtual time that is the RTC paper's D = 0; with ``realtime`` a slow policy overruns ticks (counted).
- ``inference="async"``: the policy runs in a backend while the loop ticks. ``backend="sim:D"``: virtual
  time, each chunk delivered exactly D ticks after its observation (reproducible per seed); ``"thread"``:
  a worker thread, with ``realtime`` (the env stepped by a ``RealClock`` at ``fps``).
  ``"server"``: a policy server (`robolearn serve`) at ``connect``, with ``realtime``. ``"process"``: a child
  process that loads the checkpoint itself (`robolearn.runtime.process_backend`), with ``realtime``: the loop
  pinned to one core and the child to the others, the GC frozen after warm-up, SCHED_FIFO with
  ``rt_priority`` (a note when not permitted, refused with ``require_rt``).
- ``join``: ``naive`` (switch), ``ensemble`` (ACT's temporal ensembling, a request every tick) or ``rtc``
  (Real-Time Chunking: the flow/diffusion policy inpaints the frozen prefix; async only). The policy's
  ``rtc_variant`` says how: guidance at inference, or, for a checkpoint trained with
  ``rtc_training_max_delay``, the prefix fixed as the input it was trained on (no guidance).

Every action passes the safety filter (``configs/safety/<preset>.yaml``; default: the env's own preset when
one is named after it, else ``default``). With ``out`` the episodes are recorded (``action`` sent,
``action_commanded``, ``timing/<stage>``) through the output guard (``resume``/``overwrite``).

Example::

    summary = deploy_checkpoint("runs/reach", DeployConfig(inference="async", backend="sim:2", episodes=10))
    summary["success_rate"], summary["ci95"], summary["latency_ms"]["obs_to_action_p99"]
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from robolearn.devices.protocols import TAKEOVER
from robolearn.errors import CannotCompleteError, ConfigError, InvalidValueError

__all__ = ["BACKENDS", "DeployAborted", "DeployConfig", "deploy_checkpoint", "parse_backend"]

INFERENCE = ("sync", "async")
JOINS = ("naive", "ensemble", "rtc")
BACKENDS = ("thread", "process", "server", "sim:D")
"""Accepted ``backend`` values (``sim:D``: D an integer >= 0)."""


@dataclasses.dataclass
class DeployConfig:
    inference: str = "sync"
    """sync: the policy runs inside the tick; async: in a backend while the loop ticks."""
    join: str = "naive"
    """How chunks join: naive (switch), ensemble (ACT temporal ensembling), rtc (Real-Time Chunking)."""
    backend: str | None = None
    """async only: thread | server | sim:D (D ticks of virtual latency). None: thread with realtime, else sim:0."""
    connect: str | None = None
    """server: the policy server's address, tcp://host:port (None: 127.0.0.1:5555)."""
    key_file: str | None = None
    """server: the HMAC key file shared with it (None: robolearn.runtime.wire.default_key_file())."""
    realtime: bool = False
    """Step the env with a RealClock at fps (wall clock); otherwise a VirtualClock (as fast as possible)."""
    fps: float | None = None
    """Control rate in Hz; None: the env's control_hz."""
    episodes: int = 10
    """Episodes to run; episode i is reset with seed + i."""
    seed: int = 100_000
    """First episode's seed (eval's default, so the two compare on the same episodes)."""
    safety: str | None = None
    """configs/safety/<name>.yaml; None: the preset named after the env when there is one, else default."""
    watchdog_periods: int = 3
    """Periods without an executed action before the watchdog trips."""
    replan_every: int | None = None
    """s: actions executed between requests; None: the policy's n_action_steps (1 for ensemble)."""
    max_guidance: float | None = None
    """join rtc: RTC's beta, the clip on the guidance weight (> 0; raised to 1/dtau on finer denoising steps:
    `robolearn.policies.rtc.guidance_weight`); None: robolearn.policies.rtc.DEFAULT_MAX_GUIDANCE.
    With --backend server the server guides (`robolearn serve --max-guidance`)."""
    rtc_vjp_steps: int | None = 0
    """join rtc: denoising steps RTC guides through the denoiser's VJP (robolearn.policies.rtc.Inpainting.vjp_steps,
    >= 0): 0, the default, none (the low-noise Jacobian, ~0 cost); None: every step (the paper's, about 2x a
    chunk). With --backend server the server guides (`robolearn serve --rtc-vjp-steps`)."""
    inference_steps: int | None = None
    """Denoising (diffusion) or integration (flow) steps per chunk instead of the checkpoint's
    ``num_inference_steps``: inference time grows with them. With --backend server the server's apply
    (`robolearn serve --inference-steps`)."""
    model_overrides: dict = dataclasses.field(default_factory=dict)
    """``model.<field>`` values applied as the checkpoint loads (`robolearn.policies.INFERENCE_FIELDS`, e.g.
    ``n_action_steps``: actions executed per chunk in sync mode, the replanning interval of async naive; any other
    field must match the checkpoint). ``num_inference_steps`` here becomes ``inference_steps``."""
    max_steps: int | None = None
    """Steps per episode; None: the env's own limit."""
    threads: int = 1
    """torch threads for inference (batch 1: more threads only add overhead)."""
    compile: bool = True
    """Compile diffusion/flow policies for inference (checked against eager, else eager with a warning); the
    kernels persist in robolearn.policies.compile.compile_cache_dir(), so a second start is fast."""
    rt_priority: int | None = None
    """process: run the loop's thread at SCHED_FIFO with this priority (1..99); None: normal priority."""
    require_rt: bool = False
    """Refuse to run when SCHED_FIFO at rt_priority is not permitted (default: a note, then normal priority)."""
    robot: str | None = None
    """A robot config (configs/robot/<name>.yaml or a YAML file): deploy on its RobotEnv instead of an env, with
    its safety preset unless ``safety`` names one; needs ``realtime`` (a robot runs on the wall clock)."""
    teleop: str | None = None
    """A teleop device a person can take over with (`robolearn.runtime.takeover`): keyboard | mouse |
    scripted:<script.json>, or with ``robot`` the config's leader (a device id picks another); None: no takeover."""
    takeover_key: str | None = None
    """The device's episode key that hands control between the policy and the device (``t`` in the keyboard
    window sends ``takeover``; e.g. ``save`` for a device whose only button is that); None: ``takeover``, or on a
    robot the key its config's ``robot.teleop`` entry for the device names."""
    takeover_tolerance: float = 0.05
    """A takeover waits until the device's command agrees with the robot's target within this fraction of each
    action axis's range (a leader with motors is driven there first)."""

    def __post_init__(self) -> None:
        if "num_inference_steps" in self.model_overrides:  # one route for denoising steps: the process and server
            steps = self.model_overrides["num_inference_steps"]  # backends load their copy with inference_steps
            if self.inference_steps is not None and self.inference_steps != steps:
                raise ConfigError(f"--inference-steps {self.inference_steps} and model.num_inference_steps={steps} "
                                  "disagree; name one")
            self.inference_steps = steps
            self.model_overrides = {k: v for k, v in self.model_overrides.items() if k != "num_inference_steps"}
        if self.teleop is None and self.takeover_key is not None:
            raise InvalidValueError("--takeover-key applies to --teleop DEVICE (the device a person takes over with)")
        if self.robot is not None and not self.realtime:
            raise InvalidValueError("--robot runs on the wall clock: add --realtime (with --inference sync, or "
                                    "--inference async --backend thread|process|server)")
        if self.inference not in INFERENCE:
            raise InvalidValueError(f"--inference {self.inference!r} is not accepted; use one of: {', '.join(INFERENCE)}")
        if self.join not in JOINS:
            raise InvalidValueError(f"--join {self.join!r} is not accepted; use one of: {', '.join(JOINS)}")
        if self.episodes < 1:
            raise InvalidValueError(f"--episodes must be >= 1, got {self.episodes}")
        if self.fps is not None and not self.fps > 0:
            raise InvalidValueError(f"--fps must be > 0, got {self.fps}")
        if self.inference_steps is not None and self.inference_steps < 1:
            raise InvalidValueError(f"--inference-steps must be >= 1, got {self.inference_steps}")
        if self.replan_every is not None and self.replan_every < 1:
            raise InvalidValueError(f"replan_every must be >= 1, got {self.replan_every}")
        from robolearn.policies.rtc import check_guidance

        check_guidance(self.max_guidance, self.rtc_vjp_steps)
        if self.guidance_set and self.join != "rtc":
            raise InvalidValueError(f"--max-guidance and --rtc-vjp-steps apply to --join rtc, not to --join "
                                    f"{self.join}")
        if self.require_rt and self.rt_priority is None:
            raise InvalidValueError("--require-rt needs --rt-priority N, the SCHED_FIFO priority to require")
        if self.rt_priority is not None:
            from robolearn.runtime.rt import check_rt_priority

            check_rt_priority(self.rt_priority)
            if self.backend_name != "process":
                raise InvalidValueError(f"--rt-priority applies to --backend process (the loop on its own core, the "
                                        f"policy in a child process), not to {self.backend_name}")
        if self.inference == "sync":
            if self.backend is not None:
                raise InvalidValueError(f"--backend {self.backend} applies to --inference async; sync inference "
                                        "runs the policy inside the tick")
            if self.join == "rtc":
                raise InvalidValueError("--join rtc needs --inference async: a synchronous chunk has no prefix "
                                        "executing while it is computed")
            return
        kind, _ = parse_backend(self.backend or ("thread" if self.realtime else "sim:0"))
        if kind in ("thread", "process", "server") and not self.realtime:
            raise InvalidValueError(f"--backend {kind} computes against the wall clock: add --realtime, or use "
                                    "--backend sim:D for reproducible virtual time")
        if kind == "server" and self.guidance_set:
            raise InvalidValueError("with --backend server the server guides RTC: pass --max-guidance and "
                                    "--rtc-vjp-steps to `robolearn serve` instead")
        if kind == "server" and self.inference_steps is not None:
            raise InvalidValueError("with --backend server the server runs the policy: pass --inference-steps to "
                                    "`robolearn serve` instead")
        if kind != "server" and (self.connect or self.key_file):
            raise InvalidValueError("--connect and --key-file apply to --backend server")
        if kind == "sim" and self.realtime:
            raise InvalidValueError(f"--backend {self.backend} is virtual time; drop --realtime, or use "
                                    "--backend thread")

    @property
    def guidance_set(self) -> bool:
        """Whether RTC's guidance differs from the defaults (``max_guidance`` or ``rtc_vjp_steps`` given)."""
        from robolearn.policies.rtc import DEFAULT_VJP_STEPS

        return self.max_guidance is not None or self.rtc_vjp_steps != DEFAULT_VJP_STEPS

    @property
    def backend_name(self) -> str:
        if self.inference == "sync":
            return "inline"
        return self.backend or ("thread" if self.realtime else "sim:0")


class DeployAborted(CannotCompleteError):
    """A device failed during an episode (`robolearn.record.robot.DEVICE_FAULTS`); with ``out`` the episode was
    committed as ``aborted``, the store consistent. ``summary``: the run up to there."""

    def __init__(self, message: str, summary: dict[str, Any]) -> None:
        super().__init__(message)
        self.summary = summary


def parse_backend(value: str) -> tuple[str, int]:
    """("thread" | "process" | "server", 0) or ("sim", D) for "sim:D"; a user error naming what is accepted
    otherwise."""
    if value in ("thread", "process", "server"):
        return value, 0
    if value.startswith("sim:"):
        d = value[4:]
        if d.isdigit():
            return "sim", int(d)
    raise InvalidValueError(f"--backend {value!r} is not accepted; use one of: {', '.join(BACKENDS)} "
                            "(D: delay in ticks, an integer >= 0)")


def _safety_preset(name: str | None, env_id: str, robot: Any = None) -> str:
    from robolearn.config import configs_dir

    if name is not None:
        return name
    if robot is not None:  # a RobotConfig: its own preset
        return robot.safety
    own = env_id.rsplit("/", 1)[-1]
    return own if (configs_dir() / "safety" / f"{own}.yaml").is_file() else "default"


def _scheduler(cfg: DeployConfig, policy: Any, delay: int):
    from robolearn.runtime import ChunkScheduler, DelayEstimator, EnsembleJoin, NaiveJoin, RTCJoin

    joiner = {"naive": NaiveJoin, "ensemble": EnsembleJoin, "rtc": RTCJoin}[cfg.join]()
    Ta = policy.n_action_steps
    s = cfg.replan_every or (1 if cfg.join == "ensemble" else Ta)
    # sync naive executes Ta of each chunk (what eval does); otherwise the whole chunk may execute if the next
    # one is late, and ensembling averages every chunk's prediction for an index.
    horizon = Ta if (cfg.inference == "sync" and cfg.join == "naive") else None
    # sim:D: the delay is known; thread: learnt from the latencies (warm-up excluded).
    return ChunkScheduler(joiner, replan_every=s, horizon=horizon, delay=DelayEstimator(initial=delay))


class _Served:
    """A served policy as the deploy loop sees it: keys and To from the server's ``ready``; an episode's reset
    resets this client's state there (history, noise seeded by the seed)."""

    def __init__(self, backend: Any, local: Any, task: str | None, address: str) -> None:
        info = backend.info
        # What the served network computes must match; how many of a chunk's actions run is this side's choice
        # (the server returns whole chunks, an RTC prefix names its own s), so n_action_steps is not compared.
        mine = {"input_keys": list(local.input_keys), "n_obs_steps": local.n_obs_steps, "horizon": local.horizon,
                "action_dim": int(local.policy.action_dim)}
        theirs = {k: (list(info.get(k) or []) if k == "input_keys" else info.get(k)) for k in mine}
        if theirs != mine:
            diff = ", ".join(f"{k} {theirs[k]!r} (checkpoint: {mine[k]!r})" for k in mine if theirs[k] != mine[k])
            raise InvalidValueError(f"the policy served at {address} does not match the checkpoint: {diff}; serve "
                                    "the same run")
        self.backend, self.task = backend, task
        self.input_keys, self.n_obs_steps = mine["input_keys"], mine["n_obs_steps"]
        self.n_action_steps, self.horizon = local.n_action_steps, mine["horizon"]

    def reset(self, seed: int | None = None) -> None:
        self.backend.reset(seed, self.task)

    def __call__(self, request: Any) -> np.ndarray:
        raise RuntimeError("a served policy computes on its server; submit requests to its ServerBackend")


class _Borrowed:
    """One episode's view of a backend that lives for the whole run (the server connection): closing it
    does nothing; the next episode's reset drops what is still open."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend

    def submit(self, request: Any) -> None:
        self._backend.submit(request)

    def poll(self) -> list:
        return self._backend.poll()

    @property
    def pending(self) -> int:
        return self._backend.pending

    def close(self) -> None:
        pass


def _backend_factory(cfg: DeployConfig, chunks: Any, clock: Any):
    from robolearn.runtime import InlineBackend, SimulatedLatencyBackend, ThreadBackend
    from robolearn.runtime.deploy import clock_ns

    if cfg.inference == "sync":
        now = clock_ns(clock)
        return (lambda: InlineBackend(chunks, time_ns=now)), 0
    kind, d = parse_backend(cfg.backend_name)
    if kind == "sim":
        return (lambda: SimulatedLatencyBackend(chunks, d, clock)), d
    if kind in ("server", "process"):
        return (lambda: _Borrowed(chunks.backend)), 0
    return (lambda: ThreadBackend(chunks)), 0


def deploy_checkpoint(checkpoint: str | Path, cfg: DeployConfig, env: str | None = None,
                      env_kwargs: dict | None = None, out: str | Path | None = None, resume: bool = False,
                      overwrite: bool = False, progress: bool = True, view: Any = None, live: Any = None) -> dict:
    """Run the policy in `checkpoint` (EMA weights when saved) for `cfg.episodes` episodes on `env` (default:
    the env it was trained on); record them into the store `out` when given. Returns the summary: success
    rate with its Wilson 95% interval, holds, skipped/late counts, latency p50/p99 and per-episode results.

    `view` (a `robolearn.view.live.LiveViewConfig`): serve the run live (cameras, timing, safety/watchdog
    events) with episode keys as buttons: save (end the episode now and keep it), discard (next seed),
    re-record (the same seed again), stop (the episode in progress is dropped); `live`: the session to feed
    (default: a new one)."""
    import torch

    from robolearn.env.registry import load_env_plugins, make_env
    from robolearn.eval.metrics import wilson_interval
    from robolearn.eval.run import read_run_config
    from robolearn.output import check_output
    from robolearn.policies import check_compatible, load
    from robolearn.record.recorder import loop_status, settle_episode
    from robolearn.record.robot import DEVICE_FAULTS
    from robolearn.runtime import RealClock, SafetyFilter, VirtualClock, load_safety_config
    from robolearn.runtime.chunk_policy import ChunkPolicyAdapter
    from robolearn.runtime.deploy import TIMING_STAGES, DeployLoop

    if out is not None:
        check_output(out, "store", resume=resume, overwrite=overwrite)  # before anything is built
    if view is not None:
        view.check()  # the live view's address and key file, before anything is built
    robot = None
    if cfg.robot is not None:
        from robolearn.devices.robot_config import load_robot_config

        if env is not None:
            raise InvalidValueError(f"name one of --env {env} and --robot {cfg.robot}, not both")
        robot = load_robot_config(cfg.robot)  # validated before the policy loads
    run = read_run_config(checkpoint)
    env_id = f"robot:{robot.name}" if robot is not None else env or run.get("env_id")
    if not env_id:
        raise InvalidValueError(f"{checkpoint}/config.json names no env_id; pass --env")
    kwargs = {**(run.get("env_kwargs") or {}), **(env_kwargs or {})}
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    policy = load(checkpoint, inference_steps=cfg.inference_steps, overrides=cfg.model_overrides)
    if policy.make_action_source() is not None:
        raise InvalidValueError(f"{type(policy).__name__} runs its own multi-rate action source; deploy runs "
                                "chunking policies (diffusion, flow, pad, uwm)")
    kind = parse_backend(cfg.backend_name)[0] if cfg.inference == "async" else "inline"
    inference_steps = getattr(policy.config, "num_inference_steps", None)
    compiling = {"enabled": cfg.compile, "compiled": False, "seconds": 0.0}
    if cfg.compile and kind not in ("process", "server"):  # the child compiles its own copy; a server its own
        from robolearn.policies.compile import compile_if_supported

        t_compile = time.perf_counter()
        compiling["compiled"] = compile_if_supported(policy)
        compiling["seconds"] = time.perf_counter() - t_compile
    load_env_plugins()
    if robot is not None:
        from robolearn.devices.robot_config import build_robot_env

        the_env = build_robot_env(robot, fps=cfg.fps)
    else:
        the_env = make_env(env_id, **kwargs)
    writer = recorder = server = rt = rt_report = live_view = teleop_device = terminal = None
    fault: dict | None = None  # a device that failed mid-episode (robolearn.record.robot.DEVICE_FAULTS)
    closing_errors: list[str] = []
    try:
        check_compatible(policy, the_env.observation_space, the_env.action_space)
        base = the_env.unwrapped
        hz = float(cfg.fps or base.control_hz)
        task = str(getattr(base, "task_description", "") or "")
        chunks = ChunkPolicyAdapter(policy, task=task or None, max_guidance=cfg.max_guidance,
                                    vjp_steps=cfg.rtc_vjp_steps)
        if cfg.join == "rtc" and not chunks.supports_inpainting:
            raise InvalidValueError(f"--join rtc needs a flow or diffusion policy; {checkpoint} holds "
                                    f"{type(policy).__name__}")
        if cfg.guidance_set and policy.rtc_variant != "guided":
            raise InvalidValueError(f"--max-guidance and --rtc-vjp-steps set inference-time guidance; {checkpoint} "
                                    "was trained for training-time RTC (model.rtc_training_max_delay), which fixes "
                                    "the prefix without guidance: drop them")
        guidance = {"max_guidance": chunks.max_guidance, "vjp_steps": chunks.vjp_steps}  # what the adapter applies
        if cfg.inference == "async" and parse_backend(cfg.backend_name)[0] == "server":
            from robolearn.runtime.server import ServerBackend

            address = cfg.connect or "127.0.0.1:5555"
            server = ServerBackend(address, key_file=cfg.key_file, task=task or None)
            chunks = _Served(server, chunks, task or None, address)
            guidance = server.info.get("rtc_guidance")  # the server guides; None from one that does not say
            inference_steps = server.info.get("inference_steps")
        elif kind == "process":
            from robolearn.runtime.process_backend import ProcessBackend
            from robolearn.runtime.rt import RealtimeLoop, split_cores

            loop_cpus, inference_cpus, note = split_cores()
            server = ProcessBackend.for_checkpoint(checkpoint, compile=cfg.compile, max_guidance=cfg.max_guidance,
                                                   vjp_steps=cfg.rtc_vjp_steps, threads=max(cfg.threads, 1),
                                                   inference_steps=cfg.inference_steps, task=task or None,
                                                   cpus=inference_cpus)
            chunks = _Served(server, chunks, task or None, f"the inference process (pid {server.pid})")
            guidance = server.info.get("rtc_guidance")
            inference_steps = server.info.get("inference_steps")  # what the child runs
            compiling.update(compiled=bool(server.info.get("compiled")), seconds=float(server.info.get("load_s", 0)))
            torch.set_num_threads(1)  # the loop's process runs no inference
            rt = RealtimeLoop(loop_cpus, cfg.rt_priority, require=cfg.require_rt).__enter__()
            if note:
                rt.note(note)
        clock = RealClock(hz) if cfg.realtime else VirtualClock(hz)
        preset = _safety_preset(cfg.safety, env_id, robot)
        safety = SafetyFilter.for_env(the_env, load_safety_config(preset))
        make_backend, delay = _backend_factory(cfg, chunks, clock)
        takeover = None
        if cfg.teleop is not None:
            takeover = _takeover(cfg, robot, the_env)
            teleop_device, takeover_used = takeover.device, takeover.key
        terminal = _operator_terminal(robot, takeover)
        if takeover is not None and not getattr(takeover.device, "has_keys", True) and terminal is None \
                and view is None and live is None:
            raise InvalidValueError(f"--teleop {cfg.teleop}: a leader arm has no key to take over with; run deploy "
                                    "in a terminal (t takes over and hands back) or add --view (its take over "
                                    "button)")
        if teleop_device is not None:
            teleop_device.connect()  # before the store exists: a device that is not there leaves nothing behind
        on_step = None
        if out is not None:
            from robolearn.record.recorder import Recorder
            from robolearn.store import StoreWriter, features_from_space

            feats = features_from_space(the_env.observation_space, the_env.action_space, commanded=True,
                                        timing=TIMING_STAGES, intervention=takeover is not None)
            writer = StoreWriter(out, feats, fps=hz, attrs={"env_id": env_id, "env_kwargs": kwargs},
                                 resume=resume, overwrite=overwrite)
            recorder = Recorder(writer, fps=hz, task=task, source=f"policy:{Path(checkpoint).name}")
            on_step = recorder.add_step
        session = None
        if view is not None:
            from robolearn.view.live import LiveView

            from robolearn.view.live import EPISODE_KEYS

            keys_shown = EPISODE_KEYS + ((TAKEOVER,) if takeover is not None else ())
            live_view = LiveView(view, f"deploy {Path(checkpoint).name} on {env_id}", hz, session=live,
                                 keys=keys_shown)
            session = live_view.session
            on_step = session.on_step if on_step is None else _both(on_step, session.on_step)
        operator = None
        if session is not None or terminal is not None:
            operator = _OperatorKeys(terminal, session, takeover.key if takeover is not None else TAKEOVER)
            if takeover is not None:
                takeover = dataclasses.replace(takeover, poll_keys=operator.takeover_keys)
        if terminal is not None:
            from robolearn.devices.terminal_keys import help_line

            terminal.open()  # the line goes to stderr also with --json: stdout keeps only the summary
            print(f"deploy: {help_line(takeover=takeover is not None)}", file=sys.stderr, flush=True)
        loop = DeployLoop(the_env, chunks, clock, make_backend, _scheduler(cfg, chunks, delay), safety,
                          watchdog_periods=cfg.watchdog_periods, on_step=on_step, max_steps=cfg.max_steps,
                          stop_when=None if operator is None else operator.stop_when, takeover=takeover)
        if live_view is not None:
            session.attach(clock=clock, safety=safety, watchdog=loop.watchdog)
            live_view.serve(out)
        episodes, latencies = [], []
        keys = {"episodes": 0, "discarded": 0, "rerecorded": 0}  # counted by settle_episode
        quit_ = False
        if rt is not None:
            rt.freeze_gc()  # everything built and warm: later collections walk only what episodes allocate
        t0 = time.perf_counter()
        n = 0  # seed offset: a re-recorded episode runs its seed again
        while len(episodes) < cfg.episodes:
            seed = cfg.seed + n
            if recorder is not None:
                recorder.start_episode(seed=seed)
            if session is not None:
                session.start_episode(len(episodes), seed, task=task, recording=recorder is not None)
            try:
                result = loop.run_episode(seed)
            except DEVICE_FAULTS as exc:  # an unplugged servo bus, a camera gone: what was recorded is kept
                fault = {"reason": f"{type(exc).__name__}: {exc}", "seed": seed}
                if recorder is not None:
                    recorder.abort_episode(fault["reason"], missed=clock.missed_ticks, extra={"seed": seed})
                break
            ended = None if operator is None else operator.ended_by()  # a key of the live view or the terminal
            event, e = ended or "save", result.episode
            # the operator ended it: "ok", as in teleop; else what ended the loop says
            status = "ok" if ended == "save" else loop_status(e, cfg.max_steps)
            done = settle_episode(event, e.steps > 0, recorder, keys, success=e.success, missed=e.missed_ticks,
                                  held=e.holds, status=status)
            if done.saved:
                episodes.append(result.to_json())
                latencies.extend(loop.source.latencies_ns)
            n += done.next_seed
            if session is not None:
                session.end_episode(event, saved=len(episodes), success=bool(e.success))
            if progress:
                print(f"deploy: episode {len(episodes)}/{cfg.episodes} seed {seed} {event} success={e.success} "
                      f"steps={e.steps} holds={e.holds}" + _takeover_line(result.takeover), file=sys.stderr,
                      flush=True)
            if done.quit:
                quit_ = True
                break
    finally:
        try:
            if recorder is not None:
                recorder.close()  # every saved episode committed (or its error raised) before the writer closes
        finally:
            if writer is not None:
                writer.close()
            if live_view is not None:
                live_view.close()
            if server is not None:
                server.close()
            if rt is not None:
                rt_report = rt.report()
                rt.__exit__(None, None, None)
            if teleop_device is not None:
                teleop_device.disconnect()
            if terminal is not None:
                terminal.close()
            try:
                the_env.close()
            except DEVICE_FAULTS as exc:  # a device that failed may fail again on its way out: say so
                if fault is None:
                    raise
                closing_errors.append(f"{type(exc).__name__}: {exc}")
    n_ok = sum(e["success"] for e in episodes)
    n_run = max(len(episodes), 1)  # a live view's stop may end the run before an episode is kept

    def total(group: str, key: str) -> int:
        return int(sum(e[group].get(key, 0) for e in episodes))

    lat = np.asarray(latencies, dtype=np.float64) / 1e6
    summary = {
        "checkpoint": str(Path(checkpoint).resolve()), "env": env_id, "episodes": len(episodes),
        "inference": cfg.inference, "join": cfg.join, "backend": cfg.backend_name, "realtime": cfg.realtime,
        "rtc_variant": policy.rtc_variant if cfg.join == "rtc" else None,
        # how RTC was guided (robolearn.policies.rtc.Inpainting): None without guidance (another join, training-time)
        "rtc_guidance": guidance if cfg.join == "rtc" and policy.rtc_variant == "guided" else None,
        "fps": hz, "safety": preset, "seed": cfg.seed,
        "inference_steps": inference_steps,  # denoising/integration steps per chunk as run (None: the policy has none)
        "success_rate": n_ok / n_run, "ci95": list(wilson_interval(n_ok, len(episodes))),
        "holds": sum(e["holds"] for e in episodes), "missed_ticks": sum(e["missed_ticks"] for e in episodes),
        "skipped_executed": total("scheduler", "skipped_executed"),
        "excess_actions": total("scheduler", "excess_actions"), "dropped_late": total("scheduler", "dropped_late"),
        "dropped_superseded": total("scheduler", "dropped_superseded"),
        "safety_holds": total("safety", "holds"), "watchdog_trips": total("watchdog", "trips"),
        "latency_ms": ({"obs_to_action_p50": float(np.percentile(lat, 50)),
                        "obs_to_action_p99": float(np.percentile(lat, 99))} if len(lat) else {}),
        "seconds": time.perf_counter() - t0,
        "per_episode": episodes,
    }
    summary["compile"] = compiling
    if kind == "process":
        summary["process"] = {"pid": server.pid, "cpus": server.info.get("cpus"), "ready_s": server.ready_s,
                              "load_s": server.info.get("load_s"), "warmup_s": server.info.get("warmup_s"),
                              "rt": rt_report}
    if out is not None:
        summary["store"] = str(out) if "://" in str(out) else str(Path(out).resolve())
    if view is not None:
        summary["live"] = {"url": session.url, "discarded": keys["discarded"], "rerecorded": keys["rerecorded"],
                           "quit": quit_}
    if cfg.teleop is not None:
        summary["takeover"] = {"device": cfg.teleop, "key": takeover_used, "tolerance": cfg.takeover_tolerance,
                               **{k: total("takeover", k) for k in ("takeovers", "handbacks", "cancelled",
                                                                    "intervention_steps", "wait_ticks")}}
    if fault is not None:
        summary.update(aborted=1, abort_reason=fault["reason"], closing_errors=closing_errors)
        where = f"; the episode was committed as 'aborted' to {summary['store']}" if out is not None else ""
        raise DeployAborted(f"a device failed during deploy episode seed {fault['seed']} ({fault['reason']})"
                            f"{where}; reconnect the device and run again (with --resume to append)", summary)
    return summary


def _takeover(cfg: DeployConfig, robot: Any, env: Any):
    """The device a person takes over with (not connected yet), and how: a window or scripted device in sim (its
    mapping from the env's ``teleop_mapping``), the robot config's leader or a device id on a robot. A delta-action
    env hands over at once (a displacement cannot jump); absolute targets wait for agreement."""
    from robolearn.runtime import hold_action
    from robolearn.runtime.takeover import Takeover

    mapping = getattr(env.unwrapped, "teleop_mapping", None)
    key = cfg.takeover_key or TAKEOVER
    if robot is not None:
        from robolearn.devices.robot_config import takeover_key
        from robolearn.record.robot import teleop_device

        device, _ = teleop_device(robot, cfg.teleop, env)
        align = True  # a robot takes absolute targets
        key = cfg.takeover_key or takeover_key(robot, cfg.teleop)
    else:
        from robolearn.devices.teleop import make_teleop

        device = make_teleop(cfg.teleop, env.action_space, mapping=mapping, origin=lambda obs: hold_action(env))
        align = (mapping or {}).get("mode", "delta") == "absolute"
    return Takeover(device, tolerance=cfg.takeover_tolerance, align=align, key=key)


class _OperatorKeys:
    """The operator's keys during deploy, from the live view's buttons and the terminal deploy runs in
    (`robolearn.devices.terminal_keys`): the takeover key goes to the `TakeoverSource` (``takeover_keys``, one
    ``key`` per press, whatever the device's own takeover key is), the others end the episode like a button of
    the live view (``stop_when``, then ``ended_by``)."""

    def __init__(self, terminal: Any, session: Any, key: str) -> None:
        self.terminal, self.session, self.key = terminal, session, key
        self._takeovers, self._episode, self._ended = 0, [], None

    def _pump(self) -> None:
        if self.terminal is not None:
            for k in self.terminal.poll():
                if k == TAKEOVER:
                    self._takeovers += 1
                else:
                    self._episode.append(k)
        if self.session is not None:
            self._takeovers += self.session.poll_takeover()

    def takeover_keys(self) -> list[str]:
        self._pump()
        n, self._takeovers = self._takeovers, 0
        return [self.key] * n

    def stop_when(self) -> bool:
        self._pump()
        if self.session is not None and self.session.stop_when():
            return True
        if self._episode:
            self._ended = self._episode.pop(0)
            return True
        return False

    def ended_by(self) -> str | None:
        """The key that ended the last episode (cleared); None: it ended itself."""
        if self.session is not None:
            key = self.session.ended_by(None)
            if key is not None:
                return key
        key, self._ended = self._ended, None
        return key


def _operator_terminal(robot: Any, takeover: Any):
    """Keys from the terminal deploy runs in, on a robot or with a device to take over with
    (`robolearn.devices.terminal_keys.operator_terminal`); else None."""
    from robolearn.devices.terminal_keys import operator_terminal

    if robot is None and takeover is None:
        return None
    return operator_terminal(None if takeover is None else takeover.device)


def _takeover_line(stats: dict) -> str:
    if not stats:
        return ""
    return (f" takeovers={stats['takeovers']} intervention_steps={stats['intervention_steps']} "
            f"wait_ticks={stats['wait_ticks']}")


def _both(first, second):
    """One on_step that calls two (the recorder first: what the live view shows is already on its way)."""
    def on_step(rec):
        first(rec)
        second(rec)
    return on_step
