import numpy as np
import pytest

from robolearn.record import Recorder
from robolearn.store import Store, StoreWriter
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
