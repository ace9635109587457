"""`robolearn view STORE|RUN`: look at a store or a training run in the browser, offline, on this machine.

Pages: the store (episodes as a sortable, filterable table built from ``meta/episodes``, dataset statistics,
per-key histograms), an episode (every camera, depth and tactile map on one frame cursor with a scrubber,
stepping, playback speed; every low-dimensional stream plotted under it with the same cursor; each stream's
timestamps and their jitter; keys to step through frames and episodes), a run (training curves from
metrics.jsonl, its config, each evaluation's per-episode results with that episode's rollout video).

>>> from robolearn.view import ViewServer, make_app  # doctest: +SKIP
>>> server = ViewServer(make_app(store="demo.zarr")).start()  # doctest: +SKIP
>>> print(server.url + "/store"); server.stop()  # doctest: +SKIP

Why these parts (the `view` extra):

- **Starlette + uvicorn.** The app is a dozen GET routes: JSON, one image per frame request, static files
  and range requests for the rollout videos. Starlette does that with no ORM, templates or schema layer
  (FastAPI would add pydantic models we do not need; Flask/Werkzeug is WSGI, one thread per request and no
  clean in-process start/stop). uvicorn is its reference server: a server object with a handle, which the
  tests and the benchmark start on port 0 and stop. Both are small, well kept, pure Python, and install
  beside our pins (constraints.txt).
- **uPlot, vendored.** Plots of every low-dim stream of an episode (thousands of points times dozens of
  dims) must draw in milliseconds and move a cursor at playback rate. uPlot (MIT, ~50 KB, canvas, no
  dependencies) does; Plotly (~3.5 MB) and Chart.js are 10-100x slower on such series. It ships in
  `static/vendor/` at a pinned version with its license (see the README there): no CDN, no network at run
  time, so the view works air-gapped next to a robot.
- **Frames by index, not `<video>`.** Each camera frame is fetched by its index (``/api/episodes/<e>/
  frame/<key>/<i>``) and drawn on a canvas: the stored JPEG as it is on disk (no decoding on the server),
  PNG for lossless images, depth and tactile maps colour-mapped. Seeking a video is approximate (keyframes,
  timestamps rounding); a frame index is exact, every camera shows the same tick, and nothing is decoded
  up front: frames are read when the cursor needs them (with a small read-ahead while playing).
- **The table from metadata.** The store page makes one API call that reads the ``meta/episodes`` columns
  (no frame data), so a 1000-episode store renders in well under a second (benchmarks/view.py).

Security: binds loopback by default and answers only requests whose Host is a loopback name (no DNS
rebinding); another address needs ``--allow-remote`` and then every request carries the token held in a key
file of mode 0600 (``--key-file``, default ``~/.config/robolearn/view.key``, created if missing: the policy
server's rule), printed once in the URL (a cookie after the first visit). Traffic is not encrypted.

Live sessions (`robolearn.view.live`): `record`/`teleop`/`deploy --view` serve the same app with a ``/live``
page fed by the running loop, whose buttons are the loop's episode keys.
"""

from robolearn.view.app import make_app
from robolearn.view.server import ViewServer, check_view_host, resolve_target, serve

__all__ = ["ViewServer", "check_view_host", "make_app", "resolve_target", "serve"]
