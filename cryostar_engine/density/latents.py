"""Which latent points get a volume: k-means states and PC trajectories (spec §5).

A thin adapter over :mod:`cryostar_engine.analysis` (the same k-means states and PC trajectories
that ``analyze`` reports for stage 1), so the density volumes and the latent analysis name the
same particles: ``vol_kmeans_003.mrc`` is the density of k-means state 3 of ``analyze``.  The PCs
are those of the decoded structures, as ``analyze``'s, when the stage-1 decoder is given
(:func:`cryostar_engine.atom.run_decoder.run_decoder`), else of z.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..analysis import fit_pca, kmeans_states, pc_trajectory
from ..analysis.pca import fit_structure_pca

__all__ = ["LatentSeries", "latent_points"]


@dataclass
class LatentSeries:
    """Latent points of one output series.

    indices : ``(n,)`` int64 star rows whose z are the points (snapped to particles).
    z : ``(n, z_dim)`` float32 latent points (= ``z_all[indices]``).
    """

    indices: np.ndarray
    z: np.ndarray


def latent_points(z: np.ndarray, n_clusters: int = 10, n_pcs: int = 3, n_points: int = 10,
                  seed: int = 0, decode=None) -> dict[str, LatentSeries]:
    """k-means states and PC trajectories of ``z`` ``(N, z_dim)``, snapped to particles.

    * ``kmeans``: :func:`~cryostar_engine.analysis.kmeans_states` with k = n_clusters (fewer
      when z has fewer distinct rows), random_state = seed, dendrogram order.
    * ``pca_k`` (k = 1 … min(n_pcs, z_dim)): :func:`~cryostar_engine.analysis.pc_trajectory`,
      ``n_points`` from the 5th to the 95th percentile.  None when z has no variance.  With
      ``decode`` (the stage-1 decoder) the PCs are those of the decoded structures, as in
      ``analyze``; else of z.
    """
    z = np.asarray(z, dtype=np.float32)
    k = min(n_clusters, len(np.unique(z, axis=0)))
    states = kmeans_states(z, k=k, random_state=seed)
    out = {"kmeans": LatentSeries(states.centre_indices, z[states.centre_indices])}
    if not np.any(z.std(0) > 0):
        return out
    pca = fit_structure_pca(z, decode) if decode is not None else fit_pca(z)
    for pc in range(1, min(n_pcs, pca.n_components) + 1):
        traj = pc_trajectory(z, pca, pc, n_points=n_points)
        out[f"pca_{pc}"] = LatentSeries(traj.indices, z[traj.indices])
    return out
