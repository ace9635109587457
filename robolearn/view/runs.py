"""What the run page shows: a training run's curves, its config and its evaluations (local folders only).

A run folder (`robolearn train`) holds config.json, metrics.jsonl (one JSON record per logged step),
train_summary.json and, after `robolearn eval`, eval/ with eval.json, the tiled rollouts.mp4 and one
rollouts/episode_<i>.mp4 per filmed episode. An evaluation folder may also be viewed on its own.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from robolearn.errors import InvalidValueError, MissingPathError

SERVED_SUFFIXES = (".mp4", ".png", ".json", ".jsonl")
"""The files of a run folder the app serves (videos, plots, the run's own JSON); nothing else."""


def _json(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        raise InvalidValueError(f"{path} is not valid JSON ({e}); the run page cannot show it") from e


def read_metrics(path: Path) -> dict:
    """metrics.jsonl as columns: {"step": [...], "loss": [...], ...}, null where a record lacks a key
    (validation and eval records come less often than the loss). A torn last line (a run still writing)
    is left out."""
    records = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and isinstance(rec.get("step"), (int, float)):
                records.append(rec)
    keys = ["step"] + sorted({k for r in records for k, v in r.items()
                              if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)})
    return {k: [_number(r.get(k)) for r in records] for k in keys}


def _number(v):
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def _evaluation(folder: Path, root: Path) -> dict | None:
    report = _json(folder / "eval.json")
    if report is None:
        return None
    rel = folder.relative_to(root)
    for e in report.get("episodes", []):
        video = e.get("video")
        e["video_url"] = (f"/api/run/file/{(rel / video).as_posix()}"
                          if isinstance(video, str) and (folder / video).is_file() else None)
    tiled = folder / "rollouts.mp4"
    report["folder"] = rel.as_posix()
    report["tiled_url"] = f"/api/run/file/{(rel / 'rollouts.mp4').as_posix()}" if tiled.is_file() else None
    return report


def run_summary(root: Path) -> dict:
    """The run page's one call: config, training curves, summary, and every evaluation found in the run
    folder (the folder itself when it is an evaluation folder, else eval/ and its other subfolders)."""
    root = Path(root)
    config = _json(root / "config.json")
    folders = [root] + sorted(p for p in root.iterdir() if p.is_dir() and (p / "eval.json").is_file())
    evals = [e for e in (_evaluation(f, root) for f in folders) if e is not None]
    return {"path": str(root.resolve()), "name": root.resolve().name, "config": config,
            "metrics": read_metrics(root / "metrics.jsonl"), "summary": _json(root / "train_summary.json"),
            "curve_url": "/api/run/file/train_curve.png" if (root / "train_curve.png").is_file() else None,
            "evaluations": evals, "store": (config or {}).get("store")}


def run_file(root: Path, rel: str) -> Path:
    """The file `rel` inside the run folder, if it is one the app serves (SERVED_SUFFIXES, no way out of
    the folder); MissingPathError otherwise."""
    root = Path(root).resolve()
    path = (root / rel).resolve()
    if not path.is_relative_to(root) or path.suffix not in SERVED_SUFFIXES or not path.is_file():
        raise MissingPathError(f"no file {rel!r} is served from the run at {root}")
    return path
