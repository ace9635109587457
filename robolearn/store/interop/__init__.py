"""Import and export of other projects' dataset formats: LeRobot v3.0 folders and robomimic hdf5 files;
export to rerun recordings (.rrd, `rerun_rrd`).

>>> import_dataset("pusht_lerobot/", "pusht.zarr", "lerobot")  # doctest: +SKIP
>>> export_dataset("lift.zarr", "lift.hdf5", "robomimic")  # doctest: +SKIP

Each call writes into a temporary sibling of the destination and renames it at the end, so a failure
leaves nothing behind; an existing non-empty destination is refused, but for an import with `overwrite`
over a robolearn store (replaced once the new one is complete; only the old store's own files are deleted). The returned dict is a JSON-able
summary (episodes, frames, keys, what was skipped and why).
"""

from __future__ import annotations

from pathlib import Path

from robolearn.errors import InvalidValueError, MissingPathError
from robolearn.store.interop.common import EXPORT_FORMATS, FORMATS, check_format


def import_dataset(src: str | Path, store: str | Path, fmt: str | None, overwrite: bool = False) -> dict:
    """Convert the dataset at `src` (format `fmt`: "lerobot" or "robomimic") into a new store at `store`;
    `overwrite` replaces a robolearn store there (anything else at `store` is refused: robolearn.output)."""
    fmt = check_format(fmt)
    if not Path(src).exists():
        raise MissingPathError(f"{src} does not exist")
    if fmt == "lerobot":
        from robolearn.store.interop.lerobot import import_lerobot

        return import_lerobot(src, store, overwrite)
    from robolearn.store.interop.robomimic import import_robomimic

    return import_robomimic(src, store, overwrite)


def export_dataset(store: str | Path, dst: str | Path, fmt: str | None, overwrite: bool = False) -> dict:
    """Write the store at `store` to `dst` in format `fmt`: a LeRobot v3.0 folder, a robomimic hdf5 file or a
    rerun recording (.rrd; `overwrite` replaces one robolearn exported, the other formats never replace)."""
    fmt = check_format(fmt, EXPORT_FORMATS)
    if fmt == "rerun":
        from robolearn.store.interop.rerun_rrd import export_rerun

        return export_rerun(store, dst, overwrite=overwrite)
    if overwrite:
        raise InvalidValueError(f"--overwrite applies to rerun exports only; a {fmt} export is written to a new "
                                f"path (output {dst})")
    if fmt == "lerobot":
        from robolearn.store.interop.lerobot import export_lerobot

        return export_lerobot(store, dst)
    from robolearn.store.interop.robomimic import export_robomimic

    return export_robomimic(store, dst)


__all__ = ["EXPORT_FORMATS", "FORMATS", "export_dataset", "import_dataset"]
