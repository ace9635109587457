"""What every importer and exporter shares: format names, destination checks, all-or-nothing writes."""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from robolearn.errors import InvalidValueError
from robolearn.store.backend import is_url
from robolearn.store.layout import StoreError
from robolearn.store.reader import Store

FORMATS = ("lerobot", "robomimic")


def check_format(fmt: str | None) -> str:
    if not fmt:
        raise InvalidValueError(f"no format given: pass --format with one of {', '.join(FORMATS)}")
    name = fmt.strip().lower()
    if name not in FORMATS:
        raise InvalidValueError(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")
    return name


def check_new_destination(path: str | os.PathLike) -> None:
    """Refuse to write over anything: the destination must not exist, or be an empty directory."""
    if is_url(path):
        try:
            Store.open(path)
        except StoreError:
            return
        raise InvalidValueError(f"destination {path} already holds a store: choose a new path")
    p = Path(path)
    if p.is_dir() and not any(p.iterdir()):
        return
    if p.exists():
        raise InvalidValueError(f"destination {p} already exists and is not empty: choose a new path")


@contextmanager
def staged(path: str | os.PathLike, allow_url: bool = False):
    """Yield a temporary sibling of `path` to write into; rename it to `path` only when the block succeeds.

    Whatever fails midway leaves nothing at `path` (STYLE.md 13). A store at a URL (`allow_url`) is
    written in place: object stores have no rename.
    """
    if is_url(path):
        if not allow_url:
            raise InvalidValueError(f"{path} is a URL; exports are written to a local path")
        check_new_destination(path)
        yield path
        return
    final = Path(path)
    check_new_destination(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.partial-{os.getpid()}"
    _remove(tmp)
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    if final.is_dir():
        final.rmdir()  # checked empty above
    os.replace(tmp, final)


def _remove(p: Path) -> None:
    if p.is_dir():
        shutil.rmtree(p)
    elif p.exists():
        p.unlink()
