"""`NetFTSensor`: an ATI Net F/T (or any sensor speaking RDT) as a robolearn `ForceTorqueSensor`.

``connect()`` gets the calibration (the sensor's ``/netftapi2.xml``, or the one configured), asks for a
high-speed stream (RDT command 0x0002, unlimited samples) and starts a thread that receives every record,
stamps it with the monotonic time it arrived (its capture time) and counts what went wrong:

- ``received``: records taken; ``lost``: records missing by rdt_sequence (UDP drops), in ``gaps`` runs;
- ``late``: records older (by rdt_sequence) than one already taken, which are ignored;
- ``status_errors``: records whose status word has bit 31 set (``last_status`` holds the word).

``read()`` returns the newest wrench as ``force`` (6,) float32 in N and N m (minus the tare), clipped to
the sensor's range like the sensor saturates; a status error in the newest record raises
`ForceTorqueStatusError`. ``samples()`` hands over every record since the last call (full rate, for a
recorder that wants them). ``tare()`` zeroes the present load on the host; ``bias()`` asks the sensor to
(RDT command 0x0042).

``host="emulate"`` reads the loopback emulator (`robolearn_hardware.force.NetFTEmulator`, options ``emulator``:
rate, wrench, drop, ...) started by ``connect()`` and stopped by its pid at ``disconnect()`` (also when
``connect()`` fails); ``sensor.emulator`` is that process while connected.

Example::

    with NetFTSensor("192.168.1.1") as ft:              # calibration from http://192.168.1.1/netftapi2.xml
        ft.tare()                                      # mean of 100 samples becomes zero
        ft.read().values["force"]                      # (6,) float32
        ft.counters()                                  # received, lost, gaps, late, status_errors, ...
"""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable

import gymnasium as gym
import numpy as np

from robolearn import spaces
from robolearn.devices.base import DeviceBase
from robolearn.devices.protocols import Reading
from robolearn.errors import InvalidValueError, UserError

from ..emulators.owned import EMULATE, OwnedEmulator
from .rdt import (CMD_BIAS, CMD_START_STREAM, CMD_STOP, RDT_PORT, RECORD, STATUS_ERROR, Calibration, build_request,
                  parse_netftapi2, parse_record)

__all__ = ["ForceTorqueStatusError", "NetFTError", "NetFTSensor"]


class NetFTError(UserError, ConnectionError):
    """The sensor cannot be reached, sends nothing, or its calibration cannot be read."""


class ForceTorqueStatusError(UserError, RuntimeError):
    """The newest record carries an error status (bit 31 of the status word)."""


class NetFTSensor(DeviceBase):
    """A `ForceTorqueSensor` over RDT (module docstring).

    Args:
        host: the sensor's address.
        name: device name.
        port: RDT UDP port (49152 on the sensor).
        calibration: counts per force/torque and units; None reads ``http://host:http_port/netftapi2.xml``.
        http_port: the sensor's web server port (80), used only when ``calibration`` is None.
        force_range, torque_range: the observation space's bounds (N, N m); readings saturate there.
        first_record_timeout: seconds ``connect()`` waits for the first record.
        buffer: how many records ``samples()`` keeps between calls (the oldest go first).
        emulator: with ``host="emulate"``, the `NetFTEmulator` options (rate, wrench, drop, seed).
    """

    def __init__(self, host: str, name: str = "ft", port: int = RDT_PORT, calibration: Calibration | None = None,
                 http_port: int = 80, force_range: float = 1000.0, torque_range: float = 100.0,
                 first_record_timeout: float = 2.0, buffer: int = 10_000,
                 clock: Callable[[], float] = time.monotonic, emulator: dict | None = None) -> None:
        super().__init__(name, clock)
        self.owned = OwnedEmulator(host, emulator, f"NetFTSensor {name!r}")
        if not (force_range > 0 and torque_range > 0):
            raise InvalidValueError(f"NetFTSensor {name!r}: force_range={force_range!r}, torque_range="
                                    f"{torque_range!r}; expected positive N and N m.")
        self.host, self.port, self.http_port = host, int(port), int(http_port)
        self.configured = calibration
        self.calibration: Calibration | None = calibration
        self.first_record_timeout = float(first_record_timeout)
        limit = np.array([force_range] * 3 + [torque_range] * 3, np.float32)
        self.observation_space = gym.spaces.Dict({spaces.FORCE: gym.spaces.Box(-limit, limit, dtype=np.float32)})
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._buffer: deque = deque(maxlen=int(buffer))
        self._reset()

    def _reset(self) -> None:
        self._latest: tuple[np.ndarray, float, int, int] | None = None  # (counts, t, rdt_sequence, status)
        self._last_seq: int | None = None
        self._offset = np.zeros(6)
        self._counts = dict(received=0, lost=0, gaps=0, late=0, status_errors=0)
        self.last_status = 0
        self._buffer.clear()

    # lifecycle -----------------------------------------------------------------------------------------
    @property
    def emulator(self):
        """The `NetFTEmulator` (host="emulate") while connected, else None."""
        return self.owned.process

    def _open(self) -> None:
        if not self.owned.active:
            return self._open_stream()
        from .process import NetFTEmulator

        self.owned.run(NetFTEmulator, self._attach, calibration=self.configured)

    def _attach(self, emulator) -> None:
        self.host, self.port, self.http_port = emulator.host, emulator.rdt_port, emulator.http_port
        self._open_stream()

    def _stop_emulator(self) -> None:
        self.owned.stop()
        if self.owned.active:
            self.host = EMULATE

    def _open_stream(self) -> None:
        self._reset()
        self.calibration = self.configured or self.fetch_calibration()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.settimeout(0.1)
        sock.connect((self.host, self.port))
        self._sock = sock
        self._stop.clear()
        self._thread = threading.Thread(target=self._receive, name=f"netft-{self.name}", daemon=True)
        self._thread.start()
        self._send(CMD_START_STREAM)
        deadline = time.monotonic() + self.first_record_timeout
        while self._latest is None and time.monotonic() < deadline:
            time.sleep(0.002)
        if self._latest is None:
            self._shutdown()
            raise NetFTError(f"Net F/T {self.name!r}: no RDT record from {self.host}:{self.port} within "
                             f"{self.first_record_timeout} s of asking for a stream; check the address, that UDP "
                             f"port {self.port} is reachable and that no other client holds the sensor.")

    def _close(self) -> None:
        try:
            self._shutdown()
        finally:
            self._stop_emulator()

    def _shutdown(self) -> None:
        if self._sock is not None:
            try:
                self._send(CMD_STOP)
            except OSError:
                pass
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
            self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def fetch_calibration(self, timeout: float = 2.0) -> Calibration:
        """The calibration in ``http://host:http_port/netftapi2.xml``."""
        url = f"http://{self.host}:{self.http_port}/netftapi2.xml"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                return parse_netftapi2(r.read(), url)
        except (urllib.error.URLError, OSError) as e:
            raise NetFTError(f"Net F/T {self.name!r}: cannot read the calibration at {url} ({e}); check the address "
                             "or configure calibration=Calibration(counts_per_force, counts_per_torque).") from None

    def _send(self, command: int) -> None:
        self._sock.send(build_request(command, 0))

    # the receiving thread ------------------------------------------------------------------------------
    def _receive(self) -> None:
        sock = self._sock
        while not self._stop.is_set():
            try:
                data = sock.recv(RECORD.size + 64)
            except TimeoutError:
                continue
            except OSError:  # ICMP port unreachable on loopback, or closed under us
                if self._stop.wait(0.01):
                    return
                continue
            t = float(self.clock())
            try:
                record = parse_record(data)
            except ValueError:
                continue
            with self._lock:
                self._take(record, t)

    def _take(self, record, t: float) -> None:
        seq = record.rdt_sequence
        if self._last_seq is not None:
            ahead = (seq - self._last_seq) & 0xFFFF_FFFF
            if ahead == 0 or ahead >= 0x8000_0000:
                self._counts["late"] += 1
                return
            if ahead > 1:
                self._counts["lost"] += ahead - 1
                self._counts["gaps"] += 1
        self._last_seq = seq
        self._counts["received"] += 1
        self.last_status = record.status
        if record.status & STATUS_ERROR:
            self._counts["status_errors"] += 1
        self._latest = (record.counts, t, seq, record.status)
        self._buffer.append((t, seq, record.status, record.counts))

    # reading -------------------------------------------------------------------------------------------
    def _wrench(self, counts: np.ndarray) -> np.ndarray:
        return self.calibration.to_si(counts) - self._offset

    def read(self) -> Reading:
        """The newest wrench (N, N m, minus the tare) with the time its record arrived."""
        self._require_connected("read()")
        with self._lock:
            counts, t, seq, status = self._latest
            wrench = self._wrench(counts)
        if status & STATUS_ERROR:
            raise ForceTorqueStatusError(f"Net F/T {self.name!r}: record {seq} has status {status:#010x} (bit 31: "
                                         "error); see the sensor's web page for the cause, then reset it.")
        box = self.observation_space[spaces.FORCE]
        return Reading({spaces.FORCE: np.clip(wrench, box.low, box.high).astype(np.float32)}, t)

    def samples(self) -> dict[str, np.ndarray]:
        """Every record since the last call: ``t`` (N,), ``rdt_sequence`` (N,), ``status`` (N,), ``force``
        (N, 6) float64 N and N m (minus the tare)."""
        self._require_connected("samples()")
        with self._lock:
            rows = list(self._buffer)
            self._buffer.clear()
            offset = self._offset.copy()
        counts = np.array([r[3] for r in rows], np.float64).reshape(-1, 6)
        return {"t": np.array([r[0] for r in rows]), "rdt_sequence": np.array([r[1] for r in rows], np.int64),
                "status": np.array([r[2] for r in rows], np.int64),
                "force": counts * self.calibration.scale - offset}

    def tare(self, samples: int = 100, timeout: float = 2.0) -> np.ndarray:
        """Zero the present load on the host: the mean of the next `samples` records becomes the offset
        subtracted from every reading. Returns the offset (6,) in N and N m."""
        self._require_connected("tare()")
        with self._lock:
            start = self._counts["received"]
            self._buffer.clear()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self._counts["received"] - start >= samples and len(self._buffer) >= samples:
                    rows = [r[3] for r in list(self._buffer)[-samples:]]
                    self._offset = self.calibration.to_si(np.mean(np.array(rows, np.float64), axis=0))
                    return self._offset.copy()
            time.sleep(0.002)
        raise NetFTError(f"Net F/T {self.name!r}: fewer than {samples} records arrived within {timeout} s of tare(); "
                         "the stream stalled.")

    def untare(self) -> None:
        with self._lock:
            self._offset = np.zeros(6)

    def bias(self) -> None:
        """Ask the sensor to zero its present load (RDT software bias, command 0x0042)."""
        self._require_connected("bias()")
        self._send(CMD_BIAS)

    def counters(self) -> dict[str, int]:
        """received, lost, gaps, late, status_errors since ``connect()`` (module docstring)."""
        with self._lock:
            return dict(self._counts)
