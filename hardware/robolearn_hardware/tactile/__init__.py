"""GelSight-style tactile sensing: a camera sees dark markers on a gel; their displacement field is
``tactile/<sensor>`` (rows, cols, 2). `markers` detects and tracks them, `sensor.GelSightSensor` is the device,
`synthetic` renders gels warped by known fields (tests, demos). Registered under the ``robolearn.devices``
entry points: ``make_device("gelsight", name="left", device=2, grid=(7, 9))``,
``make_device("synthetic-gelsight", name="left")``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from robolearn_hardware.cameras import ThreadedCamera, opencv_camera

from .markers import MarkerError, MarkerTracker, arrange_grid, detect_markers
from .sensor import GelSightSensor
from .synthetic import SyntheticGelSource, render_markers, true_displacement, warp

__all__ = ["GelSightSensor", "MarkerError", "MarkerTracker", "SyntheticGelSource", "arrange_grid", "detect_markers",
           "gelsight", "register", "render_markers", "synthetic_gelsight", "true_displacement", "warp"]


def gelsight(name: str = "gel", device: int | str = 0, grid: Sequence[int] = (7, 9), size: Sequence[int] = (240, 320),
             fps: float = 25.0, max_displacement: float = 20.0, **detect: Any) -> GelSightSensor:
    """A GelSight-style sensor whose camera is UVC device `device` (index or /dev/videoN) through OpenCV."""
    return GelSightSensor(name, opencv_camera(device, name=f"{name}_camera", size=size, fps=fps), grid,
                          max_displacement, **detect)


def synthetic_gelsight(name: str = "gel", grid: Sequence[int] = (6, 8), size: Sequence[int] = (120, 160),
                       spacing: float = 18.0, fps: float = 30.0, shift: float = 2.5, period: float = 2.0,
                       max_displacement: float = 20.0) -> GelSightSensor:
    """A sensor over `SyntheticGelSource`: a contact dragging the gel round in circles (demos, tests)."""
    source = SyntheticGelSource(size, grid, spacing, fps, shift, period)
    return GelSightSensor(name, ThreadedCamera(f"{name}_camera", source, max_age=1.0), grid, max_displacement)


def register() -> dict[str, Callable[..., Any]]:
    """Device ids of the tactile sensors (the ``robolearn.devices`` entry point)."""
    return {"gelsight": gelsight, "synthetic-gelsight": synthetic_gelsight}
