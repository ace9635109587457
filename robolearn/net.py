"""Which address a server of robolearn may bind (`robolearn serve`, `robolearn view`): loopback unless asked."""

from __future__ import annotations

import ipaddress

from robolearn.errors import InvalidValueError


def check_bind_host(host: str, allow_remote: bool, service: str, remote_note: str) -> str:
    """The address to bind for ``host``; a host that is not loopback needs ``allow_remote`` (a UserError
    naming `service` and, in parentheses, `remote_note` otherwise). ``localhost`` binds 127.0.0.1."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise InvalidValueError(f"--host {host!r} is not an IP address; pass 127.0.0.1 (default), ::1, or with "
                                "--allow-remote an interface address or 0.0.0.0") from None
    if not ip.is_loopback and not allow_remote:
        raise InvalidValueError(f"--host {host} is not a loopback address; {service} binds to loopback "
                                f"(127.0.0.1, ::1) unless --allow-remote is given ({remote_note})")
    return str(ip)
