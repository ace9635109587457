"""The RTDE wire protocol (Universal Robots Real-Time Data Exchange, protocol version 2, TCP port 30004).

Both sides of the loopback tests use this module: the emulated controller (`robolearn_hardware.ur.emulator`)
answers with it, and `RTDEClient` (a small client for tests and tools) speaks it. The driver itself talks
through the vendor's ``ur_rtde`` package, so each test cross-checks ur_rtde, this codec and the protocol.

Framing: ``uint16 size`` (big-endian, including the 3-byte header) ``| uint8 type | payload``.

======================  ====  ================================================================================
message                 type  payload (client -> controller / controller -> client)
======================  ====  ================================================================================
request protocol ver.   V 86  uint16 version / uint8 accepted
get URControl version   v 118 - / uint32 major, minor, bugfix, build
setup outputs           O 79  double frequency + CSV names / uint8 recipe id + CSV types (NOT_FOUND per name)
setup inputs            I 73  CSV names / uint8 recipe id + CSV types (NOT_FOUND, IN_USE per name)
start / pause           S 83  - / uint8 accepted                          P 80 the same
data package            U 85  uint8 recipe id + values packed by the recipe's types (both directions)
text message            M 77  - / uint8 length + message + uint8 length + source + uint8 warning level
======================  ====  ================================================================================

Example::

    recipe = Recipe(1, ["timestamp", "actual_q"], OUTPUT_TYPES)
    payload = recipe.pack({"timestamp": 1.0, "actual_q": [0.0] * 6})   # b"\\x01" + 7 doubles
    frame(Message.DATA_PACKAGE, payload)
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterable, Mapping, Sequence
from enum import IntEnum

__all__ = ["HEADER", "Message", "TYPE_FORMATS", "OUTPUT_TYPES", "INPUT_TYPES", "Recipe", "FrameReader", "frame",
           "RTDEClient", "RTDEError", "PROTOCOL_VERSION"]

PROTOCOL_VERSION = 2
HEADER = struct.Struct(">HB")


class Message(IntEnum):
    REQUEST_PROTOCOL_VERSION = 86
    GET_URCONTROL_VERSION = 118
    TEXT_MESSAGE = 77
    DATA_PACKAGE = 85
    SETUP_OUTPUTS = 79
    SETUP_INPUTS = 73
    START = 83
    PAUSE = 80


class RTDEError(RuntimeError):
    """A malformed frame, or an answer the protocol does not allow."""


TYPE_FORMATS = {"DOUBLE": "d", "VECTOR3D": "3d", "VECTOR6D": "6d", "VECTOR6INT32": "6i", "VECTOR6UINT32": "6I",
                "INT32": "i", "UINT32": "I", "UINT64": "Q", "UINT8": "B", "BOOL": "?"}
"""RTDE type name -> struct format (big-endian on the wire)."""


def _registers(prefix: str, kind: str, n: int = 48) -> dict[str, str]:
    return {f"{prefix}{i}": kind for i in range(n)}


_VEC6 = ("target_q target_qd target_qdd target_current target_moment actual_q actual_qd actual_qdd actual_current "
         "actual_moment joint_control_output actual_TCP_pose actual_TCP_speed actual_TCP_force target_TCP_pose "
         "target_TCP_speed joint_temperatures actual_joint_voltage ft_raw_wrench payload_inertia").split()
_DOUBLE = ("timestamp actual_execution_time speed_scaling target_speed_fraction actual_momentum actual_main_voltage "
           "actual_robot_voltage actual_robot_current standard_analog_input0 standard_analog_input1 "
           "standard_analog_output0 standard_analog_output1 io_current tool_analog_input0 tool_analog_input1 "
           "tool_output_current tool_temperature tcp_force_scalar payload").split()

OUTPUT_TYPES: dict[str, str] = {
    **{n: "VECTOR6D" for n in _VEC6}, **{n: "DOUBLE" for n in _DOUBLE},
    "actual_digital_input_bits": "UINT64", "actual_digital_output_bits": "UINT64",
    "robot_mode": "INT32", "safety_mode": "INT32", "safety_status": "INT32", "joint_mode": "VECTOR6INT32",
    "actual_tool_accelerometer": "VECTOR3D", "elbow_position": "VECTOR3D", "elbow_velocity": "VECTOR3D",
    "payload_cog": "VECTOR3D", "runtime_state": "UINT32", "robot_status_bits": "UINT32",
    "safety_status_bits": "UINT32", "analog_io_types": "UINT32", "tool_mode": "UINT32",
    "tool_analog_input_types": "UINT32", "tool_output_voltage": "INT32", "script_control_line": "UINT32",
    "output_bit_registers0_to_31": "UINT32", "output_bit_registers32_to_63": "UINT32",
    "input_bit_registers0_to_31": "UINT32", "input_bit_registers32_to_63": "UINT32",
    **_registers("output_int_register_", "INT32"), **_registers("output_double_register_", "DOUBLE"),
    **_registers("input_int_register_", "INT32"), **_registers("input_double_register_", "DOUBLE"),
}
"""Variables a controller (PolyScope 5) streams, with their RTDE types (UR's RTDE guide)."""

INPUT_TYPES: dict[str, str] = {
    **_registers("input_int_register_", "INT32"), **_registers("input_double_register_", "DOUBLE"),
    "input_bit_registers0_to_31": "UINT32", "input_bit_registers32_to_63": "UINT32",
    "external_force_torque": "VECTOR6D", "speed_slider_mask": "UINT32", "speed_slider_fraction": "DOUBLE",
    "standard_digital_output_mask": "UINT8", "standard_digital_output": "UINT8",
    "configurable_digital_output_mask": "UINT8", "configurable_digital_output": "UINT8",
    "tool_digital_output_mask": "UINT8", "tool_digital_output": "UINT8",
    "standard_analog_output_mask": "UINT8", "standard_analog_output_type": "UINT8",
    "standard_analog_output_0": "DOUBLE", "standard_analog_output_1": "DOUBLE",
}
"""Variables a client may write (input recipes)."""


def frame(kind: int, payload: bytes = b"") -> bytes:
    """One RTDE message: header + payload."""
    size = HEADER.size + len(payload)
    if size > 0xFFFF:
        raise RTDEError(f"RTDE message of {size} bytes exceeds the 65535-byte frame limit")
    return HEADER.pack(size, int(kind)) + payload


class FrameReader:
    """Reassembles messages from a byte stream (TCP gives no boundaries)."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buf += data
        out = []
        while len(self._buf) >= HEADER.size:
            size, kind = HEADER.unpack_from(self._buf)
            if size < HEADER.size:
                raise RTDEError(f"RTDE frame declares size {size}, less than its 3-byte header")
            if len(self._buf) < size:
                break
            out.append((kind, bytes(self._buf[HEADER.size:size])))
            del self._buf[:size]
        return out


class Recipe:
    """An ordered list of variables with their types: packs and unpacks data packages of one recipe id."""

    def __init__(self, recipe_id: int, names: Sequence[str], types: Mapping[str, str] | Sequence[str]):
        self.id = int(recipe_id)
        self.names = list(names)
        self.types = [types[n] for n in self.names] if isinstance(types, Mapping) else list(types)
        bad = [t for t in self.types if t not in TYPE_FORMATS]
        if bad:
            raise RTDEError(f"recipe {self.id} has types {bad} that cannot be packed; known: {sorted(TYPE_FORMATS)}")
        self.struct = struct.Struct(">B" + "".join(TYPE_FORMATS[t] for t in self.types))
        self._widths = [int(TYPE_FORMATS[t][:-1] or 1) for t in self.types]

    def pack(self, values: Mapping[str, object]) -> bytes:
        flat: list = [self.id]
        for name, width in zip(self.names, self._widths):
            v = values[name]
            if width == 1:
                flat.append(v)
            else:
                flat.extend(v)  # type: ignore[arg-type]
        return self.struct.pack(*flat)

    def unpack(self, payload: bytes) -> dict[str, object]:
        if len(payload) != self.struct.size:
            raise RTDEError(f"data package for recipe {self.id} has {len(payload)} bytes; its recipe needs "
                            f"{self.struct.size}")
        flat = self.struct.unpack(payload)[1:]
        out: dict[str, object] = {}
        i = 0
        for name, width in zip(self.names, self._widths):
            out[name] = flat[i] if width == 1 else list(flat[i:i + width])
            i += width
        return out


class RTDEClient:
    """A minimal RTDE client: negotiate, set up one output recipe and input recipes, start, read, write.

    For tests and tools (it cross-checks the emulator independently of ur_rtde); bounded by ``timeout_s``.
    """

    def __init__(self, host: str, port: int = 30004, timeout_s: float = 5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout_s)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._reader = FrameReader()
        self._pending: list[tuple[int, bytes]] = []
        self.output: Recipe | None = None
        self.inputs: dict[int, Recipe] = {}

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "RTDEClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _receive(self) -> tuple[int, bytes]:
        while not self._pending:
            data = self.sock.recv(65536)
            if not data:
                raise RTDEError("the controller closed the RTDE connection")
            self._pending.extend(self._reader.feed(data))
        return self._pending.pop(0)

    def _request(self, kind: Message, payload: bytes = b"") -> bytes:
        self.sock.sendall(frame(kind, payload))
        while True:
            got, body = self._receive()
            if got == kind:
                return body
            if got != Message.DATA_PACKAGE and got != Message.TEXT_MESSAGE:
                raise RTDEError(f"expected an answer of type {kind.name}, got message type {got}")

    def negotiate(self, version: int = PROTOCOL_VERSION) -> bool:
        return bool(self._request(Message.REQUEST_PROTOCOL_VERSION, struct.pack(">H", version))[0])

    def controller_version(self) -> tuple[int, int, int, int]:
        return struct.unpack(">IIII", self._request(Message.GET_URCONTROL_VERSION))

    def setup_outputs(self, names: Iterable[str], frequency: float) -> Recipe:
        names = list(names)
        body = self._request(Message.SETUP_OUTPUTS, struct.pack(">d", frequency) + ",".join(names).encode())
        types = body[1:].decode().split(",")
        missing = [n for n, t in zip(names, types) if t == "NOT_FOUND"]
        if missing:
            raise RTDEError(f"the controller does not know the output variables {missing}")
        self.output = Recipe(body[0], names, types)
        return self.output

    def setup_inputs(self, names: Iterable[str]) -> Recipe:
        names = list(names)
        body = self._request(Message.SETUP_INPUTS, ",".join(names).encode())
        types = body[1:].decode().split(",")
        refused = [f"{n} ({t})" for n, t in zip(names, types) if t in ("NOT_FOUND", "IN_USE")]
        if refused or body[0] == 0:
            raise RTDEError(f"the controller refused the input variables {refused}")
        recipe = Recipe(body[0], names, types)
        self.inputs[recipe.id] = recipe
        return recipe

    def start(self) -> bool:
        return bool(self._request(Message.START)[0])

    def pause(self) -> bool:
        return bool(self._request(Message.PAUSE)[0])

    def send(self, recipe: Recipe, values: Mapping[str, object]) -> None:
        self.sock.sendall(frame(Message.DATA_PACKAGE, recipe.pack(values)))

    def receive(self) -> tuple[float, dict[str, object]]:
        """The next data package of the output recipe, with the monotonic time it was read."""
        if self.output is None:
            raise RTDEError("set up an output recipe (setup_outputs) and start() before receive()")
        while True:
            kind, body = self._receive()
            if kind == Message.DATA_PACKAGE:
                return time.monotonic(), self.output.unpack(body)
