"""Create a store and SIGKILL this process at a chosen step of the creation.

    python -m tests.store.kill_create STORE STEP [PROGRESS]

STEP: ``mkdir`` (right after the folder appears, before the lock), ``lock`` (lock taken, nothing written),
an integer N (just before the store's N-th file write, counting from 0), ``count`` (create it whole and
print how many files its creation writes), or ``none`` with PROGRESS (write "start" to PROGRESS, then
create the store whole: a test kills it at a random moment).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from robolearn.store import StoreWriter
from robolearn.store import writer as writer_module
from robolearn.store.backend import SyncingLocalStore
from tests.store.crash_writer import CRASH_FEATURES


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main(argv: list[str]) -> None:
    store, step = argv[0], argv[1]
    writes = [0]
    set_ = SyncingLocalStore.set

    async def counting_set(self, key, value):
        if step.isdigit() and writes[0] == int(step):
            _die()
        writes[0] += 1
        await set_(self, key, value)

    SyncingLocalStore.set = counting_set
    if step in ("mkdir", "lock"):
        acquire = writer_module.StoreLock.acquire

        def acquire_then_die(self):
            if step == "lock":
                acquire(self)
            _die()

        writer_module.StoreLock.acquire = acquire_then_die
    if step == "none":
        Path(argv[2]).write_text("start\n")
    with StoreWriter(store, CRASH_FEATURES, fps=10.0):
        pass
    if step == "count":
        print(writes[0])


if __name__ == "__main__":
    main(sys.argv[1:])
