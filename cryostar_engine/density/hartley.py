"""Hartley ↔ Fourier on the centred grid, and the half grid that Hermitian symmetry allows.

Conventions
-----------
* Grids are the centred layout of :mod:`cryostar_engine.physics.fourier`: index ``i`` of an axis
  of length ``D`` holds the frequency ``f = i - D//2`` (cycles per box); arrays are ``[y, x]``
  or ``[z, y, x]``, coordinates are ordered ``(x, y, z)`` in cycles/px (``f / D``).
* Hartley value of a real signal: ``H(k) = Re F(k) - Im F(k)``; conversely
  ``F(k) = ½[H(k) + H(-k)] - (i/2)[H(k) - H(-k)]``.
* ``-k`` on the grid is the *partner* index ``(2·(D//2) - i) mod D`` per axis.  For odd ``D``
  that is the mirror image ``D-1-i``; for even ``D`` the unpaired ``-Nyquist`` index 0 pairs with
  itself (the DFT is periodic: ``-D/2 ≡ +D/2``), every other index ``i`` with ``D - i``.  With this
  pairing both conversions are exact for real signals of either parity.
* A real signal is determined by one point of every pair {k, partner(k)}: :func:`half_grid`
  lists those points (inside a disc/ball), with weight 2 when the point stands for itself and its
  partner and 1 when it is its own partner (DC, Nyquist points).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["partner_index", "fourier_to_hartley", "hartley_to_fourier", "fourier_from_pair",
           "HalfGrid", "half_grid", "assemble_full"]


def partner_index(box: int, device=None) -> torch.Tensor:
    """``(D,)`` int64: the index holding ``-f`` for each index of a centred axis of length D."""
    i = torch.arange(box, device=device)
    return (2 * (box // 2) - i) % box


def fourier_to_hartley(f: torch.Tensor) -> torch.Tensor:
    """Hartley values ``Re F - Im F`` of a centred transform (any shape, real output)."""
    return f.real - f.imag


def _reflect(h: torch.Tensor, ndim: int) -> torch.Tensor:
    """``h(-k)`` on the centred grid over the last ``ndim`` axes (exact partner pairing)."""
    for dim in range(h.dim() - ndim, h.dim()):
        h = h.index_select(dim, partner_index(h.shape[dim], device=h.device))
    return h


def hartley_to_fourier(h: torch.Tensor, ndim: int) -> torch.Tensor:
    """Centred Fourier transform from centred Hartley values over the last ``ndim`` axes.

    Exact inverse of :func:`fourier_to_hartley` for the transform of any real signal, even or
    odd box; the result is Hermitian on the grid, so its inverse FFT is real.
    """
    return fourier_from_pair(h, _reflect(h, ndim))


def fourier_from_pair(h_k: torch.Tensor, h_minus_k: torch.Tensor) -> torch.Tensor:
    """``F(k) = ½[h(k) + h(-k)] - (i/2)[h(k) - h(-k)]`` (complex, same shape as the inputs)."""
    return torch.complex(0.5 * (h_k + h_minus_k), -0.5 * (h_k - h_minus_k))


@dataclass
class HalfGrid:
    """One point of every {k, -k} pair of a centred ``D``-grid inside a disc (2-D) or ball (3-D).

    Attributes
    ----------
    box, ndim : grid side D and 2 (slice ``[y, x]``) or 3 (volume ``[z, y, x]``).
    flat : ``(M,)`` int64 flat index of each point in the ``D**ndim`` grid.
    partner_flat : ``(M,)`` int64 flat index of its partner ``-k`` (equal to ``flat`` when
        self-paired).
    coords : ``(M, 3)`` float32 frequencies ``(x, y, z)`` in cycles/px (z = 0 for a slice).
    weights : ``(M,)`` float32: 2 for a point standing for a pair, 1 for a self-paired point.
    """

    box: int
    ndim: int
    flat: torch.Tensor
    partner_flat: torch.Tensor
    coords: torch.Tensor
    weights: torch.Tensor

    @property
    def self_paired(self) -> torch.Tensor:
        """``(M,)`` bool: points that are their own partner (their Fourier value is real)."""
        return self.flat == self.partner_flat

    def to(self, device) -> "HalfGrid":
        return HalfGrid(self.box, self.ndim, *(t.to(device) for t in
                                               (self.flat, self.partner_flat, self.coords,
                                                self.weights)))


def half_grid(box: int, ndim: int, radius_px: float | None = None) -> HalfGrid:
    """The points of a centred ``box**ndim`` grid with ``|f| ≤ radius_px`` (default ``box // 2``),
    one per {k, -k} pair (the one with the smaller flat index), in flat-index order."""
    radius = box // 2 if radius_px is None else radius_px
    f = torch.arange(box) - box // 2
    axes = torch.meshgrid(*([f] * ndim), indexing="ij")            # [z,] y, x order
    partner = partner_index(box)
    p_axes = torch.meshgrid(*([partner] * ndim), indexing="ij")
    idx_axes = torch.meshgrid(*([torch.arange(box)] * ndim), indexing="ij")
    flat = _ravel(idx_axes, box)
    partner_flat = _ravel(p_axes, box)
    inside = sum(a.to(torch.float64) ** 2 for a in axes) <= radius ** 2 + 1e-9
    keep = inside & (flat <= partner_flat)
    freqs = [a[keep].to(torch.float32) / box for a in reversed(axes)]   # x, y[, z]
    if ndim == 2:
        freqs.append(torch.zeros_like(freqs[0]))
    weights = torch.where(flat[keep] == partner_flat[keep], 1.0, 2.0).to(torch.float32)
    return HalfGrid(box, ndim, flat[keep], partner_flat[keep], torch.stack(freqs, -1), weights)


def _ravel(axes_idx, box: int) -> torch.Tensor:
    flat = torch.zeros_like(axes_idx[0])
    for a in axes_idx:
        flat = flat * box + a
    return flat


def assemble_full(grid: HalfGrid, f_half: torch.Tensor) -> torch.Tensor:
    """Scatter Fourier values of the half grid onto the full centred grid (zero outside).

    Parameters
    ----------
    grid : the :class:`HalfGrid` the values belong to.
    f_half : ``(..., M)`` complex values; self-paired points must be real.

    Returns
    -------
    ``(..., D, D)`` or ``(..., D, D, D)`` complex Hermitian array (partners get ``conj``).
    """
    lead = f_half.shape[:-1]
    out = torch.zeros(*lead, grid.box ** grid.ndim, dtype=f_half.dtype, device=f_half.device)
    out[..., grid.partner_flat] = f_half.conj()
    out[..., grid.flat] = f_half
    return out.reshape(*lead, *([grid.box] * grid.ndim))
