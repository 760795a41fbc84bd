"""Volumes from the density generator: evaluate the half-ball in chunks, assemble, inverse FFT.

A volume is ``[z, y, x]`` on the working box D′ with voxel ``D′//2`` at the box centre; it is
written with the header origin of the user frame (``Frame.volume_origin_A``: ``-(D′//2)·apix′ -
shift_A``), so it overlays the input model and consensus map.  Values are in normalised image units: a ray sum of the volume equals the
CTF-free particle image divided by ``f_std`` (multiply by ``f_std`` for the input's intensity
units).  The transform is zero outside the ball of radius ``mask_radius·D′/2`` voxels.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..io.mrc import write_mrc
from ..physics.fourier import ifft3c
from .hartley import assemble_full, half_grid
from .network import HartleyField, autocast
from .slicing import field_fourier

__all__ = ["VolumeRenderer"]


class VolumeRenderer:
    """Renders volumes of one :class:`HartleyField` for any latent vectors.

    Parameters
    ----------
    model : the trained field (left in eval mode, on its device).
    box : D′ in voxels.
    radius_px : radius of the Fourier ball in voxels (default D′//2).
    chunk_points : network evaluations per chunk (memory ≈ chunk × hidden × 4 B × a few).
    autocast_dtype : e.g. ``torch.bfloat16`` to evaluate the MLP in 16 bits; None → fp32.
    """

    def __init__(self, model: HartleyField, box: int, radius_px: float | None = None,
                 chunk_points: int = 65536, autocast_dtype=None):
        self.model = model
        self.device = next(model.parameters()).device
        self.grid = half_grid(box, 3, radius_px).to(self.device)
        self.chunk = int(chunk_points)
        self.autocast_dtype = autocast_dtype

    @torch.no_grad()
    def fourier(self, z: torch.Tensor) -> torch.Tensor:
        """``(D, D, D)`` complex centred transform of the volume for one ``(z_dim,)`` latent."""
        self.model.eval()
        z = torch.as_tensor(z, dtype=torch.float32, device=self.device).reshape(1, -1)
        coords, self_paired = self.grid.coords, self.grid.self_paired
        parts = []
        with autocast(self.device, self.autocast_dtype):
            for s in range(0, len(coords), self.chunk):
                sl = slice(s, s + self.chunk)
                parts.append(field_fourier(self.model, coords[None, sl], z, self_paired[sl])[0])
        return assemble_full(self.grid, torch.cat(parts))

    def volume(self, z) -> np.ndarray:
        """``(D, D, D)`` float32 real-space volume ``[z, y, x]`` for one latent."""
        return ifft3c(self.fourier(z)).real.float().cpu().numpy()

    def write(self, zs: np.ndarray, paths, apix: float, origin_A=None) -> list[Path]:
        """Write one MRC per row of ``zs`` ``(n, z_dim)`` to ``paths`` (atomic), voxel ``apix`` Å,
        header origin ``origin_A`` (x, y, z, Å; default ``-(D′//2)·apix``, the box frame);
        return the paths."""
        out = []
        for z, path in zip(np.asarray(zs, dtype=np.float32), paths):
            write_mrc(path, self.volume(z), apix, origin_A=origin_A)
            out.append(Path(path))
        return out
