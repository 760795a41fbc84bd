"""Central slices of the density generator and the matching observed Fourier values.

Slice coordinates (spec §4.2, conventions of :mod:`cryostar_engine.geometry.poses`): pixel
(row ``i``, col ``j``) of a centred ``D×D`` slice has ``k2 = ((j - D//2)/D, (i - D//2)/D, 0)``
cycles/px, and samples the volume's transform at ``k3 = Rᵀ k2`` (``k2 @ R`` for row vectors).
Only the half-disc of :func:`~cryostar_engine.density.hartley.half_grid` is evaluated.
"""
from __future__ import annotations

import torch

from ..physics.ctf import CtfParams, ctf_centered
from ..physics.fourier import fft2c, shift_images
from .hartley import HalfGrid, fourier_from_pair
from .network import HartleyField

__all__ = ["slice_coords", "field_fourier", "predict_slices", "observed_slices", "ctf_half"]


def slice_coords(grid: HalfGrid, rotations: torch.Tensor, convention: str = "RT") -> torch.Tensor:
    """3-D frequencies of the half-disc of every particle's slice.

    Parameters
    ----------
    grid : 2-D :class:`HalfGrid` (coords ``(M, 3)`` with z = 0).
    rotations : ``(B, 3, 3)`` RELION A matrices.
    convention : ``"RT"`` (correct, ``k3 = Rᵀ k2``) or ``"R"`` (deliberately wrong, tests only).

    Returns
    -------
    ``(B, M, 3)`` cycles/px, (x, y, z).
    """
    mats = rotations if convention == "RT" else rotations.transpose(1, 2)
    return torch.matmul(grid.coords.to(rotations.dtype), mats)


def field_fourier(model: HartleyField, coords: torch.Tensor, z: torch.Tensor,
                  self_paired: torch.Tensor) -> torch.Tensor:
    """Fourier values ``(B, M)`` complex of the field at ``(B, M, 3)`` coords for ``(B, z_dim)`` z.

    Self-paired points (``(M,)`` bool: DC, Nyquist) get the real value ``½[h(k)+h(-k)]``.
    """
    h_k, h_mk = model(coords, z)
    f = fourier_from_pair(h_k, h_mk)
    return torch.complex(f.real, f.imag * (~self_paired).to(f.real.dtype))


def ctf_half(grid: HalfGrid, ctf: CtfParams, apix: float, sign: float = 1.0) -> torch.Tensor:
    """``(B, M)`` CTF on the half-disc (``sign = -1`` flips it: tests only)."""
    full = ctf_centered(ctf, grid.box, apix, device=grid.flat.device)
    return sign * full.reshape(full.shape[0], -1)[:, grid.flat]


def predict_slices(model: HartleyField, grid: HalfGrid, rotations: torch.Tensor, z: torch.Tensor,
                   ctf: torch.Tensor, convention: str = "RT") -> torch.Tensor:
    """CTF-modulated predicted slices on the half-disc, ``(B, M)`` complex.

    ``ctf`` is ``(B, M)`` from :func:`ctf_half`; values are in units of the normalised images.
    """
    coords = slice_coords(grid, rotations, convention)
    return ctf * field_fourier(model, coords, z, grid.self_paired)


def observed_slices(images: torch.Tensor, shifts_px: torch.Tensor, f_std: float,
                    grid: HalfGrid) -> torch.Tensor:
    """Centred, normalised transforms of raw particles on the half-disc.

    Parameters
    ----------
    images : ``(B, D, D)`` raw (uncentred) images, as :class:`~cryostar_engine.data.Batch` gives.
    shifts_px : ``(B, 2)`` (x, y) shifts that centre them (``shift_images`` convention).
    f_std : Fourier normalisation (the images are divided by it).

    Returns
    -------
    ``(B, M)`` complex: ``fft2c(shift_images(images, shifts_px) / f_std)`` at the half-disc.
    """
    centred = shift_images(images, shifts_px)
    f = fft2c(centred) / f_std
    return f.reshape(f.shape[0], -1)[:, grid.flat]
