"""Recording on a robot: a person drives the follower with a leader arm (or another teleop device) and the
episodes go to a store through the one `Recorder` -- the same path as teleop in sim (`robolearn.record.teleop`).

The robot is a `RobotEnv` built from a robot config (`robolearn.devices.robot_config`); a `ControlLoop` on a
`RealClock` at ``control_fps`` runs it, every action passing the config's `SafetyFilter`, so the store keeps
``action`` (sent) and ``action_commanded`` (what the leader asked). Each stream keeps its own capture stamps
(``timestamps/<key>``); every ``control_fps / record_fps``-th tick is recorded.

A session: episode 0 (``episode_s`` long, or until an episode key), a reset period (``reset_s``: the follower
keeps following the leader, nothing is recorded), episode 1, ... until ``episodes`` are saved or the operator
quits. Episode keys come from devices that have them (keyboard, mouse, scripted): save, discard, rerecord,
quit (`robolearn.record.teleop`); a leader arm has none: its episodes end on time, on a key typed in the terminal
record runs in (`robolearn.devices.terminal_keys`: Enter save, Backspace discard, r re-record, q stop; any device
but the terminal teleop, which reads them itself) or on a button of ``--view``'s page; Ctrl-C ends the session
(the episode in progress is saved as ``truncated``).

An unplugged device -- a servo bus that stops answering (``OSError``), a camera whose newest frame is older
than its ``max_age`` (`robolearn.devices.DeviceFaultError`) -- ends the episode in progress as ``aborted``:
what was recorded is committed with the reason, the store is closed consistent, and the session ends with
`RecordingAborted` (its ``summary`` says what was saved).

With each episode the store keeps (`robolearn.store.Store.episode_extra`) every threaded camera's pairing rule
(``ThreadedCamera.pairing()``: the newest frame not older than ``max_age_s``, and its ``camera_fps``) and its
frame counters during the episode (grabbed, dropped, read_twice, disconnects, reconnects); the root attrs keep
the robot config and the cameras' pairing rules.

Example::

    summary = record_robot(load_robot_config("so101"), "demos.zarr", episodes=20, task="put the cube in the bowl")
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

from robolearn.devices.protocols import TAKEOVER, DeviceFaultError
from robolearn.devices.robot_config import RobotConfig, build_robot_env, build_teleop
from robolearn.errors import CannotCompleteError, InvalidValueError
from robolearn.record.recorder import Recorder, loop_status, settle_episode
from robolearn.record.teleop import EpisodeEvent, TeleopSource

__all__ = ["DEVICE_FAULTS", "RecordingAborted", "record_robot"]

log = logging.getLogger(__name__)

DEVICE_FAULTS = (OSError, DeviceFaultError)
"""What ends an episode as ``aborted``: I/O errors (servo bus, serial port) and devices that stopped delivering."""

WINDOW_DEVICES = ("keyboard", "mouse")


class RecordingAborted(CannotCompleteError):
    """A device failed during an episode; the episode was committed as ``aborted``. ``summary``: the session."""

    def __init__(self, message: str, summary: dict[str, Any]) -> None:
        super().__init__(message)
        self.summary = summary


def teleop_device(cfg: RobotConfig, spec: str | None, env: Any) -> tuple[Any, str]:
    """The teleop device and its name: the config's leader, a device id (a ``robot.teleop`` entry's kwargs), or
    keyboard/mouse/scripted:<file>."""
    if spec is not None and (spec in WINDOW_DEVICES or spec.startswith("scripted:")):
        from robolearn.devices.teleop import make_teleop
        from robolearn.runtime import hold_action

        return make_teleop(spec, env.action_space, origin=lambda obs: hold_action(env)), spec.split(":", 1)[0]
    device = build_teleop(cfg, spec, env)
    return device, spec or cfg.leader.device  # type: ignore[union-attr]


def _episode_cameras(before: dict, after: dict) -> dict[str, dict]:
    """Per camera: its pairing rule and the counters' increase over the episode."""
    out = {}
    for name, now in after.items():
        start = before.get(name, {}).get("counters", {})
        out[name] = {**now["pairing"], **{k: int(v) - int(start.get(k, 0)) for k, v in now["counters"].items()}}
    return out


def record_robot(cfg: RobotConfig, out: str | Path | None, *, teleop: str | None = None,
                 episodes: int | None = None, fps: float | None = None, task: str | None = None,
                 episode_s: float | None = None, reset_s: float | None = None, seed: int = 0,
                 resume: bool = False, overwrite: bool = False, record: bool = True,
                 progress: bool = True, view: Any = None, live: Any = None) -> dict[str, Any]:
    """Record teleoperated episodes on the robot of `cfg` into the store at `out` (module docstring).

    Args:
        cfg: the robot config (`load_robot_config`).
        out: store path or URL (created; appended to with `resume`, replaced with `overwrite`); None with
            ``record=False``.
        teleop: a device id (the config's leader kwargs when it is the leader's device), keyboard, mouse,
            scripted:<script.json>; None: the config's leader.
        episodes: stop after saving this many (None: until quit or Ctrl-C).
        fps: control and recording rate (default: the config's control_fps and record_fps).
        task: the instruction stored with each episode (default: the config's).
        episode_s, reset_s: episode length and reset period in seconds (default: the config's).
        seed: the n-th episode is stored with seed + n.
        record: False runs the same session and writes nothing (checking a setup).
        view: a `robolearn.view.live.LiveViewConfig`: serve the session live (cameras, tick lateness, safety
            events, the episode) with save / discard / re-record / stop buttons as episode keys (also during the
            reset period: save ends it early, stop ends the session); `live`: the `LiveSession` to feed.
    Returns: store, episodes (saved), aborted, discarded, rerecorded, frames, missed_ticks, held_ticks, quit,
        cameras (per camera over the session: pairing rule and counters), seconds.
    """
    from robolearn.output import check_output
    from robolearn.runtime import SafetyFilter, load_safety_config
    from robolearn.store import StoreWriter, features_from_space

    if record:
        if out is None:
            raise InvalidValueError("recording needs --out STORE (or --no-record to run without writing)")
        check_output(out, "store", resume=resume, overwrite=overwrite)  # before any device opens
    if view is not None:
        view.check()  # the live view's address and key file, before any device opens
    if episodes is not None and episodes < 1:
        raise InvalidValueError(f"episodes must be >= 1 (or omitted to record until quit), got {episodes}")
    changes: dict[str, Any] = {}
    if fps is not None:
        changes.update(control_fps=float(fps), record_fps=None)
    for key, value in (("task", task), ("episode_s", episode_s), ("reset_s", reset_s)):
        if value is not None:
            changes[key] = value
    cfg = cfg.with_overrides(**changes) if changes else cfg
    hz, rec_hz = float(cfg.control_fps), cfg.recording_fps
    every = round(hz / rec_hz)
    episode_steps = max(1, round(cfg.episode_s * hz))
    reset_steps = round(cfg.reset_s * hz)

    env = build_robot_env(cfg)
    dev, dev_name = teleop_device(cfg, teleop, env)
    safety = SafetyFilter.for_env(env, load_safety_config(cfg.safety))
    writer = recorder = live_view = terminal = None
    closing_errors: list[str] = []
    try:
        env.connect()  # before the store exists: a robot that is not there leaves nothing behind
        dev.connect()
        from robolearn.devices.terminal_keys import help_line, operator_terminal

        terminal = operator_terminal(dev)  # None beside the terminal teleop, which reads that terminal itself
        if terminal is not None:
            terminal.open()  # the line goes to stderr also with --json: stdout keeps only the summary
            print(f"record: {help_line(takeover=False)}", file=sys.stderr, flush=True)
        if record:
            cameras = {name: r["pairing"] for name, r in env.camera_report().items()}
            attrs = {"robot": cfg.name, "robot_config": cfg.to_json(), "control_fps": hz, "cameras": cameras}
            writer = StoreWriter(out, features_from_space(env.observation_space, env.action_space, commanded=True),
                                 fps=rec_hz, attrs=attrs, resume=resume, overwrite=overwrite)
            recorder = Recorder(writer, fps=rec_hz, task=cfg.task, source=f"teleop:{dev_name}:{cfg.name}")
        if view is not None:
            from robolearn.view.live import LiveView

            live_view = LiveView(view, f"record {cfg.name} ({dev_name})", hz, session=live)
            live_view.session.attach(safety=safety)
            live_view.serve(out if record else None)
        summary = _session(cfg, env, dev, safety, recorder, episodes, episode_steps, reset_steps, every, seed,
                           progress, None if live_view is None else live_view.session, terminal)
    finally:
        if terminal is not None:
            terminal.close()
        try:
            if recorder is not None:
                recorder.close()  # every saved or aborted episode is committed before the writer closes
        finally:
            if writer is not None:
                writer.close()
            if live_view is not None:
                live_view.close()
            for device in (dev, env):  # a device that failed may fail again on its way out: say so, go on
                try:
                    device.disconnect() if device is dev else device.close()
                except DEVICE_FAULTS as e:
                    closing_errors.append(f"{type(e).__name__}: {e}")
                    log.warning("closing %s after a fault: %s", getattr(device, "name", device), e)
    fault = summary.pop("fault")
    summary.update(store=None if not record else (str(out) if "://" in str(out) else str(Path(out).resolve())),
                   closing_errors=closing_errors)
    if fault is not None:
        where = f" to {summary['store']}" if record else ""
        raise RecordingAborted(f"a device failed during {fault['during']} ({fault['reason']}); what it recorded was committed as 'aborted'{where}; reconnect the device "
                               "and run again with --resume", summary)
    return summary


def _session(cfg, env, dev, safety, recorder, episodes, episode_steps, reset_steps, every, seed,
             progress, live=None, terminal=None) -> dict[str, Any]:
    """The episodes and reset periods of one session (`record_robot`); returns its counts. `live`: a
    `LiveSession` fed every tick, whose buttons are episode keys; `terminal`: `TerminalKeys` read every tick, its
    episode keys too (its takeover key means nothing while recording)."""
    from robolearn.runtime import ControlLoop, RealClock

    hz = float(cfg.control_fps)
    counts = dict(episodes=0, aborted=0, discarded=0, rerecorded=0, frames=0, missed_ticks=0, held_ticks=0)
    ep = {"steps": 0, "frames": 0, "recording": False}

    def on_step(rec):
        if ep["recording"] and ep["steps"] % every == 0:
            recorder.add_step(rec)
            ep["frames"] += 1
        ep["steps"] += 1
        if live is not None:
            live.on_step(rec)

    typed: list[str] = []

    def operator_keys(obs, tick):
        key = None if live is None else live.poll()  # a button of the live page: an episode key like the device's
        if key is None and terminal is not None:
            typed.extend(k for k in terminal.poll() if k != TAKEOVER)
            key = typed.pop(0) if typed else None
        if key is not None:
            raise EpisodeEvent(key)

    clk = RealClock(hz)
    loop = ControlLoop(env, TeleopSource(dev, None if live is None and terminal is None else operator_keys), clk,
                       on_step=on_step, safety=safety)
    if live is not None:
        live.attach(clock=clk)
    fault, quit_, n, t0 = None, False, 0, time.perf_counter()
    session_start = env.camera_report()
    while episodes is None or counts["episodes"] < episodes:
        if counts["episodes"] or counts["discarded"] or counts["rerecorded"]:  # a reset period between episodes
            ep["recording"] = False
            loop.max_steps = max(reset_steps, 1)
            if live is not None:
                live.set_phase("reset")
            if reset_steps > 0:
                try:
                    loop.run_episode(seed=None)
                except EpisodeEvent as e:
                    if e.event == "quit":
                        quit_ = True
                        break
                except DEVICE_FAULTS as e:
                    fault = {"reason": f"{type(e).__name__}: {e}", "during": "the reset period"}
                    break
        before = env.camera_report()
        ep.update(steps=0, frames=0, recording=recorder is not None)
        loop.max_steps = episode_steps
        if recorder is not None:
            recorder.start_episode(seed=seed + n)
        if live is not None:
            live.start_episode(counts["episodes"], seed + n, task=cfg.task, recording=recorder is not None)
        event, status, missed, held = "save", "ok", 0, 0
        try:
            result = loop.run_episode(seed=seed + n)
            missed, held, status = result.missed_ticks, result.holds, loop_status(result, None)
        except EpisodeEvent as e:
            event, missed = e.event, clk.missed_ticks
        except KeyboardInterrupt:
            event, status, missed, quit_ = "save", "truncated", clk.missed_ticks, True
        except DEVICE_FAULTS as e:
            fault = {"reason": f"{type(e).__name__}: {e}", "during": f"episode seed {seed + n}"}
            event, missed = "abort", clk.missed_ticks
        ep["recording"] = False
        extra = {"cameras": _episode_cameras(before, env.camera_report()), "teleop": type(dev).__name__}
        counts["missed_ticks"] += missed
        counts["held_ticks"] += held
        if live is not None:
            kept = event == "save" and bool(ep["frames"] or recorder is None)
            live.end_episode(event, saved=counts["episodes"] + kept, status=status)
        if event == "abort":
            if recorder is not None and ep["frames"]:
                recorder.abort_episode(fault["reason"], missed=missed, held=held, extra=extra)
                counts["aborted"] += 1
                counts["frames"] += ep["frames"]
            elif recorder is not None:
                recorder.discard_episode()
            break
        # saved without a success flag (teleop's counts any info["success"]; a robot session counts none)
        done = settle_episode(event, bool(ep["frames"] or recorder is None), recorder, counts,
                              tally={"frames": ep["frames"]}, missed=missed, held=held, status=status, extra=extra)
        n += done.next_seed
        quit_ = quit_ or done.quit  # a Ctrl-C saved the episode and quits too
        if progress:
            print(f"record: {event} {ep['frames']} frames ({counts['episodes']} saved)", file=sys.stderr, flush=True)
        if quit_:
            break
    session = _episode_cameras(session_start, env.camera_report())
    return {**counts, "quit": quit_, "cameras": session, "fault": fault, "fps": hz,
            "record_fps": cfg.recording_fps, "seconds": time.perf_counter() - t0}
