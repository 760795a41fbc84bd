"""PCA of the latent space and trajectories along principal components.

A trajectory along PC k runs through the mean of z: ``n_points`` scores evenly spaced from the
``lo``-th to the ``hi``-th percentile of the PC-k scores, every other PC at 0.  Each point is then
**snapped to the nearest real particle's z** (Euclidean in z), so every structure shown is the
decoding of a latent that some particle actually has (CryoSTAR's convention).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.decomposition import PCA

from ..errors import InputError
from ..validate.arrays import check_latent_array
from .neighbours import nearest_rows

__all__ = ["PcaResult", "Trajectory", "fit_pca", "pc_trajectory", "check_latent"]


@dataclass(frozen=True)
class PcaResult:
    """A fitted PCA of ``z`` (centred, not whitened).

    Attributes
    ----------
    mean : ``(D,)`` mean latent.
    components : ``(C, D)`` unit PC axes (rows), sorted by explained variance.
    explained_variance : ``(C,)`` variance of each PC's scores.
    explained_variance_ratio : ``(C,)`` fraction of the total variance.
    scores : ``(N, C)`` PC scores of every particle, ``(z - mean) @ components.T``.
    """

    mean: np.ndarray
    components: np.ndarray
    explained_variance: np.ndarray
    explained_variance_ratio: np.ndarray
    scores: np.ndarray

    @property
    def n_components(self) -> int:
        return len(self.components)

    def transform(self, z: np.ndarray) -> np.ndarray:
        """``(M, D)`` latents → ``(M, C)`` scores."""
        return (np.asarray(z, np.float64) - self.mean) @ self.components.T

    def inverse_transform(self, scores: np.ndarray) -> np.ndarray:
        """``(M, C)`` scores → ``(M, D)`` latents."""
        return np.asarray(scores, np.float64) @ self.components + self.mean


@dataclass(frozen=True)
class Trajectory:
    """Points along one PC, snapped to particles.

    Attributes
    ----------
    pc : 1-based PC number.
    percentiles : ``(lo, hi)`` percentiles of the PC scores spanned.
    target_scores : ``(P,)`` evenly spaced PC-``pc`` scores (before snapping).
    target_z : ``(P, D)`` the corresponding points on the line through the mean.
    indices : ``(P,)`` int64 particle rows nearest to each target (0-based, star order).
    z : ``(P, D)`` the particles' latents, ``z_all[indices]``.
    """

    pc: int
    percentiles: tuple
    target_scores: np.ndarray
    target_z: np.ndarray
    indices: np.ndarray
    z: np.ndarray


def check_latent(z, what: str = "z") -> np.ndarray:
    """Return ``z`` as ``(N, D)`` float64 or raise :class:`InputError` (bad shape or dtype, NaN,
    < 2 rows): :func:`~cryostar_engine.validate.arrays.check_latent_array`."""
    return check_latent_array(z, what, min_rows=2, dtype=np.float64)


def fit_pca(z: np.ndarray) -> PcaResult:
    """PCA of ``(N, D)`` latents with ``min(N, D)`` components (sklearn, exact SVD).

    Signs follow sklearn's deterministic ``svd_flip``, so refitting the same z gives the same
    scores.  Raises :class:`InputError` when z has no variance.
    """
    z = check_latent(z)
    if not np.any(z.std(0) > 0):
        raise InputError("z: all particles have the same latent; the run learned nothing to analyse")
    pca = PCA(n_components=min(z.shape), svd_solver="full").fit(z)
    return PcaResult(mean=pca.mean_.copy(), components=pca.components_.copy(),
                     explained_variance=pca.explained_variance_.copy(),
                     explained_variance_ratio=pca.explained_variance_ratio_.copy(),
                     scores=pca.transform(z))


def pc_trajectory(z: np.ndarray, pca: PcaResult, pc: int, n_points: int = 10,
                  percentiles=(5.0, 95.0)) -> Trajectory:
    """Trajectory along the 1-based ``pc``: see the module docstring.

    Parameters
    ----------
    z : ``(N, D)`` particle latents (the ones ``pca`` was fitted on).
    pca : the fitted PCA.
    pc : 1-based PC number, ``1 ≤ pc ≤ pca.n_components``.
    n_points : number of points (≥ 2).
    percentiles : ``(lo, hi)`` in percent.
    """
    z = check_latent(z)
    if not 1 <= pc <= pca.n_components:
        raise InputError(f"PC {pc} does not exist: the latent space has {pca.n_components} PCs")
    if n_points < 2:
        raise InputError(f"--points must be at least 2, got {n_points}")
    lo, hi = np.percentile(pca.scores[:, pc - 1], percentiles)
    target_scores = np.linspace(lo, hi, n_points)
    coords = np.zeros((n_points, pca.n_components))
    coords[:, pc - 1] = target_scores
    target_z = pca.inverse_transform(coords)
    idx = nearest_rows(target_z, z)
    return Trajectory(pc=pc, percentiles=tuple(float(p) for p in percentiles),
                      target_scores=target_scores, target_z=target_z, indices=idx, z=z[idx])
