"""Synthetic GelSight-style images: a grid of dark Gaussian dots on a lit gel, warped by a known field.

A field is a function ``v(x, y) -> (vx, vy)`` on the output image: pixel (x, y) of the warped image shows the
reference at (x - vx, y - vy) (``cv2.remap``). The dot at rest at p0 therefore appears at the x solving
x = p0 + v(x); `true_displacement` solves it by fixed-point iteration (exact for smooth fields whose
gradient is well below 1), which is the ground truth a tracker is tested against.

`SyntheticGelSource` is a camera `FrameSource` of such images, with a contact pressing and dragging across
the gel (a Gaussian shear bump that circles the pad), for the registered ``synthetic-gelsight`` device.

Example::

    ref = render_markers((120, 160), grid=(6, 8), spacing=18)
    img = warp(ref, shear_bump(center=(80, 60), shift=(2.0, -1.0), sigma=30))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np

from robolearn_hardware.cameras.reader import FrameSource

__all__ = ["Field", "SyntheticGelSource", "grid_points", "render_markers", "rotation", "shear_bump",
           "true_displacement", "translation", "warp"]

Field = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def grid_points(size: Sequence[int], grid: Sequence[int], spacing: float) -> np.ndarray:
    """Dot centres at rest (rows, cols, 2) as (x, y), centred in an image of `size` (H, W)."""
    (h, w), (rows, cols) = size, grid
    xs = (w - 1) / 2 + (np.arange(cols) - (cols - 1) / 2) * spacing
    ys = (h - 1) / 2 + (np.arange(rows) - (rows - 1) / 2) * spacing
    return np.stack(np.meshgrid(xs, ys), axis=-1)


def render_markers(size: Sequence[int] = (120, 160), grid: Sequence[int] = (6, 8), spacing: float = 18.0,
                   sigma: float = 1.8, depth: float = 150.0, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """The gel at rest: (H, W, 3) uint8, a lit background with a soft vignette and dark Gaussian dots."""
    h, w = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    gel = 210.0 - 30.0 * (((x - w / 2) / w) ** 2 + ((y - h / 2) / h) ** 2)
    for cx, cy in grid_points(size, grid, spacing).reshape(-1, 2):
        gel -= depth * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * sigma ** 2))
    if noise:
        gel += np.random.default_rng(seed).normal(0, noise, gel.shape)
    img = np.clip(np.rint(gel), 0, 255).astype(np.uint8)
    return np.stack([img, img, img], axis=-1)


def warp(image: np.ndarray, field: Field) -> np.ndarray:
    """`image` warped by `field` (module docstring), bilinear."""
    h, w = image.shape[:2]
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    vx, vy = field(x, y)
    return cv2.remap(image, (x - vx).astype(np.float32), (y - vy).astype(np.float32), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def true_displacement(points: np.ndarray, field: Field, iterations: int = 60) -> np.ndarray:
    """Where each dot at rest (..., 2) appears after `warp(., field)`, minus where it was: (..., 2)."""
    p0 = np.asarray(points, np.float64)
    x = p0.copy()
    for _ in range(iterations):
        vx, vy = field(x[..., 0], x[..., 1])
        x = p0 + np.stack([vx, vy], axis=-1)
    return x - p0


def translation(dx: float, dy: float) -> Field:
    return lambda x, y: (np.full_like(x, dx, dtype=np.float64), np.full_like(y, dy, dtype=np.float64))


def rotation(center: Sequence[float], degrees: float) -> Field:
    """A small twist about `center` (as a press with torque makes)."""
    (cx, cy), a = center, np.deg2rad(degrees)
    c, s = np.cos(a), np.sin(a)
    return lambda x, y: ((c - 1) * (x - cx) - s * (y - cy), s * (x - cx) + (c - 1) * (y - cy))


def shear_bump(center: Sequence[float], shift: Sequence[float], sigma: float) -> Field:
    """A contact dragging the gel by `shift` at `center`, fading as a Gaussian of width `sigma` pixels."""
    (cx, cy), (sx, sy) = center, shift

    def field(x, y):
        g = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * sigma ** 2))
        return sx * g, sy * g
    return field


class SyntheticGelSource(FrameSource):
    """Frames of the gel with a contact circling it once every `period` seconds, dragging it by `shift` pixels."""

    def __init__(self, size: Sequence[int] = (120, 160), grid: Sequence[int] = (6, 8), spacing: float = 18.0,
                 fps: float = 30.0, shift: float = 2.5, period: float = 2.0, noise: float = 2.0, seed: int = 0) -> None:
        self.size = (int(size[0]), int(size[1]))
        self.fps = float(fps)
        self.grid, self.spacing = (int(grid[0]), int(grid[1])), float(spacing)
        self.shift, self.period, self.noise = float(shift), float(period), float(noise)
        self.reference = render_markers(self.size, self.grid, self.spacing)
        self._rng = np.random.default_rng(seed)
        self.n = 0

    def open(self) -> None:
        self.n = 0

    def field(self, t: float) -> Field:
        h, w = self.size
        a = 2 * np.pi * t / self.period
        center = (w / 2 + 0.25 * w * np.cos(a), h / 2 + 0.25 * h * np.sin(a))
        # no contact during the first tenth of a turn: the reference the sensor takes on connect is at rest
        amp = 0.0 if (t / self.period) % 1.0 < 0.1 else self.shift
        return shear_bump(center, (-amp * np.sin(a), amp * np.cos(a)), 0.2 * w)

    def grab(self) -> np.ndarray:
        t = self.n / self.fps
        self.n += 1
        frame = warp(self.reference, self.field(t)).astype(np.float64)
        if self.noise:
            frame += self._rng.normal(0, self.noise, frame.shape[:2])[..., None]
        return np.clip(np.rint(frame), 0, 255).astype(np.uint8)
