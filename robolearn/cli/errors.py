"""How a subcommand ends when something goes wrong.

A `robolearn.errors.UserError` (bad path, key, value, missing extra) prints `error: <sentence>` and exits 2.
Anything else is a bug in robolearn: its full traceback, then one line asking for a bug report, exit 1.
Ctrl-C exits 130. ROBOLEARN_DEBUG=1 shows the traceback of user errors too.
"""

from __future__ import annotations

import functools
import os
import sys
import traceback

import click
import typer

from robolearn.errors import UserError

EXIT_USAGE = 2
EXIT_BUG = 1
EXIT_INTERRUPTED = 130
BUG_REPORT = ("robolearn {version} hit an internal error (a bug, not a problem with your input): please report "
              "it on the robolearn issue tracker with the command you ran and the traceback above.")


def fail(message: str, code: int = EXIT_USAGE) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def report_bug(exc: BaseException) -> None:
    """Print `exc`'s traceback and the bug-report line to stderr, then exit 1."""
    from importlib.metadata import PackageNotFoundError, version

    traceback.print_exception(exc, file=sys.stderr)
    try:
        v = version("robolearn")
    except PackageNotFoundError:
        v = "(not installed)"
    typer.secho(BUG_REPORT.format(version=v), fg=typer.colors.RED, err=True)
    raise typer.Exit(EXIT_BUG)


def friendly(fn):
    """Decorator for subcommands: user errors print one sentence and exit 2, bugs their traceback and exit 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise  # typer's own exits and usage errors
        except UserError as e:
            if os.environ.get("ROBOLEARN_DEBUG"):
                raise
            fail(str(e).rstrip(".") + ".")
        except KeyboardInterrupt:
            typer.secho("interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except Exception as e:  # noqa: BLE001 - everything else is a bug: say so, with the traceback
            report_bug(e)

    return wrapper
