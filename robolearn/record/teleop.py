"""Teleop recording: a person drives an env through a teleop device; the episodes they keep go to a store.

One `ControlLoop` per episode, paced by a `RealClock` at the env's `control_hz` (or `fps`), with the
device as its action source; every tick goes to the `Recorder` through `on_step`. Episode keys:

    save      commit the episode (its success flag: any `info["success"]` during it), next seed
    discard   drop it, next seed
    rerecord  drop it, same seed again
    quit      drop the episode in progress, commit what was saved, close the store

An episode the env ends itself (success, or its time limit) is saved with its success flag. Seeds:
the n-th episode not re-recorded is reset with `seed + n`, so a saved episode can be replayed.

Example::

    summary = record_teleop("robolearn/pusht", "pusht.zarr", device="mouse", episodes=20)
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from robolearn.devices.protocols import TAKEOVER
from robolearn.devices.teleop import EVENTS, make_teleop
from robolearn.env.registry import make_env
from robolearn.errors import InvalidValueError
from robolearn.output import check_output
from robolearn.record.recorder import Recorder, loop_status, settle_episode
from robolearn.store import StoreWriter, features_from_space

__all__ = ["EpisodeEvent", "TeleopSource", "record_teleop"]

CLOCKS = ("real", "virtual")


class EpisodeEvent(Exception):
    """Raised out of the control loop when the operator ends the episode with an episode key."""

    def __init__(self, event: str) -> None:
        super().__init__(event)
        self.event = event


class TeleopSource:
    """A teleop device as the loop's `ActionSource`: its action, or None when it gives none (the loop holds).

    `act` raises `EpisodeEvent` when an episode key was pressed since the previous tick; that tick is
    not stepped. The takeover key (`robolearn.devices.protocols.TAKEOVER`) means nothing while recording: ignored. `on_tick(obs, tick)` runs first each tick (the recorder refreshes its viewer there).
    """

    def __init__(self, device: Any, on_tick=None) -> None:
        self.device, self.on_tick = device, on_tick

    def reset(self, seed: int | None = None) -> None:
        self.device.reset()

    def act(self, obs: dict[str, np.ndarray], tick: int) -> np.ndarray | None:
        if self.on_tick is not None:
            self.on_tick(obs, tick)
        action = self.device.get_action(obs)
        events = [e for e in self.device.events() if e != TAKEOVER]
        if events:
            raise EpisodeEvent(events[0])
        return None if action is None else np.asarray(action, dtype=np.float32)


def record_teleop(env_id: str, out: str | Path, device: str = "keyboard", episodes: int | None = None,
                  fps: float | None = None, seed: int = 0, env_kwargs: dict | None = None,
                  clock: str = "real", max_steps: int | None = None, resume: bool = False,
                  overwrite: bool = False, task: str | None = None, record: bool = True, view: Any = None,
                  live: Any = None) -> dict:
    """Record teleoperated episodes of `env_id` into the store at `out` (created; appended to with `resume`).

    Args:
        env_id: a registered robolearn env id.
        out: store path or URL.
        device: "keyboard", "mouse" or "scripted:<script.json>" (`robolearn.devices.teleop.make_teleop`).
        episodes: stop after saving this many (None: until quit).
        fps: control rate; defaults to the env's `control_hz`.
        seed: the n-th episode (re-records excluded) is reset with seed + n.
        env_kwargs: passed to the env's constructor.
        clock: "real" (wall-clock pacing) or "virtual" (no sleeping: scripted devices and tests).
        max_steps: end (and save) an episode after this many steps (None: the env decides).
        resume: append to a robolearn store at `out`; overwrite: replace one. Anything else at `out` is
            refused (robolearn.output), and without either flag so is an existing store.
        task: the instruction stored with each episode (default: the env's `task_description`).
        record: False runs the same session and writes nothing (`out` may be None): checking a setup.
        view: a `robolearn.view.live.LiveViewConfig`: serve the session live (cameras, timing, the episode),
            its buttons save / discard / re-record / stop acting as the episode keys; `live`: the
            `LiveSession` to feed (default: a new one).
    Returns: a summary: store, episodes (saved), discarded, rerecorded, successes, frames, missed_ticks, quit.
    """
    from robolearn.runtime import ControlLoop, RealClock, VirtualClock, hold_action

    if record:
        check_output(out, "store", resume=resume, overwrite=overwrite)  # before the env and the device open
    if view is not None:
        view.check()  # the live view's address and key file, before anything opens
    if episodes is not None and episodes < 1:
        raise InvalidValueError(f"episodes must be >= 1 (or omitted to record until quit), got {episodes}.")
    if clock not in CLOCKS:
        raise InvalidValueError(f"clock={clock!r} is not supported; accepted values: {', '.join(CLOCKS)}.")
    if fps is not None and not fps > 0:
        raise InvalidValueError(f"fps must be > 0, got {fps}.")
    env = make_env(env_id, **(env_kwargs or {}))
    base = env.unwrapped
    hz = float(fps or base.control_hz)
    # An absolute target starts from the hold: the target the robot holds now (robolearn.runtime.hold).
    dev = make_teleop(device, env.action_space, mapping=getattr(base, "teleop_mapping", None),
                      origin=lambda obs: hold_action(env))
    try:
        dev.connect()  # before the store exists: no window (no display), no empty store left behind
    except BaseException:
        env.close()
        raise
    writer = recorder = None
    try:
        if record:
            writer = StoreWriter(out, features_from_space(env.observation_space, env.action_space), fps=hz,
                                 attrs={"env_id": env_id, "env_kwargs": dict(env_kwargs or {})}, resume=resume,
                                 overwrite=overwrite)
    except BaseException:  # refused (e.g. --resume onto a store of other features): release what is open
        dev.disconnect()
        env.close()
        raise
    if writer is not None:
        recorder = Recorder(writer, fps=hz, task=getattr(base, "task_description", "") if task is None else task,
                            source=f"teleop:{device.split(':', 1)[0]}:{env_id}")
    counts = {"episodes": 0, "discarded": 0, "rerecorded": 0, "successes": 0, "frames": 0, "missed_ticks": 0}
    ep = {"index": 0, "frames": 0, "success": False}

    def on_tick(obs, tick):
        key = None if session is None else session.poll()  # a button of the live page
        if key is not None:
            raise EpisodeEvent(key)
        lines = [f"{env_id}   episode {ep['index']}   frame {ep['frames']}",
                 f"saved {counts['episodes']}" + (f" of {episodes}" if episodes else "")]
        dev.viewer.show(env.render(), lines, recording=True)

    def on_step(rec):
        if recorder is not None:
            recorder.add_step(rec)
        ep["frames"] += 1
        ep["success"] = ep["success"] or bool(rec.info.get("success", False))
        if session is not None:
            session.on_step(rec)

    clk = RealClock(hz) if clock == "real" else VirtualClock(hz)
    loop = ControlLoop(env, TeleopSource(dev, on_tick), clk, on_step=on_step, max_steps=max_steps)
    live_view = session = None
    quit_, n, t0 = False, 0, time.perf_counter()
    try:
        if view is not None:
            from robolearn.view.live import LiveView

            live_view = LiveView(view, f"teleop {env_id} ({device.split(':', 1)[0]})", hz, session=live)
            session = live_view.session
            session.attach(clock=clk)
            live_view.serve(out if record else None)
        with dev:  # disconnects on the way out
            while episodes is None or counts["episodes"] < episodes:
                ep.update(index=counts["episodes"], frames=0, success=False)
                if recorder is not None:
                    recorder.start_episode(seed=seed + n)
                if session is not None:
                    session.start_episode(counts["episodes"], seed + n, task=recorder.task if recorder else "",
                                          recording=recorder is not None)
                try:
                    result = loop.run_episode(seed=seed + n)
                    event, missed = "save", result.missed_ticks
                    held, status = result.holds, loop_status(result, max_steps)
                except EpisodeEvent as e:
                    event, missed = e.event, clk.missed_ticks
                    held, status = 0, "ok"  # the operator ended it; the loop's hold count went with the run
                assert event in EVENTS
                counts["missed_ticks"] += missed
                if session is not None:
                    kept = event == "save" and ep["frames"] > 0
                    session.end_episode(event, saved=counts["episodes"] + kept, success=ep["success"], status=status)
                done = settle_episode(event, ep["frames"] > 0, recorder, counts,
                                      tally={"successes": int(ep["success"]), "frames": ep["frames"]},
                                      success=ep["success"], missed=missed, held=held, status=status)
                n += done.next_seed
                if done.quit:
                    quit_ = True
                    break
    finally:
        try:
            if recorder is not None:
                recorder.discard_episode()
                recorder.close()
        finally:
            if writer is not None:
                writer.close()
            if live_view is not None:
                live_view.close()
            env.close()
    store = None if not record else str(out) if "://" in str(out) else str(Path(out).resolve())
    summary = {"store": store, **counts, "quit": quit_, "seconds": time.perf_counter() - t0}
    if session is not None:
        summary["live"] = session.url
    return summary
