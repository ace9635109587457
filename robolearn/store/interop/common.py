"""What every importer and exporter shares: format names, destination checks, all-or-nothing writes."""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from robolearn.errors import InvalidValueError
from robolearn.output import check_output
from robolearn.store.backend import is_url

FORMATS = ("lerobot", "robomimic")


def check_format(fmt: str | None) -> str:
    if not fmt:
        raise InvalidValueError(f"no format given: pass --format with one of {', '.join(FORMATS)}")
    name = fmt.strip().lower()
    if name not in FORMATS:
        raise InvalidValueError(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")
    return name


def check_new_destination(path: str | os.PathLike, kind: str = "export") -> None:
    """Refuse to write over anything (the output guard, robolearn.output): the destination must not exist,
    or be an empty folder. `kind`: "store" (an import) or "export"."""
    check_output(path, kind)


@contextmanager
def staged(path: str | os.PathLike, kind: str = "export"):
    """Yield a temporary sibling of `path` to write into; rename it to `path` only when the block succeeds.

    Whatever fails midway leaves nothing at `path` (STYLE.md 13). A store (`kind` "store", an import) at a
    URL is written in place: object stores have no rename (its writer claims the URL itself).
    """
    if is_url(path):
        if kind != "store":
            raise InvalidValueError(f"{path} is a URL; exports are written to a local path")
        check_new_destination(path, kind)
        yield path
        return
    final = Path(path)
    check_new_destination(final, kind)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.partial-{os.getpid()}"
    _remove(tmp)
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    claim = check_output(final, kind)  # still nothing of value there (also when the import took a while)
    if final.is_dir():
        for leftover in claim.found.entries:  # robolearn's own: a dead writer's lock, a claimed-folder marker
            (final / leftover).unlink()
        final.rmdir()
    os.replace(tmp, final)


def _remove(p: Path) -> None:
    if p.is_dir():
        shutil.rmtree(p)
    elif p.exists():
        p.unlink()
