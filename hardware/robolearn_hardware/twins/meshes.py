"""Lighter meshes for rendering: binary STL in, vertex-clustered triangles out.

The SO-101's CAD meshes hold ~320k triangles; software GL (llvmpipe, what a headless machine without a GPU
renders with) needs ~0.1 s a frame for them. Clustering the vertices on a ``cell``-sized grid (each cluster
becomes its mean, triangles that collapse are dropped) keeps the silhouette to about a cell and cuts the
triangles ~20x. The twins use this for the picture only: the inertias are the MJCF's own, and contacts are off.

Example::

    triangles = read_stl(path)                       # (F, 3, 3) float32, metres
    vertices, faces = simplify(triangles, 0.0015)    # (V, 3) float32, (F', 3) int32
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["read_stl", "simplify"]

_TRIANGLE = np.dtype([("normal", "<f4", 3), ("v", "<f4", (3, 3)), ("attr", "<u2")])


def read_stl(path: str | Path) -> np.ndarray:
    """The triangles (F, 3 corners, xyz) of a binary STL, float32."""
    data = Path(path).read_bytes()
    if len(data) < 84:
        raise ValueError(f"{path} is too short for a binary STL ({len(data)} bytes)")
    n = int(np.frombuffer(data, "<u4", 1, 80)[0])
    if len(data) != 84 + n * _TRIANGLE.itemsize:
        raise ValueError(f"{path} is not a binary STL: {n} triangles need {84 + n * _TRIANGLE.itemsize} bytes, "
                         f"the file has {len(data)}")
    return np.frombuffer(data, _TRIANGLE, n, 84)["v"].copy()


def _row_keys(rows: np.ndarray) -> np.ndarray:
    """One int64 per row of small non-negative ints (each below 2**21), for a fast 1-D unique."""
    rows = rows.astype(np.int64)
    return (rows[:, 0] << 42) | (rows[:, 1] << 21) | rows[:, 2]


def simplify(triangles: np.ndarray, cell: float) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (V, 3) and faces (F, 3) of ``triangles`` (F, 3, 3) with the corners in each ``cell``-sized grid
    cube merged into their mean; collapsed and repeated faces dropped."""
    corners = triangles.reshape(-1, 3).astype(np.float64)
    grid = np.floor(corners / cell).astype(np.int64)
    grid -= grid.min(axis=0)
    if grid.max() >= 1 << 21:
        raise ValueError(f"a mesh {grid.max() * cell:.1f} m across is too large for a {cell} m grid")
    _, cluster_of, counts = np.unique(_row_keys(grid), return_inverse=True, return_counts=True)
    cluster_of = cluster_of.ravel()
    merged = np.stack([np.bincount(cluster_of, corners[:, k], len(counts)) for k in range(3)], axis=1) / counts[:, None]
    f = cluster_of.reshape(-1, 3)
    f = f[(f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])]
    _, first = np.unique(_row_keys(np.sort(f, axis=1)), return_index=True)
    f = f[np.sort(first)]
    used, f = np.unique(f, return_inverse=True)
    return merged[used].astype(np.float32), f.reshape(-1, 3).astype(np.int32)
