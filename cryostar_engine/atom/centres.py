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
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..io.pdb import Beads

__all__ = ["ResidueCentres", "residue_centres", "local_frames", "scattering_centres"]


@dataclass
class ResidueCentres:
    """triplets ``(T, 3)`` int64 (previous, bead, next); frame_index ``(N,)`` int64: the triplet
    whose frame carries bead n's offset, or T (the identity: no rotation); local_offsets
    ``(N, 3)`` float32, Å, in that frame; has_lone: some bead uses the identity (decided once,
    so that a step appends the identity frame only then)."""

    triplets: torch.Tensor
    frame_index: torch.Tensor
    local_offsets: torch.Tensor
    has_lone: bool

    def to(self, device) -> "ResidueCentres":
        return ResidueCentres(self.triplets.to(device), self.frame_index.to(device),
                              self.local_offsets.to(device), self.has_lone)


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
    offsets = torch.as_tensor(beads.centre_offsets_A, dtype=torch.float64)
    local = torch.einsum("nji,nj->ni", frames[torch.as_tensor(frame_index)], offsets)
    return ResidueCentres(torch.as_tensor(triplets), torch.as_tensor(frame_index), local.float(),
                          bool(lone.any()))


def _with_identity(frames: torch.Tensor) -> torch.Tensor:
    """Append the identity as frame T: ``(B, T, 3, 3)`` → ``(B, T + 1, 3, 3)``."""
    eye = torch.eye(3, dtype=frames.dtype, device=frames.device).expand(frames.shape[0], 1, 3, 3)
    return torch.cat([frames, eye], dim=1)


def scattering_centres(coords: torch.Tensor, centres: ResidueCentres | None) -> torch.Tensor:
    """``(B, N, 3)`` bead coordinates (Å) → ``(B, N, 3)`` positions to render them at."""
    if centres is None:
        return coords
    frames = local_frames(coords, centres.triplets)                           # (B, T, 3, 3)
    if centres.has_lone:
        frames = _with_identity(frames)                                       # (B, T+1, 3, 3)
    per_bead = frames.index_select(1, centres.frame_index)                     # (B, N, 3, 3)
    return coords + torch.einsum("bnij,nj->bni", per_bead, centres.local_offsets.to(coords.dtype))
