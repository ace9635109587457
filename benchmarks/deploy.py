"""The deploy runtime's benchmarks (issue #8): success against delay, seam smoothness, pacing, wall-clock
throughput and watchdog reaction, with the anchors' numbers beside ours.

Parts (``--part``; each writes its JSON under ``--results``/deploy/ as soon as a piece finishes, so an
interrupted run resumes where it stopped; ``summary`` merges them into benchmarks/results/deploy.json and
draws the plots):

- ``train``: collects 300 expert episodes of ``robolearn/planar-catch`` (a pure-numpy task where chunk joining
  matters: velocity actions, a bimodal expert, a moving target; envs/robolearn_envs/planar/catch.py says why;
  the expert's command rate-limited to ``--expert-max-change`` per axis per tick, 0.3 since session 10) and
  trains four small state-only policies on it (T = 16, Ta = s = 8, To = 1, U-Net (32, 64)): flow (4 Euler
  steps) and diffusion (DDIM-10, predicting the clean sample), each plain and with training-time RTC
  (``rtc_training_max_delay`` = 8), for ``TRAIN_STEPS``. The run folders live in ``--workdir`` (default
  benchmarks/results/deploy/runs, not committed) and are reused; an interrupted training resumes.
- ``success``: the grid, in virtual time through the library (``DeployLoop`` + ``SimulatedLatencyBackend``, the
  RTC paper's protocol: a chunk computed from the observation at tick k is delivered at tick k + D). Methods:
  ``sync`` (the robot holds while the chunk is computed: a request only when the queue is empty, Ta actions
  of each chunk), ``naive`` (async, switch to the new chunk), ``ensemble`` (ACT temporal ensembling, a request
  every tick), ``rtc`` (guided inpainting of the frozen prefix) and ``rtc_trained`` (training-time RTC). Every
  cell runs the same seeds; its JSON (cells/<policy>-<method>-D<d>.json) holds the Wilson interval, holds,
  skipped and late counts and the seam metrics: |a_t - a_{t-1}| at chunk switches over the within-chunk
  median, and RMS jerk (third difference of the applied commands, per tick^3) overall, around switches and
  inside chunks; the episode's start (standstill while the first chunk is computed, then its first action) is
  kept apart (``seam_terms``). A cell is reused only when it was computed with the same policy weights
  (sha256), RTC code and settings (``RTC_VERSION``, ``--max-guidance``, ``--rtc-vjp-steps``) and seam metric
  (``cell_key``); ``summary`` leaves stale cells out.
- ``pacing``: ``RealClock`` lateness p50/p99/max, achieved rate, missed ticks and the loop thread's CPU share at
  100 and 500 Hz, idle and with a policy computing all the time in the process backend (the loop and the
  child on different cores) and in the thread backend; LeRobot's ../shared/bench/lerobot/pacing_bench.py runs
  in the same invocation with the LeRobot venv's python (``--lerobot-python``).
- ``throughput``: time to success in ``--realtime`` sim with real inference (``robolearn.deploy.deploy_checkpoint``,
  thread backend): sync vs async naive vs async RTC on the same seeds; ``--throughput-inference-steps K`` runs the
  policy with K denoising steps per chunk instead of its own (kept apart in ``throughput_stepsK.json``): the
  checkpoint's 10 DDIM steps take ~14 ms, under one 20 ms tick, where waiting for a chunk costs little; ~50 take
  ~70 ms, about T/4 of a chunk, the regime of RTC's measurements (pi0 at 50 Hz).
- ``watchdog``: reaction time after the deadline of ``Watchdog.check()`` from a 100 Hz loop and of
  ``WatchdogThread`` (budget: 2 periods + 5 ms).
- ``summary``: everything above plus safety.json, server.json and rtc_overhead.json (not re-measured).

    nice -n 10 .venv/bin/python benchmarks/deploy.py --part train
    nice -n 10 .venv/bin/python benchmarks/deploy.py --part success          # resumable, cell by cell
    nice -n 10 .venv/bin/python benchmarks/deploy.py --part throughput --part watchdog --part summary
    .venv/bin/python benchmarks/deploy.py --part pacing --seconds 60         # on an idle machine, alone
    .venv/bin/python benchmarks/deploy.py --part success --policies flow --methods naive --delays 0 \\
        --episodes 2 --results /tmp/r --workdir /tmp/w --demos 4 --train-steps 20     # smoke
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.deploy_seams import SEAM_METRIC_VERSION, Trace, seam_summary, seam_terms  # noqa: E402
from benchmarks.machine import machine  # noqa: E402
from robolearn_envs.planar.catch import EXPERT_MAX_CHANGE  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
ENV_ID = "robolearn/planar-catch"
T, TA = 16, 8
DELAYS = (0, 1, 2, 4, 8)
METHODS = ("sync", "naive", "ensemble", "rtc", "rtc_trained")
MODEL = ["model.n_obs_steps=1", f"model.horizon={T}", f"model.n_action_steps={TA}", "model.down_dims=[32,64]",
         "model.diffusion_step_embed_dim=32"]
POLICIES = {"flow": ["policy=flow", "model.num_inference_steps=4"],
            "diffusion": ["policy=diffusion", "model.inference_scheduler=ddim", "model.num_inference_steps=10",
                          "model.prediction_type=sample"]}
"""The diffusion policy predicts the clean chunk (Diffusion Policy's ``prediction_type: sample``) since session 9:
the epsilon-predicting one (its runs kept as runs/diffusion-epsilon, its cells in deploy/cells-diffusion-epsilon)
reached 0.86 at D = 0 in sync and its chunks got rougher toward their tail (a seamless join at D = 4 would have
scored 1.47); the same network and training predicting the sample reaches 1.00 at D = 0 in sync."""
TRAINED_DELAY = 8
TRAIN_STEPS = {"flow": 3000, "diffusion": 10000}
"""Optimizer steps per policy (``--train-steps`` sets one number for all): the diffusion policy trained for 3000
steps like flow (session 5) was weak at every delay (0.67 at D = 0, a quarter of its episodes timing out)."""
SEED = 200_000  # episode i of every cell is reset with SEED + i (collection uses seeds from 0)
RTC_VERSION = 3
"""Bump it whenever what RTC computes changes (robolearn.policies.rtc, the scheduler's prefix): RTC cells of
another version are stale even with the same weights. 1: guidance as of session 6 (cells before it carry no
version and are recomputed); 2: guided diffusion clips only the finished chunk, not each step's x0 estimate;
3: the guidance weight's clip rises to 1 / dtau on steps finer than 1 / beta (DDIM's last steps)."""
ANCHORS = {
    "success_vs_delay": "RTC paper (Kinetix, H=8, d=0..4): RTC keeps its success as d grows, naive async drops; "
                        "Agouzoul 2605.08168: inference-time RTC degrades at high d, training-time RTC most robust",
    "seams": "Chef Robotics: -64.9% velocity discontinuity, -30.8% jerk; Soft RTC: -9.1% action delta, -9.6% jerk",
    "pacing_lerobot": "LeRobot precise_sleep (anchors/lerobot-baseline.md): record-loop pattern 100 Hz p99 272 us, "
                      "98.1 Hz; 500 Hz p99 238 us, 471 Hz; absolute deadlines 100 Hz p99 280 us, max 2794 us",
    "throughput": "RTC paper: the same motion ~20% faster than synchronous; VLASH up to 2.03x",
    "watchdog": "Franka FCI 20 ms, URCL 20 ms, LeKiwi 500 ms",
}
TARGETS = {
    "success": "at D = T/4, RTC's interval overlaps its own D = 0 interval and lies entirely above naive async's",
    "seams": "seam ratio <= 1.5 at D <= T/4 for RTC; >= 50% less seam jerk than naive",
    "pacing": "process backend, pinned cores: p99 <= 200 us at 100 Hz while inference runs; achieved rate within "
              "0.01%; 0 missed ticks; <= 20% of one core at 500 Hz",
    "throughput": ">= 20% faster than sync at equal success",
    "watchdog": "hold within 2 periods + 5 ms of the deadline",
}


def write_json(path: Path, data: dict) -> None:
    """Atomically: a reader (or a resumed run) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------------------------- train


def run_dirs(workdir: Path) -> dict[str, Path]:
    """(policy, trained) -> run folder."""
    return {f"{p}{'-rtc' if trained else ''}": workdir / f"{p}{'-rtc' if trained else ''}"
            for p in POLICIES for trained in (False, True)}


def weights_of(run: Path) -> Path:
    return run / "ema.safetensors" if (run / "ema.safetensors").is_file() else run / "model.safetensors"


def train(args) -> dict:
    """Collect the demonstrations and train the four policies (each skipped when already there)."""
    import torch

    from robolearn.experiment import build_config
    from robolearn.record.collect import collect
    from robolearn.train.run import train_policy

    torch.set_num_threads(1)
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    store = work / "planar-catch.zarr"
    info = read_json(work / "runs.json") or {}
    if "collect" not in info:
        info["collect"] = collect(ENV_ID, store, args.demos, seed=0, progress=False,
                                  env_kwargs={"expert_max_change": args.expert_max_change})
        info["expert_max_change"] = args.expert_max_change
        write_json(work / "runs.json", info)
    elif info.get("expert_max_change") != args.expert_max_change:
        raise SystemExit(f"{work} holds demonstrations of an expert with max_change "
                         f"{info.get('expert_max_change')}, not {args.expert_max_change}: another --workdir")
    runs = {n: r for n, r in run_dirs(work).items() if n.removesuffix("-rtc") in args.policies}
    for name, run in runs.items():
        if (run / "config.json").is_file() and weights_of(run).is_file():
            continue
        policy = name.removesuffix("-rtc")
        steps = args.train_steps or TRAIN_STEPS[policy]
        overrides = [*POLICIES[policy], *MODEL, f"task.env={ENV_ID}", f"train.steps={steps}",
                     "train.batch_size=64", "train.lr=1e-3", "train.warmup_steps=100", "train.threads=1",
                     f"train.val_every={max(steps // 4, 1)}", "train.log_every=100",
                     f"train.save_every={max(steps // 10, 1)}"]  # an interrupted run resumes (checkpoints/last)
        if name.endswith("-rtc"):
            overrides.append(f"model.rtc_training_max_delay={TRAINED_DELAY}")
        t0 = time.perf_counter()
        resume = (run / "checkpoints" / "last").is_dir()
        summary = train_policy(build_config(overrides), str(store), run, progress=False, resume=resume,
                               overwrite=not resume and (run / "config.json").is_file())
        info[name] = {"overrides": overrides, "seconds": round(time.perf_counter() - t0, 1),
                      "final": {k: v for k, v in summary.items() if isinstance(v, (int, float, str))}}
        write_json(work / "runs.json", info)
        print(f"train: {name} in {info[name]['seconds']} s", flush=True)
    for name, run in runs.items():
        info.setdefault(name, {})["sha256"] = sha256(weights_of(run))
    write_json(work / "runs.json", info)
    return info


# --------------------------------------------------------------------------------------------- success


def make_scheduler(method: str, d: int):
    from robolearn.runtime import ChunkScheduler, DelayEstimator, EnsembleJoin, NaiveJoin, RTCJoin

    if method == "sync":
        # The robot waits for each chunk: a request only once the Ta actions of the last one ran out (a
        # delay estimate that never learns stays 0), so D ticks of hold per chunk.
        return ChunkScheduler(NaiveJoin(), replan_every=TA, horizon=TA, delay=DelayEstimator(warmup=1 << 30))
    if method == "ensemble":
        return ChunkScheduler(EnsembleJoin(), replan_every=1, delay=DelayEstimator(initial=d), max_in_flight=d + 1)
    joiner = RTCJoin() if method.startswith("rtc") else NaiveJoin()
    return ChunkScheduler(joiner, replan_every=TA, delay=DelayEstimator(initial=d))


def default_guidance() -> dict:
    """Guided RTC's settings as `robolearn deploy` applies them by default."""
    from robolearn.policies.rtc import DEFAULT_MAX_GUIDANCE, DEFAULT_VJP_STEPS

    return {"max_guidance": DEFAULT_MAX_GUIDANCE, "vjp_steps": DEFAULT_VJP_STEPS}


_POLICIES: dict[str, object] = {}


def policy_for(run: Path):
    if str(run) not in _POLICIES:
        from robolearn.policies import load

        _POLICIES[str(run)] = load(run)
    return _POLICIES[str(run)]


def cell_key(method: str, run: Path, guidance: dict) -> dict:
    """What a cell's numbers depend on besides its seeds: the weights, the RTC code and settings it ran with
    (``RTC_VERSION``, ``guidance``) and the seam metric's definition. A cell is reused only when all match."""
    rtc = None
    if method == "rtc":
        rtc = {"version": RTC_VERSION, **guidance}
    elif method == "rtc_trained":
        rtc = {"version": RTC_VERSION}
    return {"weights_sha256": sha256(weights_of(run)), "rtc": rtc, "seam_metric": SEAM_METRIC_VERSION}


def run_cell(policy_name: str, method: str, d: int, episodes: int, workdir: Path, guidance: dict | None = None
             ) -> dict:
    """One cell of the grid; ``guidance``: ``ChunkPolicyAdapter``'s max_guidance and vjp_steps for guided RTC
    (default: the library's)."""
    from robolearn.env.registry import load_env_plugins, make_env
    from robolearn.eval.metrics import wilson_interval
    from robolearn.runtime import SafetyFilter, SimulatedLatencyBackend, VirtualClock, load_safety_config
    from robolearn.runtime.chunk_policy import ChunkPolicyAdapter
    from robolearn.runtime.deploy import DeployLoop

    run = run_dirs(workdir)[policy_name + ("-rtc" if method == "rtc_trained" else "")]
    policy = policy_for(run)
    load_env_plugins()
    env = make_env(ENV_ID)
    guidance = default_guidance() if guidance is None else guidance
    chunks = ChunkPolicyAdapter(policy, **guidance)
    clock = VirtualClock(env.unwrapped.control_hz)
    scheduler = make_scheduler(method, d)
    trace = Trace(scheduler)
    safety = SafetyFilter.for_env(env, load_safety_config("default"))
    loop = DeployLoop(env, chunks, clock, lambda: SimulatedLatencyBackend(chunks, d, clock), scheduler, safety,
                      on_step=trace.on_step)
    terms: dict[str, list[float]] = {}
    success, steps, crashed = [], [], []
    totals: dict[str, int] = {}
    t0, cpu0 = time.perf_counter(), time.process_time()
    try:
        for i in range(episodes):
            trace.reset()
            result = loop.run_episode(SEED + i)
            success.append(bool(result.episode.success))
            steps.append(result.episode.steps)
            crashed.append(trace.crashed)
            for k, v in result.scheduler.items():
                if k != "delay_estimate":
                    totals[k] = totals.get(k, 0) + int(v)
            for k, v in seam_terms(np.asarray(trace.actions), np.asarray(trace.sources),
                                   np.asarray(trace.continuation)).items():
                terms.setdefault(k, []).extend(v)
    finally:
        env.close()
    k = sum(success)
    ok_steps = [s for s, ok in zip(steps, success) if ok]
    return {"policy": policy_name, "method": method, "delay": d, "episodes": episodes, "successes": k,
            "success_rate": k / episodes, "ci95": list(wilson_interval(k, episodes)),
            "crashes": int(sum(crashed)), "timeouts": int(sum(1 for s, c in zip(success, crashed) if not s and not c)),
            "steps_to_success_mean": float(np.mean(ok_steps)) if ok_steps else None,
            "rtc_variant": policy.rtc_variant if method.startswith("rtc") else None,
            "scheduler": totals, "seams": seam_summary(terms), "seconds": round(time.perf_counter() - t0, 2),
            "cpu_seconds": round(time.process_time() - cpu0, 2), **cell_key(method, run, guidance),
            "first_seed": SEED, "per_episode_success": [int(x) for x in success],
            "per_episode_steps": steps}


def cells(args) -> list[tuple[str, str, int, int]]:
    """(policy, method, D, episodes) in the order they run: the D = T/4 comparison of naive and both RTCs for each
    policy first (with RTC at D = 0, the target's third interval), then every other cell but ensembling's, then
    ensembling's (a request every tick: the costliest)."""
    quarter = T // 4
    head = [(p, m, quarter, args.episodes_quarter) for p in args.policies for m in ("naive", "rtc", "rtc_trained")
            if m in args.methods and quarter in args.delays]
    # the target's third interval, RTC at D = 0, as many episodes as the two it is compared with
    head += [(p, "rtc", 0, args.episodes_quarter) for p in args.policies if "rtc" in args.methods and 0 in args.delays]
    rest = [(p, m, d, args.episodes) for p in args.policies for d in args.delays for m in args.methods
            if m != "ensemble" and (p, m, d, args.episodes_quarter) not in head]
    ensemble = [(p, "ensemble", d, args.episodes) for p in args.policies for d in args.delays
                if "ensemble" in args.methods and d in args.ensemble_delays]
    return head + rest + ensemble


def success(args) -> None:
    import torch

    torch.set_num_threads(1)
    folder = args.results / "deploy" / "cells"
    for p, m, d, n in cells(args):
        path = folder / f"{p}-{m}-D{d}.json"
        old = read_json(path)
        run = run_dirs(args.workdir)[p + ("-rtc" if m == "rtc_trained" else "")]
        key = cell_key(m, run, args.guidance)
        if old and old["episodes"] >= n and all(old.get(k) == v for k, v in key.items()):
            continue
        cell = run_cell(p, m, d, n, args.workdir, args.guidance)
        write_json(path, cell)
        s = cell["seams"]
        print(f"{p:9s} {m:11s} D={d}: {cell['success_rate']:.2f} [{cell['ci95'][0]:.2f}, {cell['ci95'][1]:.2f}] "
              f"n={n} crashes={cell['crashes']} seam ratio={s['seam_ratio']} seam jerk={s['seam_rms_jerk']} "
              f"({cell['seconds']} s)", flush=True)


# ---------------------------------------------------------------------------------------------- pacing


def _request(seq: int, tick: int):
    from robolearn.runtime import ChunkRequest

    return ChunkRequest({"state": np.zeros((1, 6), np.float32)}, tick, tick, seq)


def pace(hz: float, seconds: float, load: str, run: Path, spin_s: float | None, rt_priority: int | None = None) -> dict:
    """RealClock at ``hz`` for ``seconds``; ``load``: idle | process | thread (a policy computing all the time);
    ``rt_priority``: the loop's SCHED_FIFO priority (None: the normal scheduling class)."""
    from robolearn.runtime import RealClock, ThreadBackend
    from robolearn.runtime.rt import RealtimeLoop, split_cores

    loop_cpus, inference_cpus, note = split_cores()
    backend = None
    chunks = 0
    with RealtimeLoop(loop_cpus if load != "thread" else None, rt_priority) as rt:
        if load == "process":
            from robolearn.runtime.process_backend import ProcessBackend

            backend = ProcessBackend.for_checkpoint(run, compile=False, threads=1, cpus=inference_cpus)
            backend.reset(0)
        elif load == "thread":
            from robolearn.runtime.chunk_policy import ChunkPolicyAdapter

            chunks_fn = ChunkPolicyAdapter(policy_for(run))
            chunks_fn.reset(0)
            backend = ThreadBackend(chunks_fn, cpus=inference_cpus)
        rt.freeze_gc()
        clock = RealClock(hz, spin_s=spin_s)
        n = int(round(hz * seconds))
        seq = 0
        cpu0 = time.thread_time()
        t0 = time.monotonic()
        clock.start()
        try:
            for _ in range(n):
                tick = clock.wait_next_tick()
                if backend is not None:
                    chunks += len(backend.poll())
                    if backend.pending == 0:
                        backend.submit(_request(seq, tick))
                        seq += 1
        finally:
            wall = time.monotonic() - t0
            cpu = time.thread_time() - cpu0
            if backend is not None:
                backend.close()
        report = rt.report()
    lat = clock.lateness_us()
    stats = clock.stats()
    return {"hz": hz, "load": load, "seconds": round(wall, 2), "spin_s": "auto" if spin_s is None else spin_s,
            "spin_s_final": clock.spin_s, "ticks": stats["ticks"],
            "missed_ticks": stats["missed_ticks"], "achieved_hz": round(stats["achieved_hz"], 4),
            "rate_error": round(stats["achieved_hz"] / hz - 1.0, 6),
            "lateness_us_p50": round(float(np.percentile(lat, 50)), 1),
            "lateness_us_p99": round(float(np.percentile(lat, 99)), 1),
            "lateness_us_max": round(float(lat.max()), 1), "loop_cpu_share": round(cpu / wall, 3),
            "chunks_computed": chunks, "pinned": {"loop": sorted(loop_cpus or []), "inference": sorted(inference_cpus or [])},
            "note": note, "rt": report}


def lerobot_pacing(python: str, seconds: float, rates: list[int], out: Path) -> dict:
    """LeRobot's pacing_bench.py (its precise_sleep) run by ``python``, or why it could not run."""
    script = ROOT.parent / "shared" / "bench" / "lerobot" / "pacing_bench.py"
    if not script.is_file():
        return {"ran": False, "why": f"{script} not found"}
    if not Path(python).is_file():
        return {"ran": False, "why": f"{python} not found (build it: ../shared/bench/lerobot/make-venv.sh)"}
    cmd = [python, str(script), "--out", str(out), "--seconds", str(seconds), "--repeats", "1", "--rates",
           *map(str, rates), "--modes", "record_loop_pattern", "absolute_deadline"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds * 8 + 300)
    if proc.returncode != 0:
        return {"ran": False, "why": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed",
                "cmd": cmd}
    data = json.loads(out.read_text())
    return {"ran": True, "cmd": cmd, "median_over_repeats": data.get("median_over_repeats"),
            "machine": data.get("machine")}


def pacing(args) -> None:
    path = args.results / "deploy" / "pacing.json"
    run = run_dirs(args.workdir)["flow"]
    data = {"seconds_per_run": args.seconds, "spin_s": args.spin, "rt_priority": args.rt_priority, "ours": [],
            "machine": machine("torch", "numpy")}
    for hz in args.rates:
        for load in args.loads:
            for prio in dict.fromkeys([args.rt_priority, *([None] if args.normal_too else [])]):
                r = pace(hz, args.seconds, load, run, args.spin, prio)
                r["sched"] = "fifo" if r["rt"]["sched_fifo"] else "normal"
                data["ours"].append(r)
                print(f"pacing {hz} Hz {load} {r['sched']}: p50 {r['lateness_us_p50']} p99 {r['lateness_us_p99']} max "
                      f"{r['lateness_us_max']} us, {r['achieved_hz']} Hz, missed {r['missed_ticks']}, "
                      f"loop CPU {r['loop_cpu_share']:.0%}", flush=True)
                write_json(path, data)
    data["lerobot"] = lerobot_pacing(args.lerobot_python, args.seconds, args.rates,
                                     args.results / "deploy" / "pacing_lerobot_raw.json")
    print(f"lerobot pacing: {json.dumps(data['lerobot'].get('median_over_repeats') or data['lerobot'])}", flush=True)
    write_json(path, data)


# ------------------------------------------------------------------------------------------ throughput


def throughput(args) -> None:
    from robolearn.deploy import DeployConfig, deploy_checkpoint

    path = args.results / "deploy" / throughput_file(args.throughput_inference_steps)
    data = read_json(path) or {"fps": args.fps, "episodes": args.throughput_episodes, "modes": {},
                               "inference_steps": args.throughput_inference_steps}
    if data.get("inference_steps") != args.throughput_inference_steps or data["fps"] != args.fps:
        raise SystemExit(f"{path} holds runs at {data['fps']} Hz with inference_steps "
                         f"{data.get('inference_steps')}; move it away to measure another setting")
    run = run_dirs(args.workdir)[args.throughput_policy]
    weights = sha256(weights_of(run))
    if data["modes"] and data.get("weights_sha256") != weights:
        raise SystemExit(f"{path} holds runs of other weights than {weights_of(run)}; move it away to measure these")
    data["weights_sha256"] = weights
    modes = {"sync": dict(inference="sync"), "async_naive": dict(inference="async", join="naive", backend="thread"),
             "async_rtc": dict(inference="async", join="rtc", backend="thread")}
    for name, kw in modes.items():
        if name in data["modes"]:
            continue
        cfg = DeployConfig(realtime=True, fps=args.fps, episodes=args.throughput_episodes, seed=SEED, compile=False,
                           inference_steps=args.throughput_inference_steps, **kw)
        s = deploy_checkpoint(run, cfg, env=ENV_ID, progress=False)
        eps = s["per_episode"]
        data["modes"][name] = {
            "success_rate": s["success_rate"], "ci95": s["ci95"], "holds": s["holds"], "missed_ticks": s["missed_ticks"],
            "inference_ms_p50": float(np.median([e["latency_ms"]["inference_p50"] for e in eps])),
            "obs_to_action_ms": s["latency_ms"], "per_episode": [
                {"seed": e["seed"], "success": e["success"], "steps": e["steps"], "duration_s": e["duration_s"],
                 "missed_ticks": e["missed_ticks"], "holds": e["holds"]} for e in eps]}
        print(f"throughput {name}: success {s['success_rate']:.2f}", flush=True)
        write_json(path, data)
    data["policy"] = args.throughput_policy
    data["inference_steps"] = args.throughput_inference_steps
    data["machine"] = machine("torch", "numpy")
    write_json(path, data)


def throughput_file(inference_steps: int | None) -> str:
    """Each denoising-step setting keeps its own runs (the checkpoint's: throughput.json)."""
    return "throughput.json" if inference_steps is None else f"throughput_steps{inference_steps}.json"


def throughput_summary(data: dict) -> dict:
    """Time to success (wall s) per mode over the seeds every mode succeeded on, and speed-ups vs sync."""
    modes = data.get("modes", {})
    if "sync" not in modes:
        return {}
    ok = set.intersection(*({e["seed"] for e in m["per_episode"] if e["success"]} for m in modes.values()))
    out = {"common_successes": len(ok), "fps": data.get("fps"), "inference_steps": data.get("inference_steps"),
           "inference_ms_p50": {name: m.get("inference_ms_p50") for name, m in modes.items()}}
    for name, m in modes.items():
        d = [e["duration_s"] for e in m["per_episode"] if e["seed"] in ok]
        own = [e["duration_s"] for e in m["per_episode"] if e["success"]]
        steps = [e["steps"] for e in m["per_episode"] if e["seed"] in ok]
        out[name] = {"success_rate": m["success_rate"], "ci95": m["ci95"],
                     "time_to_success_s_mean": float(np.mean(d)) if d else None,
                     "steps_to_success_mean": float(np.mean(steps)) if steps else None,
                     "time_to_success_s_mean_own_successes": float(np.mean(own)) if own else None,
                     "missed_ticks": m["missed_ticks"], "holds": m["holds"]}
    base = out["sync"]["time_to_success_s_mean"]
    for name in modes:
        t = out[name]["time_to_success_s_mean"]
        out[name]["faster_than_sync"] = (1.0 - t / base) if base and t else None
    return out


# -------------------------------------------------------------------------------------------- watchdog


def watchdog(args) -> None:
    from robolearn.runtime import RealClock, Watchdog, WatchdogThread

    hz, periods, trials = 100.0, 3, args.watchdog_trials
    budget_ms = 2 * 1e3 / hz + 5.0
    clock = RealClock(hz)
    wd = Watchdog(1 / hz, periods)
    loop_ms = []
    for _ in range(trials):
        clock.start()
        wd.start()
        for i in range(5 + 10 * periods):
            clock.wait_next_tick()
            if i < 5:
                wd.feed()
            elif wd.check():
                break
        loop_ms.extend(r / 1e6 for r in wd.reactions_ns)
    thread_ms = []
    for _ in range(trials):
        wd2 = Watchdog(1 / hz, periods)
        fired: list[int] = []
        with WatchdogThread(wd2, on_trip=lambda: fired.append(time.monotonic_ns())):
            wd2.feed()
            deadline = wd2.deadline_ns
            t_end = time.monotonic() + 4 * periods / hz
            while not fired and time.monotonic() < t_end:
                time.sleep(0.001)
        if fired:
            thread_ms.append((fired[0] - deadline) / 1e6)

    def stats(x):
        a = np.asarray(x)
        return {"n": len(a), "p50_ms": round(float(np.median(a)), 3), "p99_ms": round(float(np.percentile(a, 99)), 3),
                "max_ms": round(float(a.max()), 3)} if len(a) else {"n": 0}

    data = {"hz": hz, "timeout_periods": periods, "budget_ms": budget_ms, "loop_check": stats(loop_ms),
            "thread": stats(thread_ms), "machine": machine("numpy")}
    data["meets_target"] = bool(loop_ms and thread_ms and max(loop_ms) <= budget_ms and max(thread_ms) <= budget_ms)
    write_json(args.results / "deploy" / "watchdog.json", data)
    print(f"watchdog: loop {data['loop_check']}, thread {data['thread']}, budget {budget_ms} ms", flush=True)


# --------------------------------------------------------------------------------------------- summary


def load_cells(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def current_cells(cells_: list[dict], workdir: Path, guidance: dict) -> tuple[list[dict], list[str]]:
    """The cells computed with today's weights, RTC code and settings and seam metric (``cell_key``), and the
    names of the others (stale: left out of the checks, table and plots until ``--part success`` reruns them)."""
    runs = run_dirs(workdir)
    keys: dict[tuple[str, str], dict | None] = {}
    ok, stale = [], []
    for c in cells_:
        run = runs[c["policy"] + ("-rtc" if c["method"] == "rtc_trained" else "")]
        if (c["policy"], c["method"]) not in keys:
            keys[(c["policy"], c["method"])] = cell_key(c["method"], run, guidance) if weights_of(run).is_file() else None
        key = keys[(c["policy"], c["method"])]
        if key is not None and all(c.get(k) == v for k, v in key.items()):
            ok.append(c)
        else:
            stale.append(f"{c['policy']}-{c['method']}-D{c['delay']}")
    return ok, stale


def grid_checks(cells_: list[dict]) -> dict:
    """The targets of items 1 and 2 per policy, from the cells present."""
    by = {(c["policy"], c["method"], c["delay"]): c for c in cells_}
    q = T // 4
    out = {}
    for p in sorted({c["policy"] for c in cells_}):
        r = {}
        rtc, naive, rtc0 = by.get((p, "rtc", q)), by.get((p, "naive", q)), by.get((p, "rtc", 0))
        if rtc and naive:
            r["rtc_above_naive_at_T/4"] = rtc["ci95"][0] > naive["ci95"][1]
            r["rtc_minus_naive_at_T/4"] = round(rtc["success_rate"] - naive["success_rate"], 3)
        if rtc and rtc0:
            r["rtc_T/4_overlaps_D0"] = rtc["ci95"][0] <= rtc0["ci95"][1] and rtc0["ci95"][0] <= rtc["ci95"][1]
        for m in ("rtc", "rtc_trained"):
            ratios = [by[(p, m, d)]["seams"]["seam_ratio"] for d in DELAYS if d <= q and (p, m, d) in by]
            if ratios and None not in ratios:
                r[f"{m}_seam_ratio_max_D<=T/4"] = round(max(ratios), 3)
                r[f"{m}_seam_ratio_ok"] = max(ratios) <= 1.5
            floors = [by[(p, m, d)]["seams"].get("seamless_ratio") for d in DELAYS if d <= q and (p, m, d) in by]
            if floors and None not in floors:  # what a join with no discontinuity of its own would score
                r[f"{m}_seamless_ratio_max_D<=T/4"] = round(max(floors), 3)
            for suffix in ("", "_with_start"):  # _with_start: the episode's start counted as a seam (seam_terms)
                less = []
                for d in DELAYS:
                    a, b = by.get((p, m, d)), by.get((p, "naive", d))
                    ja, jb = (c and c["seams"].get("seam_rms_jerk" + suffix) for c in (a, b))
                    if d > 0 and ja and jb:
                        less.append((d, round(1 - ja / jb, 3)))
                if less:
                    r[f"{m}_seam_jerk_reduction_vs_naive{suffix}"] = dict(less)
            ok = [v for k, v in r.get(f"{m}_seam_jerk_reduction_vs_naive", {}).items() if k <= q]
            if ok:
                r[f"{m}_seam_jerk_reduction_ok_D<=T/4"] = min(ok) >= 0.5
        out[p] = r
    return out


def plot_success(cells_: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    policies = sorted({c["policy"] for c in cells_}, key=lambda p: list(POLICIES).index(p))
    fig, axes = plt.subplots(1, len(policies), figsize=(5.2 * len(policies), 4), sharey=True, squeeze=False)
    for ax, p in zip(axes[0], policies):
        for i, m in enumerate(METHODS):
            cs = sorted((c for c in cells_ if c["policy"] == p and c["method"] == m), key=lambda c: c["delay"])
            if not cs:
                continue
            x = np.array([c["delay"] for c in cs]) + (i - 2) * 0.06
            y = np.array([c["success_rate"] for c in cs])
            lo = np.maximum(y - np.array([c["ci95"][0] for c in cs]), 0.0)  # rounding at 0 and 1
            hi = np.maximum(np.array([c["ci95"][1] for c in cs]) - y, 0.0)
            ax.errorbar(x, y, yerr=[lo, hi], marker="o", capsize=3, color=f"C{i}", label=m.replace("_", "-"))
        ax.set_title(f"{p} (T={T}, s={TA}), {ENV_ID}")
        ax.set_xlabel("inference delay D (ticks, virtual time)")
        ax.set_xticks(DELAYS)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("success rate (Wilson 95%)")
    axes[0][-1].legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_seams(cells_: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    policies = sorted({c["policy"] for c in cells_}, key=lambda p: list(POLICIES).index(p))
    fig, axes = plt.subplots(1, len(policies), figsize=(5.2 * len(policies), 4), sharey=True, squeeze=False)
    for ax, p in zip(axes[0], policies):
        for i, m in enumerate(METHODS):
            cs = sorted((c for c in cells_ if c["policy"] == p and c["method"] == m
                         and c["seams"]["seam_rms_jerk"] is not None), key=lambda c: c["delay"])
            if cs:
                ax.plot([c["delay"] for c in cs], [c["seams"]["seam_rms_jerk"] for c in cs], marker="o",
                        color=f"C{i}", label=m.replace("_", "-"))
        ax.set_title(f"{p}: RMS jerk around chunk switches")
        ax.set_xlabel("inference delay D (ticks)")
        ax.set_xticks(DELAYS)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("RMS |third difference| (action units / tick^3)")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summary(args) -> None:
    folder = args.results / "deploy"
    cells_, stale = current_cells(load_cells(folder / "cells"), args.workdir, args.guidance)
    table = [{k: c[k] for k in ("policy", "method", "delay", "episodes", "success_rate", "ci95", "crashes", "timeouts",
                                "steps_to_success_mean")}
             | {"seam_ratio": c["seams"]["seam_ratio"], "seamless_ratio": c["seams"].get("seamless_ratio"),
                "seam_rms_jerk": c["seams"]["seam_rms_jerk"],
                "seam_ratio_with_start": c["seams"].get("seam_ratio_with_start"),
                "seam_rms_jerk_with_start": c["seams"].get("seam_rms_jerk_with_start"), "rtc": c.get("rtc"),
                "rms_jerk": c["seams"]["rms_jerk"], "holds": c["scheduler"].get("holds"),
                "excess_actions": c["scheduler"].get("excess_actions"),
                "dropped_late": c["scheduler"].get("dropped_late")} for c in cells_]
    reused = {}
    for name in ("safety", "server", "rtc_overhead"):
        d = read_json(args.results / f"{name}.json")
        if d is None:
            continue
        if name == "safety":
            reused[name] = {"worst_cost_us_chain": d["worst_cost_us_chain"], "target_us": d["target_us"],
                            "meets_target": d["meets_target"]}
        elif name == "server":
            reused[name] = {"codec_p99_ms_To2": d["codec_p99_ms_To2"], "target_codec_p99_ms": d["target_codec_p99_ms"],
                            "loopback_round_trip": d["loopback_round_trip"], "meets_target": d["meets_target"]}
        else:
            reused[name] = {k: {v: d["results"][k][v].get("overhead_cpu_p50") for v in ("guided", "trained")}
                            for k in d["results"]} | {"met": d["met"]}
    thr = read_json(folder / "throughput.json") or {}
    slow = {p.stem.removeprefix("throughput_"): throughput_summary(read_json(p))
            for p in sorted(folder.glob("throughput_steps*.json"))}
    data = {
        "benchmark": "deploy", "env": ENV_ID, "chunk": {"horizon": T, "s": TA, "n_obs_steps": 1},
        "delays": list(DELAYS), "first_seed": SEED, "runs": read_json(args.workdir / "runs.json"),
        "workdir": str(args.workdir), "targets": TARGETS, "anchors": ANCHORS,
        "success_vs_delay": table, "checks": grid_checks(cells_), "stale_cells": stale,
        "pacing": read_json(folder / "pacing.json"), "throughput": throughput_summary(thr) if thr else None,
        # the same with more denoising steps per chunk: inference spanning several ticks (RTC's regime, d ~ T/4)
        "throughput_slower_inference": slow or None,
        "watchdog": read_json(folder / "watchdog.json"), "reused": reused, "machine": machine("torch", "numpy"),
    }
    write_json(args.results / "deploy.json", data)
    if cells_:
        plot_success(cells_, args.results / "deploy_success_vs_delay.png")
        plot_seams(cells_, args.results / "deploy_seams.png")
    print(json.dumps(data["checks"], indent=1))
    if stale:
        print(f"left out, stale (rerun --part success): {', '.join(stale)}")
    print(f"wrote {args.results / 'deploy.json'}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", action="append", choices=["train", "success", "pacing", "throughput", "watchdog",
                                                         "summary"], help="repeatable; default: train success summary")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--workdir", type=Path, default=RESULTS / "deploy" / "runs",
                    help="demonstrations and trained runs (reused when present)")
    ap.add_argument("--demos", type=int, default=300)
    ap.add_argument("--expert-max-change", type=lambda v: None if v == "none" else float(v),
                    default=EXPERT_MAX_CHANGE, help="train: the expert's command rate limit per axis per tick when "
                    f"collecting (default {EXPERT_MAX_CHANGE}; none: unlimited, as before session 10)")
    ap.add_argument("--train-steps", type=int, default=None, help="default: TRAIN_STEPS per policy")
    ap.add_argument("--policies", nargs="+", default=list(POLICIES), choices=list(POLICIES))
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--delays", nargs="+", type=int, default=list(DELAYS))
    ap.add_argument("--ensemble-delays", nargs="+", type=int, default=[0, 2, 4, 8])
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--episodes-quarter", type=int, default=400, help="episodes of naive and both RTCs at D = T/4 and of RTC at D = 0")
    ap.add_argument("--max-guidance", type=float, default=None, help="guided RTC's beta (default: the library's)")
    ap.add_argument("--rtc-vjp-steps", default=None,
                    help="guided RTC's denoising steps through the VJP: an integer or 'all' (default: the library's)")
    ap.add_argument("--seconds", type=float, default=60.0, help="pacing: seconds per run")
    ap.add_argument("--rates", nargs="+", type=int, default=[100, 500])
    ap.add_argument("--loads", nargs="+", default=["idle", "process", "thread"], choices=["idle", "process", "thread"])
    ap.add_argument("--rt-priority", type=lambda v: None if v == "none" else int(v), default=50,
                    help="pacing: the loop's SCHED_FIFO priority (default 50; none: normal class)")
    ap.add_argument("--normal-too", action=argparse.BooleanOptionalAction, default=True,
                    help="pacing: also run each cell in the normal scheduling class, beside SCHED_FIFO")
    ap.add_argument("--spin", type=lambda v: None if v == "auto" else float(v), default=None,
                    help="RealClock spin_s in seconds, or auto (default): sized from the measured wake-up error")
    ap.add_argument("--lerobot-python", default="/tmp/lerobot-venv/bin/python")
    ap.add_argument("--fps", type=float, default=50.0, help="throughput: control rate of the realtime runs")
    ap.add_argument("--throughput-episodes", type=int, default=30)
    ap.add_argument("--throughput-policy", default="diffusion", choices=list(POLICIES))
    ap.add_argument("--throughput-inference-steps", type=int, default=None,
                    help="throughput: denoising steps per chunk (default: the trained policy's)")
    ap.add_argument("--watchdog-trials", type=int, default=50)
    args = ap.parse_args(argv)
    args.guidance = default_guidance()
    if args.max_guidance is not None:
        args.guidance["max_guidance"] = args.max_guidance
    if args.rtc_vjp_steps is not None:
        args.guidance["vjp_steps"] = None if args.rtc_vjp_steps == "all" else int(args.rtc_vjp_steps)
    if args.episodes_quarter < args.episodes:
        args.episodes_quarter = args.episodes
    for part in args.part or ["train", "success", "summary"]:
        {"train": train, "success": success, "pacing": pacing, "throughput": throughput, "watchdog": watchdog,
         "summary": summary}[part](args)


if __name__ == "__main__":
    main()
