"""Expert data collection: a scripted expert drives an env through the ControlLoop into a store."""

from __future__ import annotations

import time
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from robolearn.env.registry import make_env
from robolearn.record.recorder import Recorder
from robolearn.store import StoreWriter, features_from_space


def collect(env_id: str, out: str | Path, episodes: int, seed: int = 0, env_kwargs: dict | None = None,
            max_steps: int | None = None, only_success: bool = True, progress: bool = True) -> dict:
    """Record `episodes` expert episodes (successful ones only, when asked) into the store at `out`."""
    from robolearn.runtime import ControlLoop, ExpertSource, VirtualClock

    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    env = make_env(env_id, **(env_kwargs or {}))
    try:
        base = env.unwrapped
        features = features_from_space(env.observation_space, env.action_space)
        hz = float(base.control_hz)
        attrs = {"env_id": env_id, "env_kwargs": dict(env_kwargs or {})}
        writer = StoreWriter(out, features, fps=hz, attrs=attrs)
        recorder = Recorder(writer, fps=hz, task=getattr(base, "task_description", ""), source=f"expert:{env_id}")
        source = ExpertSource(base.get_expert())

        def on_step(rec):
            recorder.add_tick(rec.obs, rec.action, rec.t)

        loop = ControlLoop(env, source, VirtualClock(hz), on_step=on_step, max_steps=max_steps)
        written, attempts, successes, steps = 0, 0, 0, 0
        max_attempts = episodes * 3 + 10 if only_success else episodes
        t0 = time.perf_counter()
        columns = [TextColumn("[bold]collect"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                   TimeElapsedColumn()]
        with Progress(*columns, disable=not progress) as bar:
            task = bar.add_task("collect", total=episodes, info="")
            while written < episodes and attempts < max_attempts:
                ep_seed = seed + attempts
                attempts += 1
                recorder.start_episode(seed=ep_seed)
                result = loop.run_episode(seed=ep_seed)
                steps += result.steps
                successes += int(result.success)
                if only_success and not result.success:
                    recorder.discard_episode()
                    continue
                recorder.save_episode(success=result.success, late=result.missed_ticks)
                written += 1
                bar.update(task, completed=written, info=f"expert success {successes}/{attempts}")
        recorder.close()
        writer.close()
        elapsed = time.perf_counter() - t0
        if written < episodes:
            raise RuntimeError(f"the expert succeeded in only {successes} of {attempts} episodes; "
                               f"wrote {written} of the {episodes} asked for to {out}")
        return {"store": str(Path(out).resolve()) if "://" not in str(out) else str(out), "episodes": written,
                "attempts": attempts, "expert_success_rate": successes / max(attempts, 1),
                "env_steps_per_s": steps / max(elapsed, 1e-9), "seconds": elapsed}
    finally:
        env.close()
