"""Expert data collection: a scripted expert drives an env through the ControlLoop into a store.

Episode i runs with seed `seed + i`. With `only_success`, seeds are tried in order and the first
`episodes` successful ones are written, in seed order, so the store is the same whatever the number
of workers: on Ray (`workers > 1`) each actor owns one env and returns whole episodes to the driver,
which is the store's single writer.

Expert episodes are recorded like teleop and robot ones, through the one `Recorder`: an episode is the
list of its ticks (`recorder.tick_of` of each `StepRecord`: observation with its capture stamps, applied
action, commanded action, timing), run locally or on an actor; the driver hands the ticks of the episodes
it keeps to the Recorder (an episode it does not keep never reaches the store) while the next episode runs.
`record_commanded` adds `action_commanded` to a new store: what the expert asked, beside what the env applied.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from robolearn.errors import CannotCompleteError, InvalidValueError, MissingPathError
from robolearn.output import check_output
from robolearn.record.recorder import Recorder, loop_status, tick_of
from robolearn.store import StoreWriter, features_from_space

_MAX_PENDING_TICKS = 2048  # the driver waits for the writer beyond this: memory stays bounded


class ExpertEpisodes:
    """One env, its expert and a ControlLoop on a virtual clock; `run(seed)` returns one episode."""

    def __init__(self, env_id: str, env_kwargs: dict | None = None, max_steps: int | None = None,
                 record_commanded: bool = False):
        from robolearn.env.registry import make_env
        from robolearn.runtime import ControlLoop, ExpertSource, VirtualClock

        self.env = make_env(env_id, **(env_kwargs or {}))
        base = self.env.unwrapped
        self.hz = float(base.control_hz)
        self.task = str(getattr(base, "task_description", ""))
        self.features = features_from_space(self.env.observation_space, self.env.action_space,
                                            commanded=record_commanded)
        self._ticks: list[dict] = []
        self.loop = ControlLoop(self.env, ExpertSource(base.get_expert()), VirtualClock(self.hz),
                                on_step=lambda rec: self._ticks.append(tick_of(rec)), max_steps=max_steps)

    def run(self, seed: int) -> dict:
        """One episode: its ticks (`Recorder.add_tick` arguments) and how it went."""
        self._ticks = []
        result = self.loop.run_episode(seed=seed)
        return {"seed": seed, "ticks": self._ticks, "success": bool(result.success), "steps": result.steps,
                "missed": int(result.missed_ticks), "held": int(result.holds),
                "status": loop_status(result, self.loop.max_steps)}

    def describe(self) -> dict:
        return {"hz": self.hz, "task": self.task, "features": {k: f.to_json() for k, f in self.features.items()}}

    def close(self) -> None:
        self.env.close()


def _episodes_in_seed_order(runner, seeds, workers, env_id, env_kwargs, max_steps, address, record_commanded):
    """Yield episode dicts in seed order; local or on Ray actors with a bounded number in flight."""
    if workers <= 1:
        for s in seeds:
            yield runner.run(s)
        return
    from robolearn.cluster import ray_session

    with ray_session(workers, address, purpose="collect --workers") as ray:
        actor = ray.remote(num_cpus=1)(ExpertEpisodes)
        actors = [actor.remote(env_id, env_kwargs, max_steps, record_commanded) for _ in range(workers)]
        try:
            yield from _in_seed_order(ray, actors, seeds)
        finally:
            for a in actors:
                ray.kill(a)


def _in_seed_order(ray, actors, seeds):
    """Keep every actor busy; yield finished episodes in seed order (whatever order they finish in)."""
    pending, ready, free = {}, {}, list(actors)
    seeds = iter(seeds)
    next_seed = None
    exhausted = False
    while True:
        while free and not exhausted:
            try:
                s = next(seeds)
            except StopIteration:
                exhausted = True
                break
            next_seed = s if next_seed is None else next_seed
            a = free.pop()
            pending[a.run.remote(s)] = (a, s)
        if not pending and not ready:
            return
        done, _ = ray.wait(list(pending), num_returns=1)
        a, s = pending.pop(done[0])
        ready[s] = ray.get(done[0])
        free.append(a)
        while next_seed in ready:
            yield ready.pop(next_seed)
            next_seed += 1


def collect(env_id: str, out: str | Path, episodes: int, seed: int = 0, env_kwargs: dict | None = None,
            max_steps: int | None = None, only_success: bool = True, progress: bool = True, workers: int = 1,
            address: str | None = None, resume: bool = False, overwrite: bool = False,
            record_commanded: bool = False) -> dict:
    """Record `episodes` expert episodes (the first successful ones, when asked) into the store at `out`;
    `record_commanded` gives a new store `action_commanded` (module docstring).

    `out` must be new or an empty folder; `resume` appends to a robolearn store there (same features),
    `overwrite` replaces one (anything else at `out` is refused: robolearn.output)."""
    check_output(out, "store", resume=resume, overwrite=overwrite)  # before the env is built
    if episodes < 1:
        raise InvalidValueError(f"episodes must be >= 1, got {episodes}")
    if workers < 1:
        raise InvalidValueError(f"workers must be >= 1, got {workers}")
    runner = ExpertEpisodes(env_id, env_kwargs, max_steps, record_commanded)  # spaces, and the work when K=1
    info = runner.describe()
    max_attempts = episodes * 3 + 10 if only_success else episodes
    seeds = range(seed, seed + max_attempts)
    attrs = {"env_id": env_id, "env_kwargs": dict(env_kwargs or {})}
    written = attempts = successes = steps = 0
    t0 = time.perf_counter()
    columns = [TextColumn("[bold]collect"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
               TimeElapsedColumn()]
    try:
        with StoreWriter(out, runner.features, fps=info["hz"], attrs=attrs, resume=resume,
                         overwrite=overwrite) as writer, \
                Progress(*columns, disable=not progress) as bar:
            task = bar.add_task("collect", total=episodes, info="")
            recorder = Recorder(writer, fps=info["hz"], task=info["task"], source=f"expert:{env_id}")
            try:
                gen = _episodes_in_seed_order(runner, seeds, workers, env_id, env_kwargs, max_steps, address,
                                              record_commanded)
                for ep in gen:
                    attempts += 1
                    steps += ep["steps"]
                    successes += int(ep["success"])
                    if ep["success"] or not only_success:
                        recorder.start_episode(seed=ep["seed"])
                        for tick in ep["ticks"]:
                            recorder.add_tick(**tick)
                        recorder.save_episode(success=ep["success"], missed=ep["missed"], held=ep["held"],
                                              status=ep["status"])
                        recorder.wait_pending(_MAX_PENDING_TICKS)
                        written += 1
                        bar.update(task, completed=written, info=f"expert success {successes}/{attempts}")
                    if written >= episodes:
                        gen.close()  # stops the Ray actors still running later seeds
                        break
            finally:
                recorder.close()  # every saved episode is committed (or its error raised) before the writer closes
    finally:
        runner.close()
    elapsed = time.perf_counter() - t0
    if written < episodes:
        raise CannotCompleteError(f"the expert succeeded in only {successes} of {attempts} episodes; "
                           f"wrote {written} of the {episodes} asked for to {out}")
    return {"store": str(out) if "://" in str(out) else str(Path(out).resolve()), "episodes": written,
            "attempts": attempts, "expert_success_rate": successes / max(attempts, 1),
            "env_steps_per_s": steps / max(elapsed, 1e-9), "seconds": elapsed, "workers": workers}


def recipe_path(recipe: str | Path) -> Path:
    """A recipe file, or the name of a folder under datasets/ holding recipe.yaml."""
    from robolearn.config import configs_dir

    p = Path(recipe)
    if p.is_file():
        return p
    named = configs_dir().parent / "datasets" / str(recipe) / "recipe.yaml"
    if named.is_file():
        return named
    raise MissingPathError(f"no recipe {recipe!r}: neither a file nor datasets/{recipe}/recipe.yaml")


def collect_recipe(recipe: str | Path, out: str | Path, workers: int = 1, progress: bool = True,
                   address: str | None = None, episodes_per_env: int | None = None, resume: bool = False,
                   overwrite: bool = False) -> dict:
    """Regenerate a dataset from its recipe: every env of the recipe appends to the one store at `out`
    (`resume`/`overwrite` as in `collect`, for the store as it is before the first env)."""
    import yaml

    path = recipe_path(recipe)
    spec = yaml.safe_load(path.read_text()) or {}
    known = {"name", "envs", "episodes_per_env", "seed", "only_success", "max_steps", "env_kwargs"}
    unknown = sorted(set(spec) - known)
    if unknown or not spec.get("envs"):
        raise InvalidValueError(f"recipe {path} must list `envs` and may set {sorted(known)}; unknown: {unknown}")
    per_env = []
    for i, env_id in enumerate(spec["envs"]):
        first = i == 0  # the envs after the first append to the store the first one wrote
        per_env.append(collect(env_id, out, int(episodes_per_env or spec.get("episodes_per_env", 50)),
                               seed=int(spec.get("seed", 0)), env_kwargs=spec.get("env_kwargs") or {},
                               max_steps=spec.get("max_steps"), only_success=bool(spec.get("only_success", True)),
                               progress=progress, workers=workers, address=address,
                               resume=resume or not first, overwrite=overwrite and first))
    return {"store": per_env[0]["store"], "recipe": str(path), "episodes": sum(r["episodes"] for r in per_env),
            "per_env": {e: {k: r[k] for k in ("episodes", "expert_success_rate", "env_steps_per_s")}
                        for e, r in zip(spec["envs"], per_env)}}
