"""kill -9 while a store is being created: nothing is left (a folder the guard calls empty), or a store that
opens and `data repair` makes whole; either way a new writer can then record into it."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from robolearn.output import inspect_output
from robolearn.store import EpisodeMeta, Store, StoreWriter, repair
from robolearn.store.info import validate_store
from tests.store.crash_writer import CRASH_FEATURES, crash_episode, crash_timestamps

REPO = Path(__file__).resolve().parents[2]


def _run(store: Path, step: str, progress: Path | None = None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "tests.store.kill_create", str(store), step] + ([str(progress)] if progress else [])
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _writes_in_a_creation(tmp_path: Path) -> int:
    proc = _run(tmp_path / "whole.zarr", "count")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return int(out.strip().splitlines()[-1])


def check_after_kill(store: Path) -> str:
    """What a kill left: 'nothing' or 'store'; then a writer records an episode into it."""
    found = inspect_output(store)
    if found.what in ("absent", "empty"):
        kind = "nothing"
    else:
        assert found.what == "store", found
        report = repair(store)
        assert report["episodes"] == 0
        assert validate_store(store)["ok"]
        assert Store.open(store).n_episodes == 0
        kind = "store"
    with StoreWriter(store, CRASH_FEATURES, fps=10.0, resume=True) as w:
        w.add_episode(crash_episode(0), {k: crash_timestamps(0) for k in CRASH_FEATURES}, EpisodeMeta(seed=0))
    s = Store.open(store)
    assert s.n_episodes == 1 and np.array_equal(s.episode(0)["state"], crash_episode(0)["state"])
    return kind


def _kill_at(tmp_path: Path, step: str) -> str:
    store = tmp_path / f"k{step}.zarr"
    proc = _run(store, step)
    proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, (step, proc.returncode)
    return check_after_kill(store)


def test_kill_at_chosen_creation_steps(tmp_path):
    n = _writes_in_a_creation(tmp_path)
    assert n > 10  # root zarr.json, the groups, every array
    kinds = {step: _kill_at(tmp_path, step) for step in ["mkdir", "lock", "0", "1", "2", str(n // 2), str(n - 1)]}
    assert kinds["mkdir"] == kinds["lock"] == kinds["0"] == "nothing"  # before the root's zarr.json
    assert kinds["1"] == kinds[str(n // 2)] == kinds[str(n - 1)] == "store"  # the root's attrs came first


@pytest.mark.slow
def test_kill_at_every_creation_step_and_at_random_times(tmp_path):
    n = _writes_in_a_creation(tmp_path)
    for step in range(n):
        _kill_at(tmp_path, str(step))
    rng = np.random.default_rng(7)
    kinds = []
    for i in range(40):
        store, progress = tmp_path / f"r{i}.zarr", tmp_path / f"r{i}.log"
        proc = _run(store, "none", progress)
        t0 = time.monotonic()
        while not progress.exists() and proc.poll() is None and time.monotonic() - t0 < 60:
            time.sleep(0.001)
        time.sleep(float(rng.uniform(0.0, 0.15)))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
        kinds.append(check_after_kill(store))
    assert "store" in kinds
