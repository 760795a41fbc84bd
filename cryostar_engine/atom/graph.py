"""Structural restraint graphs built once from the reference beads (KD-tree; never N×N).

* continuity pairs: consecutive residues (|Δres_id| = 1) of the same chain and type;
* elastic-network pairs: amino-acid beads of the same chain within ``en_cutoff_A``, nucleotide
  beads (any chain) within ``en_nt_cutoff_A``; no AA–NT pairs; continuity pairs removed;
* clash pairs: bead pairs whose *reference* distance lies in ``[clash_min_A, clash_max_ref_A]``,
  continuity pairs removed (pairs already closer than ``clash_min_A`` in the reference are
  exempt, as in the original method).

All pair arrays are ``(P, 2)`` int64 with ``i < j``; distances ``(P,)`` in Å.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from ..io.pdb import Beads

__all__ = ["RestraintGraph", "build_graph"]


@dataclass
class RestraintGraph:
    continuity: np.ndarray
    continuity_d0: np.ndarray
    en: np.ndarray
    en_d0: np.ndarray
    en_group: np.ndarray          # (P_en,) int: chain group of each pair, for the variance filter
    clash: np.ndarray


def _pairs_within(coords: np.ndarray, cutoff: float) -> np.ndarray:
    if len(coords) < 2 or cutoff <= 0:
        return np.zeros((0, 2), np.int64)
    return cKDTree(coords).query_pairs(cutoff, output_type="ndarray").astype(np.int64)


def _remove(pairs: np.ndarray, excluded: np.ndarray, n: int) -> np.ndarray:
    if len(pairs) == 0 or len(excluded) == 0:
        return pairs
    key = pairs[:, 0] * n + pairs[:, 1]
    return pairs[~np.isin(key, excluded[:, 0] * n + excluded[:, 1])]


def _continuity(beads: Beads) -> np.ndarray:
    same_chain = beads.chain_ids[1:] == beads.chain_ids[:-1]
    same_kind = beads.is_nucleotide[1:] == beads.is_nucleotide[:-1]
    consecutive = np.abs(np.diff(beads.res_ids)) == 1
    i = np.flatnonzero(same_chain & same_kind & consecutive)
    return np.stack([i, i + 1], 1).astype(np.int64)


def _distances(coords, pairs):
    return np.linalg.norm(coords[pairs[:, 0]] - coords[pairs[:, 1]], axis=1)


def build_graph(beads: Beads, en_cutoff_A: float = 12.0, en_nt_cutoff_A: float = 15.0,
                clash_min_A: float = 4.0, clash_max_ref_A: float = 10.0) -> RestraintGraph:
    """Build the restraint pair lists from the reference beads (box-centred Å)."""
    x = beads.coords_A
    n = len(x)
    cont = _continuity(beads)
    _, chain_index = np.unique(beads.chain_ids, return_inverse=True)
    aa = np.flatnonzero(~beads.is_nucleotide)
    nt = np.flatnonzero(beads.is_nucleotide)
    en_parts, groups = [], []
    if len(aa):
        p = aa[_pairs_within(x[aa], en_cutoff_A)]
        p = p[chain_index[p[:, 0]] == chain_index[p[:, 1]]]
        en_parts.append(p)
        groups.append(chain_index[p[:, 0]])
    if len(nt):
        p = nt[_pairs_within(x[nt], en_nt_cutoff_A)]
        en_parts.append(p)
        groups.append(np.full(len(p), chain_index.max() + 1))   # one group for all nucleotides
    en = np.concatenate(en_parts) if en_parts else np.zeros((0, 2), np.int64)
    group = np.concatenate(groups) if groups else np.zeros(0, np.int64)
    en = np.sort(en, axis=1)
    keep_key = en[:, 0] * n + en[:, 1]
    mask = ~np.isin(keep_key, cont[:, 0] * n + cont[:, 1])
    en, group = en[mask], group[mask]
    near = np.sort(_pairs_within(x, clash_max_ref_A), axis=1)
    near = near[_distances(x, near) >= clash_min_A] if len(near) else near
    clash = _remove(near, cont, n)
    return RestraintGraph(continuity=cont, continuity_d0=_distances(x, cont), en=en,
                          en_d0=_distances(x, en), en_group=group.astype(np.int64), clash=clash)
