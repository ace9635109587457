"""Marker tracking for GelSight-style sensors: dark dots printed on the gel, seen by a camera; where each dot
moved from its place at rest is the shear the gel feels.

- `detect_markers(image)`: sub-pixel centroids (N, 2) as (x, y) of the dark dots (background removed by a
  wide blur, thresholded, connected components, centroids weighted by darkness);
- `arrange_grid(points)`: the reference dots as a (rows, cols, 2) grid (rows by y, each sorted by x);
- `MarkerTracker`: follows every reference dot from frame to frame (mutual nearest neighbours within
  ``max_step`` pixels of where it was last seen; a dot not found keeps its last place and is counted) and
  returns the displacement field (rows, cols, 2) in pixels, (dx, dy) per dot.

Example::

    tracker = MarkerTracker(reference_frame)            # dots at rest
    field = tracker.update(frame)                       # (rows, cols, 2) float32, pixels
"""

from __future__ import annotations

import cv2
import numpy as np

from robolearn.errors import InvalidValueError, UserError

__all__ = ["MarkerError", "MarkerTracker", "arrange_grid", "detect_markers"]


class MarkerError(UserError, ValueError):
    """The reference image does not show a full grid of markers."""


def _gray(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if image.ndim != 2:
        raise InvalidValueError(f"marker detection needs an (H, W) or (H, W, 3) image, got shape {image.shape}.")
    return image.astype(np.float32)


def detect_markers(image: np.ndarray, min_area: int = 4, max_area: int = 2000, threshold: float = 0.35,
                   background_sigma: float = 8.0) -> np.ndarray:
    """Centroids (N, 2) as (x, y) in pixels of the dark dots in `image` (uint8 RGB or gray).

    Args:
        min_area, max_area: blob areas (pixels above threshold) kept as markers.
        threshold: a pixel belongs to a dot when its darkness exceeds this fraction of the darkest dot's.
        background_sigma: width (pixels) of the blur that estimates the lit gel behind the dots.
    """
    gray = _gray(image)
    background = cv2.GaussianBlur(cv2.dilate(gray, np.ones((5, 5), np.uint8)), (0, 0), background_sigma)
    dark = np.clip(background - gray, 0, None)
    peak = float(dark.max())
    if peak <= 0:
        return np.zeros((0, 2))
    mask = (dark > threshold * peak).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    points = []
    for i in range(1, n):
        x, y, w, h, area = stats[i]
        if not (min_area <= area <= max_area):
            continue
        # darkness-weighted centroid over the blob and a 1-pixel rim: the dot's faint edge counts too
        x0, y0, x1, y1 = max(x - 1, 0), max(y - 1, 0), min(x + w + 1, gray.shape[1]), min(y + h + 1, gray.shape[0])
        weights = dark[y0:y1, x0:x1] * (cv2.dilate((labels[y0:y1, x0:x1] == i).astype(np.uint8),
                                                   np.ones((3, 3), np.uint8)) > 0)
        total = weights.sum()
        if total <= 0:
            continue
        ys, xs = np.mgrid[y0:y1, x0:x1]
        points.append(((weights * xs).sum() / total, (weights * ys).sum() / total))
    return np.array(points, dtype=np.float64).reshape(-1, 2)


def arrange_grid(points: np.ndarray, rows: int | None = None, cols: int | None = None) -> np.ndarray:
    """The dots as a (rows, cols, 2) grid: sorted by y into rows (a new row where y jumps by more than half
    the median spacing, or into `rows` equal rows when given), each row sorted by x."""
    points = np.asarray(points, np.float64).reshape(-1, 2)
    n = len(points)
    if n < 4:
        raise MarkerError(f"found {n} markers in the reference image; expected a grid of dark dots on the gel "
                          "(check the lighting and the camera's exposure).")
    order = points[np.argsort(points[:, 1])]
    if rows is not None:
        if n != rows * (cols or n // rows) or n % rows:
            raise MarkerError(f"found {n} markers in the reference image; expected rows x cols = {rows} x "
                              f"{cols or '?'} (is part of the gel outside the image?).")
        groups = np.split(order, rows)
    else:
        gaps = np.diff(order[:, 1])
        step = np.median(np.sort(gaps)[-max(1, int(np.sqrt(n)) - 1):])  # the row-to-row jumps are the largest
        groups = np.split(order, np.flatnonzero(gaps > step / 2) + 1)
    lengths = sorted({len(g) for g in groups})
    if len(lengths) != 1 or (cols is not None and lengths[0] != cols):
        raise MarkerError(f"the {n} markers of the reference image form rows of {lengths} dots; expected a full grid"
                          f"{f' of {cols} columns' if cols else ''} (is part of the gel outside the image?).")
    return np.stack([g[np.argsort(g[:, 0])] for g in groups])


class MarkerTracker:
    """Follows the markers of a reference frame (module docstring).

    Args:
        reference: the gel at rest (an image), or the reference grid (rows, cols, 2) itself.
        rows, cols: the grid's shape when known (checked against the reference).
        max_step: how far (pixels) a dot may move between two frames; default: 0.4 x the dot spacing.
        detect: keyword arguments of `detect_markers`.
    """

    def __init__(self, reference: np.ndarray, rows: int | None = None, cols: int | None = None,
                 max_step: float | None = None, **detect) -> None:
        self.detect = detect
        ref = np.asarray(reference)
        self.reference = ref.astype(np.float64) if ref.ndim == 3 and ref.shape[-1] == 2 else \
            arrange_grid(detect_markers(ref, **detect), rows, cols)
        self.shape = self.reference.shape[:2]
        spacing = np.median(np.diff(self.reference[..., 0], axis=1)) if self.shape[1] > 1 else \
            np.median(np.diff(self.reference[..., 1], axis=0))
        self.spacing = float(spacing)
        self.max_step = float(max_step) if max_step is not None else 0.4 * self.spacing
        self.reset()

    def reset(self) -> None:
        """Every dot back at its reference place."""
        self.positions = self.reference.reshape(-1, 2).copy()
        self.missed = 0      # dots not found in the last frame
        self.missed_total = 0

    def update(self, image: np.ndarray) -> np.ndarray:
        """The displacement field (rows, cols, 2) float32 (dx, dy pixels) of `image` from the reference."""
        found = detect_markers(image, **self.detect)
        prev = self.positions
        if len(found):
            d = np.linalg.norm(prev[:, None, :] - found[None, :, :], axis=-1)   # (N tracked, M found)
            nearest = d.argmin(axis=1)
            mutual = d.argmin(axis=0)[nearest] == np.arange(len(prev))
            ok = mutual & (d[np.arange(len(prev)), nearest] <= self.max_step)
            self.positions = prev.copy()
            self.positions[ok] = found[nearest[ok]]
            self.missed = int((~ok).sum())
        else:
            self.missed = len(prev)
        self.missed_total += self.missed
        return (self.positions - self.reference.reshape(-1, 2)).reshape(*self.shape, 2).astype(np.float32)
