"""Keys typed into the terminal that runs a command: the operator's episode keys, and the takeover key where the
device in their hand has none (a leader arm), also over SSH.

`robolearn deploy --robot ...` (and `--teleop` in sim) and `robolearn record --robot ...` (whose takeover key means
nothing) read them from their own terminal while the loop runs::

    Enter  save (end the episode now and keep it)     Backspace  discard      r  re-record
    q, Esc stop (the robot holds at once; the run ends)                         t  take over / hand back

The terminal goes into cbreak mode without echo for as long as the keys are open and is restored on ``close()``
(also on an exception, with a ``with`` block). Ctrl-C stays SIGINT. Keys are read only when stdin is a terminal
in the foreground (`TerminalKeys.for_stdin` returns None otherwise: a pipe, CI, a job in the background, which a
terminal mode change would stop with SIGTTOU).

Example::

    with TerminalKeys(fd) as keys:
        keys.poll()        # ['takeover'] after "t" was typed; [] when nothing was
"""

from __future__ import annotations

import os
import sys
import termios
import tty
from typing import Any

from robolearn.devices.protocols import TAKEOVER
from robolearn.errors import UserError

__all__ = ["OPERATOR_KEYS", "TerminalKeys", "help_line", "operator_terminal", "parse_keys", "read_keys",
           "terminal_mode"]

OPERATOR_KEYS: dict[str, str] = {"enter": "save", "backspace": "discard", "r": "rerecord", "q": "quit",
                                 "esc": "quit", "t": TAKEOVER}
"""Key name (`parse_keys`) -> episode key (`robolearn.devices.protocols.EVENTS`)."""


def help_line(takeover: bool = True) -> str:
    """What the keys do, for the line a command prints when it starts reading them."""
    return ("keys in this terminal: Enter save, Backspace discard, r re-record, q stop"
            + (", t take over / hand back" if takeover else ""))


_ESCAPES = {"[A": "up", "[B": "down", "[C": "right", "[D": "left", "OA": "up", "OB": "down", "OC": "right",
            "OD": "left"}
_SINGLE = {"\r": "enter", "\n": "enter", "\x7f": "backspace", "\x08": "backspace", "\x03": "ctrl-c", " ": "space"}


def parse_keys(data: str) -> list[str]:
    """Key names in a chunk of terminal input: arrows from their escape sequences, a lone Esc as "esc"."""
    keys, i = [], 0
    while i < len(data):
        c = data[i]
        if c == "\x1b":
            seq = data[i + 1:i + 3]
            if seq in _ESCAPES:
                keys.append(_ESCAPES[seq])
                i += 3
                continue
            if seq[:1] == "[":  # another CSI sequence (F-keys, Home...): skip to its final byte
                j = i + 2
                while j < len(data) and not ("@" <= data[j] <= "~"):
                    j += 1
                i = j + 1
                continue
            keys.append("esc")
        else:
            keys.append(_SINGLE.get(c, c.lower()))
        i += 1
    return keys


def read_keys(fd: int) -> list[str]:
    """Every key waiting on the non-blocking descriptor ``fd`` (`parse_keys` names); [] when none is."""
    chunks = []
    while True:
        try:
            data = os.read(fd, 1024)
        except (BlockingIOError, InterruptedError):
            break
        if not data:
            break
        chunks.append(data)
    return parse_keys(b"".join(chunks).decode("utf-8", "replace"))


def terminal_mode(fd: int, *, isig: bool) -> tuple[list, bool]:
    """Put the terminal ``fd`` into cbreak mode without echo (``isig``: Ctrl-C stays SIGINT; else it arrives as a
    key) and non-blocking; returns what `restore` needs."""
    saved, blocking = termios.tcgetattr(fd), os.get_blocking(fd)
    tty.setcbreak(fd, termios.TCSANOW)
    attrs = termios.tcgetattr(fd)
    attrs[3] &= ~termios.ECHO
    if not isig:
        attrs[3] &= ~termios.ISIG
    termios.tcsetattr(fd, termios.TCSANOW, attrs)
    os.set_blocking(fd, False)
    return saved, blocking


def restore(fd: int, saved: tuple[list, bool]) -> None:
    """Undo `terminal_mode`."""
    attrs, blocking = saved
    os.set_blocking(fd, blocking)
    termios.tcsetattr(fd, termios.TCSADRAIN, attrs)


def foreground_terminal(fd: int) -> bool:
    """Whether ``fd`` is a terminal this process may change: a tty whose foreground process group is ours."""
    try:
        return os.isatty(fd) and os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        return False


def operator_terminal(device: Any) -> TerminalKeys | None:
    """Operator keys from stdin (`TerminalKeys.for_stdin`) beside the teleop ``device``, unless the device reads
    that terminal itself (a class attribute ``reads_terminal = True``: the terminal teleop)."""
    return None if getattr(device, "reads_terminal", False) else TerminalKeys.for_stdin()


class TerminalKeys:
    """Operator keys from a terminal (module docstring).

    Args:
        fd: the terminal's descriptor (default: stdin), e.g. the slave side of a pty in tests.
        keymap: key name -> episode key; other keys are ignored.
    """

    def __init__(self, fd: int | None = None, keymap: dict[str, str] | None = None) -> None:
        self.fd = sys.stdin.fileno() if fd is None else fd
        self.keymap = dict(OPERATOR_KEYS if keymap is None else keymap)
        self._saved: tuple[list, bool] | None = None

    @classmethod
    def for_stdin(cls) -> TerminalKeys | None:
        """Keys from stdin when it is a terminal in the foreground, else None."""
        try:
            fd = sys.stdin.fileno()
        except (AttributeError, OSError, ValueError):  # no stdin, or one replaced by an object without a descriptor
            return None
        return cls(fd) if foreground_terminal(fd) else None

    @property
    def is_open(self) -> bool:
        return self._saved is not None

    def open(self) -> TerminalKeys:
        if self._saved is None:
            if not os.isatty(self.fd):
                raise UserError(f"descriptor {self.fd} is not a terminal: operator keys need one (an SSH session "
                                "works)")
            self._saved = terminal_mode(self.fd, isig=True)
        return self

    def close(self) -> None:
        if self._saved is not None:
            saved, self._saved = self._saved, None
            restore(self.fd, saved)

    def poll(self) -> list[str]:
        """Episode keys typed since the last call, oldest first."""
        if self._saved is None:
            raise UserError("TerminalKeys.poll() before open()")
        return [self.keymap[k] for k in read_keys(self.fd) if k in self.keymap]

    def __enter__(self) -> TerminalKeys:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()
