"""One latent point: the decoded model rendered on the map's grid, the model–map FSC, and the
per-bead local correlations and flags (:mod:`.flags`).

Grids and units: volumes ``(D, D, D)`` ``[z, y, x]`` on the density run's working box D′ and
pixel apix′ (Å), voxel ``D′//2`` at 0 Å; bead coordinates ``(N, 3)`` Å in the box frame,
ordered (x, y, z).  Models are rendered by :func:`cryostar_engine.physics.render.bead_density`
(Gaussian beads of the atom run's width and amplitudes); correlations do not depend on the two
maps' scales.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..physics.render import bead_density
from .flags import (MOVES, RIGID, Thresholds, bead_flags, chain_flag, fisher_z, fit_z,
                    n_eff_of, steiger_z)
from .fsc import masked_fsc, soft_mask
from .localcc import ball_voxels, correlations_in, local_correlation, sample_at
from .runs import LatentPoint

__all__ = ["PointMaps", "PointResult", "render_model", "point_maps", "compare_point"]


@dataclass
class PointMaps:
    """What one point needs before the thresholds are known: the model ``coords`` ``(N, 3)``
    (box frame, Å), its density and the map ``(D, D, D)`` float32 (None once compared), and
    the masked FSC."""

    point: LatentPoint
    coords: np.ndarray
    model_map: np.ndarray
    map: np.ndarray
    freq: np.ndarray
    fsc: np.ndarray
    resolution_A: float


@dataclass
class PointResult:
    """Per-bead arrays ``(N,)``: local CC of model and map (``cc``), of the reference model and
    the map about the reference bead (``cc_reference``), displacements from the reference and
    from the mean model (Å), the two statistics of :mod:`.flags` (``delta_moves``: Steiger Z of
    moved beads — the larger of the two tests of :mod:`.flags` — 0 elsewhere; ``delta_rigid``: Δ' in Fisher z) and the bead flags (``""`` =
    none); ``chains``: one dict per chain (contract layout)."""

    maps: PointMaps
    cc: np.ndarray
    cc_reference: np.ndarray
    displacement_A: np.ndarray
    displacement_mean_A: np.ndarray
    delta_moves: np.ndarray
    delta_rigid: np.ndarray
    flags: np.ndarray
    chains: list = field(default_factory=list)

    @property
    def mean_local_cc(self) -> float:
        return float(self.cc.mean())


def render_model(coords_A: np.ndarray, amplitudes: np.ndarray, sigma_A: float, box: int,
                 apix: float) -> np.ndarray:
    """``(D, D, D)`` float64 bead density of ``(N, 3)`` box-frame coordinates (Å)."""
    return bead_density(torch.as_tensor(coords_A, dtype=torch.float64),
                        torch.as_tensor(amplitudes, dtype=torch.float64), sigma_A, box,
                        apix).numpy()


def point_maps(point: LatentPoint, coords: np.ndarray, volume: np.ndarray, amplitudes: np.ndarray,
               sigma_A: float, apix: float, mask_radius_A: float, mask_edge_A: float) -> PointMaps:
    """Render the model at ``coords`` on the grid of ``volume`` and take the masked FSC."""
    box = volume.shape[-1]
    model = render_model(coords, amplitudes, sigma_A, box, apix)
    mask = soft_mask(coords, box, apix, mask_radius_A, mask_edge_A)
    freq, curve, res = masked_fsc(model, volume, mask, apix)
    return PointMaps(point, coords, model.astype(np.float32), np.asarray(volume, dtype=np.float32),
                     freq, curve, res)


def compare_point(pm: PointMaps, reference: np.ndarray, reference_map: np.ndarray,
                  mean_coords: np.ndarray, mean_model: np.ndarray, mean_map: np.ndarray,
                  chain_ids: np.ndarray, t: Thresholds, apix: float) -> PointResult:
    """Local CCs, the two Δ and flags of one point (see :mod:`.flags`).

    reference : ``(N, 3)`` reference bead coordinates (box frame, Å); reference_map its density.
    mean_coords, mean_model, mean_map : the mean bead coordinates, model density and map over
    all points.
    """
    radius = t.local_radius_A / apix
    cc = sample_at(local_correlation(pm.model_map, pm.map, radius), pm.coords, apix)
    cc_ref = sample_at(local_correlation(reference_map, pm.map, radius), reference, apix)
    cc_map_mean = sample_at(local_correlation(pm.map, mean_map, radius), pm.coords, apix)
    cc_model_mean = sample_at(local_correlation(pm.model_map, mean_model, radius), pm.coords, apix)
    disp = np.linalg.norm(pm.coords - reference, axis=1)
    disp_mean = np.linalg.norm(pm.coords - mean_coords, axis=1)
    moved = disp >= t.min_displacement_A
    rigid = disp_mean < t.min_displacement_A
    maps = (pm.map, reference_map, pm.model_map)
    box = pm.map.shape[-1]
    moved_voxels = ball_voxels(pm.coords[moved], t.local_radius_A, box, apix) if moved.any() \
        else np.zeros(0, np.int64)
    core = (np.setdiff1d(ball_voxels(pm.coords[~moved], t.local_radius_A, box, apix), moved_voxels)
            if (~moved).sum() >= t.min_beads else np.zeros(0, np.int64))
    core_cc, core_n = (correlations_in(maps[::2], core)[0, 1],
                       n_eff_of(len(core), apix, t.resolution_A)) if len(core) else (0.0, 0.0)
    delta_moves = np.zeros(len(disp))
    for n in np.flatnonzero(moved):
        steiger = _moves_z(maps, np.stack([pm.coords[n], reference[n]]), t, apix)
        delta_moves[n] = max(steiger, fit_z(core_cc, core_n, cc[n], t.n_eff))
    delta_rigid = fisher_z(cc_model_mean) - fisher_z(cc_map_mean)
    flag_moves = moved & (delta_moves > t.k_residue)
    flag_rigid = bead_flags(delta_rigid, rigid, t)
    flags = np.where(flag_moves, MOVES, np.where(flag_rigid, RIGID, ""))
    chains = []
    for chain in dict.fromkeys(chain_ids.tolist()):
        sel = chain_ids == chain
        mv = sel & moved
        z_ref = z_fit = None
        if mv.sum() >= t.min_beads:
            z_ref = _moves_z(maps, np.concatenate([pm.coords[mv], reference[mv]]), t, apix)
            if len(core):
                region = ball_voxels(pm.coords[mv], t.local_radius_A, box, apix)
                if len(region):
                    z_fit = fit_z(core_cc, core_n, correlations_in(maps[::2], region)[0, 1],
                                  n_eff_of(len(region), apix, t.resolution_A))
        stays, _, _ = chain_flag(delta_rigid[sel], rigid[sel], pm.coords[sel], t)
        moves = max(z for z in (z_ref, z_fit, -np.inf) if z is not None) > t.k_chain
        chains.append({"chain": str(chain), "n": int(sel.sum()), "mean_cc": float(cc[sel].mean()),
                       "flag": MOVES if moves else (RIGID if stays else None),
                       "moved_beads": int(mv.sum()), "z_moves_reference": z_ref,
                       "z_moves_fit": z_fit,
                       "mean_delta_rigid": float(delta_rigid[sel & rigid].mean())
                       if (sel & rigid).any() else None})
    return PointResult(pm, cc, cc_ref, disp, disp_mean, delta_moves, delta_rigid, flags, chains)


def _moves_z(maps, centres: np.ndarray, t: Thresholds, apix: float) -> float:
    """Steiger Z (map prefers the reference model) over the balls of radius R about
    ``centres`` ``(K, 3)`` (the moved beads and their reference positions)."""
    voxels = ball_voxels(centres, t.local_radius_A, maps[0].shape[-1], apix)
    r = correlations_in(maps, voxels)
    return steiger_z(r[0, 1], r[0, 2], r[1, 2], n_eff_of(len(voxels), apix, t.resolution_A))
