"""Recording: ticks from a control loop -> episodes -> the store's single writer."""

from robolearn.record.recorder import Recorder

__all__ = ["Recorder"]
