"""Helpers the hardware tests share: bounded waits, and stopping a child process by its pid."""

from __future__ import annotations

import os
import time

import pytest


def wait_for(cond, timeout: float = 3.0) -> bool:
    """Poll `cond()` every 5 ms until it is true (True) or `timeout` seconds passed (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.005)
    return False


def stop_checked(child) -> None:
    """Stop a started `ChildProcess` and assert its pid is gone."""
    pid = child.pid
    child.stop()
    assert child.proc.poll() is not None, f"emulator pid {pid} still running"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
