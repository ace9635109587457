"""The ASGI app of `robolearn view`: three pages (store, episode, run), their JSON API and the frames.

Routes (GET only):

```
/                                             -> the store page (or the run page when only a run is open)
/store, /episode/<e>, /run                    the pages (static HTML; their scripts call the API)
/static/...                                   page scripts, styles and the vendored uPlot
/api/store                                    store summary + episode table, one list per column
/api/stats                                    dataset statistics, per-key histograms
/api/episodes/<e>                             one episode: its row, low-dim streams, timestamps and jitter
/api/episodes/<e>/frame/<key>/<i>             frame i of episode e for an image/depth/tactile key
/api/run                                      run config, metrics columns, evaluations
/api/run/file/<path>                          a video, plot or JSON file of the run folder
/live, /api/live                              a live session (`robolearn.view.live`): its page and snapshot
/api/live/frame/<key>                         the newest frame of a camera of the live session (JPEG)
POST /api/live/key/<key>                      an episode key for the loop: save, discard, rerecord, quit (stop);
                                              takeover in a deploy a person can take over
```

The one POST needs the header ``X-Robolearn-Live: 1`` (a page of another site cannot send it without a CORS
preflight, which this app never grants), so a web page elsewhere cannot press the buttons.

Frames are read when asked (one chunk per request) and cached by the browser: committed frames never
change. Blocking store reads run in Starlette's thread pool (the endpoints are plain functions).
"""

from __future__ import annotations

import hmac
import json
import threading
from pathlib import Path
from urllib.parse import parse_qs

from robolearn.errors import MissingExtraError, UserError
from robolearn.store import Store

STATIC = Path(__file__).parent / "static"
TOKEN_COOKIE = "robolearn_view_token"
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


def _starlette():
    try:
        import starlette  # noqa: F401
    except ImportError as e:
        raise MissingExtraError("robolearn view needs starlette and uvicorn: pip install 'robolearn[view]'") from e


class ViewState:
    """The open store and/or run the app serves; asking for the table refreshes the store, so episodes
    committed since show up."""

    def __init__(self, store: str | None = None, run: str | Path | None = None, storage_options: dict | None = None):
        self.store_path, self.run = store, Path(run) if run is not None else None
        self.storage_options = storage_options
        self._store = Store.open(store, storage_options) if store is not None else None
        if self._store is not None:
            self._store.episodes  # the episode table, read now (one request per column on s3), not at first page load
        self._stats: tuple[int, dict] | None = None  # (frames, stats) of the last /api/stats
        self._stats_lock = threading.Lock()  # one computation at a time; the others wait for its result
        self._stored_stats: tuple[int, dict | None] | None = None

    def store(self, refresh: bool = False) -> Store:
        """The open store; with `refresh`, reopened when episodes were committed or cut back since (the
        length of meta/episode_ends changed: one metadata read, where reopening reads every array's)."""
        if self._store is None:
            raise UserError("no store is open in this view: start `robolearn view STORE`")
        if refresh and _ends_rows(self._store) != self._store.n_episodes:  # a tail being committed: open again
            self._store = Store.open(self.store_path, self.storage_options)
        return self._store

    def stored_stats(self) -> dict | None:
        """meta/stats of the store (read once per committed extent: depth maps share one colour scale)."""
        s = self.store()
        if self._stored_stats is None or self._stored_stats[0] != s.n_frames:
            self._stored_stats = (s.n_frames, s.stats)
        return self._stored_stats[1]

    def stats(self) -> dict:
        from robolearn.view.data import store_stats

        with self._stats_lock:
            s = self.store()
            if self._stats is None or self._stats[0] != s.n_frames:
                self._stats = (s.n_frames, store_stats(s))
            return self._stats[1]


def _ends_rows(store: Store) -> int:
    """Rows of meta/episode_ends as they are now (-1: none yet, a store whose creation was cut off)."""
    try:
        return int(store.root["meta/episode_ends"].shape[0])
    except KeyError:
        return -1


class Guard:
    """ASGI middleware for HTTP and websockets: a request must name a loopback Host (no DNS rebinding from a
    web page), unless the app was started for remote use, where it must carry the token instead (``?token=``
    once, then a cookie; or ``Authorization: Bearer <token>``). A websocket handshake also must not come from a
    page of another origin (browsers do not apply CORS to websockets): its ``Origin``, when sent, must name a
    loopback host (loopback use) or the Host it connects to (remote use)."""

    def __init__(self, app, token: str | None):
        self.app, self.token = app, token

    def _refusal(self, scope, headers: dict[str, str]) -> tuple[int, str] | None:
        host = headers.get("host", "")
        if self.token is None:
            if _host_name(host) not in LOOPBACK_NAMES:
                return 403, f"host {host!r} is not a loopback name; this view serves loopback only"
        else:
            query = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [""])[0]
            cookies = dict(c.strip().split("=", 1) for c in headers.get("cookie", "").split(";") if "=" in c)
            bearer = headers.get("authorization", "")[7:] if headers.get("authorization", "").startswith("Bearer ") else ""
            given = query or cookies.get(TOKEN_COOKIE, "") or bearer
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                return 401, "this view needs its token: open the URL `robolearn view` printed"
        origin = headers.get("origin")
        if scope["type"] == "websocket" and origin is not None:
            origin_host = origin.split("://", 1)[-1].rstrip("/")
            ok = (_host_name(origin_host) in LOOPBACK_NAMES) if self.token is None else origin_host == host
            if not ok:
                return 403, f"websocket from origin {origin!r} refused: only this view's own pages may connect"
        return None

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            if scope["type"] == "websocket":
                await receive()                                   # websocket.connect
                return await send({"type": "websocket.close", "code": 1008, "reason": refusal[1][:120]})
            return await _plain(send, *refusal)
        set_cookie = (scope["type"] == "http" and self.token is not None and
                      bool(parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")))
        if not set_cookie:
            return await self.app(scope, receive, send)

        async def send_with_cookie(message):
            if message["type"] == "http.response.start":
                cookie = f"{TOKEN_COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"
                message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie.encode())]}
            await send(message)

        return await self.app(scope, receive, send_with_cookie)


def _host_name(host: str) -> str:
    """The name part of a Host header value (``[::1]:8000`` -> ``[::1]``, ``localhost:8000`` -> ``localhost``)."""
    return host.rsplit(":", 1)[0] if not host.endswith("]") else host


async def _plain(send, status: int, text: str) -> None:
    body = text.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def make_app(store: str | None = None, run: str | Path | None = None, storage_options: dict | None = None,
             token: str | None = None, live=None, extra_routes=()):
    """The Starlette app serving `store` (a local path or URL) and/or `run` (a local run or eval folder) and/or
    `live` (a `robolearn.view.live.LiveSession`). `token`: required on every request (remote use); None:
    loopback Host names only. `extra_routes`: Starlette routes a plug-in serves beside the pages (e.g. the phone
    teleop page and its websocket, `robolearn_hardware.teleop.phone`)."""
    _starlette()
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    from robolearn.view import data, runs

    if store is None and run is None and live is None and not extra_routes:
        raise UserError("robolearn view needs a store or a run folder to show")
    state = ViewState(store, run, storage_options)

    def page(name: str):
        def endpoint(request: Request):
            return FileResponse(STATIC / name, headers={"Cache-Control": "no-cache"})
        return endpoint

    def index(request: Request):
        return RedirectResponse("/live" if live is not None else "/store" if state.store_path is not None else "/run")

    def as_json(obj) -> Response:
        return Response(json.dumps(obj, allow_nan=False, separators=(",", ":")), media_type="application/json",
                        headers={"Cache-Control": "no-cache"})

    def api_store(request: Request):
        s = state.store(refresh=True)
        return as_json({**data.store_summary(s), "run": state.run is not None, "live": live is not None})

    def api_stats(request: Request):
        return as_json(state.stats())

    def api_episode(request: Request):
        return as_json(data.episode_detail(state.store(), request.path_params["ep"]))

    def api_frame(request: Request):
        p = request.path_params
        blob, media = data.frame_image(state.store(), p["key"], p["ep"], p["index"], state.stored_stats())
        return Response(blob, media_type=media, headers={"Cache-Control": "private, max-age=86400"})

    def api_run(request: Request):
        if state.run is None:
            raise UserError("no run is open in this view: start `robolearn view RUN`")
        return as_json({**runs.run_summary(state.run), "has_store": state.store_path is not None,
                        "live": live is not None})

    def api_run_file(request: Request):
        if state.run is None:
            raise UserError("no run is open in this view: start `robolearn view RUN`")
        return FileResponse(runs.run_file(state.run, request.path_params["path"]))

    def the_live():
        if live is None:
            raise UserError("no live session in this view: start `robolearn teleop|deploy ... --view`")
        return live

    def api_live(request: Request):
        return as_json({**the_live().snapshot(), "store": state.store_path})

    def api_live_frame(request: Request):
        blob, meta = the_live().frame_jpeg(request.path_params["key"])
        return Response(blob, media_type="image/jpeg",
                        headers={"Cache-Control": "no-store", **{f"X-Frame-{k.title()}": str(v) for k, v in meta.items()}})

    def api_live_key(request: Request):
        if request.headers.get("x-robolearn-live") != "1":
            return JSONResponse({"error": "an episode key needs the header X-Robolearn-Live: 1 (sent by the live page)"},
                                status_code=403)
        return as_json({"queued": the_live().press(request.path_params["key"])})

    async def user_error(request: Request, exc: Exception):
        return JSONResponse({"error": str(exc)}, status_code=404)

    async def http_error(request: Request, exc: HTTPException):
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)

    routes = [
        Route("/", index),
        Route("/store", page("store.html")),
        Route("/episode/{ep:int}", page("episode.html")),
        Route("/run", page("run.html")),
        Route("/api/store", api_store),
        Route("/api/stats", api_stats),
        Route("/api/episodes/{ep:int}", api_episode),
        Route("/api/episodes/{ep:int}/frame/{key:path}/{index:int}", api_frame),
        Route("/api/run", api_run),
        Route("/api/run/file/{path:path}", api_run_file),
        Route("/live", page("live.html")),
        Route("/api/live", api_live),
        Route("/api/live/frame/{key:path}", api_live_frame),
        Route("/api/live/key/{key}", api_live_key, methods=["POST"]),
        *extra_routes,
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(routes=routes, middleware=[Middleware(Guard, token=token)],
                     exception_handlers={UserError: user_error, HTTPException: http_error})
