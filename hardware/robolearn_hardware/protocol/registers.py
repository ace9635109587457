"""Control tables: the named registers of a servo model, with size, access, memory area and value encoding.

A servo's state is a flat byte table. Each ``Register`` names a span of it and says how a value is stored
there: unsigned, two's complement (Dynamixel) or sign-magnitude with a per-register sign bit (Feetech), in
the table's byte order. The emulators keep their state in these tables and the drivers address registers
by name through them, so both sides agree on every byte.

Example::

    from robolearn_hardware.protocol.dynamixel_tables import XL330_M288

    reg = XL330_M288["Goal_Position"]          # Register(address=116, size=4, ...)
    raw = XL330_M288.encode(reg, -5)          # b'\\xfb\\xff\\xff\\xff'
    XL330_M288.decode(reg, raw)               # -5
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

__all__ = ["Register", "ControlTable", "encode_sign_magnitude", "decode_sign_magnitude"]


def encode_sign_magnitude(value: int, sign_bit: int) -> int:
    """``value`` as sign-magnitude: the magnitude in the bits below ``sign_bit``, the sign in that bit."""
    magnitude = abs(int(value))
    if magnitude >= 1 << sign_bit:
        raise ValueError(f"magnitude {magnitude} exceeds {(1 << sign_bit) - 1}, the most a sign bit at {sign_bit} allows")
    return magnitude | (1 << sign_bit) if value < 0 else magnitude


def decode_sign_magnitude(raw: int, sign_bit: int) -> int:
    """Inverse of ``encode_sign_magnitude``; bits above the sign bit are ignored, as the servos do."""
    magnitude = raw & ((1 << sign_bit) - 1)
    return -magnitude if raw & (1 << sign_bit) else magnitude


@dataclass(frozen=True)
class Register:
    """One named span of a control table."""

    name: str
    address: int
    size: int
    """Bytes: 1, 2 or 4."""
    access: Literal["R", "RW"]
    eeprom: bool
    """EEPROM registers are persistent settings; the servos guard writes to them (torque off, Lock)."""
    default: int = 0
    """Factory value (decoded)."""
    lo: int | None = None
    """Smallest value a write may carry (decoded); None: the smallest the encoding can hold."""
    hi: int | None = None
    """Largest value a write may carry (decoded); None: the largest the encoding can hold."""
    signed: bool = False
    """Two's complement (Dynamixel)."""
    sign_bit: int | None = None
    """Sign-magnitude with the sign in this bit (Feetech); exclusive with ``signed``."""
    choices: tuple[int, ...] | None = None
    """The only values a write may carry (operating modes, baud-rate codes); None: any in range."""

    @property
    def end(self) -> int:
        return self.address + self.size

    @property
    def writable(self) -> bool:
        return self.access == "RW"

    def natural_range(self) -> tuple[int, int]:
        bits = 8 * self.size
        if self.sign_bit is not None:
            m = (1 << self.sign_bit) - 1
            return -m, m
        if self.signed:
            return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        return 0, (1 << bits) - 1

    def accepts(self, value: int) -> bool:
        lo, hi = self.natural_range()
        lo = lo if self.lo is None else self.lo
        hi = hi if self.hi is None else self.hi
        return lo <= value <= hi and (self.choices is None or value in self.choices)


class ControlTable:
    """The registers of one servo model, addressable by name and by address."""

    def __init__(self, model: str, model_number: int, registers: Iterable[Register], *,
                 byteorder: Literal["little", "big"] = "little", size: int | None = None):
        self.model = model
        self.model_number = model_number
        self.byteorder: Literal["little", "big"] = byteorder
        self._by_name: dict[str, Register] = {}
        for reg in sorted(registers, key=lambda r: r.address):
            if reg.name in self._by_name:
                raise ValueError(f"{model}: register {reg.name!r} defined twice")
            if reg.signed and reg.sign_bit is not None:
                raise ValueError(f"{model}: register {reg.name!r} cannot be both two's complement and sign-magnitude")
            self._by_name[reg.name] = reg
        self.size = size if size is not None else max(r.end for r in self._by_name.values())
        self._owner: list[Register | None] = [None] * self.size
        for reg in self._by_name.values():
            for a in range(reg.address, reg.end):
                if self._owner[a] is not None:
                    raise ValueError(f"{model}: {reg.name!r} overlaps {self._owner[a].name!r} at address {a}")
                self._owner[a] = reg

    def __getitem__(self, name: str) -> Register:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"{self.model} has no register {name!r}; known: {', '.join(self._by_name)}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[Register]:
        return iter(self._by_name.values())

    def __repr__(self) -> str:
        return f"ControlTable({self.model!r}, {len(self._by_name)} registers)"

    def at(self, address: int) -> Register | None:
        """The register holding byte ``address`` (None for a reserved gap or past the end)."""
        return self._owner[address] if 0 <= address < self.size else None

    def span(self, address: int, length: int) -> list[Register]:
        """Registers touched by bytes ``[address, address + length)``, in address order."""
        seen: list[Register] = []
        for a in range(max(address, 0), min(address + length, self.size)):
            reg = self._owner[a]
            if reg is not None and (not seen or seen[-1] is not reg):
                seen.append(reg)
        return seen

    def encode(self, reg: Register, value: int) -> bytes:
        """``value`` as the bytes stored at ``reg`` (raises ValueError if the encoding cannot hold it)."""
        value = int(value)
        if reg.sign_bit is not None:
            raw = encode_sign_magnitude(value, reg.sign_bit)
        elif reg.signed:
            lo, hi = reg.natural_range()
            if not lo <= value <= hi:
                raise ValueError(f"{reg.name}: {value} does not fit {reg.size} signed bytes")
            raw = value & ((1 << (8 * reg.size)) - 1)
        else:
            raw = value
        if not 0 <= raw < 1 << (8 * reg.size):
            raise ValueError(f"{reg.name}: {value} does not fit {reg.size} bytes")
        return raw.to_bytes(reg.size, self.byteorder)

    def decode(self, reg: Register, data: bytes) -> int:
        """The value stored in ``data`` (exactly ``reg.size`` bytes)."""
        if len(data) != reg.size:
            raise ValueError(f"{reg.name} is {reg.size} bytes, got {len(data)}")
        raw = int.from_bytes(data, self.byteorder)
        if reg.sign_bit is not None:
            return decode_sign_magnitude(raw, reg.sign_bit)
        if reg.signed and raw >= 1 << (8 * reg.size - 1):
            return raw - (1 << (8 * reg.size))
        return raw

    def defaults(self) -> bytearray:
        """A fresh table with every register at its factory value and reserved bytes at zero."""
        memory = bytearray(self.size)
        for reg in self:
            memory[reg.address:reg.end] = self.encode(reg, reg.default)
        return memory
