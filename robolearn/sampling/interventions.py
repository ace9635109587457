"""DAgger-style training on corrections: windows weighted or selected by the store's ``intervention`` mask.

A store recorded with ``robolearn deploy --teleop`` marks every frame a person drove (`robolearn.store.intervention`).
A window *overlaps an intervention* when one of the action steps it learns (its anchor t .. t + T - 1, inside
its episode) is such a frame: what the person did there is what the policy should have done.

- ``data.intervention_weight=W``: each training epoch visits a window that overlaps an intervention W times as
  often as any other window (the others once). The epoch's table of windows is laid out by systematic
  sampling of the weights, so a window is visited floor or ceil of its weight times per epoch -- exactly W
  for a whole W -- and the loader shuffles that table each epoch as it shuffles plain windows.
- ``data.select=interventions``: only windows overlapping an intervention (train and validation).

A store without the mask (anything not deployed with a device) has no intervention: W changes nothing, and
``select=interventions`` is refused with the reason.

Example::

    train = WeightedWindows.for_config(WindowSampler(store, ["state"], 2, 16), DataConfig(intervention_weight=3))
    len(train)               # windows + 2 * (windows overlapping an intervention)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robolearn.errors import InvalidValueError
from robolearn.sampling.windows import WindowSampler
from robolearn.store.intervention import intervention_mask

__all__ = ["SELECT", "DataConfig", "WeightedWindows", "intervention_windows"]

SELECT = ("all", "interventions")


@dataclass
class DataConfig:
    """Which training windows are drawn, and how often (``data.*`` overrides of `robolearn train`)."""

    intervention_weight: float = 1.0
    """W: a window whose action steps overlap a step a person drove (a takeover during ``robolearn deploy
    --teleop``) is drawn W times as often as any other window per epoch (DAgger-style fine-tuning on
    corrections); 1 weighs every window alike."""
    select: str = "all"
    """all: every window; interventions: only windows whose action steps overlap a step a person drove."""

    def __post_init__(self) -> None:
        if not (np.isfinite(self.intervention_weight) and self.intervention_weight > 0):
            raise InvalidValueError(f"data.intervention_weight must be a number > 0, got {self.intervention_weight}")
        if self.select not in SELECT:
            raise InvalidValueError(f"data.select={self.select!r} is not accepted; use one of: {', '.join(SELECT)}")

    @property
    def active(self) -> bool:
        return self.intervention_weight != 1.0 or self.select != "all"


def intervention_windows(sampler: WindowSampler) -> np.ndarray:
    """(len(sampler),) bool: whether each window's action steps overlap an intervention."""
    mask = intervention_mask(sampler.store)
    first, stop = sampler.action_frames()
    marked = np.concatenate([[0], np.cumsum(mask, dtype=np.int64)])
    return marked[stop] - marked[first] > 0


class WeightedWindows:
    """A `WindowSampler` whose epoch visits each window in proportion to its weight (module doc).

    ``table[i]`` is the window behind index i; ``weights`` the weight per window of the wrapped sampler.
    """

    def __init__(self, sampler: WindowSampler, weights: np.ndarray) -> None:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (len(sampler),) or np.any(w < 0) or not np.all(np.isfinite(w)):
            raise ValueError(f"WeightedWindows: weights must be {len(sampler)} finite values >= 0, got shape {w.shape}")
        total = float(w.sum())
        if total <= 0:
            raise ValueError("WeightedWindows: every window has weight 0")
        n = max(int(round(total)), 1)
        # Systematic sampling: n evenly spaced points over the cumulative weights; window i gets floor or ceil
        # of w_i * n / total of them (exactly w_i when every weight is a whole number).
        points = (np.arange(n) + 0.5) * (total / n)
        self.table = np.searchsorted(np.cumsum(w), points, side="right").astype(np.int64)
        self.sampler, self.weights = sampler, w
        self.store, self.episodes = sampler.store, sampler.episodes

    @classmethod
    def for_config(cls, sampler: WindowSampler, cfg: DataConfig, weight: bool = True) -> WindowSampler | WeightedWindows:
        """``sampler`` selected (``cfg.select``) and, with ``weight``, weighted (``cfg.intervention_weight``) by
        the store's interventions; the sampler itself when neither changes anything."""
        if not cfg.active or (not weight and cfg.select == "all"):
            return sampler
        marked = intervention_windows(sampler)
        if cfg.select == "interventions" and not marked.any():
            raise InvalidValueError(
                f"data.select=interventions: no window of store {sampler.store.path} overlaps a step a person drove "
                f"(the store has no 'intervention' steps in these episodes); record takeovers with robolearn deploy "
                f"--teleop, or use data.select=all")
        w = np.ones(len(sampler)) if cfg.select == "all" else marked.astype(np.float64)
        if weight:
            w = np.where(marked, w * cfg.intervention_weight, w)
        return cls(sampler, w)

    def __len__(self) -> int:
        return len(self.table)

    @property
    def reads_store(self) -> bool:
        return self.sampler.reads_store

    def counts(self) -> np.ndarray:
        """How often each window of the wrapped sampler is visited per epoch."""
        return np.bincount(self.table, minlength=len(self.sampler))

    def get_batch(self, windows: np.ndarray) -> dict[str, np.ndarray]:
        return self.sampler.get_batch(self.table[np.asarray(windows, dtype=np.int64)])

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        return {k: v[0] for k, v in self.get_batch(np.array([i])).items()}
