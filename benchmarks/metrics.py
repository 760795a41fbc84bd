"""Figures shared by all heterogeneity benchmarks (ours and the peers'), one definition each.

All figures compare a method's output with the ground truth of a simulated set
(``benchmarks/simulate_adk.py``): the DIMS frame of each particle (``gt_frame.npy``, star order),
the Cα coordinates of every frame (``data/adk_models/adk_dims_ca.npy``, ``(F, R, 3)`` Å, the same
frame of reference as the particles) and the ground-truth volume of every frame
(``gt_volumes.npy``, ``(F, D, D, D)`` float32, indexed ``[z, y, x]``, origin at voxel ``D//2``).

Latent figures
    * :func:`best_pc_spearman` — |Spearman ρ| between the true frame and the best of the first
      three principal components of z.
    * :func:`knn_r2` — 10-nearest-neighbour regression of the frame from z, 5-fold
      cross-validated, R² of the pooled out-of-fold predictions.
Structure figures
    * :func:`ca_rmsd_summary` — mean per-particle Cα RMSD (Å, no superposition) of the decoded
      structures against the particle's true frame, the same for the reference model, and their
      ratio (< 1: the method moved the model towards the truth).
    * :func:`rmsd_by_group` — the same per group of beads (protein Cα vs RNA C1′, or per chain;
      labels from :func:`bead_kinds`), each group's ratio against its own reference RMSD.
Nuisance check
    * :func:`pc_correlations` — |Spearman ρ| of each of the first principal components of z with
      named per-particle quantities (true frame, |frame − reference frame|, defocus, pose, shift):
      what each PC carries.
Map figures (on a subset of particles, see :func:`pick_particles`)
    * :func:`au_fsc` — area under |FSC| over 0–0.5 cycles/px of one map against its ground truth
      (rectangle rule, one shell = 1/D cycles/px, so a perfect map scores 0.5).
    * :func:`heterogeneity_carried` — per-particle correlation between (its map − mean of the
      particles' maps) and (its GT volume − mean of their GT volumes), both low-passed and
      masked: how much of the conformational *difference* the maps carry (0 = none, 1 = all).
    * :func:`score_maps` — both, plus the registration check; :func:`single_map_floor` — the
      same figures for one map used for every particle (a consensus map: the floor).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import spearmanr
from sklearn.decomposition import PCA
from sklearn.model_selection import KFold
from sklearn.neighbors import KNeighborsRegressor

from cryostar_engine.metrics import correlation, fsc, rmsd_per_model
from cryostar_engine.physics.fourier import gaussian_lowpass_volume

__all__ = [
    "best_pc_spearman", "knn_r2", "ca_rmsd_summary", "rmsd_by_group", "bead_kinds",
    "pc_correlations", "residue_rows", "pick_particles",
    "au_fsc", "mean_au_fsc", "lowpass_sigma_vox", "envelope_mask", "heterogeneity_carried",
    "mean_map_correlation", "score_maps", "single_map_floor",
    "LatentFigures", "latent_figures", "format_table",
]


# ----------------------------------------------------------------------------- latent figures

def best_pc_spearman(z: np.ndarray, frame: np.ndarray, n_pcs: int = 3) -> tuple[float, int]:
    """|Spearman ρ| of the best of the first ``n_pcs`` principal components of z with the frame.

    Parameters
    ----------
    z : ``(N, K)`` latents, one row per particle.
    frame : ``(N,)`` true frame (any monotone 1-D ground-truth latent).

    Returns
    -------
    (rho, pc) : the largest |ρ| and the 0-based index of its component.
    """
    z = np.asarray(z, np.float64)
    n = min(n_pcs, z.shape[1], len(z))
    pcs = PCA(n_components=n).fit_transform(z - z.mean(0))
    rhos = [abs(spearmanr(pcs[:, i], frame).statistic) for i in range(n)]
    best = int(np.nanargmax(rhos))
    return float(rhos[best]), best


def knn_r2(z: np.ndarray, frame: np.ndarray, k: int = 10, folds: int = 5, seed: int = 0) -> float:
    """Cross-validated R² of a k-nearest-neighbour regression of ``frame`` from ``z``.

    Each particle's frame is predicted by a ``k``-NN regressor (uniform weights, Euclidean in z)
    fitted on the other folds (``folds``-fold, shuffled with ``seed``); R² = 1 − SS_res/SS_tot
    over all out-of-fold predictions.  1 means the frame is a function of z; 0 means z tells
    nothing about it.
    """
    z = np.asarray(z, np.float64)
    y = np.asarray(frame, np.float64)
    pred = np.empty_like(y)
    for train, test in KFold(folds, shuffle=True, random_state=seed).split(z):
        reg = KNeighborsRegressor(n_neighbors=min(k, len(train))).fit(z[train], y[train])
        pred[test] = reg.predict(z[test])
    return float(1.0 - ((pred - y) ** 2).sum() / ((y - y.mean()) ** 2).sum())


@dataclass(frozen=True)
class LatentFigures:
    rho: float       # |Spearman ρ| of the best of the first 3 PCs with the frame
    best_pc: int     # its 0-based index
    knn_r2: float    # 10-NN R², 5-fold cross-validated


def latent_figures(z: np.ndarray, frame: np.ndarray) -> LatentFigures:
    """Both latent figures of ``(N, K)`` z against the ``(N,)`` true frame."""
    rho, pc = best_pc_spearman(z, frame)
    return LatentFigures(rho=rho, best_pc=pc, knn_r2=knn_r2(z, frame))


# -------------------------------------------------------------------------- structure figures

def residue_rows(res_ids: np.ndarray, first_res_id: int = 1) -> np.ndarray:
    """Rows of the ground-truth Cα array for residue numbers ``res_ids``.

    ``adk_dims_ca.npy`` holds residues ``first_res_id …`` in order, one row each.
    """
    return np.asarray(res_ids, np.int64) - first_res_id


def ca_rmsd_summary(decoded_ca: np.ndarray, frame: np.ndarray, gt_ca: np.ndarray,
                    ref_ca: np.ndarray) -> dict:
    """Cα RMSD (Å, without superposition) of decoded structures and of the reference.

    Parameters
    ----------
    decoded_ca : ``(N, R, 3)`` Å, the structure decoded for each particle, matched residue for
        residue with ``gt_ca[:, :R]`` (select rows with :func:`residue_rows` first when needed).
    frame : ``(N,)`` int, true frame of each particle.
    gt_ca : ``(F, R, 3)`` Å, Cα of every frame.
    ref_ca : ``(R, 3)`` Å, the reference model's Cα (the model the method starts from).

    Returns
    -------
    dict with ``rmsd`` (mean over particles of the decoded RMSD), ``ref_rmsd`` (mean over the
    same particles of the reference's RMSD to their true frame), ``ratio`` = rmsd / ref_rmsd and
    ``n_residues``.
    """
    truth = np.asarray(gt_ca, np.float64)[np.asarray(frame, np.int64)]
    rmsd = rmsd_per_model(decoded_ca, truth)
    ref = rmsd_per_model(np.broadcast_to(np.asarray(ref_ca, np.float64), truth.shape), truth)
    return {"rmsd": float(rmsd.mean()), "ref_rmsd": float(ref.mean()),
            "ratio": float(rmsd.mean() / ref.mean()), "n_residues": int(truth.shape[1])}


def bead_kinds(is_nucleotide: np.ndarray) -> np.ndarray:
    """``(R,)`` labels ``"protein"`` (Cα beads) / ``"RNA"`` (C1′ beads) for :func:`rmsd_by_group`."""
    return np.where(np.asarray(is_nucleotide, bool), "RNA", "protein")


def rmsd_by_group(decoded: np.ndarray, frame: np.ndarray, gt: np.ndarray, ref: np.ndarray,
                  labels: np.ndarray) -> dict:
    """:func:`ca_rmsd_summary` for each group of beads.

    Parameters
    ----------
    decoded, frame, gt, ref : as :func:`ca_rmsd_summary` (``(N, R, 3)``, ``(N,)``,
        ``(F, R, 3)``, ``(R, 3)``; beads = Cα or C1′).
    labels : ``(R,)`` group of each bead (e.g. :func:`bead_kinds`, or the chain ids).

    Returns
    -------
    ``{label: summary}`` in order of first appearance; each summary's ratio compares the group's
    decoded RMSD with the reference's RMSD *on the same beads* (so a group that does not move
    has a reference RMSD near 0 and an uninformative ratio: read its ``rmsd``).
    """
    labels = np.asarray(labels)
    out = {}
    for label in dict.fromkeys(labels.tolist()):
        m = labels == label
        with np.errstate(divide="ignore", invalid="ignore"):
            out[label] = ca_rmsd_summary(np.asarray(decoded)[:, m], frame, np.asarray(gt)[:, m],
                                         np.asarray(ref)[m])
        if not np.isfinite(out[label]["ratio"]):
            out[label]["ratio"] = None          # the group does not move: no ratio
    return out


def pc_correlations(z: np.ndarray, quantities: dict, n_pcs: int = 3,
                    frame: np.ndarray | None = None) -> dict:
    """|Spearman ρ| of each of the first ``n_pcs`` principal components of z with each quantity.

    Parameters
    ----------
    z : ``(N, K)`` latents.
    quantities : ``{name: (N,) array}`` per-particle values (star order), e.g. the true frame,
        ``|frame − reference frame|``, mean defocus, tilt, in-plane shift.
    frame : optional ``(N,)`` true frame: adds each PC's own :func:`knn_r2` of the frame, which
        sees a motion that a PC carries non-monotonically (a curved latent path) where ρ does not.

    Returns
    -------
    ``{"explained_variance": [fraction per PC], name: [|ρ| per PC], ...}``.
    """
    z = np.asarray(z, np.float64)
    n = min(n_pcs, z.shape[1], len(z))
    pca = PCA(n_components=n).fit(z - z.mean(0))
    pcs = pca.transform(z - z.mean(0))
    out = {"explained_variance": [float(v) for v in pca.explained_variance_ratio_]}
    for name, q in quantities.items():
        out[name] = [float(abs(spearmanr(pcs[:, i], np.asarray(q)).statistic)) for i in range(n)]
    if frame is not None:
        out["frame kNN R2 from this PC alone"] = [knn_r2(pcs[:, [i]], frame) for i in range(n)]
    return out


# -------------------------------------------------------------------------------- map figures

def pick_particles(n_total: int, n: int = 100, seed: int = 0) -> np.ndarray:
    """``n`` distinct particle rows (sorted), the same for every method given the same seed."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_total, size=min(n, n_total), replace=False))


def au_fsc(vol: np.ndarray, gt_vol: np.ndarray) -> float:
    """Area under |FSC| of two ``(D, D, D)`` maps over 0–0.5 cycles/px.

    Rectangle rule over the shells 0 … D/2 − 1 of :func:`cryostar_engine.metrics.fsc`, each
    1/D cycles/px wide: ``Σ_k |FSC_k| / D``.  Perfect agreement scores 0.5, noise about 0.
    Insensitive to the maps' scale, not to their registration (same voxel grid required).
    """
    _, curve = fsc(np.ascontiguousarray(vol), np.ascontiguousarray(gt_vol))
    return float(np.abs(curve).sum() / np.shape(vol)[-1])


def mean_au_fsc(vols: np.ndarray, gt_vols: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean and per-map AU-FSC of ``(M, D, D, D)`` maps against their ``(M, D, D, D)`` truths."""
    per = np.array([au_fsc(v, g) for v, g in zip(vols, gt_vols)])
    return float(per.mean()), per


def lowpass_sigma_vox(resolution_A: float, apix: float) -> float:
    """σ (voxels) of the Gaussian blur whose transfer falls to ½ at 1/resolution_A."""
    k = apix / resolution_A                       # cycles per voxel
    return math.sqrt(math.log(2.0) / 2.0) / (math.pi * k)


def _blur(vols: np.ndarray, sigma: float) -> np.ndarray:
    t = torch.as_tensor(np.ascontiguousarray(vols, np.float64))
    return torch.stack([gaussian_lowpass_volume(v, sigma) for v in t]).numpy()


def envelope_mask(gt_volumes: np.ndarray, apix: float, resolution_A: float = 8.0,
                  threshold: float = 0.05, pad_A: float = 3.0) -> np.ndarray:
    """Boolean ``(D, D, D)`` mask around every conformation.

    The voxel-wise maximum over the ``(F, D, D, D)`` ground-truth volumes, low-passed to
    ``resolution_A``, thresholded at ``threshold`` × its maximum, then widened by ``pad_A`` Å
    (a blur of the binary mask kept where > 0.05).
    """
    env = _blur(np.asarray(gt_volumes).max(0)[None], lowpass_sigma_vox(resolution_A, apix))[0]
    core = (env > threshold * env.max()).astype(np.float64)
    wide = _blur(core[None], max(pad_A / apix, 1e-3))[0]
    return wide > 0.05


def heterogeneity_carried(maps: np.ndarray, gt_maps: np.ndarray, mask: np.ndarray, apix: float,
                          resolution_A: float = 8.0) -> tuple[float, np.ndarray]:
    """How much of the conformational difference between particles the maps carry.

    Parameters
    ----------
    maps : ``(M, D, D, D)`` the method's map at each of M particles' z (one decoder, so one scale).
    gt_maps : ``(M, D, D, D)`` the ground-truth volume of each particle's frame, same grid.
    mask : ``(D, D, D)`` bool, see :func:`envelope_mask`.
    apix : voxel size, Å.
    resolution_A : both sets are low-passed (Gaussian, transfer ½ at this resolution) first.

    Returns
    -------
    (mean, per) : per-particle Pearson correlation, inside the mask, between
    ``map_i − mean_j map_j`` and ``gt_i − mean_j gt_j``; and its mean over the M particles.
    """
    sigma = lowpass_sigma_vox(resolution_A, apix)
    a, b = _blur(maps, sigma), _blur(gt_maps, sigma)
    a, b = a - a.mean(0), b - b.mean(0)
    per = np.array([correlation(x, y, mask) for x, y in zip(a, b)])
    return float(per.mean()), per


def mean_map_correlation(maps: np.ndarray, gt_maps: np.ndarray, mask: np.ndarray, apix: float,
                         resolution_A: float = 8.0) -> float:
    """Correlation (inside ``mask``) of the mean of ``(M, D, D, D)`` maps with the mean of their
    ground truths, both low-passed to ``resolution_A``: a registration check (axis order, hand,
    origin, sign) — a correctly registered map scores clearly above its flipped copy."""
    sigma = lowpass_sigma_vox(resolution_A, apix)
    a = _blur(np.asarray(maps).mean(0)[None], sigma)[0]
    b = _blur(np.asarray(gt_maps).mean(0)[None], sigma)[0]
    return correlation(a, b, mask)


def score_maps(maps: np.ndarray, gt_maps: np.ndarray, mask: np.ndarray, apix: float,
               resolution_A: float = 8.0) -> dict:
    """The map figures of ``(M, D, D, D)`` maps against their ``(M, D, D, D)`` ground truths.

    Returns
    -------
    dict with ``au_fsc`` (mean of ``au_fsc_per_map``), ``het_carried`` (mean of
    ``het_carried_per_map``, see :func:`heterogeneity_carried`) and ``mean_map_corr``
    (:func:`mean_map_correlation`).
    """
    au_mean, au = mean_au_fsc(maps, gt_maps)
    het_mean, het = heterogeneity_carried(maps, gt_maps, mask, apix, resolution_A)
    return {"au_fsc": au_mean, "au_fsc_per_map": au, "het_carried": het_mean,
            "het_carried_per_map": het,
            "mean_map_corr": mean_map_correlation(maps, gt_maps, mask, apix, resolution_A)}


def single_map_floor(vol: np.ndarray, gt_maps: np.ndarray) -> dict:
    """Figures of one ``(D, D, D)`` map used for every particle (a homogeneous reconstruction).

    ``au_fsc``: mean AU-FSC of ``vol`` against each of the ``(M, D, D, D)`` ground truths;
    ``het_carried``: 0 by definition (identical maps carry no difference between particles).
    """
    return {"au_fsc": float(np.mean([au_fsc(vol, g) for g in gt_maps])), "het_carried": 0.0}


# ------------------------------------------------------------------------------------ report

def format_table(rows: dict) -> str:
    """Two-column plain-text table of ``{name: value}`` (floats with 3 decimals)."""
    width = max(len(k) for k in rows)
    out = []
    for k, v in rows.items():
        val = f"{v:.3f}" if isinstance(v, float) else str(v)
        out.append(f"{k:<{width}}  {val}")
    return "\n".join(out)
