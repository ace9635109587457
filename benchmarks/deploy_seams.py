"""Seam metrics of the deploy benchmark (`benchmarks/deploy.py --part success`): which chunk planned each applied
action, and the steps and jerk at chunk switches against those inside chunks."""

from __future__ import annotations

import numpy as np

SEAM_METRIC_VERSION = 3
"""Bumped whenever ``seam_terms`` counts differently (2: the episode's start kept apart from the seams; 3: the
old chunk's own step at each switch, ``continuation``)."""


class Trace:
    """Per tick of an episode: the applied action, which chunk planned it (-1: a hold), a crash, and at a switch
    between chunks the step the old chunk itself planned into this tick (``continuation``; NaN elsewhere)."""

    def __init__(self, scheduler) -> None:
        self.scheduler = scheduler
        self.reset()

    def reset(self) -> None:
        self.actions, self.sources, self.continuation, self.crashed, self._executed = [], [], [], False, 0
        self._prev = None  # the planned action executed at the previous tick (None after a hold)

    def on_step(self, rec) -> None:
        s = self.scheduler
        executed = s.n_executed > self._executed
        self._executed = s.n_executed
        self.actions.append(np.asarray(rec.action, np.float64))
        self.sources.append(s.last.seq if executed else -1)
        self.continuation.append(own_step(self._prev, s.last) if executed else np.nan)
        self._prev = s.last if executed else None
        self.crashed = self.crashed or bool(rec.info.get("crashed", False))


def own_step(prev, now) -> float:
    """At a switch from the chunk that planned ``prev`` (the action executed at the tick before) to another one
    (``now``): the step that old chunk itself planned from ``prev`` on, ``|chunk[o + 1] - chunk[o]|`` -- what a
    join with no discontinuity of its own (the old plan followed across the switch) would have executed
    there. NaN when there is no switch between chunks or the old chunk planned nothing further."""
    if prev is None or prev.seq == now.seq or prev.result is None:
        return float("nan")
    chunk = np.asarray(prev.result.chunk, np.float64)
    o = prev.offset
    return float(np.linalg.norm(chunk[o + 1] - chunk[o])) if o + 1 < len(chunk) else float("nan")


def seam_terms(actions: np.ndarray, sources: np.ndarray, continuation: np.ndarray | None = None
               ) -> dict[str, list[float]]:
    """|a_t - a_{t-1}| at switches (the planning chunk changes, or a hold starts or ends) and within chunks;
    |jerk| (third difference) everywhere and where its window spans a switch; with ``continuation`` (per tick,
    `Trace`), the old chunk's own planned step at each switch between two chunks ("continuation").

    The episode's start is kept apart ("start", "start_jerk"): the step from the holds while the first chunk
    is computed (D ticks at delay D) onto its first action is no switch between chunks -- no joining method
    has a plan to continue there, every async method makes the same step -- and at D > 0 it is the largest
    step of an episode (velocity actions: from standstill to full speed). A hold later in the episode (the
    queue ran dry, or sync waiting for its next chunk) is a switch like any other."""
    out = {"seam": [], "within": [], "jerk": [], "seam_jerk": [], "start": [], "start_jerk": [], "within_jerk": [],
           "continuation": []}
    if len(actions) < 2:
        return out
    delta = np.linalg.norm(np.diff(actions, axis=0), axis=1)  # delta[t-1] = |a_t - a_{t-1}|
    switch = sources[1:] != sources[:-1]
    executed = np.flatnonzero(sources >= 0)
    first = int(executed[0]) if len(executed) else len(sources)  # tick of the episode's first action
    start = np.arange(len(switch)) < first  # delta[t-1] for t <= first: the leading holds, the step onto it
    chunk_switch = switch & ~start
    both_chunk = (sources[1:] >= 0) & ~switch
    out["seam"] = delta[chunk_switch].tolist()
    out["start"] = delta[switch & start].tolist()
    out["within"] = delta[both_chunk].tolist()
    if continuation is not None:
        own = np.asarray(continuation, np.float64)[1:][chunk_switch]
        out["continuation"] = own[~np.isnan(own)].tolist()
    if len(actions) >= 4:
        jerk = np.linalg.norm(actions[3:] - 3 * actions[2:-1] + 3 * actions[1:-2] - actions[:-3], axis=1)

        def spans(sw):  # jerk[j] covers steps t-2..t (t = j + 3): it spans a switch when any of them is one
            return sw[2:] | sw[1:-1] | sw[:-2]

        at_seam, at_start = spans(chunk_switch), spans(switch & start)
        out["jerk"] = jerk.tolist()
        out["seam_jerk"] = jerk[at_seam].tolist()
        out["start_jerk"] = jerk[at_start & ~at_seam].tolist()
        # windows spanning no switch: inside one chunk (the floor of seam jerk), or inside the leading holds
        # (zero jerk, D - 3 windows per episode; all an ensembling cell has, which switches every tick)
        out["within_jerk"] = jerk[~spans(switch)].tolist()
    return out


def seam_summary(terms: dict[str, list[float]]) -> dict:
    """Medians of the steps, the seam ratio (seam step median over within-chunk step median) and RMS jerks;
    ``*_with_start`` count the episode's start as a seam too (``seam_terms``). ``seamless_ratio``: the seam
    ratio of a join without a discontinuity of its own, the old chunks' own planned steps at the switches
    over the same within-chunk median -- the floor of ``seam_ratio`` for these chunks and switch points (a
    policy whose chunks get rougher toward their end scores above 1 there however well it joins)."""
    seam, within = np.asarray(terms["seam"]), np.asarray(terms["within"])
    jerk, sj = np.asarray(terms["jerk"]), np.asarray(terms["seam_jerk"])
    seam_all = np.concatenate([seam, np.asarray(terms.get("start", []))])
    sj_all = np.concatenate([sj, np.asarray(terms.get("start_jerk", []))])

    def med(x):
        return float(np.median(x)) if len(x) else None

    def rms(x):
        return float(np.sqrt(np.mean(x**2))) if len(x) else None

    def ratio(a, b):
        return a / b if a is not None and b else None

    out = {"n_seams": len(seam), "n_within": len(within), "n_starts": len(seam_all) - len(seam),
           "seam_delta_median": med(seam), "seam_delta_mean": float(seam.mean()) if len(seam) else None,
           "within_delta_median": med(within), "within_delta_mean": float(within.mean()) if len(within) else None,
           "start_delta_median": med(seam_all[len(seam):]), "rms_jerk": rms(jerk), "seam_rms_jerk": rms(sj),
           "within_rms_jerk": rms(np.asarray(terms.get("within_jerk", []))),
           "seam_rms_jerk_with_start": rms(sj_all)}
    out["seam_ratio"] = ratio(out["seam_delta_median"], out["within_delta_median"])
    out["seam_ratio_mean"] = ratio(out["seam_delta_mean"], out["within_delta_mean"])
    out["seam_ratio_with_start"] = ratio(med(seam_all), out["within_delta_median"])
    own = np.asarray(terms.get("continuation", []))
    out["n_continuation"] = len(own)
    out["seamless_delta_median"] = med(own)
    out["seamless_ratio"] = ratio(out["seamless_delta_median"], out["within_delta_median"])
    return out
