"""Export a store to a rerun recording file (.rrd) for rerun's viewer: `robolearn data export STORE OUT.rrd --format rerun`.

>>> export_rerun("demo.zarr", "demo.rrd")  # doctest: +SKIP
>>> # rerun demo.rrd   (the viewer of the same rerun version, see README)

What the file holds:

- **One recording per episode**, all in one file (application id ``robolearn``, recording id
  ``<store path>#episode=<e>``, named ``<store name> episode <e>``): the viewer lists the episodes as
  recordings, and no episode's frame 0 hides another's. The episode's row of the table (task, success,
  status, source, seed, length, dropped/late frames) is a recording property (``/__properties/episode``).
- **One entity per key**, named as the key (``state``, ``action``, ``action_commanded``, ``force``,
  ``reward``, ``images/<camera>``, ``depth/<camera>``, ``tactile/<sensor>``, ``timing/<stage>``).
- **Two timelines**: ``frame`` (the tick index in the episode) and ``time``, each stream's own capture
  stamp (``timestamps/<key>``, monotonic seconds of the recording's clock, as a duration): a camera that lags
  12 ms sits 12 ms left of the state it was paired with. A row whose stamp is not finite is on ``frame`` only.

Values: low-dimensional keys as ``Scalars`` (one series per dimension; ``timing/<stage>`` in ms after its
tick's stamp, as the view plots it); cameras stored as JPEG go in as the stored JPEG bytes (``EncodedImage``,
no re-encoding), lossless cameras as raw ``Image``s, depth as ``DepthImage`` (metres), tactile and other
arrays as ``Tensor``.

rerun's .rrd files are tied to the viewer version that reads them, so the SDK is an extra pinned in
constraints.txt (``pip install 'robolearn[rerun]'``). Episodes are logged one by one into rerun's own
``rrd merge`` (the SDK's CLI, reading concatenated streams on stdin), which writes the one file; nothing is
at OUT until it is complete.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from robolearn import spaces
from robolearn.errors import InvalidValueError, MissingExtraError
from robolearn.output import OutputError, check_files, claim_output
from robolearn.store.backend import is_url
from robolearn.store.layout import STATUS, StoreError, is_timing_key
from robolearn.store.reader import Store

APP_ID = "robolearn"
FRAME, TIME = "frame", "time"
"""The two timelines: the tick index in the episode, and each stream's capture stamp (monotonic seconds)."""
_MERGE_TIMEOUT_S = 3600.0


def _rerun():
    try:
        import rerun as rr
    except ImportError as e:
        raise MissingExtraError("exporting to rerun needs rerun-sdk: pip install 'robolearn[rerun]' "
                                "(the version pinned in constraints.txt)") from e
    return rr


def key_kind(key: str, shape: tuple[int, ...], dtype: str) -> str:
    """How a key goes into the recording: ``image`` (H, W, 3 uint8), ``depth`` (depth/<camera>, H x W),
    ``tensor`` (any other array of 2+ dims: tactile grids), ``timing`` or ``scalars`` (low-dimensional)."""
    if is_timing_key(key):
        return "timing"
    if len(shape) == 3 and shape[-1] == 3 and dtype == "uint8":
        return "image"
    if key.startswith(spaces.DEPTH) and len(shape) == 2:
        return "depth"
    if len(shape) >= 2:
        return "tensor"
    return "scalars"


def recording_id(store_path: str, episode: int) -> str:
    """Unique per store and episode: the viewer merges recordings of equal id, so two stores' episode 0 must differ."""
    where = store_path if is_url(store_path) else str(Path(store_path).resolve())
    return f"{where}#episode={episode}"


def export_rerun(store: str | Path, dst: str | Path, *, overwrite: bool = False,
                 storage_options: dict | None = None) -> dict:
    """Write every committed episode of the store at `store` into the rerun recording file `dst` (.rrd);
    `overwrite` replaces an .rrd robolearn exported there before (nothing else). Returns a summary."""
    rr = _rerun()
    s = Store.open(store, storage_options)
    if s.n_episodes == 0:
        raise StoreError(f"store {store} has no committed episodes to export")
    dst = _claim(dst, overwrite)
    # A fresh folder of our own holds the partial recording (`robolearn.store.staging`'s rule): a fixed name
    # beside dst could be the user's, and would be replaced or deleted.
    holder = Path(tempfile.mkdtemp(prefix=f".{dst.name}.partial-", dir=dst.parent))
    tmp = holder / dst.name
    kinds = {k: key_kind(k, f.shape, f.dtype) for k, f in s.features.items()}
    log = tempfile.TemporaryFile()  # the merge's stderr (a file: a full pipe would stall it)
    merge = subprocess.Popen([sys.executable, "-m", "rerun_cli", "rrd", "merge", "-o", str(tmp)],
                             stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log)
    try:
        try:
            for e in range(s.n_episodes):
                merge.stdin.write(_episode_rrd(rr, s, e, kinds))
        except BrokenPipeError:
            pass  # the merge died: its stderr says why (below)
        finally:
            merge.stdin.close()
        merge.wait(timeout=_MERGE_TIMEOUT_S)
        log.seek(0)
        err = log.read()
        if merge.returncode != 0 or not tmp.is_file():
            raise RuntimeError(f"rerun's `rrd merge` failed writing {tmp} (exit {merge.returncode}): "
                               f"{err.decode(errors='replace').strip()[-2000:]}")
        if dst.exists() and not overwrite:  # someone wrote there meanwhile: keep theirs
            raise OutputError(f"refusing to overwrite {dst}: it appeared while the export ran; choose a new path")
        os.replace(tmp, dst)
    except BaseException:
        if merge.poll() is None:
            merge.kill()
            merge.wait()
        raise
    finally:
        log.close()
        shutil.rmtree(holder, ignore_errors=True)  # ours alone: created by mkdtemp above
    return {"store": str(store), "out": str(dst), "format": "rerun", "rerun_sdk": rr.__version__,
            "episodes": s.n_episodes, "frames": s.n_frames, "recordings": "one per episode",
            "timelines": [FRAME, TIME], "entities": {k: kinds[k] for k in s.features}, "bytes": dst.stat().st_size}


def _claim(dst: str | Path, overwrite: bool) -> Path:
    """The output guard for one .rrd file: a new path is claimed as an export; an existing file is replaced
    only with `overwrite` and only when it is a rerun recording robolearn exported (application id)."""
    if is_url(str(dst)):
        raise InvalidValueError(f"{dst} is a URL; a rerun export is written to a local .rrd file")
    dst = Path(dst)
    if dst.suffix != ".rrd":
        raise InvalidValueError(f"{dst} does not end in .rrd; rerun's viewer opens recording files named *.rrd")
    if not os.path.lexists(dst):
        claim_output(dst, "export")
        dst.parent.mkdir(parents=True, exist_ok=True)
        return dst
    check_files(dst.parent, [dst.name], overwrite=overwrite)  # a folder, or a file without --overwrite: refused
    theirs = _foreign_recording(dst)
    if theirs:
        raise OutputError(f"refusing to overwrite {dst}: {theirs}; robolearn replaces only the .rrd files it "
                          f"exported, choose a new path")
    return dst


def _foreign_recording(path: Path) -> str:
    """Why the file at `path` is not a robolearn export ('' when it is one)."""
    import rerun.dataframe as rd

    if os.path.islink(path):
        return "it is a symbolic link"
    try:
        recordings = list(rd.load_archive(str(path)).all_recordings())
    except Exception as e:  # not an rrd (or one of another rerun version): the user's file
        return f"it is not a rerun recording this rerun can read ({type(e).__name__})"
    apps = sorted({r.application_id() for r in recordings} - {APP_ID})
    if not recordings:
        return "it holds no rerun recording"
    return f"it holds recordings of application {', '.join(map(repr, apps))}" if apps else ""


def _episode_rrd(rr, s: Store, e: int, kinds: dict[str, str]) -> bytes:
    """Episode `e` as one rerun recording stream (bytes of an .rrd). Everything goes through
    `send_columns`: rows carry only our two timelines (no log_time/log_tick), so the file is reproducible."""
    rec = rr.RecordingStream(APP_ID, recording_id=recording_id(s.path, e), send_properties=False)
    stream = rec.binary_stream()
    rec.send_recording_name(f"{Path(str(s.path).rstrip('/')).name} episode {e}")
    row = {c: v[e].item() for c, v in s.episodes.items()}
    status = {v: k for k, v in STATUS.items()}.get(row["status"], str(row["status"]))
    sources = list(s.info.get("sources", []))
    source = sources[row["source_index"]] if 0 <= row["source_index"] < len(sources) else ""
    rec.send_property("episode", rr.AnyValues(
        index=e, task=s.task(e), length=int(s.lengths[e]), success=bool(row["success"]), status=status,
        source=source, seed=int(row["seed"]), dropped_frames=int(row["dropped_frames"]),
        late_frames=int(row["late_frames"])))
    start, stop = int(s.episode_starts[e]), int(s.episode_ends[e])
    for key, kind in kinds.items():
        stamps = s.timestamps(key, e).astype(np.float64)
        if kind in ("scalars", "timing"):
            x = s.read(key, start, stop, e).reshape(stop - start, -1).astype(np.float64)
            if kind == "timing":
                x = (x - stamps[:, None]) * 1e3
            _send(rr, rec, key, 0, stamps, lambda rows, x=x: rr.Scalars.columns(scalars=x[rows]))
            continue
        blobs = _stored_jpegs(s, key, start, stop) if kind == "image" and s.features[key].codec == "jpeg" else None
        if blobs is not None and all(b is not None for b in blobs):  # the stored JPEGs, as they are on disk
            _send(rr, rec, key, 0, stamps, lambda rows, b=blobs: rr.EncodedImage.columns(
                blob=[b[i] for i in rows], media_type=["image/jpeg"] * len(rows)))
            continue
        for b in range(start, stop, _BLOCK):
            block = s.read(key, b, min(stop, b + _BLOCK), e)
            _send(rr, rec, key, b - start, stamps[b - start:b - start + len(block)],
                  lambda rows, x=block: _frame_columns(rr, kind, x[rows]), one_row=kind == "tensor")
    rec.flush()
    data = stream.read()
    rec.disconnect()
    return data


_BLOCK = 64  # frames read at a time for raw images, depth and tensors


def _stored_jpegs(s: Store, key: str, start: int, stop: int) -> list[bytes | None] | None:
    """The JPEG of each frame as stored, or None where frames are not kept one per chunk (sharded arrays):
    those are decoded and logged as raw images."""
    try:
        return s.chunk_bytes(key, start, stop)
    except StoreError:
        return None


def _frame_columns(rr, kind: str, x: np.ndarray):
    """Component columns of frames `x` (n, ...) of an image, depth or tensor key."""
    n, h, w = x.shape[0], x.shape[1], x.shape[2] if x.ndim > 2 else 1
    if kind == "image":
        fmt = rr.components.ImageFormat(width=w, height=h, color_model="RGB", channel_datatype="U8")
        return rr.Image.columns(buffer=[f.tobytes() for f in x], format=[fmt] * n)
    if kind == "depth":
        x = x.astype(np.float32, copy=False)
        fmt = rr.components.ImageFormat(width=w, height=h, channel_datatype="F32")
        return rr.DepthImage.columns(buffer=[f.tobytes() for f in x], format=[fmt] * n, meter=[1.0] * n)
    return rr.Tensor.columns(data=rr.datatypes.TensorData(array=x[0]))  # tensors go one row at a time


def _send(rr, rec, key: str, first: int, stamps: np.ndarray, columns, one_row: bool = False) -> None:
    """Rows `first + i` of one entity at their frame index and, where finite, their capture stamp (`stamps[i]`).
    `columns(rows)` makes the component columns of those rows (indices into `stamps`); `one_row`: one row per
    call (rerun's tensors take no batches)."""
    rows = np.arange(len(stamps))
    groups = [rows[np.isfinite(stamps)], rows[~np.isfinite(stamps)]]  # a row without a stamp: frame timeline only
    for timed, group in zip((True, False), groups):
        for part in (np.split(group, np.arange(1, len(group))) if one_row else [group]):
            if len(part) == 0:
                continue
            indexes = [rr.TimeColumn(FRAME, sequence=first + part)]
            if timed:
                indexes.append(rr.TimeColumn(TIME, duration=stamps[part]))
            rec.send_columns(key, indexes=indexes, columns=columns(part))


__all__ = ["APP_ID", "FRAME", "TIME", "export_rerun", "key_kind", "recording_id"]
