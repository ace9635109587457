import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
os.environ.setdefault("RAY_DISABLE_DOCKER_CPU_WARNING", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from robolearn.store import EpisodeMeta, Feature, StoreWriter  # noqa: E402

FEATURES = {
    "state": Feature((3,), "float32"),
    "images/front": Feature((8, 8, 3), "uint8"),
    "action": Feature((2,), "float32"),
}


def episode_frames(e: int, length: int) -> dict[str, np.ndarray]:
    """Frames whose values encode (episode, frame), so misplaced frames are detectable."""
    i = np.arange(length, dtype=np.float32)
    state = np.stack([e * 100 + i, i, np.full(length, e, np.float32)], 1)
    img = np.zeros((length, 8, 8, 3), np.uint8)
    img[..., 0] = e
    img[..., 1] = np.arange(length)[:, None, None] % 256
    action = np.stack([-(e * 100 + i), i * 0.5], 1).astype(np.float32)
    return {"state": state, "images/front": img, "action": action}


@pytest.fixture
def make_store(tmp_path):
    def _make(lengths=(5, 7, 4), name="s.zarr", tasks=None):
        path = tmp_path / name
        with StoreWriter(path, FEATURES, fps=10.0) as w:
            for e, n in enumerate(lengths):
                w.add_episode(episode_frames(e, n), None,
                              EpisodeMeta(task=(tasks or ["push"] * len(lengths))[e], success=e % 2 == 0, seed=e))
        return path

    return _make


@pytest.fixture
def terminal():
    """A pty: (master, slave) descriptors, closed afterwards; the slave is the terminal a device reads."""
    import pty

    master, slave = pty.openpty()
    yield master, slave
    os.close(master)
    os.close(slave)
