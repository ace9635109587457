"""Dynamixel Protocol 2.0 and Feetech codecs: spec vectors, stuffing, requests, replies, streaming parser."""

import random

import pytest

from robolearn_hardware.protocol import ProtocolError, Rejected, decode_sign_magnitude, encode_sign_magnitude
from robolearn_hardware.protocol import dynamixel as dxl
from robolearn_hardware.protocol import feetech as ft
from robolearn_hardware.protocol.dynamixel_tables import XL330_M288, XL430_W250
from robolearn_hardware.protocol.feetech_tables import STS3215


def test_crc16_matches_the_emanual_vectors_and_robotis_table():
    # e-manual: ping id 1 -> CRC 19 4E; status of that ping -> 65 5D
    assert dxl.ping(1) == bytes.fromhex("FFFFFD00010300 01 194E".replace(" ", ""))
    assert dxl.encode_status(1, 0, bytes([0x06, 0x04, 0x26])) == bytes.fromhex("FFFFFD0001070055000604265D65"[:-4] + "655D")
    # First entries of the table printed in the ROBOTIS spec.
    assert dxl._CRC_TABLE[:8] == [0x0000, 0x8005, 0x800F, 0x000A, 0x801B, 0x001E, 0x0014, 0x8011]
    assert dxl._CRC_TABLE[255] == 0x0202


def test_stuffing_inserts_fd_after_every_header_pattern_and_round_trips():
    assert dxl.stuff(b"\x03\xff\xff\xfd\x01") == b"\x03\xff\xff\xfd\xfd\x01"
    assert dxl.stuff(b"\xff\xff\xfd\xfd") == b"\xff\xff\xfd\xfd\xfd"
    rng = random.Random(0)
    for _ in range(500):
        body = bytes(rng.choice((0xFF, 0xFD, 0x00, 7)) for _ in range(rng.randint(1, 20)))
        assert dxl.unstuff(dxl.stuff(body)) == body
    with pytest.raises(ProtocolError, match="unstuffed FF FF FD"):
        dxl.unstuff(b"\x03\xff\xff\xfd\x01")
    # A write whose data holds FF FF FD goes out stuffed (LEN counts the extra byte) and parses back.
    wire = dxl.write(1, 116, b"\xff\xff\xfd\x00")
    assert wire[5] == 3 + 2 + 4 + 1 and b"\xff\xff\xfd\xfd" in wire
    [pkt] = dxl.DynamixelParser().feed(wire)
    assert dxl.decode_request(pkt) == dxl.Write(116, b"\xff\xff\xfd\x00")


@pytest.mark.parametrize("wire, req", [
    (dxl.ping(3), dxl.Ping()),
    (dxl.read(3, 132, 4), dxl.Read(132, 4)),
    (dxl.write(3, 64, b"\x01"), dxl.Write(64, b"\x01")),
    (dxl.reg_write(3, 116, b"\x00\x08\x00\x00"), dxl.RegWrite(116, b"\x00\x08\x00\x00")),
    (dxl.action(), dxl.Action()),
    (dxl.factory_reset(3, 0x02), dxl.FactoryReset(0x02)),
    (dxl.reboot(3), dxl.Reboot()),
    (dxl.sync_read(132, 4, [1, 2, 3]), dxl.SyncRead(132, 4, (1, 2, 3))),
    (dxl.sync_read(132, 4, [1, 2], fast=True), dxl.SyncRead(132, 4, (1, 2), True)),
    (dxl.sync_write(116, 4, {1: b"\x00\x01\x00\x00", 2: b"\x00\x02\x00\x00"}),
     dxl.SyncWrite(116, 4, {1: b"\x00\x01\x00\x00", 2: b"\x00\x02\x00\x00"})),
    (dxl.bulk_read([(1, 132, 4), (2, 126, 2)]), dxl.BulkRead(((1, 132, 4), (2, 126, 2)))),
    (dxl.bulk_read([(1, 132, 4)], fast=True), dxl.BulkRead(((1, 132, 4),), True)),
    (dxl.bulk_write([(1, 116, b"\x01\x02\x03\x04"), (2, 65, b"\x01")]),
     dxl.BulkWrite(((1, 116, b"\x01\x02\x03\x04"), (2, 65, b"\x01")))),
])
def test_every_dynamixel_instruction_round_trips(wire, req):
    [pkt] = dxl.DynamixelParser().feed(wire)
    assert pkt.raw == wire and not pkt.is_status
    assert dxl.decode_request(pkt) == req


def test_dynamixel_malformed_requests_carry_the_servo_error_code():
    cases = [
        (dxl.encode_packet(1, dxl.Instruction.READ, b"\x84\x00"), dxl.ErrorCode.DATA_LENGTH, "READ takes 4"),
        (dxl.encode_packet(1, 0x77), dxl.ErrorCode.INSTRUCTION, "not a Protocol 2.0 instruction"),
        (dxl.encode_packet(1, dxl.Instruction.SYNC_READ, b"\x84\x00\x04\x00\x01"), dxl.ErrorCode.INSTRUCTION, "broadcast"),
        (dxl.encode_packet(1, dxl.Instruction.FACTORY_RESET, b"\x05"), dxl.ErrorCode.DATA_RANGE, "option 0x05"),
        (dxl.encode_packet(0xFE, dxl.Instruction.SYNC_WRITE, b"\x74\x00\x04\x00\x01\x00\x00"), dxl.ErrorCode.DATA_LENGTH, "SYNC_WRITE"),
    ]
    for wire, code, text in cases:
        [pkt] = dxl.DynamixelParser().feed(wire)
        with pytest.raises(ProtocolError, match=text) as e:
            dxl.decode_request(pkt)
        assert e.value.code == code


def test_dynamixel_status_and_fast_status():
    [pkt] = dxl.DynamixelParser().feed(dxl.encode_status(7, 0x80 | 7, b""))
    assert pkt.is_status and pkt.id == 7 and pkt.error == 0x87
    [pkt] = dxl.DynamixelParser().feed(dxl.encode_status(7, 0, b"\x00\x08\x00\x00"))
    assert dxl.decode_status(pkt, 7, 4) == (0, b"\x00\x08\x00\x00")
    with pytest.raises(ProtocolError, match="carries 4 parameter bytes, 2 expected"):
        dxl.decode_status(pkt, 7, 2)
    with pytest.raises(ProtocolError, match="from id 8"):
        dxl.decode_status(pkt, 8, 4)
    # Fast Sync Read: one packet from 0xFE, ERR ID data CRC per servo, running CRCs; data may hold FF FF FD.
    entries = [(0, 1, b"\xff\xff\xfd\x00"), (0x80, 2, b"\x10\x00\x00\x00"), (0, 3, b"\x20\x00\x00\x00")]
    wire = dxl.encode_fast_status(entries)
    assert wire[5] | wire[6] << 8 == 1 + 3 * (4 + 4)
    [pkt] = dxl.DynamixelParser().feed(wire)
    slots = dxl.decode_fast_status(pkt, [(1, 4), (2, 4), (3, 4)])
    assert slots == {1: (0, b"\xff\xff\xfd\x00"), 2: (0x80, b"\x10\x00\x00\x00"), 3: (0, b"\x20\x00\x00\x00")}
    bad = bytearray(wire)
    bad[8 + 6] ^= 0xFF  # first slot's CRC; the packet CRC no longer matches either
    parser = dxl.DynamixelParser()
    events = parser.feed(bytes(bad)) + parser.flush()
    assert events[0].kind == "checksum" and all(isinstance(e, Rejected) for e in events)
    with pytest.raises(ProtocolError, match="slot 1 is from id 2, id 5 expected"):
        dxl.decode_fast_status(pkt, [(1, 4), (5, 4), (3, 4)])


def test_parser_resyncs_after_garbage_and_splits_and_reports_every_byte():
    frames = [dxl.read(1, 132, 4), dxl.encode_status(1, 0, b"\x00\x08\x00\x00"), dxl.ping(2)]
    noisy = b"\x00\xff\xff" + frames[0] + b"\x12\xfd" + frames[1] + frames[2] + b"\xff\xff\xfd"
    parser = dxl.DynamixelParser()
    events = []
    for k in range(0, len(noisy), 5):  # arriving 5 bytes at a time
        events += parser.feed(noisy[k:k + 5])
    assert [e.raw for e in events if not isinstance(e, Rejected)] == frames
    assert parser.pending == 3  # a header prefix waits for more
    events += parser.flush()
    assert sum(len(e.data) if isinstance(e, Rejected) else len(e.raw) for e in events) == len(noisy)
    assert {e.kind for e in events if isinstance(e, Rejected)} == {"garbage", "truncated"}


def test_parser_rejects_bad_crc_id_and_length_with_a_reason_and_keeps_the_next_frame():
    good = dxl.ping(3)
    bad_crc = bytearray(dxl.read(1, 132, 4))
    bad_crc[-1] ^= 1
    events = dxl.DynamixelParser().feed(bytes(bad_crc) + good)
    assert isinstance(events[0], Rejected) and events[0].kind == "checksum" and "CRC" in events[0].reason
    assert events[1].raw == good
    # A corrupted length that swallows the next frame: the rejected span ends at that frame's header.
    long_len = bytearray(dxl.read(1, 132, 4))
    long_len[5] = 40
    events = dxl.DynamixelParser().feed(bytes(long_len) + good + bytes(40))
    assert events[0].kind == "checksum" and good in [e.raw for e in events if not isinstance(e, Rejected)]
    events = dxl.DynamixelParser().feed(b"\xff\xff\xfd\x00\xfd\x03\x00\x01\x00\x00" + good)
    assert events[0].kind == "header" and "id 253" in events[0].reason and events[-1].raw == good
    events = dxl.DynamixelParser().feed(b"\xff\xff\xfd\x00\x01\xff\xff")
    assert events[0].kind == "header" and "length 65535" in events[0].reason


def test_parser_buffer_is_bounded_by_one_frame():
    parser = dxl.DynamixelParser(max_length=64)
    parser.feed(b"\xff\xff\xfd\x00\x01\x40\x00" + bytes(20))  # a 71-byte frame, 27 bytes in
    assert parser.pending == 27
    parser.feed(bytes(10_000))
    assert parser.pending < parser.max_frame
    assert parser.feed(b"\xff\xff\xfd\x00\x01\x41\x00")[0].kind == "header"  # length 65 > 64


def test_feetech_checksum_requests_and_replies():
    # ~(1 + 4 + 2 + 56 + 2) & 0xFF = 0xBE: read 2 bytes at 56 from id 1
    assert ft.read(1, 56, 2) == bytes.fromhex("FFFF01040238 02BE".replace(" ", ""))
    for wire, request in [
        (ft.ping(1), ft.Ping()), (ft.read(1, 56, 2), ft.Read(56, 2)), (ft.write(1, 42, b"\x00\x08"), ft.Write(42, b"\x00\x08")),
        (ft.reg_write(1, 42, b"\x00\x08"), ft.RegWrite(42, b"\x00\x08")), (ft.action(), ft.Action()), (ft.reset(1), ft.Reset()),
        (ft.sync_read(56, 2, [1, 2, 3]), ft.SyncRead(56, 2, (1, 2, 3))),
        (ft.sync_write(42, 2, {1: b"\x00\x08", 2: b"\x00\x04"}), ft.SyncWrite(42, 2, {1: b"\x00\x08", 2: b"\x00\x04"})),
    ]:
        [pkt] = ft.FeetechParser(replies=False).feed(wire)
        assert ft.decode_request(pkt) == request
    [pkt] = ft.FeetechParser(replies=True).feed(ft.encode_status(4, 32, b"\x10\x00"))
    assert ft.decode_status(pkt, 4, 2) == (32, b"\x10\x00")
    with pytest.raises(ProtocolError, match="carries 2 parameter bytes, 4 expected"):
        ft.decode_status(pkt, 4, 4)
    [rej] = ft.FeetechParser(replies=True).feed(ft.encode_status(4, 0x80, b""))
    assert rej.kind == "header" and "bit 7" in rej.reason
    # FF FF FF: the first FF is garbage, not a frame with id 255.
    events = ft.FeetechParser(replies=False).feed(b"\xff" + ft.ping(5))
    assert events[0].kind == "header" and events[1].id == 5


def test_sign_magnitude_and_register_encoding():
    assert encode_sign_magnitude(-100, 11) == 0x800 | 100
    assert decode_sign_magnitude(0x800 | 100, 11) == -100
    assert decode_sign_magnitude(0x8000 | 5, 15) == -5
    with pytest.raises(ValueError, match="magnitude 2114 exceeds 2047"):  # LeRobot #1296
        encode_sign_magnitude(2114, 11)
    offset = STS3215["Homing_Offset"]
    assert STS3215.encode(offset, -2047) == (0x800 | 2047).to_bytes(2, "little")
    assert STS3215.decode(STS3215["Present_Load"], (0x400 | 300).to_bytes(2, "little")) == -300
    assert XL330_M288.encode(XL330_M288["Goal_Position"], -5) == b"\xfb\xff\xff\xff"
    assert XL330_M288.decode(XL330_M288["Present_Velocity"], b"\xfe\xff\xff\xff") == -2
    assert XL330_M288["Goal_Current"].address == 102 and "Goal_Current" not in XL430_W250
    assert XL430_W250["Present_Load"].address == 126 and XL330_M288["Present_Current"].address == 126
    assert [r.name for r in XL330_M288.span(126, 10)] == ["Present_Current", "Present_Velocity", "Present_Position"]
    assert all(r.eeprom == (r.address < 64) for r in XL330_M288)
    assert XL330_M288.model_number == 1200 and XL430_W250.model_number == 1060 and STS3215.model_number == 777
    with pytest.raises(KeyError, match="no register 'Goal_Positon'"):
        XL330_M288["Goal_Positon"]
