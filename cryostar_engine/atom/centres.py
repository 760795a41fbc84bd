"""Where a bead scatters: the electron-weighted centre of its residue, carried by the backbone.

A bead stands for a whole residue, but its coordinate is the Cα (amino acids) or C1′
(nucleotides) atom.  The residue's density is centred elsewhere: on AdK the electron-weighted
centre of a residue's heavy atoms lies 1.3 Å (rms) from its Cα, towards the side chain.
Rendering the Gaussian at the Cα makes the image loss pull every bead towards its side chain,
against the restraints, which distorts the decoded backbone.  Instead, each bead is rendered at

    centre_n = X_n + F_n(X) · l_n

where ``F_n(X)`` is an orthonormal frame ``(3, 3)`` (columns e1, e2, e3) built from bead n and its
two chain neighbours in the *decoded* structure X, and ``l_n = F_n(X⁰)ᵀ (c⁰_n − X⁰_n)`` is the
reference offset expressed in the reference's frame.  The offset thus turns with the local
backbone (a rotating domain carries its side chains), and the decoded coordinates stay the
Cα / C1′ positions that every output reports.

Frame of the triplet (p, n, q) = (previous, bead, next): ``e1 = unit(X_q − X_p)`` (along the chain),
``e2`` = the unit part of ``(X_q − X_n) − (X_n − X_p)`` orthogonal to e1 (towards the bend's
inside), ``e3 = e1 × e2``.  A chain end uses the frame of its neighbour; a bead without chain
neighbours (a lone residue) keeps its reference offset unrotated.  Coordinates in Å.

``--bead-centre atoms`` carries every atom of the residue the same way (``atom_k = X_n + F_n(X) ·
l_k``, one Gaussian per atom with its atomic number as amplitude): the rendered density is the
reference's own atomic density, moved residue by residue, instead of one Gaussian per residue.
``--bead-centre groups`` carries one point per atom group of the residue, at the group's
electron-weighted centre with its summed atomic numbers as amplitude: backbone (N, Cα, C, O)
and side chain for an amino acid (glycine: the backbone only), phosphate, sugar and base for a
nucleotide (:data:`ATOM_GROUPS`): 2–3 points per residue instead of ~8 atoms.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..io.pdb import Beads

__all__ = ["ResidueCentres", "residue_centres", "atom_scatterers", "group_scatterers", "scatterers",
           "local_frames", "scattering_centres", "ATOM_GROUPS", "atom_groups"]

# atom groups of ``--bead-centre groups`` (names as in PDB files; every other atom of a residue
# is in its last group: the side chain, or the base)
ATOM_GROUPS = {"amino acid": ({"N", "CA", "C", "O", "OXT", "OT1", "OT2"},),
               "nucleotide": ({"P", "OP1", "OP2", "OP3", "O1P", "O2P", "O3P", "O5'"},
                              {"C5'", "C4'", "O4'", "C3'", "O3'", "C2'", "O2'", "C1'"})}


@dataclass
class ResidueCentres:
    """K scattering points carried by the beads' local frames (K = N: one per bead).

    triplets ``(T, 3)`` int64 (previous, bead, next); frame_index ``(K,)`` int64: the triplet
    whose frame carries point k's offset, or T (the identity: no rotation); local_offsets
    ``(K, 3)`` float32, Å, in that frame; has_lone: some point uses the identity (decided once,
    so that a step appends the identity frame only then); point_bead ``(K,)`` int64, the bead of
    each point (None: point k is bead k); amplitudes ``(K,)`` float32 of the points (None: the
    beads' own)."""

    triplets: torch.Tensor
    frame_index: torch.Tensor
    local_offsets: torch.Tensor
    has_lone: bool
    point_bead: torch.Tensor | None = None
    amplitudes: torch.Tensor | None = None

    def to(self, device) -> "ResidueCentres":
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return ResidueCentres(self.triplets.to(device), self.frame_index.to(device),
                              self.local_offsets.to(device), self.has_lone,
                              move(self.point_bead), move(self.amplitudes))


def local_frames(coords: torch.Tensor, triplets: torch.Tensor) -> torch.Tensor:
    """``(B, N, 3)`` coordinates (Å), ``(T, 3)`` triplets → ``(B, T, 3, 3)`` frames (columns
    e1, e2, e3)."""
    p, n, q = (coords.index_select(1, triplets[:, k]) for k in range(3))
    e1 = torch.nn.functional.normalize(q - p, dim=-1, eps=1e-6)
    bend = (q - n) - (n - p)
    e2 = torch.nn.functional.normalize(bend - (bend * e1).sum(-1, keepdim=True) * e1, dim=-1, eps=1e-6)
    e3 = torch.linalg.cross(e1, e2, dim=-1)
    return torch.stack([e1, e2, e3], dim=-1)


def residue_centres(beads: Beads, continuity: np.ndarray) -> ResidueCentres | None:
    """Build the frames and local offsets from the reference beads (box-centred Å) and the
    continuity pairs ``(P, 2)`` (consecutive beads i, i+1).  None when the model carries no
    residue centres (a bead-only PDB)."""
    if beads.centre_offsets_A is None:
        return None
    triplets, frame_index, lone, frames = _bead_frames(beads, continuity)
    offsets = torch.as_tensor(beads.centre_offsets_A, dtype=torch.float64)
    local = torch.einsum("nji,nj->ni", frames[torch.as_tensor(frame_index)], offsets)
    return ResidueCentres(torch.as_tensor(triplets), torch.as_tensor(frame_index), local.float(),
                          bool(lone.any()))


def atom_scatterers(beads: Beads, continuity: np.ndarray) -> ResidueCentres | None:
    """Every atom of the model, carried by its residue's frame (``--bead-centre atoms``), with its
    atomic number as amplitude; None for a bead-only model (no atoms read)."""
    if beads.atom_bead is None or beads.atom_offsets_A is None:
        return None
    return _carried_points(beads, continuity, np.asarray(beads.atom_bead, np.int64),
                           beads.atom_offsets_A, beads.atom_electrons)


def atom_groups(beads: Beads) -> np.ndarray:
    """``(K,)`` int: the group of each atom within its residue (:data:`ATOM_GROUPS`; 0 = backbone
    or phosphate)."""
    kinds = np.where(beads.is_nucleotide, "nucleotide", "amino acid")[beads.atom_bead]
    groups = np.empty(len(beads.model_atom_names), np.int64)
    for i, (name, kind) in enumerate(zip(beads.model_atom_names, kinds)):
        named = ATOM_GROUPS[kind]
        groups[i] = next((g for g, names in enumerate(named) if name in names), len(named))
    return groups


def group_scatterers(beads: Beads, continuity: np.ndarray) -> ResidueCentres | None:
    """One point per atom group of each residue (``--bead-centre groups``), at the group's
    electron-weighted centre, with the group's summed atomic numbers as amplitude, carried by
    its residue's frame; None for a bead-only model (no atoms read)."""
    if beads.atom_bead is None or beads.atom_offsets_A is None or beads.model_atom_names is None:
        return None
    key = np.asarray(beads.atom_bead, np.int64) * 4 + atom_groups(beads)     # ≤ 3 groups each
    points, inverse = np.unique(key, return_inverse=True)                     # sorted: by bead
    electrons = np.bincount(inverse, weights=beads.atom_electrons, minlength=len(points))
    weighted = np.stack([np.bincount(inverse, weights=beads.atom_electrons * beads.atom_offsets_A[:, k],
                                     minlength=len(points)) for k in range(3)], 1)
    centres = weighted / np.maximum(electrons, 1e-9)[:, None]                  # (an unknown element: Z 0)
    return _carried_points(beads, continuity, points // 4, centres, electrons)


def _carried_points(beads: Beads, continuity: np.ndarray, owner: np.ndarray, offsets_A: np.ndarray,
                    amplitudes: np.ndarray) -> ResidueCentres:
    """Points ``(K,)`` owned by beads ``owner``, at reference offsets ``(K, 3)`` Å from their bead,
    expressed in their bead's reference frame, with their own amplitudes."""
    triplets, bead_frame, lone, frames = _bead_frames(beads, continuity)
    frame_index = bead_frame[owner]
    offsets = torch.as_tensor(offsets_A, dtype=torch.float64)
    local = torch.einsum("nji,nj->ni", frames[torch.as_tensor(frame_index)], offsets)
    return ResidueCentres(torch.as_tensor(triplets), torch.as_tensor(frame_index), local.float(),
                          bool(lone[owner].any()), torch.as_tensor(owner),
                          torch.as_tensor(amplitudes, dtype=torch.float32))


def scatterers(bead_centre: str, beads: Beads, continuity: np.ndarray) -> ResidueCentres | None:
    """Where the forward model renders, by ``--bead-centre``: ``residue`` (one Gaussian per
    residue at its electron-weighted centre), ``atoms`` (every atom of the residue), ``groups``
    (one per atom group) or ``backbone`` (None: at the bead itself).  A bead-only model has
    neither centres nor atoms."""
    if bead_centre == "atoms":
        return atom_scatterers(beads, continuity)
    if bead_centre == "groups":
        return group_scatterers(beads, continuity)
    return residue_centres(beads, continuity) if bead_centre == "residue" else None


def _bead_frames(beads: Beads, continuity: np.ndarray):
    """``(triplets (T, 3), frame_index (N,), lone (N,) bool, reference frames (T+1, 3, 3))``:
    each bead's triplet (chain ends borrow their neighbour's; T = the identity)."""
    n = len(beads)
    has_next = np.zeros(n, bool)
    has_next[continuity[:, 0]] = True
    has_prev = np.zeros(n, bool)
    has_prev[continuity[:, 1]] = True
    middle = np.flatnonzero(has_prev & has_next)
    triplets = np.stack([middle - 1, middle, middle + 1], 1).astype(np.int64)
    slot = np.full(n, -1, np.int64)
    slot[middle] = np.arange(len(middle))
    frame_index = slot.copy()
    # chain ends borrow their neighbour's frame (when that neighbour has one)
    ends_first = np.flatnonzero(~has_prev & has_next)
    frame_index[ends_first] = slot[ends_first + 1]
    ends_last = np.flatnonzero(has_prev & ~has_next)
    frame_index[ends_last] = slot[ends_last - 1]
    lone = frame_index < 0
    frame_index[lone] = len(triplets)                             # identity
    ref = torch.as_tensor(beads.coords_A, dtype=torch.float64)[None]
    frames = _with_identity(local_frames(ref, torch.as_tensor(triplets)))[0]   # (T+1, 3, 3)
    return triplets, frame_index, lone, frames


def _with_identity(frames: torch.Tensor) -> torch.Tensor:
    """Append the identity as frame T: ``(B, T, 3, 3)`` → ``(B, T + 1, 3, 3)``."""
    eye = torch.eye(3, dtype=frames.dtype, device=frames.device).expand(frames.shape[0], 1, 3, 3)
    return torch.cat([frames, eye], dim=1)


def scattering_centres(coords: torch.Tensor, centres: ResidueCentres | None) -> torch.Tensor:
    """``(B, N, 3)`` bead coordinates (Å) → ``(B, K, 3)`` positions of the scattering points
    (K = N for one point per bead)."""
    if centres is None:
        return coords
    frames = local_frames(coords, centres.triplets)                           # (B, T, 3, 3)
    if centres.has_lone:
        frames = _with_identity(frames)                                       # (B, T+1, 3, 3)
    per_point = frames.index_select(1, centres.frame_index)                    # (B, K, 3, 3)
    base = coords if centres.point_bead is None else coords.index_select(1, centres.point_bead)
    return base + torch.einsum("bnij,nj->bni", per_point, centres.local_offsets.to(coords.dtype))
