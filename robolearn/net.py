"""Which address a server of robolearn may bind (`robolearn serve`, `robolearn view`): loopback unless asked."""

from __future__ import annotations

import ipaddress
import signal
import threading
from collections.abc import Callable

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


def serve_until_stopped(run: Callable[[], None], stop: Callable[[], None]) -> None:
    """Run a server's blocking `run()` until it returns, Ctrl-C or SIGTERM (which calls `stop`), then `stop()`
    it; the previous SIGTERM handler is restored. Off the main thread no handler is installed."""
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda *_: stop())
    try:
        run()
    except KeyboardInterrupt:
        pass
    finally:
        stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
