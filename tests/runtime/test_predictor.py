"""ChunkPredictor runs the policy under no_grad, never inference_mode: inference tensors would fail the guards of
a policy compiled for inference (compiled under no_grad) and silently recompile it without frozen weights."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from robolearn.runtime.predictor import ChunkPredictor


class ModeProbe:
    config = SimpleNamespace(n_obs_steps=2, n_action_steps=4)
    input_keys = ["state"]
    uses_language = False

    def __init__(self) -> None:
        self.seen: list[tuple[bool, bool, bool]] = []

    def predict_action_chunk(self, obs, generator=None, inpaint=None):
        x = obs["state"]
        self.seen.append((torch.is_grad_enabled(), torch.is_inference_mode_enabled(), x.is_inference()))
        return torch.zeros(1, 8, 2)


def test_predict_runs_under_no_grad_with_ordinary_tensors():
    probe = ModeProbe()
    predictor = ChunkPredictor(probe)
    predictor.reset(seed=0)
    predictor.observe({"state": np.zeros(3, np.float32)})
    assert predictor.predict().shape == (8, 2)
    assert predictor.predict(inpaint=None).shape == (8, 2)
    assert probe.seen == [(False, False, False)] * 2
