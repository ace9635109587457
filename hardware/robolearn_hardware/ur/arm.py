"""A UR e-Series arm (UR5e) as a robolearn `Robot`, through the vendor's ``ur_rtde`` package (extra ``ur``).

The policy's or teleop's rate is not the robot's: ``send_action`` only sets the target, and a streaming
thread sends it with ``servoJ`` (or ``servoL`` for ``control="tcp"``) at the RTDE rate (500 Hz on an
e-Series). ``pacing="controller"`` (default): the controller clocks the stream (`pacing.CyclePacer`): a command
goes out as soon as the data package of a new controller cycle arrives, so the next cycle reads it with nearly
a whole period to spare: one command per controller cycle, whatever the phase between the two clocks.
``pacing="client"``: ur_rtde's ``initPeriod``/``waitPeriod`` on absolute cycle starts of this machine's clock
(cycle k starts at t0 + k/f; a cycle that could not run in time is skipped and counted); its phase against the
controller's cycle is arbitrary, so jitter near a cycle start puts two commands into one controller cycle and
none into the next. The streaming thread runs at SCHED_FIFO ``rt_priority`` where permitted (else at normal
priority, with one warning saying why).

Safety, checked by the streaming thread every cycle right after the data package arrives (so within one RTDE
period of the controller saying so):
- the RTDE watchdog is armed at ``watchdog_hz`` (``setWatchdog``): every servo package feeds it, so it
  trips only when commands stop reaching the robot (this process hangs, the network drops). The
  controller then stops the control script;
- a protective stop (safety status), an emergency stop, or the control script stopped while streaming
  (the watchdog's doing) latch a `ProtectiveStopError`: ``send_action`` and ``hold`` raise it, naming the
  cause, until ``clear_protective_stop()`` (which unlocks through the dashboard, restarts the control
  script, re-arms the watchdog and makes the measured position the new target, so nothing jumps).

``state`` is the measured joint angles (rad) (+ the gripper's [0, 1] when a `Robotiq2F85` is attached);
``action`` the target joint angles (rad) within the UR5e's joint ranges (+ the gripper), or the flange pose
``[x, y, z, rx, ry, rz]`` (m, rotation vector) with ``control="tcp"``.

``host="emulate"`` runs the arm on the emulated controller (`robolearn_hardware.ur.process.UREmulatorProcess`:
RTDE, dashboard, script ports, the gripper socket, the MuJoCo twin) started by ``connect()`` on its own loopback
address and stopped by its pid at ``disconnect()`` (also when ``connect()`` fails): no process outlives the
device. ``arm.emulator`` is that process while connected (its control channel), else None.

Example::

    arm = ur5e(host="192.168.1.10", gripper=True)
    with arm:
        q = arm.read().values["state"]          # (7,) float32
        arm.send_action(q)                      # returns what was sent
"""

from __future__ import annotations

import datetime
import gc
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Literal

import gymnasium as gym
import numpy as np

from robolearn import spaces
from robolearn.devices.base import DeviceBase
from robolearn.devices.protocols import Reading
from robolearn.errors import CannotCompleteError, InvalidValueError, MissingExtraError
from robolearn.runtime.rt import RealtimeLoop

from ..emulators.owned import EMULATE, OwnedEmulator
from .pacing import CyclePacer
from .robotiq import Robotiq2F85

__all__ = ["EMULATE", "URConfig", "URArm", "ProtectiveStopError", "URFault", "ur5e", "UR5E_JOINT_LIMITS"]

log = logging.getLogger(__name__)

UR5E_JOINT_LIMITS = np.array([2 * np.pi, 2 * np.pi, np.pi, 2 * np.pi, 2 * np.pi, 2 * np.pi])
TCP_LOW = np.array([-1.0, -1.0, -0.5, -np.pi, -np.pi, -np.pi])
TCP_HIGH = np.array([1.0, 1.0, 1.5, np.pi, np.pi, np.pi])
RECEIVE_VARIABLES = ["timestamp", "actual_q", "actual_qd", "target_q", "actual_TCP_pose", "robot_mode", "safety_mode",
                     "runtime_state", "robot_status_bits", "safety_status_bits"]
PLAYING, STOPPED = 2, 1
RUNNING = 7
PROTECTIVE_BIT, EMERGENCY_BITS = 1 << 2, (1 << 5) | (1 << 6) | (1 << 7)
IO_PRIORITY_ABOVE = 10
"""ur_rtde's receive threads run this much above the streaming thread's ``rt_priority`` (URArm._raise_io_threads)."""


RTDE_PORT = 30004


def _sockets() -> dict[str, int]:
    """This process's open sockets: their identity (``socket:[inode]``, as /proc/self/fd links them; Linux only,
    elsewhere none) -> a descriptor. Identities, not descriptor numbers: a number closed and reused is not new."""
    out = {}
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return out
    for fd in fds:
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # closed meanwhile (the listing's own descriptor)
        if link.startswith("socket:"):
            out[link] = int(fd)
    return out


def _no_delay(before: dict[str, int], port: int = RTDE_PORT) -> int:
    """Turn Nagle's algorithm off (TCP_NODELAY) on the TCP sockets opened since ``before`` (`_sockets`) that talk
    to ``port``; return how many. ur_rtde 1.6 leaves it on for its RTDE sockets, so a servo package sent while the
    controller has not yet acknowledged the previous one waits in this machine's send queue for that ACK, which a
    controller with delayed ACKs piggybacks on its next data package: whenever one of those comes late, the command
    misses its cycle (seen against the emulator: a package sent 0.45 ms before a cycle left 0.75 ms after it, the
    moment the late data package arrived). Options set through a duplicate descriptor apply to the shared socket."""
    done = 0
    for name, fd in _sockets().items():
        if name in before:
            continue
        try:
            sock = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue  # not a socket, or closed meanwhile
        try:
            if sock.type == socket.SOCK_STREAM and sock.family in (socket.AF_INET, socket.AF_INET6) \
                    and sock.getpeername()[1] == port:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                done += 1
        except OSError:
            pass  # not connected
        finally:
            sock.close()  # closes the duplicate only
    return done


def _threads() -> set[int]:
    """Ids of this process's threads (Linux: /proc/self/task; elsewhere none)."""
    try:
        return {int(t) for t in os.listdir("/proc/self/task")}
    except OSError:
        return set()


def _ur_rtde():
    try:
        import dashboard_client
        import rtde_control
        import rtde_receive
    except ImportError as e:
        raise MissingExtraError(f"the UR driver needs the ur-rtde package ({e}); install it with "
                                "`pip install -c constraints.txt 'robolearn-hardware[ur]'`.") from None
    return rtde_control, rtde_receive, dashboard_client


@dataclass
class URConfig:
    """What a user chooses for one UR arm."""

    host: str
    """The robot's IP address (or an emulator's loopback address), or "emulate" (module docstring)."""
    name: str = "ur5e"
    """Device name."""
    control: Literal["joint", "tcp"] = "joint"
    """``joint``: actions are joint targets, streamed with servoJ; ``tcp``: flange poses, streamed with servoL."""
    frequency: float = 500.0
    """RTDE and servo streaming rate (Hz): 500 on an e-Series, 125 on a CB3."""
    pacing: Literal["controller", "client"] = "controller"
    """``controller``: one command per controller cycle, sent when the cycle's data package arrives;
    ``client``: ur_rtde's initPeriod/waitPeriod on this machine's clock (module docstring)."""
    rt_priority: int | None = 80
    """SCHED_FIFO priority (1..99) of the streaming thread where permitted (root, CAP_SYS_NICE or an rtprio
    limit; otherwise it streams at normal priority and warns once), ur_rtde's receive threads 10 above it;
    None: normal priority for all of them."""
    lookahead_time: float = 0.1
    """servoJ/servoL lookahead (s), 0.03..0.2: larger is smoother and lags more."""
    gain: float = 300.0
    """servoJ/servoL proportional gain, 100..2000."""
    watchdog_hz: float | None = 10.0
    """The RTDE watchdog's minimum command rate (Hz; ur_rtde's default): the script stops when no command
    arrives within 1/watchdog_hz s. None leaves it off (not advised)."""
    max_joint_step: float | None = 0.25
    """Largest change of a joint target in one ``send_action`` (rad); None: no limit."""
    power_on: bool = False
    """At connect, power the arm on and release the brakes if it is not running (else: refuse with an error)."""
    freeze_gc: bool = True
    """While streaming, keep the objects that existed at connect out of Python's garbage collections
    (``gc.freeze``, after one collection at connect, before the watchdog is armed): a collection holds the GIL, so
    one over the process's whole heap stalls the streaming thread for its length (a full collection of the UR
    benchmark's process took 80-170 ms, 40-85 missed cycles; a process holding a torch model has more to scan).
    Unfrozen at disconnect."""
    stop_on_disconnect: bool = True
    """At disconnect, stop servoing and stop the control script (the arm stays where it is, brakes on hold)."""
    connect_timeout_s: float = 15.0
    """How long connect waits for power-on and the control script."""

    def __post_init__(self) -> None:
        if self.control not in ("joint", "tcp"):
            raise InvalidValueError(f"URConfig.control {self.control!r} is not one of joint, tcp")
        if not 0.03 <= self.lookahead_time <= 0.2:
            raise InvalidValueError(f"URConfig.lookahead_time must be within 0.03..0.2 s, got {self.lookahead_time}")
        if not 100 <= self.gain <= 2000:
            raise InvalidValueError(f"URConfig.gain must be within 100..2000, got {self.gain}")
        if self.pacing not in ("controller", "client"):
            raise InvalidValueError(f"URConfig.pacing {self.pacing!r} is not one of controller, client")
        if self.rt_priority is not None and not 1 <= self.rt_priority <= 99:
            raise InvalidValueError(f"URConfig.rt_priority must be within 1..99 (SCHED_FIFO) or None, got "
                                    f"{self.rt_priority}")
        if not 0 < self.frequency <= 500:
            raise InvalidValueError(f"URConfig.frequency must be within (0, 500] Hz, got {self.frequency}")
        if self.watchdog_hz is not None and not 0 < self.watchdog_hz <= self.frequency:
            raise InvalidValueError(f"URConfig.watchdog_hz must be within (0, frequency={self.frequency}] or None, "
                                    f"got {self.watchdog_hz}")


@dataclass(frozen=True)
class URFault:
    """Why the arm refuses to move."""

    cause: Literal["protective_stop", "emergency_stop", "watchdog"]
    message: str
    t_detected: float
    """Monotonic time the streaming thread saw it."""


class ProtectiveStopError(CannotCompleteError):
    """The arm is stopped (protective stop, emergency stop, or the RTDE watchdog stopped its script) and refuses
    to move until ``clear_protective_stop()``."""

    def __init__(self, fault: URFault):
        super().__init__(fault.message)
        self.fault = fault


class URArm(DeviceBase):
    """A UR e-Series arm (+ an optional Robotiq 2F-85) as a `Robot`; see the module docstring.

    ``emulator``: options of the `UREmulatorProcess` started for ``host="emulate"`` (q0, unlock_delay_s, twin,
    gripper_activation_s, ...)."""

    def __init__(self, config: URConfig, gripper: Robotiq2F85 | None = None, emulator: dict | None = None):
        super().__init__(config.name)
        self.config, self.gripper = config, gripper
        self.owned = OwnedEmulator(config.host, emulator, f"{config.name} (UR)")
        extra = 1 if gripper is not None else 0
        low = -UR5E_JOINT_LIMITS if config.control == "joint" else TCP_LOW
        high = UR5E_JOINT_LIMITS if config.control == "joint" else TCP_HIGH
        self.action_space = gym.spaces.Box(np.append(low, [0.0] * extra).astype(np.float32),
                                           np.append(high, [1.0] * extra).astype(np.float32), dtype=np.float32)
        self.observation_space = gym.spaces.Dict({spaces.STATE: gym.spaces.Box(
            np.append(-UR5E_JOINT_LIMITS, [0.0] * extra).astype(np.float32),
            np.append(UR5E_JOINT_LIMITS, [1.0] * extra).astype(np.float32), dtype=np.float32)})
        self.dt = 1.0 / config.frequency
        self._ctl = self._recv = self._dash = None
        self._lock = threading.Lock()  # the control interface is not thread-safe: one caller at a time
        self._target: np.ndarray | None = None
        self._sent: np.ndarray | None = None
        self._fault: URFault | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._clock_offset = 0.0
        self._last_capture = -np.inf
        self._expect_running = False
        self.counters = dict(cycles=0, skipped_cycles=0, failed_sends=0, unsynced_cycles=0)
        self.realtime: dict | None = None
        """What the streaming thread got (`RealtimeLoop.report`: sched_fifo, notes; gc_frozen) while it runs."""
        self.rtde_sockets_no_delay = 0
        """How many of ur_rtde's RTDE sockets had Nagle's algorithm turned off at connect (`_no_delay`)."""
        self._gc_frozen = False

    # -- lifecycle --
    @property
    def emulator(self):
        """The emulated controller's `UREmulatorProcess` (host="emulate") while connected, else None."""
        return self.owned.process

    def _open(self) -> None:
        if not self.owned.active:
            return self._open_controller()
        from .process import UREmulatorProcess

        _ur_rtde()  # the missing extra in one sentence, before a process starts
        self.owned.run(UREmulatorProcess, self._attach, gripper=self.gripper is not None)

    def _attach(self, emulator) -> None:
        self.config.host = emulator.host
        if self.gripper is not None:
            self.gripper.host, self.gripper.port = emulator.host, emulator.ports["gripper"]
        self._open_controller()

    def _stop_emulator(self) -> None:
        self.owned.stop()
        if self.owned.active:
            self.config.host = EMULATE
            if self.gripper is not None:
                self.gripper.host = EMULATE

    def _open_controller(self) -> None:
        rtde_control, rtde_receive, dashboard_client = _ur_rtde()
        c = self.config
        self._dash = dashboard_client.DashboardClient(c.host)
        self._dash.connect()
        try:
            if self.gripper is not None:  # first: activating it takes a while, and the watchdog is not armed yet
                self.gripper.connect()
            before, sockets = _threads(), _sockets()
            self._recv = rtde_receive.RTDEReceiveInterface(c.host, c.frequency, RECEIVE_VARIABLES)
            self._raise_io_threads(before)
            self._ensure_running()
            before = _threads()
            self._ctl = rtde_control.RTDEControlInterface(c.host, c.frequency)
            self._raise_io_threads(before)
            self.rtde_sockets_no_delay = _no_delay(sockets)
            self._clock_offset = time.monotonic() - self._recv.getTimestamp()
            self._last_capture = -np.inf
            self._fault = None
            self._target = self._measured_target()
            self._sent = None
            self._stop.clear()
            if c.freeze_gc and not self._gc_frozen:  # before the watchdog is armed: the collection takes a while
                gc.collect()
                gc.freeze()
                self._gc_frozen = True
            self._arm_watchdog()  # the stream starts right after: its servo packages feed the watchdog
            self._thread = threading.Thread(target=self._stream, name=f"ur-stream-{self.name}", daemon=True)
            self._thread.start()
        except BaseException:
            self._close()
            raise

    def _raise_io_threads(self, before: set[int]) -> None:
        """Move the threads ur_rtde's constructor just started (its receive threads) to SCHED_FIFO above the
        streaming thread, where permitted. The stream waits on what they receive (ur_rtde's sendCommand even
        busy-waits for it), so below a SCHED_FIFO stream on a busy core they would be starved by the very thread
        that waits for them (seen: a 930 ms stall, ended by the kernel's RT throttling). ur_rtde raises them
        itself only on a PREEMPT_RT kernel."""
        if self.config.rt_priority is None or not hasattr(os, "SCHED_FIFO"):
            return
        param = os.sched_param(min(99, self.config.rt_priority + IO_PRIORITY_ABOVE))
        for tid in _threads() - before:
            try:
                os.sched_setscheduler(tid, os.SCHED_FIFO, param)
            except ProcessLookupError:
                continue  # it ended already
            except PermissionError:
                return  # not permitted: the stream runs at normal priority too, and says so when it starts

    def _close(self) -> None:
        try:
            self._close_controller()
        finally:
            if self._gc_frozen:
                gc.unfreeze()
                self._gc_frozen = False
            self._stop_emulator()

    def _close_controller(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        try:
            if self.gripper is not None:
                self.gripper.disconnect()
            if self._ctl is not None:
                if self.config.stop_on_disconnect and self._fault is None:
                    self._ctl.servoStop(2.0)
                    self._ctl.stopScript()
                self._ctl.disconnect()
        finally:
            for iface in (self._recv, self._dash):
                if iface is not None:
                    iface.disconnect()
            self._ctl = self._recv = self._dash = None

    def _ensure_running(self) -> None:
        """Power on and release the brakes if asked to; otherwise refuse to start on a robot that is not running."""
        mode = self._recv.getRobotMode()
        if mode == RUNNING:
            return
        if not self.config.power_on:
            raise CannotCompleteError(
                f"{self.name}: the UR at {self.config.host} is not running (robot mode {mode}; 7 is RUNNING): power "
                "it on and release the brakes on the teach pendant, or pass power_on=True")
        self._dash.powerOn()
        self._dash.brakeRelease()
        deadline = time.monotonic() + self.config.connect_timeout_s
        while self._recv.getRobotMode() != RUNNING:
            if time.monotonic() > deadline:
                raise CannotCompleteError(f"{self.name}: the UR at {self.config.host} did not reach RUNNING within "
                                          f"{self.config.connect_timeout_s} s of 'power on' and 'brake release' "
                                          f"(robot mode {self._recv.getRobotMode()})")
            time.sleep(0.02)

    def _arm_watchdog(self) -> None:
        if self.config.watchdog_hz is not None and not self._ctl.setWatchdog(self.config.watchdog_hz):
            raise CannotCompleteError(f"{self.name}: the UR at {self.config.host} did not accept setWatchdog("
                                      f"{self.config.watchdog_hz}); is the control script running?")
        self._expect_running = True

    def _measured_target(self) -> np.ndarray:
        return np.array(self._recv.getActualQ() if self.config.control == "joint" else self._recv.getActualTCPPose())

    # -- streaming --
    def _stream(self) -> None:
        c = self.config
        priority = c.rt_priority if hasattr(os, "SCHED_FIFO") else None
        with RealtimeLoop(rt_priority=priority, announce=lambda line: log.warning("%s: %s", self.name, line)) as rt:
            self.realtime = {**rt.report(), "gc_frozen": self._gc_frozen}
            if c.pacing == "controller":
                self._stream_on_controller_cycles()
            else:
                self._stream_on_client_clock()

    def _serve_cycle(self) -> None:
        c = self.config
        self._check_safety()
        if self._fault is None:
            servo = self._ctl.servoJ if c.control == "joint" else self._ctl.servoL
            with self._lock:
                ok = servo(self._target.tolist(), 0.0, 0.0, self.dt, c.lookahead_time, c.gain)
            if not ok:
                self.counters["failed_sends"] += 1
                self._check_safety()
        self.counters["cycles"] += 1

    def _stream_on_controller_cycles(self) -> None:
        pacer = CyclePacer(self.dt, self._recv.getTimestamp)
        while not self._stop.is_set():
            tick = pacer.wait()
            self.counters["skipped_cycles"] += tick.skipped
            self.counters["unsynced_cycles"] += not tick.synced
            self._serve_cycle()

    def _stream_on_client_clock(self) -> None:
        period = datetime.timedelta(seconds=self.dt)
        t0 = self._ctl.initPeriod()
        k = 0
        while not self._stop.is_set():
            self._serve_cycle()
            k += 1
            behind = (self._ctl.initPeriod() - (t0 + k * period)) / period
            if behind >= 1:  # cycles that could not run in time are skipped, never bursted
                self.counters["skipped_cycles"] += int(behind)
                k += int(behind)
            self._ctl.waitPeriod(t0 + (k - 1) * period)  # returns when cycle k starts

    def _check_safety(self) -> None:
        if self._fault is not None:
            return
        bits = self._recv.getSafetyStatusBits()
        runtime = self._recv.getRuntimeState()
        where = f"{self.name} (UR at {self.config.host})"
        if bits & EMERGENCY_BITS:
            self._latch("emergency_stop", f"{where} is in an emergency stop; release the e-stop button, then call "
                                          "clear_protective_stop() after checking the cell")
        elif bits & PROTECTIVE_BIT:
            self._latch("protective_stop", f"{where} is in a protective stop (safety mode {self._recv.getSafetyMode()}"
                                           "); it refuses to move until you check the cause and call "
                                           "clear_protective_stop()")
        elif self._expect_running and runtime != PLAYING:
            why = (f"the RTDE watchdog stopped the control script: no command reached the robot within "
                   f"1/{self.config.watchdog_hz:g} Hz" if self.config.watchdog_hz else "the control script stopped")
            self._latch("watchdog", f"{where} stopped: {why} (runtime state {runtime}); it is treated as a protective "
                                    "stop and refuses to move until clear_protective_stop()")

    def _latch(self, cause: str, message: str) -> None:
        self._fault = URFault(cause, message, time.monotonic())  # type: ignore[arg-type]
        self._expect_running = False
        log.error(message)

    @property
    def fault(self) -> URFault | None:
        """Why the arm refuses to move, or None."""
        return self._fault

    def clear_protective_stop(self, timeout_s: float = 10.0) -> None:
        """Unlock a protective stop, restart the control script and re-arm the watchdog; the measured position
        becomes the target (nothing jumps). Raises `ProtectiveStopError` if the controller refuses (too early:
        a UR unlocks only 5 s after the stop; or an emergency stop is still pressed)."""
        self._require_connected("clear_protective_stop()")
        if self._recv.getSafetyStatusBits() & EMERGENCY_BITS:
            raise ProtectiveStopError(self._fault or URFault("emergency_stop", f"{self.name}: the emergency stop is "
                                      "still engaged; release it on the robot first", time.monotonic()))
        with self._lock:
            if self._recv.isProtectiveStopped():
                try:
                    self._dash.unlockProtectiveStop()
                except RuntimeError as e:  # ur_rtde raises logic_error -> RuntimeError with the robot's answer
                    raise ProtectiveStopError(URFault("protective_stop", f"{self.name}: the UR refused to unlock the "
                                              f"protective stop ({e}); wait and call clear_protective_stop() again",
                                              time.monotonic())) from None
                self._dash.closeSafetyPopup()
            if not self._ctl.isProgramRunning():
                if self._recv.getRuntimeState() != STOPPED:
                    self._dash.stop()
                self._ctl.reuploadScript()
                deadline = time.monotonic() + timeout_s
                while not self._ctl.isProgramRunning():
                    if time.monotonic() > deadline:
                        raise CannotCompleteError(f"{self.name}: the control script did not start within {timeout_s}"
                                                  " s of re-uploading it; check the pendant for a popup")
                    time.sleep(0.01)
            self._arm_watchdog()
            self._target = self._measured_target()
            self._sent = None
            self._fault = None

    # -- device --
    def _raise_fault(self) -> None:
        if self._fault is not None:
            raise ProtectiveStopError(self._fault)

    def read(self) -> Reading:
        self._require_connected("read()")
        q = np.asarray(self._recv.getActualQ(), np.float32)
        t = min(self._clock_offset + self._recv.getTimestamp(), time.monotonic())
        self._last_capture = t = max(t, self._last_capture)
        if self.gripper is not None:
            q = np.append(q, self.gripper.read().values[spaces.STATE]).astype(np.float32)
        return Reading({spaces.STATE: q}, float(t))

    def send_action(self, action: np.ndarray) -> np.ndarray:
        self._require_connected("send_action()")
        self._raise_fault()
        a = np.clip(np.asarray(action, np.float32).reshape(self.action_space.shape), self.action_space.low,
                    self.action_space.high)
        arm = a[:6].astype(np.float64)
        step = self.config.max_joint_step
        if step is not None and self.config.control == "joint":
            current = self._target if self._sent is None else self._sent[:6].astype(np.float64)
            arm = np.clip(arm, current - step, current + step)
        with self._lock:
            self._target = arm
        sent = arm.astype(np.float32)
        if self.gripper is not None:
            sent = np.append(sent, self.gripper.send_action(a[6:])).astype(np.float32)
        self._sent = np.clip(sent, self.action_space.low, self.action_space.high)
        return self._sent.copy()

    def hold(self) -> np.ndarray:
        self._require_connected("hold()")
        self._raise_fault()
        if self._sent is not None:
            return self.send_action(self._sent)
        held = self._target.astype(np.float32)
        if self.gripper is not None:
            held = np.append(held, self.gripper.hold()).astype(np.float32)
        self._sent = np.clip(held, self.action_space.low, self.action_space.high)
        return self._sent.copy()


def ur5e(host: str, gripper: bool = False, gripper_port: int = 63352, emulator: dict | None = None,
         **config) -> URArm:
    """A UR5e at ``host``; ``gripper=True`` adds the Robotiq 2F-85 on the same controller (URCap socket);
    ``host="emulate"`` runs it on the emulated controller with options ``emulator`` (module docstring)."""
    return URArm(URConfig(host=host, **config), Robotiq2F85(host, gripper_port) if gripper else None, emulator)
