import time

import numpy as np
import pytest

from robolearn.record import Recorder
from robolearn.store import Store, StoreWriter
from robolearn.store.info import validate_store
from tests.conftest import FEATURES, episode_frames


def test_ticks_become_episodes_with_events(tmp_path):
    path = tmp_path / "rec.zarr"
    w = StoreWriter(path, FEATURES, fps=10)
    rec = Recorder(w, fps=10, task="push", source="test")
    for e, n in enumerate([4, 3, 5]):
        rec.start_episode(seed=e)
        fr = episode_frames(e, n)
        for i in range(n):
            rec.add_tick({"state": fr["state"][i], "images/front": fr["images/front"][i]}, fr["action"][i], t=i * 0.1)
        if e == 1:
            rec.discard_episode()  # re-record: nothing of it is written
        else:
            rec.save_episode(success=True)
    assert rec.close() == [0, 1]
    w.close()
    s = Store.open(path)
    assert s.lengths.tolist() == [4, 5]
    np.testing.assert_array_equal(s.episode(1)["state"], episode_frames(2, 5)["state"])
    np.testing.assert_allclose(s.episodes["achieved_fps"], [10.0, 10.0])
    assert not s.episodes["rate_flagged"].any()


def test_rate_flag_and_errors_surface(tmp_path):
    w = StoreWriter(tmp_path / "r.zarr", FEATURES, fps=10)
    rec = Recorder(w, fps=10)
    fr = episode_frames(0, 21)
    rec.start_episode()
    for i in range(21):  # 21 frames over 2.5 s: 8 Hz against a declared 10 Hz
        rec.add_tick({"state": fr["state"][i], "images/front": fr["images/front"][i]}, fr["action"][i], t=i * 0.125)
    rec.save_episode()
    rec.start_episode()
    rec.add_tick({"state": fr["state"][0]}, fr["action"][0], t=0.0)  # missing camera key
    rec.save_episode()
    with pytest.raises(Exception, match="lacks key 'images/front'"):
        rec.close()
    w.close()
    s = Store.open(tmp_path / "r.zarr")
    assert s.n_episodes == 1 and bool(s.episodes["rate_flagged"][0])
    assert s.episodes["achieved_fps"][0] == pytest.approx(8.0)


def _wait_written(rec: Recorder, timeout: float = 30.0) -> None:
    t0 = time.monotonic()
    while rec.pending:
        assert time.monotonic() - t0 < timeout, "the recorder's writer never caught up"
        time.sleep(0.01)
    time.sleep(0.05)  # the last block taken off the queue is being written


def test_frames_stream_in_while_recording_and_discard_drops_them(tmp_path):
    path = tmp_path / "rec.zarr"
    w = StoreWriter(path, FEATURES, fps=10)
    rec = Recorder(w, fps=10)
    staged = path / "stage" / "images" / "front"  # frames wait here, one file each, until their shard is packed
    rec.start_episode(seed=0)
    fr = episode_frames(0, 30)
    for i in range(30):
        rec.add_tick({"state": fr["state"][i], "images/front": fr["images/front"][i]}, fr["action"][i], t=i / 10)
    _wait_written(rec)
    # before save_episode: every frame is on disk already (but frame 0, all zeros: the fill value, no file),
    # and no reader sees any of it
    assert sorted(int(p.name.split(".")[1]) for p in staged.glob("c.*")) == list(range(1, 30))
    assert Store.open(path).n_episodes == 0
    rec.discard_episode()
    rec.start_episode(seed=1)
    fr1 = episode_frames(1, 12)
    for i in range(12):
        rec.add_tick({"state": fr1["state"][i], "images/front": fr1["images/front"][i]}, fr1["action"][i], t=i / 10)
    rec.save_episode(success=False)
    rec.start_episode(seed=2)  # in progress when the recorder closes: dropped
    rec.add_tick({"state": fr["state"][0], "images/front": fr["images/front"][0]}, fr["action"][0], t=0.0)
    assert rec.close() == [0]
    assert len(rec.commit_latency_s) == 1 and 0 < rec.commit_latency_s[0] < 5.0
    w.close()
    s = Store.open(path)
    assert s.lengths.tolist() == [12] and s.episodes["seed"].tolist() == [1]
    for k, v in fr1.items():
        np.testing.assert_array_equal(s.episode(0)[k], v)
    assert not list(staged.glob("c.*"))  # the discarded take's files are gone, the saved episode packed:
    assert sorted(p.name for p in (path / "data" / "images" / "front").iterdir()) == ["c.0.0.0.0", "zarr.json"]
    assert validate_store(path)["ok"]


def test_a_bad_tick_drops_its_episode_and_recording_goes_on(tmp_path):
    w = StoreWriter(tmp_path / "r.zarr", FEATURES, fps=10)
    rec = Recorder(w, fps=10)
    fr = episode_frames(0, 8)
    rec.start_episode(seed=0)
    for i in range(8):
        state = np.full(3, np.inf, np.float32) if i == 5 else fr["state"][i]
        rec.add_tick({"state": state, "images/front": fr["images/front"][i]}, fr["action"][i], t=i / 10)
    rec.save_episode()
    _wait_written(rec)
    with pytest.raises(Exception, match="key 'state': frame 5 holds NaN or inf"):
        rec.start_episode(seed=1)  # the error surfaces on the next call
    rec.start_episode(seed=1)
    for i in range(4):
        rec.add_tick({"state": fr["state"][i], "images/front": fr["images/front"][i]}, fr["action"][i], t=i / 10)
    rec.save_episode()
    assert rec.close() == [0]
    w.close()
    s = Store.open(tmp_path / "r.zarr")
    assert s.lengths.tolist() == [4] and s.episodes["seed"].tolist() == [1]
    assert validate_store(tmp_path / "r.zarr")["ok"]


class _Calls:
    """A recorder stand-in that lists what settle_episode asked of it."""

    def __init__(self):
        self.calls = []

    def save_episode(self, **kwargs):
        self.calls.append(("save", kwargs))

    def discard_episode(self):
        self.calls.append(("discard", {}))


@pytest.mark.parametrize("event,kept,expect,call,counts", [
    ("save", True, (True, True, False), "save", {"episodes": 1, "frames": 7, "successes": 1}),
    ("save", False, (False, True, False), "discard", {"discarded": 1}),  # nothing recorded yet: dropped
    ("discard", True, (False, True, False), "discard", {"discarded": 1}),
    ("rerecord", True, (False, False, False), "discard", {"rerecorded": 1}),  # the same seed again
    ("quit", True, (False, False, True), "discard", {}),
])
def test_settle_episode_is_the_one_rule_for_episode_keys(event, kept, expect, call, counts):
    from robolearn.record.recorder import settle_episode

    zero = {"episodes": 0, "discarded": 0, "rerecorded": 0, "frames": 0, "successes": 0}
    rec, seen = _Calls(), dict(zero)
    done = settle_episode(event, kept, rec, seen, tally={"frames": 7, "successes": 1}, success=True, status="ok")
    assert (done.saved, done.next_seed, done.quit) == expect
    assert rec.calls == [(call, {"success": True, "status": "ok"} if call == "save" else {})]
    assert seen == {**zero, **counts}
    without = dict(zero)  # no recorder (record=False): the same counts and outcome
    assert settle_episode(event, kept, None, without, tally={"frames": 7, "successes": 1}) == done
    assert without == seen
