"""Opt-in tests on real devices: ``real_device(VAR, what)`` marks a test ``real_device`` and skips it unless the
environment variable VAR names the device (a serial port, a camera index, a serial number). Run them with e.g.

    ROBOLEARN_SO101_PORT=/dev/ttyACM0 ROBOLEARN_REALSENSE=any .venv/bin/python -m pytest -m real_device tests/hardware

The variables: ROBOLEARN_SO101_PORT, ROBOLEARN_KOCH_PORT (a follower's or leader's bus; the tests only read),
ROBOLEARN_CAMERA (an OpenCV index or /dev/videoN), ROBOLEARN_REALSENSE (a serial number, or ``any``).
"""

from __future__ import annotations

import os

import pytest

VARIABLES = ("ROBOLEARN_SO101_PORT", "ROBOLEARN_KOCH_PORT", "ROBOLEARN_CAMERA", "ROBOLEARN_REALSENSE")


def real_device(var: str, what: str):
    """The ``real_device`` marker plus a skip naming `var` when it is unset."""
    assert var in VARIABLES, var

    def mark(fn):
        fn = pytest.mark.real_device(fn)
        return pytest.mark.skipif(not os.environ.get(var), reason=f"a real device: set {var}={what}")(fn)

    return mark


def device(var: str) -> str:
    """The device the variable names (set: the test was not skipped)."""
    return os.environ[var]
