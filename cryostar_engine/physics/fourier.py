"""Fourier-space conventions: frequency grids, centred FFTs, cropping, shifts and low-pass masks.

Conventions
-----------
* Images are arrays ``[..., row, col]`` = ``[..., y, x]``; volumes ``[z, y, x]``.
* Real space: pixel ``i`` sits at ``(i - D//2) * apix`` Å, so the box centre is pixel ``D//2``
  (both parities).
* *Centred* transforms put the origin of real space at pixel ``D//2`` and the DC term at index
  ``D//2``: ``fft2c(x) = fftshift(fft2(ifftshift(x)))``, no normalisation forward,
  ``1/D²`` on the inverse.  Use them where the phase matters (slices, back-projection).
* For filtering (CTF, low-pass) and shifting, the origin's position does not matter, and the
  cheaper half-plane ``rfft2`` layout is used: ``(..., D, D//2 + 1)``, DC at ``[0, 0]``.
* Frequencies are in Å⁻¹ (``fftfreq(D, apix)``).
* A shift ``t = (tx, ty)`` in pixels moves image *content* by ``+t``:
  ``out(r) = in(r - t)``, i.e. ``F(k) · exp(-2πi k·t)``.
"""
from __future__ import annotations

import math

import torch

__all__ = [
    "fft2c", "ifft2c", "fft3c", "ifft3c", "rfft_freqs", "centered_freqs", "fourier_crop",
    "shift_images", "lowpass_mask_rfft", "apply_rfft_filter", "gaussian_lowpass_volume",
    "fourier_crop_volume", "shift_phase_rfft",
]


def fft2c(x: torch.Tensor) -> torch.Tensor:
    """Centred 2-D FFT of ``(..., D, D)`` real or complex images; DC at ``[D//2, D//2]``."""
    return torch.fft.fftshift(torch.fft.fft2(torch.fft.ifftshift(x, dim=(-2, -1))), dim=(-2, -1))


def ifft2c(f: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`fft2c` (complex output)."""
    return torch.fft.fftshift(torch.fft.ifft2(torch.fft.ifftshift(f, dim=(-2, -1))), dim=(-2, -1))


def fft3c(x: torch.Tensor) -> torch.Tensor:
    """Centred 3-D FFT of ``(..., D, D, D)`` volumes ``[z, y, x]``; DC at ``[D//2]*3``."""
    dims = (-3, -2, -1)
    return torch.fft.fftshift(torch.fft.fftn(torch.fft.ifftshift(x, dim=dims), dim=dims), dim=dims)


def ifft3c(f: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`fft3c` (complex output)."""
    dims = (-3, -2, -1)
    return torch.fft.fftshift(torch.fft.ifftn(torch.fft.ifftshift(f, dim=dims), dim=dims), dim=dims)


def rfft_freqs(box: int, apix: float, device=None, dtype=torch.float32):
    """Frequencies of the ``rfft2`` layout.

    Returns
    -------
    (sy, sx) : two tensors broadcastable to ``(D, D//2 + 1)``, Å⁻¹.
    """
    sy = torch.fft.fftfreq(box, d=apix, device=device, dtype=dtype)[:, None]
    sx = torch.fft.rfftfreq(box, d=apix, device=device, dtype=dtype)[None, :]
    return sy, sx


def centered_freqs(box: int, apix: float, device=None, dtype=torch.float32):
    """Frequencies of the centred layout, ``(sy, sx)`` broadcastable to ``(D, D)``, Å⁻¹."""
    f = (torch.arange(box, device=device, dtype=dtype) - box // 2) / (box * apix)
    return f[:, None], f[None, :]


def _fourier_crop(x: torch.Tensor, new_box: int, ndim: int) -> torch.Tensor:
    """Crop the centred transform of the last ``ndim`` (cubic) axes of real ``x`` to
    ``new_box``; values rescaled by ``(new_box/box)**ndim`` so intensities stay comparable."""
    box = x.shape[-1]
    if new_box == box:
        return x
    if new_box > box:
        raise ValueError(f"cannot Fourier-crop a {box}-px array up to {new_box} px")
    dims = tuple(range(-ndim, 0))
    f = torch.fft.fftshift(torch.fft.fftn(torch.fft.ifftshift(x, dim=dims), dim=dims), dim=dims)
    keep = slice(box // 2 - new_box // 2, box // 2 - new_box // 2 + new_box)
    f = f[(Ellipsis,) + (keep,) * ndim]
    out = torch.fft.fftshift(torch.fft.ifftn(torch.fft.ifftshift(f, dim=dims), dim=dims), dim=dims)
    return out.real * (new_box / box) ** ndim


def fourier_crop(images: torch.Tensor, new_box: int) -> torch.Tensor:
    """Downsample ``(..., D, D)`` real images to ``(..., d, d)`` by cropping their transform.

    Keeps frequencies |k| < d/2 (in the new grid), so the pixel size becomes ``apix * D / d``.
    Values are rescaled by ``(d/D)²`` so that real-space intensities (and the image mean) stay
    comparable.  ``new_box == D`` returns the input unchanged.
    """
    return _fourier_crop(images, new_box, 2)


def fourier_crop_volume(volume: torch.Tensor, new_box: int) -> torch.Tensor:
    """Downsample a ``(D, D, D)`` real volume to ``(d, d, d)`` by cropping its centred transform;
    values rescaled by ``(d/D)³`` (intensities stay comparable)."""
    return _fourier_crop(volume, new_box, 3)


def shift_phase_rfft(box: int, shifts_px: torch.Tensor) -> torch.Tensor:
    """``(B, D, D//2+1)`` phase ramps ``exp(-2πi k·t)`` on the rfft grid for ``(B, 2)`` shifts
    (tx, ty) in pixels; multiplying a transform by it moves the content by ``+t``."""
    ky, kx = rfft_freqs(box, 1.0, device=shifts_px.device, dtype=shifts_px.dtype)
    phase = kx * shifts_px[:, 0, None, None] + ky * shifts_px[:, 1, None, None]
    return torch.polar(torch.ones_like(phase), -2 * math.pi * phase)


def shift_images(images: torch.Tensor, shifts_px: torch.Tensor) -> torch.Tensor:
    """Translate ``(B, D, D)`` real images by ``(B, 2)`` shifts (tx, ty) in pixels.

    Content moves by ``+t`` (see module docstring); periodic boundary, exact sub-pixel phase ramp.
    """
    box = images.shape[-1]
    f = torch.fft.rfft2(images) * shift_phase_rfft(box, shifts_px)
    return torch.fft.irfft2(f, s=images.shape[-2:])


def lowpass_mask_rfft(box: int, apix: float, resolution_A: float | None, device=None) -> torch.Tensor:
    """Hard low-pass disc on the rfft grid: 1 where |s| < 1/resolution_A, else 0, ``(D, D//2+1)``.

    ``resolution_A=None`` (or ≤ 2·apix) keeps everything up to Nyquist.
    """
    sy, sx = rfft_freqs(box, apix, device=device)
    s2 = sy ** 2 + sx ** 2
    if resolution_A is None or resolution_A <= 2 * apix:
        return torch.ones_like(s2)
    return (s2 < 1.0 / resolution_A ** 2).to(s2.dtype)


def apply_rfft_filter(images: torch.Tensor, filt: torch.Tensor) -> torch.Tensor:
    """Multiply the rfft2 of ``(B, D, D)`` real images by ``filt`` (``(D, D//2+1)`` or
    ``(B, D, D//2+1)``) and return to real space."""
    return torch.fft.irfft2(torch.fft.rfft2(images) * filt, s=images.shape[-2:])


def gaussian_lowpass_volume(volume: torch.Tensor, sigma_vox: float) -> torch.Tensor:
    """Real-space Gaussian blur (σ in voxels) of a ``(D, D, D)`` volume, done in Fourier space."""
    box = volume.shape[-1]
    k = torch.fft.fftfreq(box, device=volume.device, dtype=torch.float64)
    k2 = k[:, None, None] ** 2 + k[None, :, None] ** 2 + k[None, None, :] ** 2
    g = torch.exp(-2 * math.pi ** 2 * sigma_vox ** 2 * k2).to(volume.dtype)
    return torch.fft.ifftn(torch.fft.fftn(volume) * g).real
