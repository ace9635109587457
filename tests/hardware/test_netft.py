"""ATI Net F/T over RDT against the loopback emulator in its own process (issue 13 part 2)."""

import socket
import time

import numpy as np
import pytest

from robolearn.devices import check_device, make_device
from robolearn.errors import UserError
from robolearn_hardware.force import (Calibration, ForceTorqueStatusError, NetFTEmulator, NetFTError, NetFTSensor,
                                      build_request, pack_record, parse_netftapi2, parse_record)
from robolearn_hardware.force.rdt import CMD_BIAS, CMD_START_STREAM, CMD_STOP, parse_request
from tests.hardware.waiting import stop_checked, wait_for

CAL = Calibration(counts_per_force=1_000_000, counts_per_torque=1_000_000)


@pytest.fixture
def emulator():
    started = []

    def start(**kw):
        emu = NetFTEmulator(**kw).start()
        started.append(emu)
        return emu

    yield start
    for emu in started:
        stop_checked(emu)


def test_wire_format_round_trips_and_is_big_endian():
    assert build_request(CMD_START_STREAM) == bytes.fromhex("1234000200000000")
    assert parse_request(build_request(CMD_BIAS, 7)) == (CMD_BIAS, 7)
    with pytest.raises(ValueError, match="header"):
        parse_request(bytes.fromhex("4321000200000000"))
    raw = pack_record(1, 2, 0x8000_0001, [1, -1, 2**31 - 1, -(2**31), 0, 5])
    assert len(raw) == 36 and raw[:4] == b"\x00\x00\x00\x01" and raw[12:16] == b"\x00\x00\x00\x01"
    assert raw[16:20] == b"\xff\xff\xff\xff"  # -1 as a big-endian int32
    r = parse_record(raw)
    assert (r.rdt_sequence, r.ft_sequence, r.status) == (1, 2, 0x8000_0001)
    assert r.counts.tolist() == [1, -1, 2**31 - 1, -(2**31), 0, 5]
    with pytest.raises(ValueError, match="36"):
        parse_record(raw[:-1])
    with pytest.raises(UserError, match="0x0007"):
        build_request(7)


def test_calibration_from_netftapi2_xml_in_units():
    cal = parse_netftapi2("<netft><cfgcpf>1000000</cfgcpf><cfgcpt>1000</cfgcpt><scfgfu>2</scfgfu>"
                          "<scfgtu>4</scfgtu></netft>")
    # N and N mm: 1e6 counts = 1 N; 1000 counts = 1 N mm = 0.001 N m
    np.testing.assert_allclose(cal.to_si([1_000_000, 0, 0, 1000, 0, 0]), [1, 0, 0, 0.001, 0, 0])
    lbf = parse_netftapi2("<netft><cfgcpf>10</cfgcpf><cfgcpt>10</cfgcpt><scfgfu>lbf</scfgfu><scfgtu>lbf-in</scfgtu>"
                          "</netft>")
    np.testing.assert_allclose(lbf.to_si([10, 0, 0, 10, 0, 0])[[0, 3]], [4.4482216, 0.1129848], rtol=1e-6)
    with pytest.raises(UserError, match="no <cfgcpt>"):
        parse_netftapi2("<netft><cfgcpf>1</cfgcpf></netft>")
    with pytest.raises(UserError, match="scfgfu='furlong'"):
        parse_netftapi2("<netft><cfgcpf>1</cfgcpf><cfgcpt>1</cfgcpt><scfgfu>furlong</scfgfu><scfgtu>3</scfgtu></netft>")
    with pytest.raises(UserError, match="counts_per_force=0"):
        Calibration(counts_per_force=0)


def test_netft_passes_check_device(emulator):
    emu = emulator(rate=500, wrench=(1, -2, 3, 0.1, -0.2, 0.3))
    check_device(NetFTSensor("127.0.0.1", port=emu.rdt_port, http_port=emu.http_port))
    requests = emu.stats()["requests"]
    assert [c for c, _ in requests].count(CMD_START_STREAM) == 2 and requests[-1] == [CMD_STOP, 0]


def test_stream_reads_the_load_through_the_http_calibration(emulator):
    cal = Calibration(counts_per_force=1_000_000, counts_per_torque=1000, torque_unit=1.0)
    emu = emulator(rate=1000, wrench=(1.5, 0, -9.81, 0.25, 0, -0.125), calibration=cal)
    with NetFTSensor("127.0.0.1", port=emu.rdt_port, http_port=emu.http_port) as ft:
        assert ft.calibration.counts_per_torque == 1000  # read from /netftapi2.xml, not configured
        t0 = time.monotonic()
        reading = ft.read()
        np.testing.assert_allclose(reading.values["force"], [1.5, 0, -9.81, 0.25, 0, -0.125], atol=1e-3)
        assert reading.values["force"].dtype == np.float32 and reading.t_capture <= t0
        assert wait_for(lambda: ft.counters()["received"] >= 200)
        got = ft.samples()
        assert got["force"].shape[1] == 6 and np.all(np.diff(got["rdt_sequence"]) >= 1) and np.all(np.diff(got["t"]) >= 0)
    assert ft.counters()["lost"] == 0


def test_unreachable_calibration_and_silent_sensor_are_one_sentence(emulator):
    emu = emulator(rate=200, http=False)
    with pytest.raises(NetFTError, match=r"cannot read the calibration at http://127.0.0.1:\d+/netftapi2.xml"):
        NetFTSensor("127.0.0.1", port=emu.rdt_port, http_port=_free_port()).connect()
    silent = NetFTSensor("127.0.0.1", port=_free_port(socket.SOCK_DGRAM), calibration=CAL, first_record_timeout=0.3)
    with pytest.raises(NetFTError, match="no RDT record from 127.0.0.1"):
        silent.connect()
    assert not silent.is_connected


def _free_port(kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_dropped_records_are_counted_as_sequence_gaps(emulator):
    emu = emulator(rate=1000, wrench=(0, 0, 1, 0, 0, 0))
    emu.command("faults", drop_sequences=[20, 21, 22, 50, 90])
    with NetFTSensor("127.0.0.1", port=emu.rdt_port, calibration=CAL) as ft:
        assert wait_for(lambda: ft.counters()["received"] >= 150)
        c = ft.counters()
    assert (c["lost"], c["gaps"], c["late"]) == (5, 3, 0)
    assert emu.stats()["dropped"] == 5


def test_random_drops_add_up(emulator):
    emu = emulator(rate=1000, drop=0.05, seed=3)
    with NetFTSensor("127.0.0.1", port=emu.rdt_port, calibration=CAL) as ft:
        assert wait_for(lambda: ft.counters()["received"] >= 300)
        time.sleep(0.05)
    stats, c = emu.stats(), ft.counters()
    # every record the emulator meant to send was either received or counted lost (none after the last received)
    assert c["lost"] > 0 and c["received"] + c["lost"] <= stats["rdt_sequence"]
    assert stats["dropped"] - c["lost"] <= stats["rdt_sequence"] - (c["received"] + c["lost"])


def test_tare_on_host_and_bias_on_the_sensor(emulator):
    emu = emulator(rate=1000, wrench=(2, 0, -5, 0, 0.5, 0))
    with NetFTSensor("127.0.0.1", port=emu.rdt_port, calibration=CAL) as ft:
        offset = ft.tare(samples=50)
        np.testing.assert_allclose(offset, [2, 0, -5, 0, 0.5, 0], atol=1e-5)
        np.testing.assert_allclose(ft.read().values["force"], 0, atol=1e-5)
        emu.command("wrench", value=[2, 0, -4, 0, 0.5, 0])  # 1 N more along z
        assert wait_for(lambda: abs(ft.read().values["force"][2] - 1.0) < 1e-5)
        ft.untare()
        ft.bias()   # the sensor zeroes the present load
        assert wait_for(lambda: np.allclose(ft.read().values["force"], 0, atol=1e-5))
    assert emu.stats()["bias"] == [2, 0, -4, 0, 0.5, 0]


def test_status_error_raises_naming_the_word(emulator):
    emu = emulator(rate=500)
    with NetFTSensor("127.0.0.1", port=emu.rdt_port, calibration=CAL) as ft:
        emu.command("status", value=0x8000_0004)
        assert wait_for(lambda: ft.counters()["status_errors"] > 0)
        with pytest.raises(ForceTorqueStatusError, match="status 0x80000004"):
            ft.read()
        assert ft.last_status == 0x8000_0004


def test_registered_as_a_device():
    ft = make_device("netft", host="127.0.0.1", counts_per_force=1e6, counts_per_torque=1e6)
    assert isinstance(ft, NetFTSensor) and ft.calibration.counts_per_force == 1e6 and not ft.is_connected
