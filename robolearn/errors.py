"""The line between a user's mistake and a bug in robolearn.

A `UserError` is input the user can fix: a path that does not exist or holds the wrong thing, a config key
or value that is not accepted, an env id nobody provides, an extra that is not installed. Its message is one
sentence naming the path, key or value and what would be accepted; the `robolearn` command prints it and
exits 2. Anything else that escapes a command is a bug: the command prints its traceback, asks for a bug
report and exits 1.

The subclasses keep the builtin type a caller would catch (`except ValueError` still catches a bad value),
so raising the user-facing kind changes nothing for library callers. This module imports nothing, so every
layer (store, policies, envs) may raise these.

Example::

    from robolearn.errors import InvalidValueError

    if fps <= 0:
        raise InvalidValueError(f"fps must be > 0, got {fps}")
"""

from __future__ import annotations


class UserError(Exception):
    """Input the user can fix; the message is one sentence saying what was wrong and what is accepted."""


class InvalidValueError(UserError, ValueError):
    """An argument, option, file content or combination of them that is not accepted."""


class ConfigError(InvalidValueError):
    """A config file or override names a key or value the dataclass does not accept."""


class UnknownKeyError(UserError, KeyError):
    """A name (feature key, preset, id) the user asked for that does not exist."""

    def __str__(self) -> str:  # KeyError quotes its message; a sentence reads better without
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class MissingPathError(UserError, FileNotFoundError):
    """A file or folder the user named does not exist, or lacks a file it must hold."""


class CannotCompleteError(UserError, RuntimeError):
    """The command cannot do what was asked here (no display for a window, an expert that keeps failing);
    the message says what to change."""


class MissingExtraError(UserError, ImportError):
    """An optional dependency the asked-for feature needs is not installed; the message says what to install."""
