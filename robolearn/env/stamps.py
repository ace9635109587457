"""Capture stamps for simulated envs: one rule for every simulator family.

Every env reports when each stream of its observation was captured, in ``info["timestamps"]`` (feature key
-> seconds), at ``reset`` and at every ``step``; the Recorder stores them as ``timestamps/<key>``
(``robolearn.store.layout`` states the whole rule). A device-backed env stamps with ``time.monotonic()``.
A simulated env has no capture delay of its own, so it stamps with its simulation's control time:

    stamp[key] = steps since reset * (1 / control_hz) - sensor_latency_s[key]

which, under a ``VirtualClock`` started at reset, is the tick time of the observation minus the latency
the env declares for that key (0 unless given). A declared latency only shifts the stamps (it models a
camera that delivers its frame late, so recordings and the loop can account for it); the frame itself is
the current one. Sims do not stamp ``action``: it is applied at its tick, and the Recorder stamps it with
the tick time.

Example::

    self._stamps = SensorStamps(self.control_hz, self.observation_space, sensor_latency_s)
    self.sensor_latency_s = self._stamps.latency      # key -> seconds, 0.0 where none was declared
    info["timestamps"] = self._stamps.at(self._steps)  # in reset() and step()
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import gymnasium as gym

from robolearn.errors import InvalidValueError

__all__ = ["SensorStamps", "check_latencies"]


def check_latencies(sensor_latency_s: Mapping[str, float] | None, observation_space: gym.spaces.Dict) -> dict:
    """The declared per-key latencies (seconds) as a dict; refuses keys the observation lacks and values
    that are not finite and >= 0."""
    out = {}
    keys = list(observation_space.spaces)
    for key, value in dict(sensor_latency_s or {}).items():
        if key not in keys:
            raise InvalidValueError(f"sensor_latency_s names {key!r}, which is not an observation key of this env "
                                    f"(keys: {', '.join(keys)})")
        try:
            lat = float(value)
        except (TypeError, ValueError):
            lat = math.nan
        if not (math.isfinite(lat) and lat >= 0):
            raise InvalidValueError(f"sensor_latency_s[{key!r}] = {value!r}: a latency is a finite number of "
                                    f"seconds >= 0")
        out[key] = lat
    return out


class SensorStamps:
    """The stamps of a simulated env's observation keys after `steps` control steps (module docstring)."""

    def __init__(self, control_hz: float, observation_space: gym.spaces.Dict,
                 sensor_latency_s: Mapping[str, float] | None = None):
        self.period = 1.0 / float(control_hz)  # the VirtualClock's own arithmetic: tick * (1 / hz)
        latency = check_latencies(sensor_latency_s, observation_space)
        self.latency = {k: latency.get(k, 0.0) for k in observation_space.spaces}

    def at(self, steps: int) -> dict[str, float]:
        t = steps * self.period
        return {k: t - lat for k, lat in self.latency.items()}
