"""Thresholds (from principles, recorded in the report) and the two kinds of flag.

Per latent point p and bead (residue) n; correlations (CC) are Pearson correlations over the
voxels of a region; ``ρ`` is the median model–map FSC 0.5 resolution over the points (Å).

Noise of a correlation: a region of volume V holds ``n_eff = V / (ρ/2)³`` independent samples
(Nyquist spacing of a map of resolution ρ), so Fisher ``z = atanh(CC)`` has standard error
``1/sqrt(n_eff − 3)``.  ``d_min = ρ/2`` is the smallest displacement the map can resolve.

* **model_moves_map_not** — the bead moved from its reference position ``r_n`` (the atom run's
  reference model) to ``x_n`` by ``d_n ≥ d_min``, and the map agrees better with the reference
  model than with the decoded model.  Region: the balls of radius ``R`` about ``x_n`` and
  ``r_n``.  The two correlations share the map, so they are compared with Steiger's (1980) test
  for dependent correlations (:func:`steiger_z`, which uses the correlation of the two model
  densities there).  Second test, the moved part fits the map worse than the model's unmoved
  core does (:func:`fit_z`: CC(map, model) over the balls about the moved beads vs over the
  balls about the beads that did not move, less the former: disjoint regions).  A residue is flagged when either
  Z exceeds ``k_residue`` (its ball against the core); a chain when either test over the union
  of the regions of all its moved beads exceeds ``k_chain``.
* **map_changes_model_rigid** — the bead stayed within ``d_min`` of its mean position over the
  points, yet the map changed there (vs the mean map) more than the model did (vs the mean of
  the model densities): ``Δ'_n = z(CC(model_p, mean model)) − z(CC(map_p, mean map))`` in the ball
  of radius R about ``x_n``, against ``σ_Δ = √2 / sqrt(n_eff(ball) − 3)`` (conservative: the two
  correlations are treated as independent).  Residue: ``Δ' > k_residue·σ_Δ``; chain: the mean
  Δ' over its ``m`` rigid beads ``> k_chain·σ_Δ / sqrt(m_indep)``, with ``m_indep = m / (mean
  number of its rigid beads within 2R of one)`` (overlapping balls share data).

``k_residue = 3`` (one-sided p ≈ 0.001).  ``k_chain`` is the one-sided normal quantile of
``0.05 / (points · chains · 3 tests)`` (Bonferroni: a correct run is flagged with probability
≤ 5 %).  At least :data:`MIN_BEADS` beads must be tested for a chain flag.  The verdict is
``flagged`` when any chain is flagged at any point.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import norm

__all__ = ["Thresholds", "thresholds_for", "fisher_z", "bead_flags", "chain_flag",
           "local_radius_for", "mask_edge_for", "n_eff_of", "steiger_z", "fit_z", "MOVES", "RIGID", "CC_CLIP", "MIN_BEADS", "FAMILY_ALPHA", "K_RESIDUE"]

MOVES = "model_moves_map_not"
RIGID = "map_changes_model_rigid"
CC_CLIP = 0.995
MIN_BEADS = 3
FAMILY_ALPHA = 0.05
K_RESIDUE = 3.0
TESTS_PER_CHAIN = 3     # reference preferred, moved part fits worse, map changes where rigid


@dataclass(frozen=True)
class Thresholds:
    """Every number the flags use (Å unless said), written to ``report.json``."""

    local_radius_A: float        # R: ball of the local CC
    mask_radius_A: float         # FSC mask: 1 within this distance of a bead
    mask_edge_A: float           # FSC mask: Gaussian fall-off (σ)
    resolution_A: float          # ρ: median model–map FSC 0.5 over the points
    min_displacement_A: float    # d_min = ρ/2
    n_eff: float                 # independent samples per ball of radius R
    sigma_delta: float           # σ_Δ of a difference of two Fisher z in one ball (rigid test)
    k_residue: float
    k_chain: float
    family_alpha: float
    min_beads: int
    cc_clip: float

    def to_json(self) -> dict:
        return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def local_radius_for(apix: float) -> float:
    """R = max(6 Å, 2.5 voxels): a residue's surroundings, and ≥ 65 voxels per ball."""
    return max(6.0, 2.5 * apix)


def mask_edge_for(apix: float) -> float:
    """σ of the FSC mask's Gaussian edge: max(3 Å, 2 voxels)."""
    return max(3.0, 2.0 * apix)


def thresholds_for(resolution_A: float, apix: float, n_points: int, n_chains: int) -> Thresholds:
    """The thresholds for maps of ``resolution_A`` on an ``apix`` grid (see module docstring)."""
    radius = local_radius_for(apix)
    rho = max(float(resolution_A), 2 * apix)
    n_eff = max(4.0 * math.pi / 3 * radius ** 3 / (rho / 2) ** 3, 4.0)
    sigma = math.sqrt(2.0) / math.sqrt(n_eff - 3)
    tests = max(1, n_points * n_chains * TESTS_PER_CHAIN)
    return Thresholds(local_radius_A=radius, mask_radius_A=radius, mask_edge_A=mask_edge_for(apix),
                      resolution_A=rho, min_displacement_A=rho / 2, n_eff=n_eff,
                      sigma_delta=sigma, k_residue=K_RESIDUE,
                      k_chain=float(norm.isf(FAMILY_ALPHA / tests)), family_alpha=FAMILY_ALPHA,
                      min_beads=MIN_BEADS, cc_clip=CC_CLIP)


def n_eff_of(n_voxels: int, apix: float, resolution_A: float) -> float:
    """Independent samples in a region of ``n_voxels`` voxels of ``apix`` Å (map at
    ``resolution_A``)."""
    return n_voxels * apix ** 3 / (resolution_A / 2) ** 3


def steiger_z(r_map_ref: float, r_map_model: float, r_ref_model: float, n_eff: float) -> float:
    """Steiger's (1980) Z for ``CC(map, reference) > CC(map, model)``, two correlations that
    share the map, with ``r_ref_model`` the correlation of the two model densities and
    ``n_eff`` independent samples.  Positive: the map prefers the reference."""
    if n_eff <= 3:
        return 0.0
    a, b = (float(np.clip(r, -CC_CLIP, CC_CLIP)) for r in (r_map_ref, r_map_model))
    c = float(np.clip(r_ref_model, -CC_CLIP, CC_CLIP))
    rbar = 0.5 * (a + b)
    psi = c * (1 - 2 * rbar ** 2) - 0.5 * rbar ** 2 * (1 - 2 * rbar ** 2 - c ** 2)
    s = psi / (1 - rbar ** 2) ** 2
    return float((np.arctanh(a) - np.arctanh(b)) * math.sqrt(n_eff - 3) / math.sqrt(max(2 - 2 * s, 1e-9)))


def fit_z(core_cc: float, core_n: float, cc: float, n: float) -> float:
    """Z of ``CC(core) > CC(region)``: two correlations over disjoint regions (independent),
    ``n``/``core_n`` independent samples.  Positive: the region fits the map worse."""
    if n <= 3 or core_n <= 3:
        return 0.0
    diff = np.arctanh(np.clip(core_cc, -CC_CLIP, CC_CLIP)) - np.arctanh(np.clip(cc, -CC_CLIP, CC_CLIP))
    return float(diff / math.sqrt(1 / (n - 3) + 1 / (core_n - 3)))


def fisher_z(cc) -> np.ndarray:
    """``atanh`` of CC clipped to ±:data:`CC_CLIP`."""
    return np.arctanh(np.clip(np.asarray(cc, dtype=np.float64), -CC_CLIP, CC_CLIP))


def bead_flags(delta: np.ndarray, tested: np.ndarray, t: Thresholds) -> np.ndarray:
    """``(N,)`` bool: tested beads whose Δ (Fisher-z units) exceeds ``k_residue · σ_Δ``."""
    return tested & (delta > t.k_residue * t.sigma_delta)


def independent_count(coords_A: np.ndarray, t: Thresholds) -> float:
    """Tested beads ``(m, 3)`` → how many independent balls they amount to (see docstring)."""
    from scipy.spatial import cKDTree

    if len(coords_A) == 0:
        return 0.0
    tree = cKDTree(coords_A)
    crowd = np.mean([len(n) for n in tree.query_ball_point(coords_A, 2 * t.local_radius_A)])
    return float(len(coords_A) / crowd)


def chain_flag(delta: np.ndarray, tested: np.ndarray, coords_A: np.ndarray,
               t: Thresholds) -> tuple[bool, float, float]:
    """``(flagged, mean Δ, threshold)`` for one chain's beads (``delta``, ``tested`` ``(n,)``,
    ``coords_A`` ``(n, 3)``)."""
    m = int(tested.sum())
    if m < t.min_beads:
        return False, 0.0, float("inf")
    mean = float(delta[tested].mean())
    limit = t.k_chain * t.sigma_delta / math.sqrt(max(independent_count(coords_A[tested], t), 1.0))
    return mean > limit, mean, limit
