"""Scripted policies for the process backend's child (a module the child can import: ``tests.runtime.
process_policies:scripted``). A chunk row is ``[request seq, index, sum of the observation, episode seed]``, so a
test can tell which request, observation and episode produced it."""

from __future__ import annotations

import os
import time

import numpy as np

from robolearn.runtime.backends import ChunkRequest

T = 8


class Scripted:
    """Sleeps ``latency_s[str(seq)]`` (default ``latency_s["*"]``) per request; raises on ``raise_on``, exits the
    process with code 3 on ``exit_on``."""

    def __init__(self, latency_s: dict[str, float], raise_on: int | None, exit_on: int | None) -> None:
        self.latency_s, self.raise_on, self.exit_on = latency_s, raise_on, exit_on
        self.info = {"policy": "Scripted", "n_obs_steps": 1, "n_action_steps": 4, "horizon": T, "action_dim": 4,
                     "input_keys": ["state"]}

    def new_client(self, task: str | None, seed: int | None):
        def chunk(request: ChunkRequest) -> np.ndarray:
            if request.seq == self.raise_on:
                raise ValueError(f"scripted failure on request {request.seq}")
            if request.seq == self.exit_on:
                os._exit(3)
            time.sleep(self.latency_s.get(str(request.seq), self.latency_s.get("*", 0.0)))
            total = float(np.sum(request.obs["state"]))
            return np.stack([np.full(T, request.seq), np.arange(T), np.full(T, total),
                             np.full(T, -1 if seed is None else seed)], 1).astype(np.float32)

        return chunk

    def example_request(self) -> ChunkRequest:
        return ChunkRequest({"state": np.zeros((1, 3), np.float32)}, tick=0, mark=0)


def scripted(latency_s: dict[str, float] | None = None, raise_on: int | None = None, exit_on: int | None = None,
             fail_start: bool = False) -> Scripted:
    if fail_start:
        raise FileNotFoundError("scripted: no checkpoint at /nowhere")
    return Scripted(latency_s or {}, raise_on, exit_on)
