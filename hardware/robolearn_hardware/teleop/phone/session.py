"""`PhoneSession`: what the phone page sends, held for the teleop device; and the view-app routes serving it.

Messages over the websocket ``/phone/ws`` (JSON, one per XR frame while the page runs; the format of the
``teleop`` package's page, plus a gripper value and episode keys):

```
{"type": "pose", "seq": 12, "data": {"move": true, "position": {"x":..,"y":..,"z":..},
                                      "orientation": {"x":..,"y":..,"z":..,"w":..}, "gripper": 0.4}}
{"type": "key", "data": "save" | "discard" | "rerecord" | "quit"}
```

Positions are WebXR's reference space (metres; x right, y up, z toward the user); ``move`` is true while
the operator holds the screen (the clutch). Each pose is answered ``{"type": "ack", "seq": 12}`` (the page
shows the round trip; tests wait on it). A pose more than ``max_jump_m`` from the previous one is refused
(a tracking glitch must not throw the arm), counted in ``rejected``.
"""

from __future__ import annotations

import hmac
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs

import numpy as np

from robolearn.devices.protocols import EVENTS

__all__ = ["PhonePose", "PhoneSession", "phone_routes"]

STATIC = Path(__file__).parent / "static"
TOKEN_COOKIE = "robolearn_view_token"


@dataclass(frozen=True)
class PhonePose:
    """One pose of the phone: position (3,) m and rotation (3, 3) in WebXR's frame, the clutch, the gripper."""

    position: np.ndarray
    rotation: np.ndarray
    move: bool
    gripper: float | None
    seq: int


def _rotation(q: dict) -> np.ndarray:
    x, y, z, w = (float(q[k]) for k in "xyzw")
    n = np.sqrt(x * x + y * y + z * z + w * w)
    if not n > 0:
        raise ValueError("zero quaternion")
    x, y, z, w = x / n, y / n, z / n, w / n
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


class PhoneSession:
    """The newest pose and the pending episode keys, shared by the websocket handler and the device."""

    def __init__(self, max_jump_m: float = 0.10) -> None:
        self.max_jump_m = float(max_jump_m)
        self._lock = threading.Lock()
        self.pose: PhonePose | None = None
        self._keys: list[str] = []
        self.received = 0
        self.rejected = 0
        self.clients = 0

    def take(self, message: dict) -> dict | None:
        """Apply one message from the page; the answer to send back (or None)."""
        kind = message.get("type")
        if kind == "key":
            if message.get("data") in EVENTS:
                with self._lock:
                    self._keys.append(message["data"])
            return None
        if kind != "pose":
            return {"type": "error", "error": f"unknown message type {kind!r}; expected pose or key"}
        data, seq = message.get("data") or {}, int(message.get("seq", 0))
        try:
            position = np.array([float(data["position"][k]) for k in "xyz"])
            rotation = _rotation(data["orientation"])
            gripper = None if data.get("gripper") is None else float(np.clip(float(data["gripper"]), 0.0, 1.0))
        except (KeyError, TypeError, ValueError) as e:
            return {"type": "error", "seq": seq, "error": f"malformed pose ({e}); expected position x,y,z and "
                                                           "orientation x,y,z,w"}
        if not np.all(np.isfinite(position)):
            return {"type": "error", "seq": seq, "error": "pose position is not finite"}
        with self._lock:
            self.received += 1
            prev = self.pose
            if prev is not None and prev.move and bool(data.get("move")) and \
                    np.linalg.norm(position - prev.position) > self.max_jump_m:
                self.rejected += 1
                return {"type": "ack", "seq": seq, "rejected": "jump"}
            self.pose = PhonePose(position, rotation, bool(data.get("move")), gripper, seq)
        return {"type": "ack", "seq": seq}

    def latest(self) -> PhonePose | None:
        with self._lock:
            return self.pose

    def keys(self) -> list[str]:
        with self._lock:
            out, self._keys = self._keys, []
        return out


def phone_routes(session: PhoneSession, token: str) -> list:
    """Starlette routes of the phone page for the view app (``make_app(extra_routes=...)``): ``/phone`` (the
    page) and ``/phone/ws`` (the websocket, which checks the token itself: the view's Guard checks HTTP only)."""
    from starlette.responses import FileResponse
    from starlette.routing import Mount, Route, WebSocketRoute
    from starlette.staticfiles import StaticFiles
    from starlette.websockets import WebSocket, WebSocketDisconnect

    def page(request):
        return FileResponse(STATIC / "phone.html", headers={"Cache-Control": "no-cache"})

    async def socket(ws: WebSocket):
        query = parse_qs(ws.scope.get("query_string", b"").decode("latin-1")).get("token", [""])[0]
        given = query or ws.cookies.get(TOKEN_COOKIE, "")
        if not hmac.compare_digest(given.encode(), token.encode()):
            await ws.close(code=1008)
            return
        await ws.accept()
        session.clients += 1
        try:
            while True:
                try:
                    message = json.loads(await ws.receive_text())
                except (ValueError, TypeError):
                    await ws.send_text(json.dumps({"type": "error", "error": "not a JSON message"}))
                    continue
                answer = session.take(message) if isinstance(message, dict) else None
                if answer is not None:
                    await ws.send_text(json.dumps(answer))
        except WebSocketDisconnect:
            pass
        finally:
            session.clients -= 1

    return [Route("/phone", page), WebSocketRoute("/phone/ws", socket),
            Mount("/phone/static", StaticFiles(directory=STATIC), name="phone-static")]
