"""What a benchmark result records about the machine it ran on (imported by the benchmark scripts)."""

from __future__ import annotations

import os
import platform
from importlib.metadata import version
from pathlib import Path

NOTE = "shared machine: other jobs ran alongside, so speeds are lower bounds"


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what `platform` knows."""
    try:
        return next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def machine(*packages: str, **extra) -> dict:
    """CPU, cores, platform, Python, the versions of `packages`, MUJOCO_GL, a note on sharing, then `extra`."""
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), **{p: version(p) for p in packages},
            "MUJOCO_GL": os.environ.get("MUJOCO_GL"), "note": NOTE, **extra}
