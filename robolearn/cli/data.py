"""`robolearn data ...`: inspect and maintain stores."""

from __future__ import annotations

import json
from typing import List, Optional

import typer

from robolearn.cli.errors import fail, friendly

app = typer.Typer(no_args_is_help=True, help="Inspect, check, repair, import and export demonstration stores.")


@app.command()
@friendly
def info(store: str = typer.Argument(..., help="Store path or URL."),
         as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")):
    """Episodes, frames, lengths, fps, keys, tasks and bytes of a store."""
    from robolearn.store.info import store_info

    out = store_info(store)
    if as_json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            typer.echo(f"{k:10s} {v if k != 'lengths' else f'{len(v)} episodes, min {min(v, default=0)}, max {max(v, default=0)}'}")


@app.command()
@friendly
def validate(store: str = typer.Argument(..., help="Store path or URL."),
             as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")):
    """Check a store's consistency; exit 0 only when it is consistent."""
    from robolearn.store.info import validate_store

    report = validate_store(store)
    if as_json:
        print(json.dumps(report))
    else:
        for p in report["problems"]:
            typer.echo(f"problem: {p}")
        typer.echo("consistent" if report["ok"] else "inconsistent")
    if not report["ok"]:
        raise typer.Exit(1)


@app.command()
@friendly
def repair(store: str = typer.Argument(..., help="Store path.")):
    """Cut a store back to its last committed episode (idempotent)."""
    from robolearn.store import repair as run_repair

    print(json.dumps(run_repair(store)))


@app.command()
@friendly
def stats(store: str = typer.Argument(..., help="Store path or URL.")):
    """Compute (once) and print per-key statistics."""
    from robolearn.store import ensure_stats

    print(json.dumps(ensure_stats(store)))


@app.command("import")
@friendly
def import_(src: str = typer.Argument(..., help="LeRobot v3.0 dataset folder or robomimic .hdf5 file."),
            store: str = typer.Argument(..., help="New store path to create."),
            fmt: Optional[str] = typer.Option(None, "--format", help="Source format: lerobot | robomimic."),
            overwrite: bool = typer.Option(False, "--overwrite",
                                           help="Replace a robolearn store there (only its own files are deleted)."),
            as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")):
    """Convert a LeRobot v3.0 dataset or a robomimic hdf5 file into a new store.

    STORE must be new or an empty folder; a robolearn store there is replaced only with --overwrite (once the
    new one is complete). Anything else there is refused."""
    from robolearn.store.interop import import_dataset

    _summary(import_dataset(src, store, fmt, overwrite=overwrite), as_json)


@app.command("export")
@friendly
def export(store: str = typer.Argument(..., help="Store path or URL."),
           dst: str = typer.Argument(..., help="New LeRobot dataset folder, robomimic .hdf5 file or rerun .rrd file."),
           fmt: Optional[str] = typer.Option(None, "--format", help="Destination format: lerobot | robomimic | rerun."),
           overwrite: bool = typer.Option(False, "--overwrite",
                                          help="rerun only: replace an .rrd robolearn exported there (nothing else)."),
           as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")):
    """Write a store as a LeRobot v3.0 dataset (h264 videos), a robomimic hdf5 file or a rerun recording.

    rerun (pip install 'robolearn[rerun]'): one recording per episode in one .rrd file, one entity per key,
    timelines `frame` (tick) and `time` (each stream's capture stamp)."""
    from robolearn.store.interop import export_dataset

    _summary(export_dataset(store, dst, fmt, overwrite=overwrite), as_json)


@app.command()
@friendly
def view(store: str = typer.Argument(..., help="Store path or URL."),
         episode: int = typer.Option(..., "--episode", "-e", help="Episode index."),
         out: str = typer.Option(".", "--out", help="Folder for episode_<i>.mp4 and episode_<i>_traces.png "
                                                     "(created if missing; may hold other files)."),
         overwrite: bool = typer.Option(False, "--overwrite",
                                        help="Replace episode_<i>.mp4 / episode_<i>_traces.png already in OUT."),
         as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")):
    """Write an episode's cameras side by side (mp4) and its state/action traces (PNG).

    OUT may hold other files: only these two names are written. A file of either name already in OUT is
    refused (nothing is written) unless --overwrite, which replaces just those files."""
    from robolearn.eval.view import view_episode

    _summary(view_episode(store, episode, out, overwrite=overwrite), as_json)


@app.command()
@friendly
def merge(stores: List[str] = typer.Argument(..., help="Source stores (same features and fps)."),
          out: str = typer.Option(..., "--out", help="New store to create."),
          overwrite: bool = typer.Option(False, "--overwrite",
                                         help="Replace a robolearn store there (only its own files are deleted)."),
          as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")):
    """Concatenate stores into a new one; task strings are remapped."""
    from robolearn.store.ops import merge as run_merge

    _summary(run_merge(stores, out, overwrite=overwrite), as_json)


@app.command()
@friendly
def split(store: str = typer.Argument(..., help="Source store."),
          out_train: str = typer.Option(..., "--out-train", help="New store for the training episodes."),
          out_val: str = typer.Option(..., "--out-val", help="New store for the validation episodes."),
          val_ratio: float = typer.Option(0.1, "--val-ratio", help="Fraction of episodes for validation."),
          seed: int = typer.Option(0, "--seed", help="Seed of the episode shuffle."),
          overwrite: bool = typer.Option(False, "--overwrite",
                                         help="Replace a robolearn store there (only its own files are deleted)."),
          as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")):
    """Split a store by episode into train and validation stores."""
    from robolearn.store.ops import split as run_split

    _summary(run_split(store, out_train, out_val, val_ratio, seed, overwrite=overwrite), as_json)


@app.command("filter")
@friendly
def filter_(store: str = typer.Argument(..., help="Source store."),
            out: str = typer.Option(..., "--out", help="New store to create."),
            success: Optional[bool] = typer.Option(None, "--success/--no-success",
                                                   help="Keep only successful (or only failed) episodes."),
            task: Optional[str] = typer.Option(None, "--task", help="Keep only episodes of this task."),
            min_length: Optional[int] = typer.Option(None, "--min-length", help="Keep episodes with >= N frames."),
            max_length: Optional[int] = typer.Option(None, "--max-length", help="Keep episodes with <= N frames."),
            episodes: Optional[str] = typer.Option(None, "--episodes",
                                                   help="Keep only these episode indices: '0:20,25,30:40'."),
            action_free: bool = typer.Option(False, "--action-free",
                                             help="Write them as video-only episodes (has_actions false, "
                                                  "actions zeroed) for UWM/PAD co-training."),
            overwrite: bool = typer.Option(False, "--overwrite",
                                           help="Replace a robolearn store at OUT (only its own files are deleted)."),
            as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")):
    """Copy the episodes that match every condition into a new store."""
    from robolearn.store.ops import filter_store

    _summary(filter_store(store, out, success, task, min_length, max_length,
                          _episode_list(episodes) if episodes else None, action_free, overwrite=overwrite), as_json)


@app.command()
@friendly
def migrate(src: str = typer.Argument(..., help="Store to rewrite into the sharded layout."),
            out: Optional[str] = typer.Option(None, "--out", help="New store to create (the source is left as it is)."),
            in_place: bool = typer.Option(False, "--in-place",
                                          help="Rewrite SRC itself: shards are written beside the old files, "
                                               "checked, then each array's metadata is switched in one atomic write."),
            shard_frames: Optional[int] = typer.Option(None, "--shard-frames", min=1,
                                                       help="Frames per shard (default: from the frame size, ~32 MB)."),
            overwrite: bool = typer.Option(False, "--overwrite",
                                           help="Replace a robolearn store at OUT (only its own files are deleted)."),
            as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")):
    """Rewrite a store's image arrays into shards (many frames per file), verified bit for bit.

    Give exactly one of --out DST (a new store; SRC is not touched) or --in-place."""
    from robolearn.store.migrate import migrate as run_migrate

    _summary(run_migrate(src, out, in_place=in_place, overwrite=overwrite, shard_frames=shard_frames), as_json)


def _episode_list(spec: str) -> list[int]:
    """'0:20,25,30:40' -> [0..19, 25, 30..39]; a malformed part is a BadParameter naming it."""
    out: list[int] = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        try:
            if ":" in part:
                a, b = (int(x) for x in part.split(":", 1))
                if b <= a:
                    raise ValueError
                out.extend(range(a, b))
            else:
                out.append(int(part))
        except ValueError:
            raise typer.BadParameter(f"{part!r} is neither an episode index nor a range A:B with A < B",
                                     param_hint="--episodes") from None
    return out


@app.command()
@friendly
def latents(store: str = typer.Argument(..., help="Store path."),
            autoencoder: str = typer.Option(..., "--autoencoder", "-a",
                                            help="Autoencoder run dir (robolearn train policy=autoencoder) or a "
                                                 "diffusers AutoencoderKL folder."),
            camera: Optional[List[str]] = typer.Option(None, "--camera", help="Cameras to encode (default: all)."),
            dtype: str = typer.Option("float16", "--dtype", help="float16 | float32."),
            batch_size: int = typer.Option(64, "--batch-size", help="Frames encoded at a time."),
            device: str = typer.Option("cpu", "--device", help="cpu | cuda."),
            as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")):
    """Encode every frame with an autoencoder and cache the latents in the store (latents/<camera>)."""
    from robolearn.train.latents import cache_latents

    _summary(cache_latents(store, autoencoder, camera or None, batch_size, dtype, device), as_json)


def _summary(out: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            typer.echo(f"{k:14s} {v}")


__all__ = ["app", "fail"]
