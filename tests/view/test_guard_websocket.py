"""The view's Guard covers websockets too: token, loopback Host, and no handshake from another site's page."""

from __future__ import annotations

import pytest
from starlette.routing import WebSocketRoute

from robolearn.view.app import make_app
from robolearn.view.server import ViewServer

websocket = pytest.importorskip("websocket")  # websocket-client (comes with selenium, the dev extra)


async def _echo(ws):
    await ws.accept()
    await ws.send_text("hello " + await ws.receive_text())
    await ws.close()


def _talk(url: str, origin: str | None = None, host: str | None = None, **headers) -> str:
    conn = websocket.create_connection(url, timeout=5, header=[f"{k}: {v}" for k, v in headers.items()],
                                       origin=origin, suppress_origin=origin is None, host=host)
    try:
        conn.send("robot")
        return conn.recv()
    finally:
        conn.close()


@pytest.fixture
def servers():
    started = []

    def start(token=None):
        server = ViewServer(make_app(token=token, extra_routes=[WebSocketRoute("/echo", _echo)])).start()
        started.append(server)
        return "ws" + server.url[len("http"):] + "/echo", server.url

    yield start
    for server in started:
        server.stop()


def test_loopback_websocket_refuses_other_sites_and_hosts(servers):
    ws, http = servers()
    assert _talk(ws) == "hello robot"                                    # a client that sends no Origin
    assert _talk(ws, origin=http) == "hello robot"                       # the view's own page
    with pytest.raises(websocket.WebSocketBadStatusException, match="403"):
        _talk(ws, origin="https://attacker.example")                     # a page elsewhere in the user's browser
    with pytest.raises(websocket.WebSocketBadStatusException, match="403"):
        _talk(ws, host="attacker.example")                               # DNS rebinding


def test_remote_websocket_needs_the_token(servers):
    ws, _ = servers(token="s3cret-token")
    with pytest.raises(websocket.WebSocketBadStatusException, match="403"):
        _talk(ws)
    with pytest.raises(websocket.WebSocketBadStatusException, match="403"):
        _talk(ws + "?token=wrong")
    assert _talk(ws + "?token=s3cret-token") == "hello robot"
    assert _talk(ws, Cookie="robolearn_view_token=s3cret-token") == "hello robot"
    with pytest.raises(websocket.WebSocketBadStatusException, match="403"):
        _talk(ws + "?token=s3cret-token", origin="https://attacker.example")
