"""Snapping points of latent space onto real particles (nearest neighbour in z, Euclidean)."""
from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

__all__ = ["nearest_rows", "nearest_unique_rows", "nearest_of"]


def nearest_rows(points: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Row of ``z`` nearest to each point.

    Parameters
    ----------
    points : ``(M, D)`` latent points.
    z : ``(N, D)`` particle latents.

    Returns
    -------
    ``(M,)`` int64 indices into ``z`` (0-based particle rows).
    """
    _, idx = cKDTree(z).query(np.asarray(points, np.float64), k=1)
    return np.asarray(idx, np.int64).reshape(-1)


def nearest_unique_rows(points: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Like :func:`nearest_rows`, but no two points get the same particle.

    Points are served in order; a point whose nearest particle is taken gets its nearest free
    one.  Used for cluster centres, which must be distinct states.  ``M ≤ N`` is required.
    """
    points = np.asarray(points, np.float64)
    m, n = len(points), len(z)
    if m > n:
        raise ValueError(f"cannot snap {m} points onto {n} particles uniquely")
    _, cand = cKDTree(z).query(points, k=min(m, n))
    cand = np.asarray(cand, np.int64).reshape(m, -1)
    taken: set[int] = set()
    out = np.empty(m, np.int64)
    for i in range(m):
        out[i] = next(int(c) for c in cand[i] if int(c) not in taken)
        taken.add(int(out[i]))
    return out


def nearest_of(z: np.ndarray, centres: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """Index of the nearest centre for every row of ``z``.

    Parameters
    ----------
    z : ``(N, D)``.
    centres : ``(K, D)``.

    Returns
    -------
    ``(N,)`` int64 in ``0 … K-1`` (ties go to the lower index).
    """
    z = np.asarray(z, np.float64)
    centres = np.asarray(centres, np.float64)
    out = np.empty(len(z), np.int64)
    for s in range(0, len(z), chunk):
        d2 = ((z[s:s + chunk, None, :] - centres[None]) ** 2).sum(-1)
        out[s:s + chunk] = d2.argmin(1)
    return out
