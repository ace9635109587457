"""The emulated UR controller: robot, safety and program state, and the ur_rtde control script's register
handshake, stepped once per control period (2 ms on an e-Series). No sockets here (`emulator` serves it).

What it reproduces of a real controller running the script ``RTDEControlInterface`` uploads:

- the script's main loop, once per ``sync()``: read ``input_int_register_<off>``; real-time commands
  (SERVOJ 11, SERVOL 24, SPEEDJ 9, ... read from the uploaded script itself) are processed and answered
  "ready" (``output_int_register_<off>`` = 1) in the same cycle; any other command runs once and answers
  "done" (2) until the client clears the register (0), which answers "ready" again; STOP_SCRIPT (255) ends
  the program. Only the register values present at a cycle count: two packages in one cycle, the first is lost;
- how the real script servoes (ur_rtde 1.6's ``rtde_control`` script): SERVOJ only sets ``servo_target``;
  a ``servo_thread`` runs ``servoj(servo_target, t=0.002, ...)`` back to back, one control cycle each. A
  cycle whose registers hold no new servo package (none arrived since the previous cycle read them) re-runs
  the previous target: that is a **missed cycle** (the robot received no new target before its cycle
  started), counted here exactly so. A package counts for the first cycle that starts after it arrived
  (``step(t)`` is that cycle's start; `emulator.Emulator` hands packages over by their arrival time, so its
  own scheduling delay moves no package into an earlier or a later cycle);
- ``rtde_set_watchdog(variable, min_frequency, action)`` for SET_WATCHDOG (35): every RTDE input package
  that writes ``variable`` feeds it (a servoJ does, so does kickWatchdog's empty command); checked at the
  start of each cycle, as a controller's 500 Hz loop does: a missed deadline is acted on at the first cycle
  start after it (0..1 period later; a controller cannot act between its cycles). The action is read from
  the uploaded script (ur_rtde's is ``"stop"``: the program stops);
- ``protective_stop()`` (PROTECTIVE_STOP 31) and injected protective stops: safety mode PROTECTIVE_STOP,
  the program paused, motion halted; the dashboard unlocks it only ``unlock_delay_s`` after it occurred
  (5 s on a real e-Series);
- robot modes POWER_OFF -> IDLE -> RUNNING through the dashboard's ``power on`` / ``brake release``.

Servo semantics: ``servoj(q, t, lookahead_time, gain)`` moves the controller's target towards ``q`` with a
first-order lookahead filter within the joint speed limit; the MuJoCo twin (`twin.UR5eTwin`) tracks that
target and gives ``actual_q``. ``servoL`` solves the pose for joints near the current target first.

Counters kept for tests and benchmarks (``stats()``): ``servo_cycles`` (cycles that ran a servo command),
``missed_cycles`` (servo cycles with no new servo package since the previous cycle: the script re-ran a
stale command), ``lost_packages`` (servo packages overwritten before a cycle read them), ``slack_hist`` (how long
before the cycle that read it each servo package came, in bins of ``SLACK_EDGES_MS``); ``watchdog_trip``
events with their deadline and the start of the cycle that acted (``t``); ``missed_cycle``/``lost_package`` events
(the first ``MAX_CYCLE_EVENTS``) with the arrival times of the last servo packages and when the cycle ran.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from .kinematics import UR5E, IKError, inverse, pose_and_jacobian

__all__ = ["Command", "RobotMode", "SafetyMode", "RuntimeState", "Controller", "ControllerConfig", "DEFAULT_REALTIME"]


class Command(IntEnum):
    NO_CMD = 0
    MOVEJ = 1
    SPEEDJ = 9
    SERVOJ = 11
    SPEED_STOP = 15
    SERVO_STOP = 16
    SET_PAYLOAD = 17
    SERVOL = 24
    SET_TCP = 29
    PROTECTIVE_STOP = 31
    STOPL = 33
    STOPJ = 34
    SET_WATCHDOG = 35
    WATCHDOG = 99
    STOP_SCRIPT = 255


class RobotMode(IntEnum):
    NO_CONTROLLER = -1
    DISCONNECTED = 0
    CONFIRM_SAFETY = 1
    BOOTING = 2
    POWER_OFF = 3
    POWER_ON = 4
    IDLE = 5
    BACKDRIVE = 6
    RUNNING = 7


class SafetyMode(IntEnum):
    NORMAL = 1
    REDUCED = 2
    PROTECTIVE_STOP = 3
    RECOVERY = 4
    SAFEGUARD_STOP = 5
    SYSTEM_EMERGENCY_STOP = 6
    ROBOT_EMERGENCY_STOP = 7


class RuntimeState(IntEnum):
    STOPPING = 0
    STOPPED = 1
    PLAYING = 2
    PAUSING = 3
    PAUSED = 4
    RESUMING = 5


DEFAULT_REALTIME = frozenset({24, 11, 9, 10, 6, 25, 26, 27, 38, 58})
"""Commands ur_rtde's script answers "ready" in the cycle it processes them (used if the script says nothing)."""
_SERVO = (Command.SERVOJ, Command.SERVOL)
MAX_CYCLE_EVENTS = 1000  # missed_cycle/lost_package events kept (the counters count them all)
SLACK_EDGES_MS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)
"""Bins (ms; the last one open-ended) of ``slack_hist``: how early a servo package came before the cycle that read it."""
JOINT_SPEED_MAX = np.pi  # rad/s, every UR5e joint
READY, DONE = 1, 2


@dataclass
class ControllerConfig:
    """How the emulated controller starts and how fast it does things."""

    dt: float = 0.002
    """Control period (s): 500 Hz on an e-Series."""
    q0: tuple[float, ...] = (0.0, -1.571, 1.571, -1.571, -1.571, 0.0)
    """Joint angles at start (rad)."""
    robot_mode: str = "RUNNING"
    """Mode at start: POWER_OFF (as a real robot boots) or RUNNING (powered, brakes released)."""
    unlock_delay_s: float = 5.0
    """How long after a protective stop the dashboard refuses to unlock it (5 s on a real e-Series)."""
    power_s: float = 0.2
    """Time ``power on`` and ``brake release`` take."""
    version: tuple[int, int, int, int] = (5, 15, 0, 11045)
    """URControl version reported over RTDE (major > 3: an e-Series, 500 Hz)."""
    serial: str = "20235500001"
    twin: bool = True
    """Track the target with the MuJoCo twin (False: actual = target, for protocol-only tests)."""


@dataclass
class _Program:
    name: str
    control: bool
    """It is ur_rtde's control script (it answers the register handshake)."""
    offset: int = 0
    realtime: frozenset = DEFAULT_REALTIME
    watchdog_action: str = "stop"
    executing: bool = False
    servo: bool = False
    pending_move: bool = False


@dataclass
class _Event:
    kind: str
    t: float
    detail: dict = field(default_factory=dict)


def parse_program(text: str) -> _Program:
    """What the emulator needs from an uploaded URScript program."""
    name = re.match(r"\s*(?:def|sec)\s+(\w+)", text)
    control = "signal_ready()" in text and "read_input_integer_reg(0)" in text
    prog = _Program(name.group(1) if name else "script", control)
    off = re.search(r"# int register offset\n\s*(\d+)", text)
    prog.offset = int(off.group(1)) if off else 0
    loop = text.split("NODE_CONTROL_LOOP_BEGINS")[-1]
    rt = re.search(r"if ((?:cmd == \d+(?: or )?)+):", loop)
    if rt:
        prog.realtime = frozenset(int(n) for n in re.findall(r"\d+", rt.group(1)))
    action = re.search(r'rtde_set_watchdog\("input_int_register_\d+", \w+, "(\w+)"\)', text)
    if action:
        prog.watchdog_action = action.group(1)
    return prog


class Controller:
    """State of one emulated UR; ``step(t)`` once per ``config.dt`` (monotonic seconds)."""

    def __init__(self, config: ControllerConfig | None = None, t0: float = 0.0):
        self.config = c = config or ControllerConfig()
        self.t_boot = t0
        self.robot_mode = RobotMode[c.robot_mode]
        self.safety_mode = SafetyMode.NORMAL
        self.runtime = RuntimeState.STOPPED
        self.program: _Program | None = None
        self.t_protective: float | None = None
        self._mode_change: tuple[float, RobotMode] | None = None
        self.target_q = np.array(c.q0, float)
        self.target_qd = np.zeros(6)
        self.servo_q = self.target_q.copy()
        self.servo_lookahead = 0.1
        self.speed_qd = np.zeros(6)
        self.move_goal: tuple[np.ndarray, float] | None = None
        self.twin = None
        if c.twin:
            from .twin import UR5eTwin

            self.twin = UR5eTwin(self.target_q, c.dt)
        self.in_int = [0] * 48
        self.in_double = [0.0] * 48
        self.out_int = [0] * 48
        self.out_double = [0.0] * 48
        self.updated: dict[str, float] = {}
        self.watchdog: tuple[str, float, float] | None = None  # (variable, min frequency, armed at)
        self.drop_inputs_until = -np.inf
        self._servo_packages = 0
        self._servo_arrivals: deque[float] = deque(maxlen=4)
        self.publish_lag_ms: deque[float] = deque(maxlen=20000)
        """Per emulator wake-up: from the newest cycle's start to its data package sent (the emulator's own delay)."""
        self.slack_hist = [0] * len(SLACK_EDGES_MS)
        """Per servo cycle that read a new package: how long before the cycle's start it arrived, counted in the
        bins of `SLACK_EDGES_MS` (the headroom a sender leaves against its own stalls)."""
        self.run_at: float | None = None
        """When the emulator's loop runs the current cycle (monotonic; later than its start when caught up)."""
        self.last_publish: tuple[float, float] | None = None
        """(cycle start, monotonic time sent) of the newest data package the emulator published."""
        self.counters = dict(servo_cycles=0, missed_cycles=0, missed_cycles_late_publish=0, lost_packages=0,
                             dropped_packages=0, ticks=0, overruns=0, skipped_cycles=0, programs=0, commands=0,
                             unsupported_commands=0)
        """``missed_cycles_late_publish``: the missed cycles whose client had less than half a period to answer,
        because the data package of the cycle before left this emulator late (its own stall) or not at all (a
        cycle caught up after one): a real controller publishes on time, so those misses are the emulator's."""
        self.events: list[_Event] = []
        self.last_error = ""

    # -- inputs --
    def on_input(self, values: dict[str, object], t: float) -> None:
        """An RTDE input package arrived at ``t`` (its registers are what the next cycle reads)."""
        if t < self.drop_inputs_until:
            self.counters["dropped_packages"] += 1
            return
        for name, v in values.items():
            self.updated[name] = t
            if name.startswith("input_int_register_"):
                self.in_int[int(name.rsplit("_", 1)[1])] = int(v)  # type: ignore[call-overload]
            elif name.startswith("input_double_register_"):
                self.in_double[int(name.rsplit("_", 1)[1])] = float(v)  # type: ignore[arg-type]
        off = self.program.offset if self.program else 0
        if f"input_int_register_{off}" in values and values[f"input_int_register_{off}"] in _SERVO:
            self._servo_packages += 1
            self._servo_arrivals.append(t)

    # -- programs --
    def run_program(self, text: str, t: float) -> str:
        """A program arrived on the primary/secondary/real-time port: it replaces the running one."""
        prog = parse_program(text)
        if prog.name and text.lstrip().startswith("sec"):
            return "secondary program ignored"
        if self.robot_mode != RobotMode.RUNNING or self.safety_mode != SafetyMode.NORMAL:
            self.last_error = (f"program {prog.name!r} not started: robot mode {self.robot_mode.name}, safety "
                               f"mode {self.safety_mode.name}")
            self.events.append(_Event("program_refused", t, {"name": prog.name}))
            return self.last_error
        self._end_program(t, "replaced", quiet=True)
        self.program = prog
        self.runtime = RuntimeState.PLAYING
        self.counters["programs"] += 1
        self.events.append(_Event("program_started", t, {"name": prog.name, "control": prog.control}))
        if prog.control:
            self.out_int[prog.offset] = READY
        else:  # a one-shot program: it runs within the cycle
            self._end_program(t, "finished")
        return f"started {prog.name}"

    def _end_program(self, t: float, why: str, quiet: bool = False) -> None:
        if self.program is None:
            return
        self._halt()
        self.watchdog = None
        self.program = None
        self.runtime = RuntimeState.STOPPED
        if not quiet:
            self.events.append(_Event("program_stopped", t, {"why": why}))

    def _halt(self) -> None:
        """Stop moving: the target stays where it is (the twin brakes to it)."""
        self.servo_q = self.target_q.copy()
        self.target_qd[:] = 0.0
        self.speed_qd[:] = 0.0
        self.move_goal = None
        if self.program:
            self.program.servo = False

    # -- safety and modes (dashboard and fault injection) --
    def protective_stop(self, t: float, cause: str) -> None:
        if self.safety_mode == SafetyMode.PROTECTIVE_STOP:
            return
        self.safety_mode = SafetyMode.PROTECTIVE_STOP
        self.t_protective = t
        self._halt()
        if self.program is not None:
            self.runtime = RuntimeState.PAUSED
        self.events.append(_Event("protective_stop", t, {"cause": cause}))

    def unlock_protective_stop(self, t: float) -> str:
        if self.safety_mode != SafetyMode.PROTECTIVE_STOP:
            return "Protective stop releasing"  # what PolyScope answers when there is nothing to release
        assert self.t_protective is not None
        if t - self.t_protective < self.config.unlock_delay_s:
            return (f"Cannot unlock protective stop until {self.config.unlock_delay_s:g}s after occurrence. "
                    "Always inspect cause of protective stop before unlocking")
        self.safety_mode = SafetyMode.NORMAL
        self.t_protective = None
        self.events.append(_Event("protective_stop_released", t))
        return "Protective stop releasing"

    def power(self, t: float, on: bool) -> str:
        if not on:
            self._end_program(t, "power off")
            self.robot_mode = RobotMode.POWER_OFF
            return "Powering off"
        if self.robot_mode == RobotMode.POWER_OFF:
            self.robot_mode = RobotMode.POWER_ON
            self._mode_change = (t + self.config.power_s, RobotMode.IDLE)
        return "Powering on"

    def brake_release(self, t: float) -> str:
        if self.robot_mode in (RobotMode.IDLE, RobotMode.POWER_ON):
            self._mode_change = (t + self.config.power_s, RobotMode.RUNNING)
        return "Brake releasing"

    def play(self, t: float) -> str:
        if self.program is None or self.safety_mode != SafetyMode.NORMAL or self.robot_mode != RobotMode.RUNNING:
            return "Failed to execute: play"
        self.runtime = RuntimeState.PLAYING
        return "Starting program"

    def stop(self, t: float) -> str:
        self._end_program(t, "dashboard stop")
        return "Stopped"

    def pause(self, t: float) -> str:
        if self.program is None or self.runtime != RuntimeState.PLAYING:
            return "Failed to execute: pause"
        self._halt()
        self.runtime = RuntimeState.PAUSED
        return "Pausing program"

    # -- one control cycle --
    def step(self, t: float) -> None:
        """Run the cycle that starts at ``t``: the inputs that arrived before ``t`` are what it reads."""
        c = self.config
        self.counters["ticks"] += 1
        if self._mode_change and t >= self._mode_change[0]:
            self.robot_mode = self._mode_change[1]
            self._mode_change = None
        self._check_watchdog(t)
        fresh, self._servo_packages = self._servo_packages, 0
        if self.program is not None and self.program.control and self.runtime == RuntimeState.PLAYING:
            self._script_cycle(t, fresh)
        self._move(c.dt)
        if self.twin is not None:
            self.twin.step(self.target_q, self.target_qd)

    def _check_watchdog(self, t: float) -> None:
        if self.watchdog is None or self.runtime != RuntimeState.PLAYING:
            return
        name, freq, armed = self.watchdog
        last = max(self.updated.get(name, armed), armed)
        deadline = last + 1.0 / freq
        if t > deadline:
            self.events.append(_Event("watchdog_trip", t, {"deadline": deadline, "variable": name,
                                                           "min_frequency": freq}))
            action = self.program.watchdog_action if self.program else "stop"
            if action == "stop":
                self._end_program(t, "rtde watchdog")
            elif action == "pause":
                self._halt()
                self.runtime = RuntimeState.PAUSED
            self.watchdog = None

    def _script_cycle(self, t: float, fresh: int) -> None:
        prog = self.program
        assert prog is not None
        off = prog.offset
        cmd = self.in_int[off]
        if cmd in _SERVO:
            self.counters["servo_cycles"] += 1
            window = self._client_window(t) if fresh != 1 else None  # only a missed/lost cycle needs it
            if fresh == 0:
                self.counters["missed_cycles"] += 1
                if window is None or window < self.config.dt / 2:
                    self.counters["missed_cycles_late_publish"] += 1
            else:
                slack_ms = (t - self._servo_arrivals[-1]) * 1e3
                self.slack_hist[int(np.searchsorted(SLACK_EDGES_MS, slack_ms, side="right")) - 1] += 1
            self.counters["lost_packages"] += max(fresh - 1, 0)
            if fresh != 1 and len(self.events) < MAX_CYCLE_EVENTS:  # why a cycle missed: when the packages came
                self.events.append(_Event("missed_cycle" if fresh == 0 else "lost_package", t, {
                    "arrivals": list(self._servo_arrivals), "run_at": self.run_at, "window": window}))
        if cmd in prog.realtime:
            keep = self._process(cmd, t)
            self.out_int[off] = READY
        elif cmd == 0:
            prog.executing = False
            if not prog.pending_move:
                self.out_int[off] = READY
            keep = True
        else:
            keep = True
            if not prog.executing:
                keep = self._process(cmd, t)
                if self.runtime != RuntimeState.PLAYING:  # protective_stop() paused the script mid-command
                    return
                if not prog.pending_move:
                    self.out_int[off] = DONE
            prog.executing = True
        if prog.pending_move and self.move_goal is None:
            prog.pending_move = False
            self.out_int[off] = DONE if prog.executing else READY
        if not keep:
            self._end_program(t, "stop script")

    def _client_window(self, t: float) -> float | None:
        """How long the client had to answer before the cycle at ``t``: from the previous cycle's data package
        sent to ``t``; None when that package never went out (a cycle caught up after a stall of the emulator)."""
        dt = self.config.dt
        if self.last_publish is None or abs(self.last_publish[0] - (t - dt)) >= dt / 4:
            return None
        return t - self.last_publish[1]

    def _regs(self, first: int, n: int) -> np.ndarray:
        off = self.program.offset if self.program else 0
        return np.array(self.in_double[off + first:off + first + n])

    def _process(self, cmd: int, t: float) -> bool:
        prog = self.program
        assert prog is not None
        self.counters["commands"] += 1
        if cmd == Command.SERVOJ or cmd == Command.SERVOL:
            goal = self._regs(0, 6)
            if cmd == Command.SERVOL:
                try:
                    goal = inverse(UR5E, goal, seed=self.servo_q)
                except IKError as e:  # the real script fails the same way: the program stops
                    self.last_error = str(e)
                    return False
            self.servo_q = goal
            self.servo_lookahead = float(np.clip(self._regs(9, 1)[0], 0.03, 0.2))
            prog.servo = True
        elif cmd == Command.SPEEDJ:
            self.speed_qd = self._regs(0, 6)
        elif cmd in (Command.SERVO_STOP, Command.SPEED_STOP, Command.STOPJ, Command.STOPL):
            self._halt()
        elif cmd == Command.MOVEJ:
            self.move_goal = (self._regs(0, 6), float(self._regs(6, 1)[0]))
            prog.pending_move = True
        elif cmd == Command.PROTECTIVE_STOP:
            self.protective_stop(t, "protective_stop() from the control script")
        elif cmd == Command.SET_WATCHDOG:
            self.watchdog = (f"input_int_register_{prog.offset}", float(self._regs(0, 1)[0]), t)
            self.events.append(_Event("watchdog_armed", t, {"min_frequency": self.watchdog[1]}))
        elif cmd == Command.STOP_SCRIPT:
            return False
        elif cmd not in (Command.SET_PAYLOAD, Command.SET_TCP):
            self.counters["unsupported_commands"] += 1
            self.last_error = f"command {cmd} is not emulated; the emulator answered it as done"
        return True

    def _move(self, dt: float) -> None:
        before = self.target_q.copy()
        moving = self.safety_mode == SafetyMode.NORMAL and self.runtime == RuntimeState.PLAYING
        if moving and self.program is not None and self.program.servo:
            step = (self.servo_q - self.target_q) * min(1.0, dt / self.servo_lookahead)
            self.target_q = self.target_q + np.clip(step, -JOINT_SPEED_MAX * dt, JOINT_SPEED_MAX * dt)
        elif moving and self.move_goal is not None:
            goal, speed = self.move_goal
            err = goal - self.target_q
            dist = float(np.max(np.abs(err)))
            reach = max(speed, 1e-3) * dt
            self.target_q = goal.copy() if dist <= reach else self.target_q + err * (reach / dist)
            if dist <= reach:
                self.move_goal = None
        elif moving and np.any(self.speed_qd):
            self.target_q = self.target_q + np.clip(self.speed_qd, -JOINT_SPEED_MAX, JOINT_SPEED_MAX) * dt
        self.target_qd = (self.target_q - before) / dt

    # -- outputs --
    @property
    def actual_q(self) -> np.ndarray:
        return self.twin.q if self.twin is not None else self.target_q.copy()

    @property
    def actual_qd(self) -> np.ndarray:
        return self.twin.qd if self.twin is not None else self.target_qd.copy()

    def outputs(self, t: float, names: set[str]) -> dict[str, object]:
        """Values of the output variables ``names`` at this cycle (what the data packages carry)."""
        q, qd = self.actual_q, self.actual_qd
        torque = self.twin.torque if self.twin is not None else np.zeros(6)
        playing = self.runtime == RuntimeState.PLAYING
        powered = self.robot_mode in (RobotMode.POWER_ON, RobotMode.IDLE, RobotMode.RUNNING)
        safety_bits = {SafetyMode.NORMAL: 1, SafetyMode.REDUCED: 2, SafetyMode.PROTECTIVE_STOP: (1 << 2) | (1 << 10),
                       SafetyMode.ROBOT_EMERGENCY_STOP: (1 << 6) | (1 << 7) | (1 << 10)}.get(self.safety_mode, 0)
        v = {"timestamp": t - self.t_boot, "actual_q": q, "actual_qd": qd, "target_q": self.target_q,
             "target_qd": self.target_qd, "robot_mode": int(self.robot_mode), "safety_mode": int(self.safety_mode),
             "safety_status": int(self.safety_mode), "runtime_state": int(self.runtime),
             "robot_status_bits": int(powered) | (int(playing) << 1), "safety_status_bits": safety_bits,
             "speed_scaling": 1.0 if playing else 0.0, "target_speed_fraction": 1.0,
             "actual_current": torque / 10.0, "target_current": torque / 10.0, "target_moment": torque,
             "actual_moment": torque, "joint_control_output": torque / 10.0,
             "joint_mode": [253 if self.robot_mode == RobotMode.RUNNING else 250] * 6,
             "joint_temperatures": [30.0] * 6, "actual_main_voltage": 48.0, "actual_robot_voltage": 48.0,
             "actual_joint_voltage": [48.0] * 6, "actual_execution_time": 0.1}
        for which, qq, qqd in (("actual", q, qd), ("target", self.target_q, self.target_qd)):
            if {f"{which}_TCP_pose", f"{which}_TCP_speed"} & names:
                pose, jac = pose_and_jacobian(UR5E, qq)
                v[f"{which}_TCP_pose"], v[f"{which}_TCP_speed"] = pose, jac @ qqd
        out: dict[str, object] = {}
        for n in names:
            if n in v:
                out[n] = v[n]
            elif n.startswith("output_int_register_"):
                out[n] = self.out_int[int(n.rsplit("_", 1)[1])]
            elif n.startswith("output_double_register_"):
                out[n] = self.out_double[int(n.rsplit("_", 1)[1])]
            elif n.startswith("input_int_register_"):
                out[n] = self.in_int[int(n.rsplit("_", 1)[1])]
            elif n.startswith("input_double_register_"):
                out[n] = self.in_double[int(n.rsplit("_", 1)[1])]
        return out

    def stats(self) -> dict:
        return {**self.counters, "robot_mode": self.robot_mode.name, "safety_mode": self.safety_mode.name,
                "runtime_state": self.runtime.name, "program": self.program.name if self.program else None,
                "actual_q": self.actual_q.tolist(), "target_q": self.target_q.tolist(),
                "last_error": self.last_error, "slack_hist": list(self.slack_hist),
                "publish_lag_ms": {f"p{q}": float(np.percentile(self.publish_lag_ms, q)) if self.publish_lag_ms
                                   else None for q in (10, 50, 90, 99)},
                "events": [{"kind": e.kind, "t": e.t, **e.detail} for e in self.events[-50:]]}
