"""What a serial servo setup needs from the host, each check with the command that fixes it.

- **access**: the port exists and this user may read and write it (else: join its group, e.g. dialout);
- **latency timer**: a USB-serial adapter (FTDI) waits up to its latency timer (16 ms by default) before it
  hands bytes to the host, which makes every bus read slow (DynamixelSDK #302); 1 ms is what servo buses want;
- **udev rule**: the latency timer is reset when the adapter is plugged in again, unless a udev rule sets it.

Example::

    for check in run_checks("/dev/ttyUSB0"):
        print(check.ok, check.name, check.detail, check.fix)
"""

from __future__ import annotations

import grp
import os
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["Check", "run_checks", "UDEV_RULE"]

UDEV_RULE = 'ACTION=="add", SUBSYSTEM=="usb-serial", DRIVER=="ftdi_sio", ATTR{latency_timer}="1"'
UDEV_FILE = "99-robolearn-serial.rules"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    """A command that fixes it (empty when ok)."""

    def to_json(self) -> dict:
        return asdict(self)


def run_checks(port: str, *, sysfs: str = "/sys", udev_dir: str = "/etc/udev/rules.d") -> list[Check]:
    checks = [_access(port)]
    tty = Path(os.path.realpath(port)).name
    timer = Path(sysfs) / "bus" / "usb-serial" / "devices" / tty / "latency_timer"
    if not timer.exists():
        checks.append(Check("latency timer", True, f"{port} is not a USB-serial adapter with a latency timer"))
        return checks
    value = int(timer.read_text().strip() or 0)
    checks.append(Check("latency timer", value <= 1, f"{timer} is {value} ms",
                        "" if value <= 1 else f"echo 1 | sudo tee {timer}"))
    rules = Path(udev_dir)
    has_rule = rules.is_dir() and any("latency_timer" in f.read_text(errors="replace") for f in rules.glob("*.rules"))
    checks.append(Check("udev rule", has_rule,
                        f"a rule in {udev_dir} sets latency_timer" if has_rule else
                        f"no rule in {udev_dir} sets latency_timer: it goes back to 16 ms when the adapter is replugged",
                        "" if has_rule else f"echo '{UDEV_RULE}' | sudo tee {rules / UDEV_FILE} && sudo udevadm control "
                                            "--reload-rules && sudo udevadm trigger"))
    return checks


def _access(port: str) -> Check:
    if not os.path.exists(port):
        return Check("access", False, f"{port} does not exist", "robolearn find-port  # to find the adapter's port")
    if os.access(port, os.R_OK | os.W_OK):
        return Check("access", True, f"{port} is readable and writable")
    gid = os.stat(port).st_gid
    try:
        group = grp.getgrgid(gid).gr_name
    except KeyError:
        group = str(gid)
    return Check("access", False, f"{port} belongs to group {group}, which this user is not in",
                 f"sudo usermod -aG {group} $USER  # then log out and in again")
