"""One writer per store: a lock file holding the writer's pid and host; a dead writer's lock is taken over."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from robolearn.output import pid_alive
from robolearn.store.layout import LOCK_NAME, StoreError


class StoreLock:
    """Exclusive writer lock on a local store directory."""

    def __init__(self, root: Path):
        self.path = Path(root) / LOCK_NAME
        self.held = False

    def acquire(self) -> None:
        me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._owner()
                if owner is None or (owner.get("host") == me["host"] and not pid_alive(int(owner.get("pid", -1)))):
                    # A lock left by a dead process (or an unreadable one): take it over.
                    self.path.unlink(missing_ok=True)
                    continue
                if owner.get("pid") == me["pid"] and owner.get("host") == me["host"]:
                    raise StoreError(f"store {self.path.parent} is already open for writing in this process; only one writer at a time")
                raise StoreError(
                    f"store {self.path.parent} is being written by pid {owner.get('pid')} on "
                    f"{owner.get('host')}; only one writer at a time (close it first)"
                )
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
                f.flush()
                os.fsync(f.fileno())
            self.held = True
            return
        raise StoreError(f"could not take the writer lock {self.path}")

    def _owner(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False
