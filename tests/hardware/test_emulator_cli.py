"""The emulator's command line: prints its port, serves it, exits on SIGTERM, rejects bad input in one line."""

import json
import os
import select
import signal
import subprocess
import sys

from robolearn_hardware.protocol.client import OwnCodecPort

CLI = [sys.executable, "-m", "robolearn_hardware.emulators.servo"]


def test_cli_prints_the_port_serves_it_and_stops_on_sigterm(tmp_path):
    link = tmp_path / "ttyEMU0"
    proc = subprocess.Popen(CLI + ["--protocol", "dynamixel", "--model", "xl430", "--ids", "1,2", "--link", str(link)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 20.0)
        assert ready, "the emulator printed nothing within 20 s"
        hello = json.loads(proc.stdout.readline())
        assert hello["pid"] == proc.pid and hello["ids"] == [1, 2] and os.readlink(link) == hello["port"]
        with OwnCodecPort(str(link), protocol="dynamixel", timeout_s=0.5) as bus:
            assert bus.ping(2) == (1060, 0)
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(10) == 0
        proc.stdout.close()
        proc.stderr.close()
    assert not os.path.lexists(link)


def test_cli_rejects_bad_input_with_one_sentence():
    out = subprocess.run(CLI + ["--protocol", "dynamixel", "--model", "xm999", "--ids", "1"], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 2 and "model 'xm999' is not emulated; known:" in out.stderr
    out = subprocess.run(CLI + ["--protocol", "feetech", "--model", "sts3215", "--ids", "1", "--baud", "57601"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "not 57601" in out.stderr
