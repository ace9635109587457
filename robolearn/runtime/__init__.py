"""Real-time execution: clocks, action scheduling, inference backends, the safety filter, the watchdog,
action sources and the control loop.

Example::

    from robolearn.runtime import ControlLoop, PolicySource, RealClock

    loop = ControlLoop(env, PolicySource(policy), RealClock(env.unwrapped.control_hz))
    result = loop.run_episode(seed=0)
"""

from robolearn.runtime.backends import (
    ChunkPrefix,
    ChunkRequest,
    ChunkResult,
    InferenceBackend,
    InlineBackend,
    SimulatedLatencyBackend,
    ThreadBackend,
)
from robolearn.runtime.clock import Clock, RealClock, VirtualClock
from robolearn.runtime.hold import hold_action
from robolearn.runtime.loop import ControlLoop, EpisodeResult, StepRecord
from robolearn.runtime.safety import SafetyConfig, SafetyFilter, SafetyReport, load_safety_config
from robolearn.runtime.scheduler import (
    ActionScheduler,
    ChunkScheduler,
    DelayEstimator,
    EnsembleJoin,
    NaiveJoin,
    PlannedAction,
    RTCJoin,
)
from robolearn.runtime.sources import ActionSource, ExpertSource, PolicySource
from robolearn.runtime.watchdog import Watchdog, WatchdogThread

__all__ = [
    "ActionScheduler",
    "ActionSource",
    "ChunkPrefix",
    "ChunkRequest",
    "ChunkResult",
    "ChunkScheduler",
    "Clock",
    "ControlLoop",
    "DelayEstimator",
    "EnsembleJoin",
    "EpisodeResult",
    "ExpertSource",
    "InferenceBackend",
    "InlineBackend",
    "NaiveJoin",
    "PlannedAction",
    "PolicySource",
    "RTCJoin",
    "RealClock",
    "SafetyConfig",
    "SafetyFilter",
    "SafetyReport",
    "SimulatedLatencyBackend",
    "StepRecord",
    "ThreadBackend",
    "VirtualClock",
    "Watchdog",
    "WatchdogThread",
    "hold_action",
    "load_safety_config",
]
