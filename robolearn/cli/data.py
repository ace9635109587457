"""`robolearn data ...`: inspect and maintain stores."""

from __future__ import annotations

import json
from typing import Optional

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
            as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")):
    """Convert a LeRobot v3.0 dataset or a robomimic hdf5 file into a new store."""
    from robolearn.store.interop import import_dataset

    _summary(import_dataset(src, store, fmt), as_json)


@app.command("export")
@friendly
def export(store: str = typer.Argument(..., help="Store path or URL."),
           dst: str = typer.Argument(..., help="New LeRobot dataset folder or robomimic .hdf5 file."),
           fmt: Optional[str] = typer.Option(None, "--format", help="Destination format: lerobot | robomimic."),
           as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")):
    """Write a store as a LeRobot v3.0 dataset (h264 videos) or a robomimic hdf5 file."""
    from robolearn.store.interop import export_dataset

    _summary(export_dataset(store, dst, fmt), as_json)


def _summary(out: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            typer.echo(f"{k:14s} {v}")


__all__ = ["app", "fail"]
