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
