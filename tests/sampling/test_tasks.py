import numpy as np
import pytest

from robolearn.sampling import WindowSampler
from robolearn.sampling.tasks import TaskEmbeddingSampler, with_task_embeddings
from robolearn.store import Store


class _Cfg:
    use_language = False


class _Policy:
    config = _Cfg()
    uses_language = False


def test_each_window_gets_its_episode_row(make_store):
    store = Store.open(make_store((3, 2, 4)))
    table = np.arange(3 * 5, dtype=np.float32).reshape(3, 5)
    s = TaskEmbeddingSampler(WindowSampler(store, ["state"], 2, 3), table)
    b = s.get_batch(np.array([0, 3, 8]))
    np.testing.assert_array_equal(b["task_embedding"], table[[0, 1, 2]])
    assert len(s) == 9
    with pytest.raises(ValueError, match="3 episodes"):
        TaskEmbeddingSampler(WindowSampler(store, ["state"], 2, 3), table[:2])


def test_policies_without_language_are_untouched(make_store):
    store = Store.open(make_store((3,)))
    s = WindowSampler(store, ["state"], 2, 3)
    assert with_task_embeddings(_Policy(), store, s, None) == (s, None)
