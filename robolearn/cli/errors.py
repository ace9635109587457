"""Turning expected failures into one sentence and a non-zero exit (tracebacks only with ROBOLEARN_DEBUG=1)."""

from __future__ import annotations

import functools
import os
import sys

import typer

EXIT_USAGE = 2


def user_errors() -> tuple[type[BaseException], ...]:
    from robolearn.config import ConfigError
    from robolearn.env.registry import EnvNotFoundError
    from robolearn.store import StoreError

    return (StoreError, ConfigError, EnvNotFoundError, ValueError, FileNotFoundError, KeyError, RuntimeError)


def fail(message: str, code: int = EXIT_USAGE) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def friendly(fn):
    """Decorator for subcommands: expected errors print `error: <sentence>` and exit 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except user_errors() as e:
            if os.environ.get("ROBOLEARN_DEBUG"):
                raise
            msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
            fail(str(msg).rstrip(".") + ".")
        except KeyboardInterrupt:
            typer.secho("interrupted", err=True)
            sys.exit(130)

    return wrapper
