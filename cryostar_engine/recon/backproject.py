"""Quick CTF-corrected reconstruction from given poses: Wiener-filtered direct Fourier inversion.

Used by ``check-inputs`` to prove that poses, shifts, CTF and contrast agree with the data before
any training: a wrong convention gives a map that does not look like the model.

Method: each image is centred (shift by ``+shifts_px``), zero-padded ``pad``× in real space,
transformed with the centred FFT, multiplied by its CTF ``H`` and inserted with trilinear weights
at the 3-D frequencies ``R^T k2`` of a ``(pad·D)³`` grid, accumulating ``Σ H·F`` and ``Σ H²``.
The volume is ``Σ H·F / (Σ H² + ε)`` with ε a fraction of the mean weight inside the sphere,
inverse-transformed, cropped to ``D³`` and divided by the sinc² apodisation of trilinear
gridding.  Output array order ``[z, y, x]``, voxel ``D//2`` at the origin, same pixel size as
the images.
"""
from __future__ import annotations

import math

import torch

from ..physics.ctf import CtfParams, evaluate_ctf
from ..physics.fourier import fft2c, ifft3c, shift_images

__all__ = ["Backprojector"]


class Backprojector:
    """Accumulates images into a padded Fourier grid; :meth:`volume` returns the Wiener map."""

    def __init__(self, box: int, apix: float, pad: int = 2, device="cpu"):
        self.box, self.apix, self.pad = box, apix, pad
        self.size = pad * box
        n = self.size
        self.device = torch.device(device)
        self.numer = torch.zeros(2, n ** 3, dtype=torch.float64, device=self.device)
        self.denom = torch.zeros(n ** 3, dtype=torch.float64, device=self.device)
        k = torch.arange(n, device=self.device, dtype=torch.float32) - n // 2
        ky, kx = torch.meshgrid(k, k, indexing="ij")
        inside = (kx ** 2 + ky ** 2) <= (n // 2 - 1) ** 2
        self._plane = torch.stack([kx[inside], ky[inside], torch.zeros_like(kx[inside])], -1)
        self._inside = inside
        self._s = (ky[inside] / (n * apix), kx[inside] / (n * apix))   # Å⁻¹

    def add(self, images: torch.Tensor, rotations: torch.Tensor, shifts_px: torch.Tensor,
            ctf: CtfParams) -> None:
        """Insert ``(B, D, D)`` raw images with their ``(B, 3, 3)`` rotations, ``(B, 2)`` shifts
        (x, y, pixels; content moved by ``+shift``) and CTF."""
        images = shift_images(images.to(self.device, torch.float32), shifts_px.to(self.device))
        b, d = images.shape[0], self.box
        padded = images.new_zeros(b, self.size, self.size)
        lo = self.size // 2 - d // 2
        padded[:, lo:lo + d, lo:lo + d] = images
        f = fft2c(padded)[:, self._inside]                                 # (B, P) complex
        h = evaluate_ctf(self._s[0][None], self._s[1][None], ctf.to(self.device))[:, 0]  # (B, P)
        coords = self._plane @ rotations.to(self.device, torch.float32)    # (B, P, 3) = R^T k2
        self._scatter(coords.reshape(-1, 3), (h * f).reshape(-1), (h * h).reshape(-1))

    def _scatter(self, coords: torch.Tensor, values: torch.Tensor, weights: torch.Tensor) -> None:
        n = self.size
        pos = coords + n // 2                       # grid units, centre at n//2
        base = torch.floor(pos)
        frac = pos - base
        base = base.long()
        for dz in (0, 1):
            for dy in (0, 1):
                for dx in (0, 1):
                    w = ((frac[:, 2] if dz else 1 - frac[:, 2]) *
                         (frac[:, 1] if dy else 1 - frac[:, 1]) *
                         (frac[:, 0] if dx else 1 - frac[:, 0])).double()
                    iz, iy, ix = base[:, 2] + dz, base[:, 1] + dy, base[:, 0] + dx
                    ok = (iz >= 0) & (iz < n) & (iy >= 0) & (iy < n) & (ix >= 0) & (ix < n)
                    flat = ((iz * n + iy) * n + ix)[ok]
                    wv = w[ok]
                    v = values[ok]
                    self.numer[0].index_add_(0, flat, wv * v.real.double())
                    self.numer[1].index_add_(0, flat, wv * v.imag.double())
                    self.denom.index_add_(0, flat, wv * weights[ok].double())

    def volume(self, wiener_fraction: float = 0.05) -> torch.Tensor:
        """The reconstructed ``(D, D, D)`` float32 map ``[z, y, x]``.

        ``wiener_fraction``: ε as a fraction of the mean of ``Σ H²`` over the sampled sphere.
        """
        n, d = self.size, self.box
        sampled = self.denom > 0
        eps = wiener_fraction * self.denom[sampled].mean() if sampled.any() else 1.0
        f = torch.complex(self.numer[0], self.numer[1]) / (self.denom + eps)
        vol = ifft3c(f.reshape(n, n, n)).real
        lo = n // 2 - d // 2
        vol = vol[lo:lo + d, lo:lo + d, lo:lo + d]
        x = (torch.arange(d, dtype=torch.float64, device=vol.device) - d // 2) / n
        sinc = torch.where(x == 0, torch.ones_like(x), torch.sin(math.pi * x) / (math.pi * x)) ** 2
        vol = vol / (sinc[:, None, None] * sinc[None, :, None] * sinc[None, None, :])
        return vol.float()
