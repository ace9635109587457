"""All-or-nothing output: a new store or export is written beside its destination and moved in whole.

`staged` is the one way a whole-store writer (merge, split, filter, migrate, import, export) gets its
output folder: the partial output lives in a fresh ``mkdtemp`` folder of its own next to the destination,
so a failure removes only that folder (this call created it); nothing that was at the destination, or
anywhere else, is ever deleted. With ``overwrite`` an old robolearn store stays whole until the new one is
complete (then only its own entries go: `robolearn.output`).

Example::

    with staged("merged.zarr", kind="store") as tmp, StoreWriter(tmp, features, fps) as w:
        ...  # a failure here leaves nothing at merged.zarr
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from robolearn.errors import InvalidValueError
from robolearn.output import STORE_LOCK, check_output, claim_output, inspect_output
from robolearn.store.backend import is_url

__all__ = ["staged"]


@contextmanager
def staged(path: str | os.PathLike, kind: str = "export", overwrite: bool = False,
           storage_options: dict | None = None):
    """Yield a temporary sibling of `path` to write into; move it to `path` only when the block succeeds.

    `kind`: "store" or "export" (`robolearn.output`; checked before anything is written). Whatever fails
    midway leaves nothing at `path` (STYLE.md 13): only the fresh folder holding the partial output is
    removed. With `overwrite` a robolearn store at `path` stays whole until the new one is complete; then
    only its own entries are deleted (the guard's rule: files of the user's in that folder stay) and the
    new store takes their place, its root zarr.json last. A store at a URL is written in place: object
    stores have no rename (the old store's own objects are deleted first, and its writer claims the URL
    itself); a failure there leaves what was written.
    """
    if is_url(path):
        if kind != "store":
            raise InvalidValueError(f"{path} is a URL; exports are written to a local path")
        claim_output(path, kind, overwrite=overwrite, storage_options=storage_options)
        yield path
        return
    final = Path(path)
    check_output(final, kind, overwrite=overwrite)
    final.parent.mkdir(parents=True, exist_ok=True)
    # A fresh folder of our own holds the partial output: nothing that was there before is ever removed.
    holder = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
    tmp = holder / final.name
    try:
        yield tmp
        _move_in(tmp, final, kind, overwrite)
    finally:
        shutil.rmtree(holder, ignore_errors=True)  # ours alone: created by mkdtemp above


def _move_in(tmp: Path, final: Path, kind: str, overwrite: bool) -> None:
    if overwrite:
        _check_room(final, tmp)  # before the old store is cleared
    # Still nothing of value there (also when the import took a while); a store to replace is cleared now.
    claim = claim_output(final, kind, overwrite=overwrite)
    if claim.mode == "create" and final.is_dir():
        for leftover in claim.found.entries:  # robolearn's own: a dead writer's lock, a claimed-folder marker
            (final / leftover).unlink()
    if not final.is_dir() or not os.listdir(final):
        if final.is_dir():
            final.rmdir()
        os.replace(tmp, final)
        return
    # The user's files stay in the folder: the new store moves in beside them, its root zarr.json last
    # (until then the guard sees no store there).
    for name in sorted(os.listdir(tmp), key=lambda n: n == "zarr.json"):
        os.replace(tmp / name, final / name)
    tmp.rmdir()


def _check_room(final: Path, tmp: Path) -> None:
    """Every entry of the new store at `tmp` can take its place in `final` once the old store's own entries
    are gone: a name there must be absent or one of the old store's (its zarr.json, lock, or a zarr node)."""
    for name in os.listdir(tmp):
        there = final / name
        if name in ("zarr.json", STORE_LOCK) or not os.path.lexists(there):
            continue
        if not there.is_dir() or inspect_output(there).what not in ("zarr", "store"):
            raise InvalidValueError(f"cannot replace the store at {final}: {there} is not robolearn's, and the new "
                                    f"store needs that name; move it away or choose a new path")
