"""Transports: how a `ServoBus` puts bytes on the wire. One interface, three implementations.

- ``DynamixelSdkTransport`` / ``FeetechSdkTransport`` (the default): the unmodified vendor SDKs
  (``dynamixel_sdk``, ``scservo_sdk``), imported inside the constructor; a missing SDK is a
  `robolearn.errors.MissingExtraError` naming the extra to install.
- ``OwnCodecTransport``: robolearn's own codecs (`robolearn_hardware.protocol.client.OwnCodecPort`), the
  fallback when no SDK is installed; it passes the same tests.

Every transport reports a failed reply the same way: ``NoReply`` (nothing came in time: the SDKs'
COMM_RX_TIMEOUT) or ``CorruptReply`` (bytes came, none a valid reply: COMM_RX_CORRUPT). A sync read returns
what came back and, for the rest, why, so the bus retries only the motors that did not answer.

The per-attempt reply timeout follows the SDKs: wire time of the expected bytes + 2 x the USB-serial
latency timer + 2 ms. ``latency_timer_ms`` is 16 on a stock FTDI adapter; 1 after ``robolearn doctor``'s
fix (``/sys/bus/usb-serial/devices/<tty>/latency_timer``).
"""

from __future__ import annotations

import select
import termios
from typing import Protocol

from robolearn.errors import MissingExtraError

from ..protocol.client import CorruptReply, NoReply, OwnCodecPort
from .errors import BusError

__all__ = ["Transport", "NoReply", "CorruptReply", "DynamixelSdkTransport", "FeetechSdkTransport",
           "OwnCodecTransport", "open_transport", "BACKENDS"]

BACKENDS = ("sdk", "own")


class Transport(Protocol):
    port: str

    def open(self) -> None: ...

    def close(self) -> None: ...

    def ping(self, servo_id: int) -> tuple[int, int]:
        """(model number, error byte)."""

    def read(self, servo_id: int, address: int, length: int) -> tuple[bytes, int]:
        """(data, error byte)."""

    def write(self, servo_id: int, address: int, data: bytes) -> int:
        """Error byte of the reply."""

    def sync_read(self, address: int, length: int, ids: list[int]
                  ) -> tuple[dict[int, tuple[bytes, int]], dict[int, str]]:
        """({id: (data, error)} for the ids that answered, {id: "no reply" | "corrupt"} for the rest)."""

    def sync_write(self, address: int, length: int, data: dict[int, bytes]) -> None: ...


class OwnCodecTransport:
    def __init__(self, port: str, protocol: str, baud: int, latency_timer_ms: float):
        self.port = port
        self._port = OwnCodecPort(port, baud, protocol)  # type: ignore[arg-type]
        self._port.latency_s = (2.0 * latency_timer_ms + 2.0) / 1000.0

    def open(self) -> None:
        try:
            self._port.open()
        except OSError as e:
            raise BusError(f"cannot open serial port {self.port}: {e}") from None

    def close(self) -> None:
        self._port.close()

    def ping(self, servo_id: int) -> tuple[int, int]:
        model, error = self._port.ping(servo_id)
        return int(model or 0), error

    def read(self, servo_id: int, address: int, length: int) -> tuple[bytes, int]:
        return self._port.read(servo_id, address, length)

    def write(self, servo_id: int, address: int, data: bytes) -> int:
        return self._port.write(servo_id, address, data)

    def sync_read(self, address: int, length: int, ids: list[int]):
        return self._port.sync_read_some(address, length, ids)

    def sync_write(self, address: int, length: int, data: dict[int, bytes]) -> None:
        self._port.sync_write(address, length, data)


class _SdkTransport:
    """The shared half of the two vendor SDK adapters (their Python APIs are near twins)."""

    sdk = None
    extra = ""

    def __init__(self, port: str, baud: int, latency_timer_ms: float):
        self.port = port
        self.baud = baud
        sdk = self.sdk
        latency = float(latency_timer_ms)

        class Port(sdk.PortHandler):  # the SDK's timeout formula with this adapter's latency timer
            def setPacketTimeout(self, packet_length):
                self.packet_start_time = self.getCurrentTime()
                self.packet_timeout = self.tx_time_per_byte * packet_length + 2.0 * latency + 2.0

            def readPort(self, length):
                # The SDKs poll a non-blocking port in a tight loop until the reply or the timeout: a core spun
                # per transaction. Sleep in select() until a byte is there or the packet timeout is up instead.
                if not self.ser.in_waiting:
                    left_ms = self.packet_timeout - self.getTimeSinceStart()
                    if left_ms > 0:
                        select.select([self.ser.fileno()], [], [], left_ms / 1000.0)
                return self.ser.read(length)

        self._port = Port(port)
        self._ph = self._packet_handler()
        self.ok = sdk.COMM_SUCCESS

    def _packet_handler(self):
        raise NotImplementedError

    def open(self) -> None:
        try:
            opened = self._port.openPort() and self._port.setBaudRate(self.baud)
        except Exception as e:  # noqa: BLE001 - pyserial raises SerialException (an OSError) or ValueError
            raise BusError(f"cannot open serial port {self.port}: {e}") from None
        if not opened:
            raise BusError(f"cannot open serial port {self.port} at {self.baud} baud")

    def close(self) -> None:
        if self._port.is_open:
            self._port.closePort()

    def _clear(self) -> None:
        # A late reply to an earlier request must not meet this one (scservo's clearPort only flushes output).
        try:
            self._port.ser.reset_input_buffer()
        except termios.error as e:  # not an OSError: an adapter pulled out must still read as an I/O error
            raise BusError(f"{self.port}: the serial port stopped working ({e}); is the USB adapter unplugged? "
                           "Plug it in and reconnect") from None
        self._port.is_using = False

    def _check(self, result: int, what: str) -> None:
        if result == self.ok:
            return
        if result == self.sdk.COMM_RX_TIMEOUT:
            raise NoReply(f"{self.port}: {what}: {self._ph.getTxRxResult(result)}")
        if result == self.sdk.COMM_RX_CORRUPT:
            raise CorruptReply(f"{self.port}: {what}: {self._ph.getTxRxResult(result)}")
        raise BusError(f"{self.port}: {what}: {self._ph.getTxRxResult(result)}")

    def _call(self, what: str, fn):
        """One SDK transaction. The SDKs match a reply by id only: a late reply to an earlier request that lands
        after the input was cleared is taken as this one's, and a short one makes scservo's ping index past its
        data (IndexError). Either is a corrupt reply here."""
        self._clear()
        try:
            return fn()
        except IndexError:
            self._port.is_using = False
            raise CorruptReply(f"{self.port}: {what}: a reply too short for the request (a late reply?)") from None

    def ping(self, servo_id: int) -> tuple[int, int]:
        model, result, error = self._call(f"ping id {servo_id}", lambda: self._ph.ping(self._port, servo_id))
        self._check(result, f"ping id {servo_id}")
        return int(model), int(error)

    def read(self, servo_id: int, address: int, length: int) -> tuple[bytes, int]:
        what = f"read id {servo_id} address {address}"
        data, result, error = self._call(what, lambda: self._ph.readTxRx(self._port, servo_id, address, length))
        self._check(result, what)
        if len(data) != length and not error:
            raise CorruptReply(f"{self.port}: {what}: {len(data)} bytes came, {length} expected (a late reply?)")
        return bytes(data), int(error)

    def write(self, servo_id: int, address: int, data: bytes) -> int:
        what = f"write id {servo_id} address {address}"
        result, error = self._call(what, lambda: self._ph.writeTxRx(self._port, servo_id, address, len(data),
                                                                    list(data)))
        self._check(result, what)
        return int(error)

    def _sync_read_tx(self, address: int, length: int, ids: list[int]) -> int:
        raise NotImplementedError

    def _rx(self) -> tuple[list[int], int]:
        raise NotImplementedError

    def _status(self, packet: list[int]) -> tuple[int, int, bytes]:
        """(id, error byte, parameter bytes) of a status packet the SDK accepted."""
        raise NotImplementedError

    def sync_read(self, address: int, length: int, ids: list[int]):
        # The SDKs' GroupSyncRead stops at the first id that fails, and its readRx discards the replies of other
        # ids while it waits (so one silent motor fails every motor after it). Send with the SDK's syncReadTx and
        # take every status packet its rxPacket parses until all came or the SDK's packet timeout passed.
        self._clear()
        self._check(self._sync_read_tx(address, length, ids), "sync read request")
        pending, got, corrupt = set(ids), {}, False
        while pending:
            packet, result = self._rx()
            if result == self.ok:
                servo_id, error, data = self._status(packet)
                if servo_id in pending and len(data) == length:
                    got[servo_id] = (data, error)
                    pending.discard(servo_id)
                continue
            if result == self.sdk.COMM_RX_CORRUPT:
                corrupt = True
                if self._port.packet_timeout > 0 and self._port.getTimeSinceStart() <= self._port.packet_timeout:
                    continue  # a mangled reply; the others may still be in the buffer
            break
        self._port.is_using = False
        return got, {i: "corrupt" if corrupt else "no reply" for i in pending}

    def sync_write(self, address: int, length: int, data: dict[int, bytes]) -> None:
        self._clear()
        group = self.sdk.GroupSyncWrite(self._port, self._ph, address, length)
        for i, d in data.items():
            group.addParam(i, list(d))
        self._check(group.txPacket(), "sync write")


class DynamixelSdkTransport(_SdkTransport):
    extra = "dynamixel"

    def __init__(self, port: str, baud: int, latency_timer_ms: float):
        try:
            import dynamixel_sdk
        except ImportError:
            raise MissingExtraError("Dynamixel servos need the vendor SDK: pip install 'robolearn-hardware[dynamixel]' "
                                    "(or pass backend='own' to use robolearn's own codec)") from None
        self.sdk = dynamixel_sdk
        super().__init__(port, baud, latency_timer_ms)

    def _packet_handler(self):
        return self.sdk.PacketHandler(2.0)

    def _sync_read_tx(self, address: int, length: int, ids: list[int]) -> int:
        return self._ph.syncReadTx(self._port, address, length, list(ids), len(ids), False)

    def _rx(self) -> tuple[list[int], int]:
        return self._ph.rxPacket(self._port, False)

    def _status(self, packet: list[int]) -> tuple[int, int, bytes]:
        n_params = packet[5] + (packet[6] << 8) - 4  # LEN counts INST, ERR and the CRC
        return packet[4], packet[8], bytes(packet[9:9 + n_params])


class FeetechSdkTransport(_SdkTransport):
    extra = "feetech"

    def __init__(self, port: str, baud: int, latency_timer_ms: float):
        try:
            import scservo_sdk
        except ImportError:
            raise MissingExtraError("Feetech servos need the vendor SDK: pip install 'robolearn-hardware[feetech]' "
                                    "(or pass backend='own' to use robolearn's own codec)") from None
        self.sdk = scservo_sdk
        super().__init__(port, baud, latency_timer_ms)

    def _packet_handler(self):
        return self.sdk.PacketHandler(0)  # protocol end 0: STS/SMS, little-endian

    def _sync_read_tx(self, address: int, length: int, ids: list[int]) -> int:
        return self._ph.syncReadTx(self._port, address, length, list(ids), len(ids))

    def _rx(self) -> tuple[list[int], int]:
        return self._ph.rxPacket(self._port)

    def _status(self, packet: list[int]) -> tuple[int, int, bytes]:
        n_params = packet[3] - 2  # LEN counts ERR and the checksum
        return packet[2], packet[4], bytes(packet[5:5 + n_params])


def open_transport(protocol: str, port: str, *, baud: int, backend: str = "sdk",
                   latency_timer_ms: float = 16.0) -> Transport:
    """A transport for ``protocol`` on ``port`` (not yet opened)."""
    if backend not in BACKENDS:
        raise ValueError(f"servo bus backend {backend!r} is not one of {', '.join(BACKENDS)}")
    if backend == "own":
        return OwnCodecTransport(port, protocol, baud, latency_timer_ms)
    if protocol == "dynamixel":
        return DynamixelSdkTransport(port, baud, latency_timer_ms)
    return FeetechSdkTransport(port, baud, latency_timer_ms)
