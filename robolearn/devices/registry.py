"""Finding devices across distributions, as envs are found: every entry point in the group
``robolearn.devices`` names a function returning ``{device_id: constructor}``; the core imports no
driver itself (robolearn's own fakes come through the same door, see its pyproject.toml).

Example::

    from robolearn.devices import device_ids, make_device
    device_ids()                                   # ['fake-camera', 'fake-force-torque', ...]
    camera = make_device("fake-camera", name="wrist", lag=0.03)
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from robolearn.errors import UserError

__all__ = ["DeviceNotFoundError", "device_ids", "load_device_plugins", "make_device"]

_loaded: dict[str, dict[str, Callable[..., Any]] | Exception] = {}


class DeviceNotFoundError(UserError, LookupError):
    """A device id no installed distribution provides."""


def load_device_plugins() -> dict[str, dict[str, Callable[..., Any]] | Exception]:
    """Call every ``robolearn.devices`` entry point once; a plugin whose package is missing records its error."""
    for ep in entry_points(group="robolearn.devices"):
        key = f"{ep.dist.name if ep.dist else '?'}:{ep.name}"
        if key in _loaded:
            continue
        try:
            _loaded[key] = dict(ep.load()())
        except ImportError as e:
            _loaded[key] = e
    return dict(_loaded)


def _factories() -> dict[str, Callable[..., Any]]:
    out: dict[str, Callable[..., Any]] = {}
    for devices in load_device_plugins().values():
        if not isinstance(devices, Exception):
            out.update(devices)
    return out


def device_ids() -> list[str]:
    """Every device id the installed distributions provide."""
    return sorted(_factories())


def make_device(device_id: str, **kwargs: Any) -> Any:
    """Construct device `device_id` with `kwargs` (disconnected: call ``connect()`` or use a with block)."""
    factories = _factories()
    if device_id not in factories:
        broken = {k: v for k, v in load_device_plugins().items() if isinstance(v, Exception)}
        close = difflib.get_close_matches(device_id, list(factories), n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        unavailable = "".join(f" (plugin {k} failed to load: {e})" for k, e in broken.items())
        raise DeviceNotFoundError(f"unknown device id {device_id!r}{hint}; installed ids: "
                                  f"{', '.join(sorted(factories)) or 'none'}{unavailable}.")
    return factories[device_id](**kwargs)
