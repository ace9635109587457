"""The `--view` options shared by the commands that run a loop (`deploy`, `record`/`teleop`): one definition,
used as the defaults of each command's parameters."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

VIEW = typer.Option(False, "--view", help="Serve the loop live in the browser: cameras, tick lateness, "
                                          "safety/watchdog events, latency per stage; episode keys as buttons "
                                          "(save, discard, re-record, stop).")
VIEW_HOST = typer.Option("127.0.0.1", "--view-host", help="--view: address to bind (loopback unless --allow-remote).")
VIEW_PORT = typer.Option(8765, "--view-port", help="--view: TCP port (0: a free one; the URL is printed).")
ALLOW_REMOTE = typer.Option(False, "--allow-remote", help="--view: permit a --view-host that is not loopback; every "
                                                          "request then needs the token of --view-key-file "
                                                          "(not encrypted).")
VIEW_KEY_FILE: Optional[Path] = typer.Option(None, "--view-key-file", help="--view --allow-remote: the token's key "
                                             "file (mode 0600, created if missing; default "
                                             "~/.config/robolearn/view.key).")
