"""ATI Net F/T Raw Data Transfer (RDT) over UDP, and the calibration the counts are scaled by.

Wire format (big-endian, UDP port 49152; ATI Net F/T manual, "RDT"):

- request, 8 bytes ``!HHI``: header 0x1234, command, sample count (0 = stream until told to stop);
- record, 36 bytes ``!III6i``: rdt_sequence (counts every record the sensor sends), ft_sequence (counts
  every internal sample), status (0 = healthy; bit 31 set = an error), Fx Fy Fz Tx Ty Tz in counts.

Force = counts / counts_per_force and torque = counts / counts_per_torque, in the units the sensor is
configured for; `Calibration` converts them to N and N m. The sensor serves its calibration at
``http://<sensor>/netftapi2.xml`` (``cfgcpf``, ``cfgcpt``, ``scfgfu``, ``scfgtu``): `parse_netftapi2`.

Example::

    sock.sendto(build_request(CMD_START_STREAM), (host, RDT_PORT))
    record = parse_record(sock.recv(36))                 # Record(rdt_sequence=..., counts=(6,) int32)
    wrench = calibration.to_si(record.counts)            # (6,) float64, N and N m
"""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import numpy as np

from robolearn.errors import InvalidValueError

__all__ = ["CMD_BIAS", "CMD_BUFFERED", "CMD_MULTI_UNIT", "CMD_RESET_LATCH", "CMD_START_STREAM", "CMD_STOP",
           "COMMANDS", "HEADER", "RDT_PORT", "RECORD", "REQUEST", "STATUS_ERROR", "Calibration", "Record",
           "build_request", "pack_record", "parse_netftapi2", "parse_record", "parse_request"]

RDT_PORT = 49152
HEADER = 0x1234
REQUEST = struct.Struct("!HHI")
RECORD = struct.Struct("!III6i")
CMD_STOP = 0x0000
CMD_START_STREAM = 0x0002   # real-time, one record per sample
CMD_BUFFERED = 0x0003
CMD_MULTI_UNIT = 0x0004
CMD_RESET_LATCH = 0x0041   # reset the threshold latch
CMD_BIAS = 0x0042          # software bias: the current load becomes zero
COMMANDS = {CMD_STOP: "stop", CMD_START_STREAM: "start", CMD_BUFFERED: "buffered", CMD_MULTI_UNIT: "multi-unit",
            CMD_RESET_LATCH: "reset-latch", CMD_BIAS: "bias"}
STATUS_ERROR = 0x8000_0000

# netftapi2.xml unit codes (ATI manual, "Configuration") and text names -> factor to N / N m.
FORCE_UNITS = {"1": 4.4482216152605, "lbf": 4.4482216152605, "2": 1.0, "n": 1.0, "3": 4448.2216152605,
               "klbf": 4448.2216152605, "4": 1000.0, "kn": 1000.0, "5": 9.80665, "kgf": 9.80665, "6": 0.00980665,
               "gf": 0.00980665}
TORQUE_UNITS = {"1": 0.1129848290276167, "lbf-in": 0.1129848290276167, "lbfin": 0.1129848290276167,
                "2": 1.3558179483314004, "lbf-ft": 1.3558179483314004, "lbfft": 1.3558179483314004, "3": 1.0,
                "nm": 1.0, "n-m": 1.0, "4": 0.001, "nmm": 0.001, "n-mm": 0.001, "5": 0.0980665, "kgf-cm": 0.0980665,
                "kgfcm": 0.0980665, "6": 1000.0, "knm": 1000.0, "kn-m": 1000.0}


@dataclass(frozen=True)
class Record:
    """One RDT record: sequence numbers, status word and the six raw channels (counts, int32)."""

    rdt_sequence: int
    ft_sequence: int
    status: int
    counts: np.ndarray


def build_request(command: int, samples: int = 0) -> bytes:
    if command not in COMMANDS:
        raise InvalidValueError(f"RDT command {command:#06x} is unknown; accepted: "
                                f"{', '.join(f'{c:#06x} ({n})' for c, n in COMMANDS.items())}.")
    return REQUEST.pack(HEADER, command, int(samples))


def parse_request(data: bytes) -> tuple[int, int]:
    """(command, sample count) of an RDT request; ValueError for anything else."""
    if len(data) != REQUEST.size:
        raise ValueError(f"RDT request of {len(data)} bytes; expected {REQUEST.size}.")
    header, command, samples = REQUEST.unpack(data)
    if header != HEADER:
        raise ValueError(f"RDT request header {header:#06x}; expected {HEADER:#06x}.")
    return command, samples


def pack_record(rdt_sequence: int, ft_sequence: int, status: int, counts) -> bytes:
    c = np.asarray(counts, dtype=np.int64)
    if c.shape != (6,):
        raise ValueError(f"RDT record needs 6 counts, got shape {c.shape}.")
    return RECORD.pack(rdt_sequence & 0xFFFF_FFFF, ft_sequence & 0xFFFF_FFFF, status & 0xFFFF_FFFF,
                       *(int(v) for v in np.clip(c, -2**31, 2**31 - 1)))


def parse_record(data: bytes) -> Record:
    if len(data) != RECORD.size:
        raise ValueError(f"RDT record of {len(data)} bytes; expected {RECORD.size}.")
    rdt, ft, status, *counts = RECORD.unpack(data)
    return Record(rdt, ft, status, np.array(counts, dtype=np.int32))


@dataclass(frozen=True)
class Calibration:
    """Counts per force/torque unit as the sensor is configured, and those units' size in N / N m.

    Args:
        counts_per_force: ``cfgcpf`` (counts per force unit).
        counts_per_torque: ``cfgcpt`` (counts per torque unit).
        force_unit: N per force unit (1.0 when the sensor reports N).
        torque_unit: N m per torque unit (1.0 when the sensor reports N m).
    """

    counts_per_force: float = 1_000_000.0
    counts_per_torque: float = 1_000_000.0
    force_unit: float = 1.0
    torque_unit: float = 1.0

    def __post_init__(self) -> None:
        for field in ("counts_per_force", "counts_per_torque", "force_unit", "torque_unit"):
            v = getattr(self, field)
            if not (isinstance(v, (int, float)) and np.isfinite(v) and v > 0):
                raise InvalidValueError(f"Net F/T calibration {field}={v!r}; expected a finite number > 0.")

    @property
    def scale(self) -> np.ndarray:
        """(6,) N or N m per count."""
        f, t = self.force_unit / self.counts_per_force, self.torque_unit / self.counts_per_torque
        return np.array([f, f, f, t, t, t])

    def to_si(self, counts: np.ndarray) -> np.ndarray:
        return np.asarray(counts, np.float64) * self.scale

    def to_counts(self, wrench_si) -> np.ndarray:
        return np.rint(np.asarray(wrench_si, np.float64) / self.scale).astype(np.int64)


def _unit(table: dict[str, float], text: str, field: str, source: str) -> float:
    key = text.strip().lower().replace(" ", "")
    if key not in table:
        raise InvalidValueError(f"{source}: {field}={text!r} is not a unit robolearn knows; accepted: "
                                f"{', '.join(k for k in table if not k.isdigit())} or codes 1-6.")
    return table[key]


def parse_netftapi2(xml: str | bytes, source: str = "netftapi2.xml") -> Calibration:
    """The `Calibration` in a sensor's ``/netftapi2.xml`` (cfgcpf, cfgcpt, scfgfu, scfgtu)."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as e:
        raise InvalidValueError(f"{source} is not XML ({e}); expected the sensor's /netftapi2.xml.") from None
    values = {}
    for field in ("cfgcpf", "cfgcpt", "scfgfu", "scfgtu"):
        node = root.find(f".//{field}")
        if node is None or not (node.text or "").strip():
            raise InvalidValueError(f"{source} has no <{field}>; expected the sensor's /netftapi2.xml "
                                    "(or configure counts_per_force / counts_per_torque instead).")
        values[field] = node.text.strip()
    try:
        cpf, cpt = float(values["cfgcpf"]), float(values["cfgcpt"])
    except ValueError:
        raise InvalidValueError(f"{source}: cfgcpf={values['cfgcpf']!r}, cfgcpt={values['cfgcpt']!r}; "
                                "expected numbers of counts.") from None
    return Calibration(cpf, cpt, _unit(FORCE_UNITS, values["scfgfu"], "scfgfu", source),
                       _unit(TORQUE_UNITS, values["scfgtu"], "scfgtu", source))
