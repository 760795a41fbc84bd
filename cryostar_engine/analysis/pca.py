"""PCA of the motion (decoded structures, Å) or of the latent space, and trajectories along PCs.

Two spaces, one result type (:class:`PcaResult`):

* **structure** (:func:`fit_structure_pca`, what ``analyze`` uses when the run can decode): the
  PCA of every particle's decoded bead coordinates, flattened to ``3·N_beads`` numbers in Å.  Its
  axes are motions of the model, its variances are Å², and it does not depend on how the
  encoder happened to lay out the latent space.  A one-dimensional motion whose latent path is
  curved, or whose latent spread grows towards one end of the path, comes out on PC1 here while a
  latent PCA can split it over two PCs (benchmarks/RESULTS.md, "Motion PCA").  A real second
  motion stays visible: it is PC2, with its own Å².
* **latent** (:func:`fit_pca`): the PCA of z itself (no decoder needed).

A trajectory along PC k runs through the mean: ``n_points`` scores evenly spaced from the
``lo``-th to the ``hi``-th percentile of the PC-k scores, every other PC at 0.  Each point is then
**snapped to the nearest real particle** (Euclidean in z for a latent PCA, in PC scores for a
structure PCA), so every structure shown is the decoding of a latent that some particle actually
has (CryoSTAR's convention).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.decomposition import PCA

from ..errors import InputError
from ..validate.arrays import check_latent_array
from .neighbours import nearest_rows

__all__ = ["PcaResult", "Trajectory", "fit_pca", "fit_structure_pca", "pc_trajectory",
           "check_latent", "STRUCTURE_FIT_BYTES"]

# Decoded structures held at once to fit a structure PCA (float32): at most this many bytes, so
# a 20,000-bead complex fits on ~4,000 particles and AdK on every particle up to 20,000.
STRUCTURE_FIT_BYTES = 1 << 30
STRUCTURE_FIT_MAX = 20000


@dataclass(frozen=True)
class PcaResult:
    """A fitted PCA (centred, not whitened) of the latents or of the decoded structures.

    Attributes
    ----------
    mean : ``(D,)`` mean latent, or ``(3·N_beads,)`` mean structure (Å, flattened x, y, z per bead).
    components : ``(C, D)`` unit PC axes (rows), sorted by explained variance.
    explained_variance : ``(C,)`` variance of each PC's scores (Å² for a structure PCA).
    explained_variance_ratio : ``(C,)`` fraction of the total variance.
    scores : ``(N, C)`` PC scores of every particle, ``(x - mean) @ components.T`` (Å for a
        structure PCA: the length of the particle's displacement along the axis).
    space : ``"latent"`` or ``"structure"``.
    fit_rows : particle rows the PCA was fitted on (None: all of them).
    """

    mean: np.ndarray
    components: np.ndarray
    explained_variance: np.ndarray
    explained_variance_ratio: np.ndarray
    scores: np.ndarray
    space: str = "latent"
    fit_rows: np.ndarray | None = None

    @property
    def rms_displacement_A(self) -> np.ndarray | None:
        """``(C,)`` per-bead RMS displacement (Å) of one standard deviation along each PC of a
        structure PCA (``sqrt(variance / N_beads)``); None for a latent PCA."""
        if self.space != "structure":
            return None
        return np.sqrt(self.explained_variance / (len(self.mean) // 3))

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
    target_z : ``(P, D)`` the corresponding points on the line through the mean (latent PCA);
        for a structure PCA the snapped latents (the line lives in structure space).
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


def fit_structure_pca(z: np.ndarray, decode, n_components: int | None = None,
                      chunk: int = 1024) -> PcaResult:
    """PCA of the decoded structures of every particle (see the module docstring).

    Parameters
    ----------
    z : ``(N, D)`` particle latents.
    decode : ``z (M, D) → (M, N_beads, 3)`` bead coordinates in Å (any fixed frame).
    n_components : PCs kept (default ``min(D, N − 1)``: the decoder maps a D-dimensional latent).
    chunk : particles decoded at once when projecting.

    The axes are fitted on at most :data:`STRUCTURE_FIT_MAX` particles and
    :data:`STRUCTURE_FIT_BYTES` of structures (evenly spaced rows, so the result is
    deterministic), then every particle is projected.  Signs follow sklearn's ``svd_flip``.
    Raises :class:`InputError` when the decoded structures do not vary.
    """
    z = check_latent(z)
    n = len(z)
    first = np.asarray(decode(z[:1]), np.float64)
    width = first.reshape(1, -1).shape[1]
    limit = int(min(STRUCTURE_FIT_MAX, max(2, STRUCTURE_FIT_BYTES // (4 * width)), n))
    rows = np.unique(np.linspace(0, n - 1, limit).round().astype(np.int64))
    x_fit = np.concatenate([np.asarray(decode(z[rows[i:i + chunk]]), np.float32).reshape(-1, width)
                            for i in range(0, len(rows), chunk)])
    if not np.any(x_fit.std(0) > 0):
        raise InputError("the decoded structures do not vary: the run learned no motion to analyse")
    c = int(min(n_components or z.shape[1], len(rows) - 1, width))
    pca = PCA(n_components=c, svd_solver="randomized" if width > 4 * len(rows) else "full",
              random_state=0).fit(x_fit)
    total = float(x_fit.astype(np.float64).var(0, ddof=1).sum())
    scores = np.concatenate([pca.transform(np.asarray(decode(z[i:i + chunk]), np.float32)
                                           .reshape(-1, width)) for i in range(0, n, chunk)])
    return PcaResult(mean=pca.mean_.astype(np.float64), components=pca.components_.astype(np.float64),
                     explained_variance=pca.explained_variance_.astype(np.float64),
                     explained_variance_ratio=pca.explained_variance_.astype(np.float64) / total,
                     scores=scores.astype(np.float64), space="structure",
                     fit_rows=None if len(rows) == n else rows)


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
    if pca.space == "structure":
        idx = nearest_rows(coords, pca.scores)     # the line lives in structure space
        target_z = z[idx]
    else:
        target_z = pca.inverse_transform(coords)
        idx = nearest_rows(target_z, z)
    return Trajectory(pc=pc, percentiles=tuple(float(p) for p in percentiles),
                      target_scores=target_scores, target_z=target_z, indices=idx, z=z[idx])
