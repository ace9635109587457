import gymnasium
import pytest


@pytest.fixture
def make(request):
    """`make(env_id=None, **kwargs)`: gymnasium.make of the test module's `ENV_ID` (or `env_id`); every env
    made is closed after the test."""
    envs = []

    def _make(env_id=None, **kwargs):
        env = gymnasium.make(env_id or request.module.ENV_ID, **kwargs)
        envs.append(env)
        return env

    yield _make
    for env in envs:
        env.close()


def check_applied_action_and_stamps(env, asked, applied, latency: dict[str, float]) -> None:
    """One step with an out-of-range action: info["action"] is the clipped action the env applied (float32),
    and info["timestamps"] stamps every observation key with the control time minus its declared latency
    (`robolearn.env.stamps`), at reset and after the step."""
    import numpy as np

    base = env.unwrapped
    obs, info = env.reset(seed=0)
    keys = set(obs)
    assert set(info["timestamps"]) == keys
    assert "action" not in info
    for key in keys:
        assert info["timestamps"][key] == -latency.get(key, 0.0)
    obs, _, _, _, info = env.step(np.asarray(asked, np.float32))
    assert info["action"].dtype == np.float32
    np.testing.assert_array_equal(info["action"], np.asarray(applied, np.float32))
    assert base.action_space.contains(info["action"])
    period = 1.0 / base.control_hz
    assert set(info["timestamps"]) == keys
    for key in keys:
        assert info["timestamps"][key] == period - latency.get(key, 0.0), key
    assert base.sensor_latency_s == {k: latency.get(k, 0.0) for k in keys}
