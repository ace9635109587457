"""Evaluation: policy rollouts (in process or on Ray actors), success-rate intervals, videos.

Example::

    from robolearn.eval import evaluate

    result = evaluate(policy, "robolearn/PushT-v0", episodes=50, video_path="eval.mp4")
    print(f"{result.success_rate:.2f} [{result.ci95[0]:.2f}, {result.ci95[1]:.2f}]")
"""

from robolearn.eval.metrics import wilson_interval
from robolearn.eval.rollout import EvalResult, evaluate
from robolearn.eval.video import tile_episodes, write_video

__all__ = ["EvalResult", "evaluate", "tile_episodes", "wilson_interval", "write_video"]
