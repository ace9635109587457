"""Fixtures for the hardware tests: emulators in their own process, stopped by pid when a test ends."""

import socket

import pytest

from robolearn_hardware.emulators import EmulatorProcess
from tests.hardware.waiting import stop_checked


@pytest.fixture
def emulator():
    """start(protocol, model, ids, **kw) -> a running EmulatorProcess; every one is stopped afterwards."""
    started: list[EmulatorProcess] = []

    def start(protocol: str, model: str, ids: list[int], **kw) -> EmulatorProcess:
        emu = EmulatorProcess(protocol, model, ids, **kw).start()
        started.append(emu)
        return emu

    yield start
    for emu in started:
        stop_checked(emu)


@pytest.fixture
def open_ports():
    """Register SDK port handlers here so they are closed even when a test fails."""
    ports = []
    yield ports
    for p in ports:
        if getattr(p, "is_open", False):
            p.closePort()


@pytest.fixture
def hid_pair():
    """(device end, test end) of a SOCK_SEQPACKET pair: one read() = one report, as hidraw gives them."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    yield a.fileno(), b
    a.close()
    b.close()
