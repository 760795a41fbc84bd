"""Which latent points get a volume: k-means centres and PC trajectories (spec §5).

STAND-IN: the shared latent analysis lives in :mod:`cryostar_engine.analysis` (being written by
another engineer).  Until it lands, :func:`latent_points` is the single function the density
stage calls; swap its body for theirs without touching the callers.  Contract: it returns an
ordered ``{series_name: LatentSeries}`` with ``series_name`` in ``"kmeans"``, ``"pca_1"``, …
and every point snapped to an actual particle's z (``indices`` are star rows).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["LatentSeries", "latent_points"]


@dataclass
class LatentSeries:
    """Latent points of one output series.

    indices : ``(n,)`` int64 star rows whose z are the points (snapped to particles).
    z : ``(n, z_dim)`` float32 latent points (= ``z_all[indices]``).
    """

    indices: np.ndarray
    z: np.ndarray


def _snap(z_all: np.ndarray, points: np.ndarray) -> np.ndarray:
    d2 = ((points[:, None, :] - z_all[None, :, :]) ** 2).sum(-1)
    return d2.argmin(1).astype(np.int64)


def latent_points(z: np.ndarray, n_clusters: int = 10, n_pcs: int = 3, n_points: int = 10,
                  seed: int = 0) -> dict[str, LatentSeries]:
    """k-means centres and PC trajectories of ``z`` ``(N, z_dim)``, snapped to particles.

    * ``kmeans``: sklearn KMeans (k = min(n_clusters, N), n_init = 10, random_state = seed),
      centres ordered by their first principal-component score.
    * ``pca_k`` (k = 1 … min(n_pcs, z_dim)): ``n_points`` points on the line through the mean
      along PC k, from the 5th to the 95th percentile of the PC-k scores.
    """
    from sklearn.cluster import KMeans

    z = np.asarray(z, dtype=np.float64)
    mean = z.mean(0)
    _, _, vt = np.linalg.svd(z - mean, full_matrices=False)
    out: dict[str, LatentSeries] = {}
    k = min(n_clusters, len(z))
    centres = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(z).cluster_centers_
    centres = centres[np.argsort((centres - mean) @ vt[0])]
    idx = _snap(z, centres)
    out["kmeans"] = LatentSeries(idx, z[idx].astype(np.float32))
    for pc in range(min(n_pcs, z.shape[1])):
        scores = (z - mean) @ vt[pc]
        t = np.linspace(np.percentile(scores, 5), np.percentile(scores, 95), n_points)
        idx = _snap(z, mean + t[:, None] * vt[pc][None, :])
        out[f"pca_{pc + 1}"] = LatentSeries(idx, z[idx].astype(np.float32))
    return out
