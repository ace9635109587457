"""Seeded fault injection for the bus emulators: what goes wrong between a servo and the host.

Each reply a servo would send meets at most one fate, drawn from a seeded generator so a failing run
repeats: dropped (the host times out: "There is no status packet"), corrupted (one bit flipped: "Incorrect
status packet", or a timeout when the flip hits the header or length), or late (sent ``late_s`` after it
was due: the host has given up, and the stale bytes meet its next request). An unplugged id neither hears
nor answers; an overloaded id is a blocked joint that stalls and trips its overload protection.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field, fields

__all__ = ["FaultConfig", "FaultInjector"]


@dataclass
class FaultConfig:
    drop_rate: float = 0.0
    """Probability that a reply is not sent."""
    corrupt_rate: float = 0.0
    """Probability that one bit of a reply is flipped."""
    late_rate: float = 0.0
    """Probability that a reply is sent ``late_s`` late."""
    late_s: float = 0.1
    """Delay of a late reply (seconds); the SDKs give up after about 34 ms at 1 Mbps."""
    unplugged: tuple[int, ...] = ()
    """Ids that neither hear nor answer (a cut cable)."""
    overload: tuple[int, ...] = ()
    """Ids whose joint is blocked: with torque on they stall and trip the overload protection."""
    only_ids: tuple[int, ...] = ()
    """Restrict drop/corrupt/late to replies from these ids (empty: every id)."""
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("drop_rate", "corrupt_rate", "late_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"fault {name} must be within [0, 1], got {value}")
        if self.drop_rate + self.corrupt_rate + self.late_rate > 1.0:
            raise ValueError("fault rates drop_rate + corrupt_rate + late_rate must add up to at most 1")
        if self.late_s < 0:
            raise ValueError(f"fault late_s must be >= 0, got {self.late_s}")
        self.unplugged = tuple(int(i) for i in self.unplugged)
        self.overload = tuple(int(i) for i in self.overload)
        self.only_ids = tuple(int(i) for i in self.only_ids)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "FaultConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault setting(s) {sorted(unknown)}; accepted: {sorted(known)}")
        return cls(**data)


@dataclass
class FaultInjector:
    config: FaultConfig = field(default_factory=FaultConfig)
    counts: dict[str, int] = field(default_factory=lambda: {"dropped": 0, "corrupted": 0, "late": 0})

    def __post_init__(self) -> None:
        self._rng = random.Random(self.config.seed)

    def reconfigure(self, config: FaultConfig) -> None:
        self.config = config
        self._rng = random.Random(config.seed)

    def fate(self, servo_id: int) -> str | None:
        """"drop", "corrupt", "late" or None for the next reply of ``servo_id``."""
        c = self.config
        if c.only_ids and servo_id not in c.only_ids:
            return None
        if not (c.drop_rate or c.corrupt_rate or c.late_rate):
            return None
        u = self._rng.random()
        if u < c.drop_rate:
            self.counts["dropped"] += 1
            return "drop"
        if u < c.drop_rate + c.corrupt_rate:
            self.counts["corrupted"] += 1
            return "corrupt"
        if u < c.drop_rate + c.corrupt_rate + c.late_rate:
            self.counts["late"] += 1
            return "late"
        return None

    def corrupt(self, data: bytes) -> bytes:
        bit = self._rng.randrange(8 * len(data))
        out = bytearray(data)
        out[bit // 8] ^= 1 << (bit % 8)
        return bytes(out)
