"""The lifecycle half of the device contract, written once for implementations to share.

A driver subclasses `DeviceBase` (one level, then concrete) and fills in ``_open()`` / ``_close()``;
``connect()`` / ``disconnect()`` idempotence, the context manager and the "not connected" error come
from here. Drivers are free not to use it: the contract is the protocols in `robolearn.devices.protocols`.

Example::

    class MyCamera(DeviceBase):
        def _open(self):  self._cap = open_the_sdk(...)
        def _close(self): self._cap.release()
        def read(self):
            self._require_connected("read()")
            ...
"""

from __future__ import annotations

import time
from collections.abc import Callable

from robolearn.devices.protocols import DeviceNotConnectedError

__all__ = ["DeviceBase", "FakeTime"]


class DeviceBase:
    """Idempotent connect/disconnect, a context manager that always disconnects, one clear error.

    Args:
        name: the device's short name (cameras and tactile sensors key their values by it).
        clock: monotonic seconds used to stamp captures (injectable: `FakeTime` in tests).
    """

    def __init__(self, name: str, clock: Callable[[], float] = time.monotonic) -> None:
        if not (isinstance(name, str) and name and "/" not in name):
            raise ValueError(f"device name {name!r} is invalid; expected a non-empty string without '/'.")
        self.name = name
        self.clock = clock
        self._connected = False

    @property
    def is_connected(self) -> bool:
        return self._connected

    def connect(self) -> None:
        if self._connected:
            return
        self._open()
        self._connected = True

    def disconnect(self) -> None:
        if not self._connected:
            return
        try:
            self._close()
        finally:
            self._connected = False

    def __enter__(self):
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    def _open(self) -> None:
        """Open the hardware (called by ``connect()`` only while disconnected)."""

    def _close(self) -> None:
        """Release the hardware (called by ``disconnect()`` only while connected)."""

    def _require_connected(self, what: str) -> None:
        if not self._connected:
            raise DeviceNotConnectedError(f"{type(self).__name__} {self.name!r} is not connected; call connect() "
                                          f"(or use it in a with block) before {what}.")

    def __repr__(self) -> str:
        state = "connected" if self._connected else "disconnected"
        return f"{type(self).__name__}(name={self.name!r}, {state})"


class FakeTime:
    """A monotonic clock moved by hand, shared by fakes that must agree on time (deterministic tests).

    >>> t = FakeTime(); t.advance(0.1); t()
    0.1
    """

    def __init__(self, start: float = 0.0) -> None:
        self.t = float(start)

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> float:
        if not dt >= 0:
            raise ValueError(f"FakeTime.advance: dt must be >= 0 (time is monotonic), got {dt!r}.")
        self.t += float(dt)
        return self.t
