import time

import numpy as np
from robolearn.record import Recorder
from robolearn.record.recorder import tick_counters
from robolearn.store import Feature, Store, StoreWriter
from tests.conftest import FEATURES, episode_frames


def test_add_tick_never_blocks_while_commits_run(tmp_path, monkeypatch):
    # Behaviour, not speed (the 1 ms p99 budget is measured in benchmarks/store.py): every commit is
    # made to take 0.3 s, as on slow storage; neither add_tick nor save_episode may wait for one.
    slow = 0.3
    real_commit = Recorder._commit

    def slow_commit(self, *args):
        time.sleep(slow)
        return real_commit(self, *args)

    monkeypatch.setattr(Recorder, "_commit", slow_commit)
    feats = {f"images/cam{c}": Feature((240, 320, 3), "uint8", "jpeg", 90) for c in range(3)}
    feats |= {"state": Feature((14,), "float32"), "action": Feature((7,), "float32")}
    w = StoreWriter(tmp_path / "r.zarr", feats, fps=30)
    rec = Recorder(w, fps=30)
    yy, xx = np.mgrid[:240, :320]
    cams = [np.stack([np.stack([(xx + 8 * i + c) % 256, yy % 256, (xx + yy) % 256], -1).astype(np.uint8)
                      for i in range(8)]) for c in range(3)]
    waits, period = [], 1 / 30
    for ep in range(4):  # each save_episode starts a commit that overlaps the next episode
        rec.start_episode(seed=ep)
        for i in range(20):
            obs = {f"images/cam{c}": cams[c][i % 8].copy() for c in range(3)}
            obs["state"] = np.full(14, i, np.float32)
            t0 = time.perf_counter()
            rec.add_tick(obs, np.full(7, -i, np.float32), t=ep * 10 + i * period)
            waits.append(time.perf_counter() - t0)
            time.sleep(period / 3)
        t0 = time.perf_counter()
        rec.save_episode(success=True)
        waits.append(time.perf_counter() - t0)
    assert rec.close() == list(range(4))
    w.close()
    assert max(waits) < slow / 3, f"a call waited {max(waits) * 1e3:.0f} ms: it blocked on a commit"
    assert min(rec.commit_latency_s) >= slow  # the commits really were slow
    s = Store.open(tmp_path / "r.zarr")
    assert s.lengths.tolist() == [20] * 4
    assert s.episode(3, ["state"])["state"][19, 0] == 19


def test_tick_counters():
    assert tick_counters(np.arange(10) / 10.0, 10) == (0, 0)  # float jitter is not lateness
    # 0.25 s gap at 10 Hz: one late tick, one tick missing; 0.32 s gap: late, two missing.
    assert tick_counters(np.array([0, 0.1, 0.2, 0.45, 0.55, 0.87]), 10) == (2, 3)
    assert tick_counters(np.array([0, 0.13, 0.2]), 10) == (0, 0)  # within half a period of its slot


def test_late_and_dropped_are_stored(tmp_path):
    w = StoreWriter(tmp_path / "r.zarr", FEATURES, fps=10)
    rec = Recorder(w, fps=10)
    fr = episode_frames(0, 6)
    times = [0.0, 0.1, 0.2, 0.5, 0.6, 0.7]  # a 0.3 s stall: one late tick, two ticks dropped
    rec.start_episode()
    for i, t in enumerate(times):
        rec.add_tick({"state": fr["state"][i], "images/front": fr["images/front"][i]}, fr["action"][i], t=t)
    rec.save_episode()
    rec.start_episode()
    for i in range(4):
        rec.add_tick({"state": fr["state"][i], "images/front": fr["images/front"][i]}, fr["action"][i], t=i / 10)
    rec.save_episode(dropped=3, late=1)  # the caller's own counts (camera driver, control loop) are kept
    rec.close()
    w.close()
    s = Store.open(tmp_path / "r.zarr")
    assert s.episodes["late_frames"].tolist() == [1, 1]
    assert s.episodes["dropped_frames"].tolist() == [2, 3]
