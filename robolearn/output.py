"""The output guard: every command that writes asks here first, so nothing robolearn did not write is lost.

The rule, for local paths and fsspec URLs (``s3://bucket/prefix``) alike:

- a path that does not exist, or an empty folder, is written to;
- robolearn's own earlier output *of the same kind* (a store, a run, an eval folder) is appended to or
  resumed only with ``resume=True`` (``--resume``) and replaced only with ``overwrite=True``
  (``--overwrite``); replacing deletes only the entries robolearn writes for that kind, nothing else;
- anything else (a user's files, a single file, a LeRobot dataset, another kind of robolearn output,
  a store of a newer schema) is refused with one sentence naming the path and what was found there;
- a path that cannot be inspected (permission error, transient s3 error, unreadable ``zarr.json``) is an
  error, never "absent".

Kinds: ``store`` (recognised by robolearn's attrs in the root ``zarr.json``), ``run`` and ``eval`` (a
``robolearn-output.json`` marker written when the folder is claimed; runs and eval folders written before
the marker existed are recognised by their files), ``export`` (another project's format: only a new path
or an empty folder). This module imports only the standard library, fsspec and `robolearn.errors`, so the store may use it.

>>> claim = claim_output("runs/push", "run", resume=True)  # doctest: +SKIP
>>> claim.mode  # "create", "resume" or "overwrite"  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from dataclasses import dataclass

from robolearn.errors import UserError

__all__ = ["KINDS", "MARKER", "Claim", "Found", "OutputError", "check_files", "check_output", "claim_output",
           "inspect_output", "pid_alive"]

KINDS = ("store", "run", "eval", "export")
MARKER = "robolearn-output.json"
"""Written into a run or eval folder when it is claimed: ``{"kind": "run", "created": <unix time>}``."""

STORE_LOCK = ".robolearn.lock"
_STORE_ATTR = "robolearn_store"  # the root attrs key of a store (robolearn.store.layout.ROOT_ATTR)
_ZARR_TMP = re.compile(r"^zarr\.[0-9a-f]{32}\.partial$")  # zarr's LocalStore temp file for zarr.json

# What robolearn writes into a run or eval folder: the entries --overwrite may delete.
_RUN_ENTRIES = frozenset({MARKER, "model.safetensors", "ema.safetensors", "config.json", "stats.json",
                          "metrics.jsonl", "train_curve.png", "train_summary.json", "tb/", "checkpoints/", "eval/"})
_EVAL_ENTRIES = frozenset({MARKER, "eval.json", "rollouts.mp4", "rollouts/"})  # rollouts/: episode_<i>.mp4
_ROLLOUT_VIDEO = re.compile(r"^episode_\d+\.mp4$")  # what eval writes into rollouts/
_NOUN = {"store": "a store", "run": "a run", "eval": "an evaluation", "export": "an export"}
_WHAT = {"store": "a robolearn store", "run": "a robolearn run", "eval": "a robolearn evaluation folder"}


class OutputError(UserError, ValueError):
    """A command was refused its output path (or the path could not be inspected); the message says why."""


@dataclass(frozen=True)
class Found:
    """What is at an output path.

    `what`: ``absent``, ``empty`` (an empty folder, or one holding only robolearn's leftovers of an
    interrupted start), ``file``, ``store``, ``run``, ``eval``, ``lerobot``, ``zarr`` (a zarr group
    robolearn did not write) or ``other``. `entries`: the top-level names (folders end in "/").
    """

    path: str
    what: str
    entries: tuple[str, ...] = ()
    version: int | None = None
    evidence: str = ""

    def describe(self) -> str:
        """'it holds 2 files robolearn did not write (a.txt, b.csv)' and the like."""
        if self.what == "file":
            return "it is a single file"
        if self.what == "lerobot":
            return "it is a LeRobot dataset (meta/info.json)"
        if self.what == "zarr":
            return f"it is a zarr group robolearn did not write (its zarr.json has no {_STORE_ATTR!r} attrs)"
        if self.what == "store":
            return f"it is a robolearn store of schema version {self.version}"
        if self.what in ("run", "eval"):
            return f"it is {_WHAT[self.what]} ({self.evidence})"
        if self.what == "other":
            return f"it holds {_count(self.entries)} robolearn did not write ({_names(self.entries)})"
        return f"it is {self.what}"


@dataclass(frozen=True)
class Claim:
    """The guard's decision: `mode` is ``create`` (nothing of value there), ``resume`` (append to or
    continue robolearn's own output) or ``overwrite`` (robolearn's own output was replaced)."""

    path: str
    kind: str
    mode: str
    found: Found


def claim_output(path, kind: str, *, resume: bool = False, overwrite: bool = False,
                 storage_options: dict | None = None) -> Claim:
    """Check that `kind` output may be written at `path` (`check_output`), then make it ready.

    With ``overwrite`` the entries robolearn wrote there for that kind are deleted (a store's only while no
    live writer holds its lock); nothing else is. For ``run`` and ``eval`` the folder is then created and
    marked; a store is created by its writer (`robolearn.store.StoreWriter` claims its path itself).
    """
    claim = check_output(path, kind, resume=resume, overwrite=overwrite, storage_options=storage_options)
    fs, root = _fs(claim.path, storage_options)
    if claim.mode == "overwrite":
        _clear(fs, root, kind, claim.found)
    if kind in ("run", "eval"):
        fs.makedirs(root, exist_ok=True)
        if claim.mode != "resume" or MARKER not in claim.found.entries:
            _write_marker(root, kind)
    return claim


def check_output(path, kind: str, *, resume: bool = False, overwrite: bool = False,
                 storage_options: dict | None = None) -> Claim:
    """Decide, without writing anything, whether `kind` output may be written at `path`; raise
    OutputError naming what is there if not. ``resume`` accepts robolearn's own output of that kind (a store
    is appended to, a run continued), ``overwrite`` accepts it to be replaced."""
    if kind not in KINDS:
        raise ValueError(f"unknown output kind {kind!r}: expected one of {', '.join(KINDS)}")
    if resume and overwrite:
        raise OutputError(f"--resume and --overwrite exclude each other (output {path})")
    if resume and kind not in ("store", "run"):
        raise OutputError(f"{_NOUN[kind]} cannot be resumed (output {path}): use --overwrite to replace it")
    if overwrite and kind == "export":
        raise OutputError(f"an export never replaces anything (output {path}): choose a new path")
    path = str(path)
    if _is_url(path) and kind in ("run", "eval"):
        raise OutputError(f"{_NOUN[kind]} is written to a local folder, and {path} is a URL: choose a local path")
    found = inspect_output(path, storage_options)
    refuse = f"refusing to write {_NOUN[kind]} at {path}"
    if found.what in ("absent", "empty"):
        return Claim(path, kind, "create", found)
    if found.what != kind:
        hint = f"; {kind} output goes to a folder of its own" if found.what in _WHAT else \
            "; choose a new path or an empty folder"
        raise OutputError(f"{refuse}: {found.describe()}{hint}")
    if kind == "store":
        newest = _newest_store_version()
        if found.version > newest:
            raise OutputError(f"{refuse}: it is a robolearn store of schema version {found.version}, newer than "
                              f"this robolearn ({newest}): upgrade robolearn or choose a new path")
    if resume:
        return Claim(path, kind, "resume", found)
    if overwrite:
        return Claim(path, kind, "overwrite", found)
    verb = "append to it" if kind == "store" else "continue it"
    flags = f"pass --resume to {verb}, or --overwrite to replace it" if kind in ("store", "run") else \
        "pass --overwrite to replace it"
    raise OutputError(f"{refuse}: {found.describe()}; {flags}")


def check_files(folder, names, *, overwrite: bool = False) -> list[str]:
    """For a command that adds named files to a local folder (`robolearn data view`): the folder may hold
    anything else and is created if missing; a file of one of these `names` already there is replaced only
    with ``overwrite``, and a folder of such a name never. Writes nothing; returns the paths of the `names`
    that exist (what ``overwrite`` will replace)."""
    folder = str(folder)
    if _is_url(folder):
        raise OutputError(f"{folder} is a URL; these files are written to a local folder: choose a local path")
    if os.path.lexists(folder) and not os.path.isdir(folder):
        raise OutputError(f"refusing to write into {folder}: it is a single file, not a folder; choose a folder")
    paths = [os.path.join(folder, n) for n in names]
    taken = [p for p in paths if os.path.lexists(p)]
    dirs = [p for p in taken if os.path.isdir(p) and not os.path.islink(p)]
    if dirs:
        raise OutputError(f"refusing to write {dirs[0]}: a folder of that name is there; move it or choose "
                          f"another --out")
    if taken and not overwrite:
        what = f"{taken[0]} already exists" if len(taken) == 1 else \
            f"{len(taken)} files already exist ({', '.join(taken)})"
        raise OutputError(f"refusing to overwrite: {what}; pass --overwrite to replace "
                          f"{'it' if len(taken) == 1 else 'them'}, or choose another --out")
    return taken


def inspect_output(path, storage_options: dict | None = None) -> Found:
    """What is at `path` (see `Found`). Writes nothing; raises OutputError when it cannot tell."""
    path = str(path)
    fs, root = _fs(path, storage_options)
    try:
        _refresh(fs, root)
        try:
            info = fs.info(root)
        except FileNotFoundError:
            return Found(path, "absent")
        if info.get("type") != "directory":
            return Found(path, "file")
        listing = fs.ls(root, detail=True)
    except OutputError:
        raise
    except Exception as e:  # permission, network, throttling: never taken for "absent"
        raise OutputError(f"cannot tell what is at {path} ({type(e).__name__}: {e}); nothing was written") from e
    entries = set()
    for item in listing:
        full = str(item["name"]).rstrip("/")
        if full and full != root:  # an object store may list a folder marker object as the prefix itself
            name = full.rsplit("/", 1)[-1]
            entries.add(name + "/" if item["type"] == "directory" else name)
    entries = tuple(sorted(entries))
    names = set(entries)
    if "zarr.json" in names:
        attrs = _read_json(fs, f"{root}/zarr.json", path).get("attributes") or {}
        info = attrs.get(_STORE_ATTR)
        if not isinstance(info, dict):
            return Found(path, "zarr", entries)
        try:
            version = int(info.get("version"))
        except (TypeError, ValueError):
            raise OutputError(f"cannot read the store at {path}: its schema version {info.get('version')!r} is "
                              f"not a number; nothing was written") from None
        return Found(path, "store", entries, version=version)
    if MARKER in names:
        kind = _read_json(fs, f"{root}/{MARKER}", path).get("kind")
        if names == {MARKER}:  # claimed, nothing written yet
            return Found(path, "empty", entries)
        if kind in ("run", "eval"):
            return Found(path, kind, entries, evidence=MARKER)
    if {"config.json", "model.safetensors"} <= names or {"config.json", "checkpoints/"} <= names:
        return Found(path, "run", entries, evidence="config.json, " + (
            "model.safetensors" if "model.safetensors" in names else "checkpoints/"))
    if "eval.json" in names and names <= _EVAL_ENTRIES:
        return Found(path, "eval", entries, evidence="eval.json")
    if "meta/" in names and _exists(fs, f"{root}/meta/info.json", path):
        return Found(path, "lerobot", entries)
    if all(n == STORE_LOCK or _ZARR_TMP.match(n) for n in names):
        return Found(path, "empty", entries)  # an empty folder, or a store whose creation was cut off
    return Found(path, "other", entries)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- helpers ---------------------------------------------------------------------------------------------
def _is_url(path: str) -> bool:
    return "://" in path


def _fs(path: str, storage_options: dict | None):
    import fsspec

    if not _is_url(path):
        path = os.path.abspath(path)
    fs, root = fsspec.core.url_to_fs(path, **(storage_options or {}))
    return fs, root.rstrip("/") or root


def _refresh(fs, root: str) -> None:
    if hasattr(fs, "invalidate_cache"):  # s3fs caches listings: the guard must see the bucket as it is now
        fs.invalidate_cache(root)


def _read_json(fs, key: str, path: str) -> dict:
    try:
        data = json.loads(fs.cat_file(key))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return data
    except Exception as e:
        raise OutputError(f"cannot read {key} ({type(e).__name__}: {e}): refusing to write at {path}; "
                          f"nothing was written") from e


def _exists(fs, key: str, path: str) -> bool:
    try:
        fs.info(key)
        return True
    except FileNotFoundError:
        return False
    except Exception as e:
        raise OutputError(f"cannot tell what is at {path} ({type(e).__name__}: {e}); nothing was written") from e


def _count(entries) -> str:
    dirs = sum(e.endswith("/") for e in entries)
    files = len(entries) - dirs
    parts = [f"{files} file{'s' * (files != 1)}"] if files else []
    parts += [f"{dirs} folder{'s' * (dirs != 1)}"] if dirs else []
    return " and ".join(parts)


def _names(entries, limit: int = 4) -> str:
    shown = ", ".join(entries[:limit])
    return shown + (", ..." if len(entries) > limit else "")


def _own_entries(fs, root: str, kind: str, found: Found) -> list[str]:
    """The top-level entries robolearn wrote for `kind` at `root` (what --overwrite may delete)."""
    if kind == "run":
        own = [e for e in found.entries if e in _RUN_ENTRIES]
        if "eval/" in own and inspect_output(f"{found.path}/eval").what not in ("eval", "empty"):
            own.remove("eval/")  # a folder of the user's that happens to be called eval
        return own
    if kind == "eval":
        own = [e for e in found.entries if e in _EVAL_ENTRIES]
        if "rollouts/" in own:  # ours only when it holds nothing but the per-episode videos eval writes
            names = [n.rstrip("/").rsplit("/", 1)[-1] for n in fs.ls(f"{root}/rollouts", detail=False)]
            foreign = sorted(n for n in names if not _ROLLOUT_VIDEO.match(n))
            if foreign:
                raise OutputError(f"refusing to overwrite the evaluation at {found.path}: its rollouts/ folder holds "
                                  f"{len(foreign)} file(s) robolearn did not write ({_names(foreign)}); move them "
                                  f"away or choose another output folder")
        return own
    own = []  # a store: its zarr.json, its lock, zarr's temp files and every zarr node under it
    for e in found.entries:
        if e in ("zarr.json", STORE_LOCK) or _ZARR_TMP.match(e):
            own.append(e)
        elif e.endswith("/") and _exists(fs, f"{root}/{e}zarr.json", found.path):
            own.append(e)
    return own


def _clear(fs, root: str, kind: str, found: Found) -> None:
    if kind == "store" and STORE_LOCK in found.entries:
        owner = {}
        try:
            owner = json.loads(fs.cat_file(f"{root}/{STORE_LOCK}"))
        except Exception:
            pass  # an unreadable lock is a dead writer's (StoreLock takes those over too)
        pid, host = owner.get("pid"), owner.get("host")
        if pid is not None and (host != socket.gethostname() or pid_alive(int(pid))):
            raise OutputError(f"refusing to overwrite the store at {found.path}: it is being written by pid {pid} "
                              f"on {host}; stop that writer first")
    own = _own_entries(fs, root, kind, found)
    # zarr.json (or the marker) goes first: an interrupted overwrite leaves a folder the guard calls empty.
    first = [e for e in own if e in ("zarr.json", MARKER)]
    for e in first + [e for e in own if e not in first]:
        target = f"{root}/{e.rstrip('/')}"
        if e.endswith("/"):
            fs.rm(target, recursive=True)
        else:
            fs.rm_file(target)


def _write_marker(root: str, kind: str) -> None:
    final = os.path.join(root, MARKER)
    tmp = f"{final}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump({"kind": kind, "created": time.time()}, f)
    os.replace(tmp, final)


def _newest_store_version() -> int:
    # The store owns its schema; imported when a store is claimed (robolearn.store imports this module).
    from robolearn.store.layout import SCHEMA_VERSION

    return int(SCHEMA_VERSION)
