"""The model–map FSC inside a soft mask around the model.

The mask is 1 within ``radius_A`` of any bead and falls off as a Gaussian of ``edge_A`` outside
it (both Å); model density and map are multiplied by it before
:func:`cryostar_engine.metrics.fsc` (the engine's one FSC), and the resolution is read where the
curve falls below 0.5 (:func:`cryostar_engine.metrics.resolution_at`).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..metrics import fsc, resolution_at
from ..physics.fourier import gaussian_lowpass_volume
from ..physics.render import bead_density

__all__ = ["soft_mask", "masked_fsc"]


def soft_mask(coords_A: np.ndarray, box: int, apix: float, radius_A: float,
              edge_A: float) -> torch.Tensor:
    """``(D, D, D)`` float64 mask in [0, 1]: 1 within ``radius_A`` of a bead ``(N, 3)`` (box
    frame, Å), a Gaussian edge of σ ``edge_A`` outside.  The ball is found with the engine's
    bead renderer (unit Gaussians of σ = radius/2 exceed e⁻² exactly within the radius of a
    lone bead; neighbours only widen it)."""
    coords = torch.as_tensor(np.asarray(coords_A), dtype=torch.float64)
    ones = torch.ones(len(coords), dtype=torch.float64)
    inside = (bead_density(coords, ones, radius_A / 2, box, apix) >= math.exp(-2)).to(torch.float64)
    soft = gaussian_lowpass_volume(inside, edge_A / apix).clamp(0, 1)
    return torch.maximum(inside, soft)


def masked_fsc(model_map, target_map, mask, apix: float) -> tuple[np.ndarray, np.ndarray, float]:
    """``(freq Å⁻¹, FSC, resolution at 0.5 in Å)`` of two ``(D, D, D)`` maps inside ``mask``."""
    m = torch.as_tensor(mask, dtype=torch.float64)
    freq, curve = fsc(torch.as_tensor(np.asarray(model_map), dtype=torch.float64) * m,
                      torch.as_tensor(np.asarray(target_map), dtype=torch.float64) * m, apix)
    return freq, curve, resolution_at(freq, curve, 0.5)
