"""Operator keys from a terminal (`robolearn.devices.terminal_keys`), on a real pty: cbreak mode without echo while
open and the terminal restored after, keys parsed and mapped, and stdin used only when it is a foreground tty."""

import os
import subprocess
import sys
import termios
import textwrap

import pytest

from robolearn.devices.terminal_keys import TerminalKeys, foreground_terminal
from robolearn.errors import UserError
from tests.hardware.waiting import wait_for


def readable(fd):
    import select

    return bool(select.select([fd], [], [], 0)[0])


def test_keys_are_mapped_and_the_terminal_restored(terminal):
    master, slave = terminal
    before = termios.tcgetattr(slave)
    assert before[3] & termios.ECHO and before[3] & termios.ICANON
    keys = TerminalKeys(slave)
    with pytest.raises(UserError, match="before open"):
        keys.poll()
    with keys:
        attrs = termios.tcgetattr(slave)
        assert not attrs[3] & termios.ECHO and not attrs[3] & termios.ICANON and attrs[3] & termios.ISIG
        assert keys.poll() == []  # nothing typed: never blocks
        os.write(master, b"t\x1b[Ax\rR\x7fq\x1b")  # t, up arrow (no meaning here), x (none), Enter, R, Backspace, q, Esc
        assert wait_for(lambda: readable(slave), timeout=5)
        assert keys.poll() == ["takeover", "save", "rerecord", "discard", "quit", "quit"]
        assert keys.poll() == []  # each key once
    assert termios.tcgetattr(slave) == before and not keys.is_open
    keys.close()  # idempotent


def test_a_descriptor_that_is_not_a_terminal_is_refused():
    r, w = os.pipe()
    try:
        with pytest.raises(UserError, match="not a terminal"):
            TerminalKeys(r).open()
        assert not foreground_terminal(r)
    finally:
        os.close(r)
        os.close(w)


def test_stdin_is_read_only_when_it_is_the_foreground_terminal(terminal):
    """A process whose controlling terminal is the pty (a new session that opened it) gets keys from stdin; with
    stdin a pipe, or a pty that is not its terminal, it gets none."""
    master, slave = terminal
    probe = textwrap.dedent("""
        import os, sys
        if sys.argv[1] == "ctty":
            os.setsid()
            fd = os.open(sys.argv[2], os.O_RDWR)  # a session leader's first terminal becomes its controlling one
            os.dup2(fd, 0)
        from robolearn.devices.terminal_keys import TerminalKeys
        print("keys" if TerminalKeys.for_stdin() is not None else "none")
    """)
    name = os.ttyname(slave)

    def out(mode, stdin):
        res = subprocess.run([sys.executable, "-c", probe, mode, name], stdin=stdin, capture_output=True, text=True,
                             timeout=60, cwd=os.getcwd())
        assert res.returncode == 0, res.stderr
        return res.stdout.strip()

    assert out("ctty", subprocess.DEVNULL) == "keys"
    assert out("plain", subprocess.PIPE) == "none"
    assert out("plain", slave) == "none"  # a tty, but not this process's terminal: changing it could stop the job


def test_no_operator_keys_beside_a_device_that_reads_the_terminal(monkeypatch, terminal):
    from robolearn.devices import terminal_keys
    TerminalTeleop = pytest.importorskip("robolearn_hardware.teleop").TerminalTeleop

    slave = terminal[1]
    monkeypatch.setattr(TerminalKeys, "for_stdin", classmethod(lambda cls: cls(slave)))
    assert terminal_keys.operator_terminal(object()).fd == slave  # a leader arm, a SpaceMouse: keys from stdin too
    assert terminal_keys.operator_terminal(None).fd == slave
    assert TerminalTeleop.reads_terminal and terminal_keys.operator_terminal(TerminalTeleop) is None
