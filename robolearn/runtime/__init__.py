"""Real-time execution: clocks, action scheduling, action sources and the control loop.

Example::

    from robolearn.runtime import ControlLoop, PolicySource, RealClock

    loop = ControlLoop(env, PolicySource(policy), RealClock(env.unwrapped.control_hz))
    result = loop.run_episode(seed=0)
"""

from robolearn.runtime.clock import Clock, RealClock, VirtualClock
from robolearn.runtime.hold import hold_action
from robolearn.runtime.loop import ControlLoop, EpisodeResult, StepRecord
from robolearn.runtime.scheduler import ActionScheduler
from robolearn.runtime.sources import ActionSource, ExpertSource, PolicySource

__all__ = [
    "ActionScheduler",
    "ActionSource",
    "Clock",
    "ControlLoop",
    "EpisodeResult",
    "ExpertSource",
    "PolicySource",
    "RealClock",
    "StepRecord",
    "VirtualClock",
    "hold_action",
]
