"""An emulator a device owns: ``host="emulate"`` on a network device (the UR arm, the Net F/T) starts its emulator
process at ``connect()`` and stops it by its pid at ``disconnect()``, or when ``connect()`` fails, as
``port="emulate"`` does for a servo arm (`robolearn_hardware.arms.emulated`). No process outlives the device.

Example (inside a device)::

    self.owned = OwnedEmulator(host, emulator_options, f"ur5e {name!r}")
    ...
    def _open(self):
        if self.owned.active:
            self.owned.run(lambda **o: UREmulatorProcess(**o), self._attach)   # _attach(process): use its ports
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from robolearn.errors import InvalidValueError

from .process import ChildProcess

__all__ = ["EMULATE", "OwnedEmulator"]

EMULATE = "emulate"
"""The ``host`` value that runs a network device on its emulator."""


class OwnedEmulator:
    """The emulator process behind one device's ``host="emulate"`` (module docstring).

    Args:
        host: the device's host; only ``"emulate"`` makes it active.
        options: keyword arguments of the emulator process (they apply only to ``host="emulate"``).
        who: the device, for error messages.
    """

    def __init__(self, host: str, options: dict | None, who: str) -> None:
        self.active = host == EMULATE
        if options and not self.active:
            raise InvalidValueError(f"{who}: emulator options {sorted(options)} apply to host='emulate', not to "
                                    f"host={host!r}")
        self.options: dict[str, Any] = dict(options or {})
        self.process: ChildProcess | None = None

    def run(self, make: Callable[..., ChildProcess], attach: Callable[[ChildProcess], None],
            **defaults: Any) -> None:
        """Start ``make(**defaults, **options)`` and hand it to ``attach`` (which opens the device on its ports);
        if anything fails, the process is stopped before the error propagates."""
        self.process = make(**{**defaults, **self.options}).start()
        try:
            attach(self.process)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the process by its pid (no-op when none runs)."""
        process, self.process = self.process, None
        if process is not None:
            process.stop()
