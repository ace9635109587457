"""What a benchmark result records about the machine it ran on (imported by the benchmark scripts)."""

from __future__ import annotations

import json
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


def steal_s() -> float:
    """CPU time the hypervisor gave to others so far (s, summed over this VM's CPUs; /proc/stat ``steal``, 0 where
    unknown). The difference over a run says how much of it this machine could not run: a vCPU stolen for 2 ms
    misses a 2 ms cycle whatever the code does."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def machine(*packages: str, **extra) -> dict:
    """CPU, cores, platform, Python, the versions of `packages`, MUJOCO_GL, a note on sharing, then `extra`."""
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), **{p: version(p) for p in packages},
            "MUJOCO_GL": os.environ.get("MUJOCO_GL"), "note": NOTE, **extra}


def report(result: dict, out: Path | None) -> None:
    """Print `result` as indented JSON, and write it to `out` too when given (folders created)."""
    text = json.dumps(result, indent=2)
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
