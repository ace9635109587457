"""Serving the view: what PATH is, which address may be bound, and a uvicorn server with a handle.

>>> server = ViewServer(make_app(store="demo.zarr")).start()  # doctest: +SKIP
>>> server.url  # 'http://127.0.0.1:40123'  # doctest: +SKIP
>>> server.stop()  # doctest: +SKIP
"""

from __future__ import annotations

import ipaddress
import json
import os
import threading
import time
from pathlib import Path
from typing import Callable

from robolearn.errors import MissingExtraError, MissingPathError, UserError
from robolearn.net import check_bind_host, serve_until_stopped

DEFAULT_PORT = 8765


def check_view_host(host: str, allow_remote: bool) -> str:
    """The address to bind: loopback (127.0.0.1, ::1, localhost) unless `allow_remote`; UserError otherwise."""
    return check_bind_host(host, allow_remote, "robolearn view",
                           "then every request needs the token of its key file; traffic is not encrypted")


def default_key_file() -> Path:
    """``$XDG_CONFIG_HOME/robolearn/view.key`` (``~/.config/...`` when unset): the view's token for remote use."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "robolearn" / "view.key"


def bind_and_token(host: str, allow_remote: bool, key_file: str | os.PathLike | None = None) -> tuple[str, str | None]:
    """(address to bind, token or None): the policy server's rule (`robolearn serve`). Loopback needs no token;
    another address needs `allow_remote`, and then every request carries the token held in `key_file` (default
    `default_key_file()`): mode 0600, owned by this user, created if missing, never overwritten."""
    from robolearn.runtime import wire

    bind = check_view_host(host, allow_remote)
    if ipaddress.ip_address(bind).is_loopback:
        return bind, None
    key, _ = wire.load_key(Path(key_file).expanduser() if key_file else default_key_file(), what="view token")
    return bind, key.hex()


def resolve_target(path: str, storage_options: dict | None = None) -> tuple[str | None, Path | None]:
    """(store, run) that `robolearn view PATH` shows: a store (local or URL), or a run or evaluation folder
    (with the run's store when config.json names one that exists on this machine)."""
    from robolearn.output import inspect_output

    if "://" in str(path):
        return str(path), None
    if not Path(path).exists():
        raise MissingPathError(f"no store or run at {path}: the path does not exist")
    found = inspect_output(path, storage_options)
    if found.what == "store":
        return str(path), None
    if found.what in ("run", "eval"):
        store = None
        cfg = Path(path) / "config.json"
        if cfg.is_file():
            try:
                named = json.loads(cfg.read_text()).get("store")
            except ValueError:
                named = None
            if isinstance(named, str) and "://" not in named and (Path(named) / "zarr.json").is_file():
                store = named
        return store, Path(path)
    raise UserError(f"{path} is neither a robolearn store nor a run or evaluation folder ({found.describe()}); "
                    "pass a store made by `robolearn collect`/`record` or a run folder made by `robolearn train`")


class ViewServer:
    """uvicorn serving an app on (host, port) in a thread, stopped by its handle (`stop`). Port 0 picks a
    free port (`port`, `url` once started). With `ssl_certfile` and `ssl_keyfile` it serves HTTPS."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning",
                 ssl_certfile: str | Path | None = None, ssl_keyfile: str | Path | None = None):
        try:
            import uvicorn
        except ImportError as e:
            raise MissingExtraError("robolearn view needs uvicorn: pip install 'robolearn[view]'") from e
        self.host = host
        self.scheme = "https" if ssl_certfile else "http"
        tls = {"ssl_certfile": str(ssl_certfile), "ssl_keyfile": str(ssl_keyfile)} if ssl_certfile else {}
        config = uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="off", access_log=False,
                                **tls)
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.servers[0].sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def start(self, timeout_s: float = 15.0) -> "ViewServer":
        self._thread = threading.Thread(target=self._server.run, name="robolearn-view", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"the view server on {self.host} stopped while starting (port taken?)")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the view server on {self.host} did not start within {timeout_s} s")
            time.sleep(0.02)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


def serve(path: str, host: str = "127.0.0.1", port: int = DEFAULT_PORT, *, allow_remote: bool = False,
          key_file: str | os.PathLike | None = None, storage_options: dict | None = None,
          announce: Callable[[str], None] = print) -> dict:
    """`robolearn view PATH`: serve the store or run at PATH until Ctrl-C/SIGTERM. The address is checked
    before anything is opened; a non-loopback address needs the token of `key_file` (`bind_and_token`),
    printed once in the URL."""
    from robolearn.view.app import make_app

    bind, token = bind_and_token(host, allow_remote, key_file)
    store, run = resolve_target(path, storage_options)
    remote = token is not None
    server = ViewServer(make_app(store, run, storage_options, token=token), bind, port).start()
    bound = server.port
    announce(f"robolearn view: {store or run} on {server.url}/" + (f"?token={token}" if token else "") +
             " (Ctrl-C stops)")
    stop = threading.Event()

    def wait() -> None:
        while server.alive and not stop.wait(0.5):
            pass

    serve_until_stopped(wait, stop.set)
    server.stop()
    return {"path": str(path), "store": store, "run": str(run) if run else None, "host": bind, "port": bound,
            "remote": remote}
