"""k-means states of the latent space, snapped to particles and ordered by a dendrogram.

1. sklearn ``KMeans(n_clusters=k, n_init=10, random_state=seed)`` on z (other settings default).
2. Each centre is replaced by the nearest particle's z (distinct particles for distinct centres).
3. The snapped centres are reordered by the leaf order of an average-linkage, Euclidean
   hierarchical clustering (``scipy.cluster.hierarchy.linkage`` + ``leaves_list``), so that
   similar states get neighbouring numbers.  Cluster ``c`` (0 … k−1) is the ``c``-th leaf.
4. Every particle's label is its nearest snapped centre (Euclidean in z), in that numbering.
   This is what ``labels.npy``, the figures, the file names and ``export-subset`` all use.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.cluster.hierarchy import leaves_list, linkage
from sklearn.cluster import KMeans

from ..errors import InputError
from .neighbours import nearest_of, nearest_unique_rows
from .pca import check_latent

__all__ = ["KMeansStates", "kmeans_states", "dendrogram_order"]


@dataclass(frozen=True)
class KMeansStates:
    """k-means result in dendrogram order.

    Attributes
    ----------
    centre_indices : ``(k,)`` int64 particle rows whose z are the centres (0-based, star order).
    centres : ``(k, D)`` ``z[centre_indices]``.
    kmeans_centres : ``(k, D)`` the raw k-means centres, in the same order.
    labels : ``(N,)`` int64, each particle's nearest snapped centre, ``0 … k-1``.
    counts : ``(k,)`` int64 particles per cluster.
    """

    centre_indices: np.ndarray
    centres: np.ndarray
    kmeans_centres: np.ndarray
    labels: np.ndarray
    counts: np.ndarray

    @property
    def k(self) -> int:
        return len(self.centres)


def dendrogram_order(centres: np.ndarray) -> np.ndarray:
    """Leaf order ``(k,)`` of an average-linkage Euclidean clustering of ``(k, D)`` centres."""
    if len(centres) < 2:
        return np.arange(len(centres))
    return leaves_list(linkage(np.asarray(centres, np.float64), method="average",
                               metric="euclidean")).astype(np.int64)


def kmeans_states(z: np.ndarray, k: int = 10, random_state: int = 0,
                  n_init: int = 10) -> KMeansStates:
    """Cluster ``(N, D)`` latents into ``k`` states (see the module docstring)."""
    z = check_latent(z)
    if not 1 <= k <= len(z):
        raise InputError(f"--k must be between 1 and the number of particles ({len(z)}), got {k}")
    n_distinct = len(np.unique(z, axis=0))
    if k > n_distinct:
        raise InputError(f"--k {k} is more than the {n_distinct} distinct latents in z")
    km = KMeans(n_clusters=k, n_init=n_init, random_state=random_state).fit(z)
    raw = km.cluster_centers_
    snapped = nearest_unique_rows(raw, z)
    order = dendrogram_order(z[snapped])
    idx = snapped[order]
    labels = nearest_of(z, z[idx])
    return KMeansStates(centre_indices=idx, centres=z[idx], kmeans_centres=raw[order],
                        labels=labels, counts=np.bincount(labels, minlength=k).astype(np.int64))
