"""The one place that renders beads: Gaussian projections (2-D) and Gaussian densities (3-D).

Each bead n is an isotropic Gaussian of peak amplitude ``a_n`` and width ``sigma_A`` (Å):
``ρ(r) = Σ_n a_n exp(-|r - X_n|² / (2σ²))``.  Grids follow
:mod:`cryostar_engine.physics.fourier`: pixel/voxel ``i`` sits at ``(i - D//2) * apix`` Å, images
are ``[y, x]`` and volumes ``[z, y, x]``.  Coordinates are ordered (x, y, z).

The projection along z of that density is
``P(x, y) = sqrt(2π) σ Σ_n a_n exp(-(x - X_nx)²/(2σ²)) exp(-(y - X_ny)²/(2σ²))``;
:func:`project_beads` drops the constant factor ``sqrt(2π) σ`` (CryoSTAR's convention: every
loss that uses it is scale invariant) and exploits separability: two ``(B, N, D)`` Gaussian
factors and one batched matrix product, ``O(B·N·D)`` exponentials and ``O(B·N·D²)`` MACs.
"""
from __future__ import annotations

import torch

__all__ = ["grid_coords", "project_beads", "bead_density"]


def grid_coords(box: int, apix: float, device=None, dtype=torch.float32) -> torch.Tensor:
    """Coordinates in Å of the ``box`` pixel centres along one axis: ``(i - box//2) * apix``."""
    return (torch.arange(box, device=device, dtype=dtype) - box // 2) * apix


def _gaussian_factor(coord: torch.Tensor, grid: torch.Tensor, sigma_A: float) -> torch.Tensor:
    """``exp(-(grid - coord)² / 2σ²)`` for ``(..., N)`` coordinates → ``(..., N, D)``."""
    return torch.exp(-0.5 * ((grid - coord.unsqueeze(-1)) / sigma_A) ** 2)


def project_beads(coords_A: torch.Tensor, amplitudes: torch.Tensor, sigma_A: float,
                  box: int, apix: float) -> torch.Tensor:
    """Project rotated beads along z onto ``box × box`` images.

    Parameters
    ----------
    coords_A : ``(B, N, 3)`` bead coordinates in the particle's view (already rotated), Å.
    amplitudes : ``(N,)`` or ``(B, N)`` peak amplitudes.
    sigma_A : Gaussian width in Å.
    box, apix : image size in pixels and pixel size in Å.

    Returns
    -------
    ``(B, box, box)`` images ``[y, x]``, without the ``sqrt(2π)σ`` factor.
    """
    grid = grid_coords(box, apix, device=coords_A.device, dtype=coords_A.dtype)
    gx = _gaussian_factor(coords_A[..., 0].contiguous(), grid, sigma_A)   # (B, N, D)
    gy = _gaussian_factor(coords_A[..., 1].contiguous(), grid, sigma_A)   # (B, N, D)
    gx = gx * amplitudes.unsqueeze(-1)
    return torch.bmm(gy.transpose(1, 2), gx)


def bead_density(coords_A: torch.Tensor, amplitudes: torch.Tensor, sigma_A: float,
                 box: int, apix: float, z_chunk: int = 16) -> torch.Tensor:
    """Render beads as a 3-D density on a ``box³`` grid ``[z, y, x]``.

    Parameters
    ----------
    coords_A : ``(N, 3)`` box-centred coordinates, Å, ordered (x, y, z).
    amplitudes : ``(N,)`` peak amplitudes.

    Returns
    -------
    ``(box, box, box)`` tensor: ``Σ_n a_n exp(-|r - X_n|²/(2σ²))`` at every voxel centre.
    Computed in z-chunks of ``z_chunk`` planes to bound memory at ``z_chunk·D²`` values.
    """
    grid = grid_coords(box, apix, device=coords_A.device, dtype=coords_A.dtype)
    gx = _gaussian_factor(coords_A[:, 0], grid, sigma_A)  # (N, D)
    gy = _gaussian_factor(coords_A[:, 1], grid, sigma_A)
    gz = _gaussian_factor(coords_A[:, 2], grid, sigma_A) * amplitudes[:, None]
    out = torch.empty(box, box, box, dtype=coords_A.dtype, device=coords_A.device)
    for z0 in range(0, box, z_chunk):
        wz = gz[:, z0:z0 + z_chunk].T                      # (c, N)
        gy_w = wz[:, None, :] * gy.T[None, :, :]           # (c, D_y, N)
        out[z0:z0 + z_chunk] = gy_w @ gx                   # (c, D_y, D_x)
    return out
