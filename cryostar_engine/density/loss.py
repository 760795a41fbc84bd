"""The stage-2 loss and the Fourier normalisation of the data (spec §2.2, §4.3)."""
from __future__ import annotations

import numpy as np
import torch

from ..physics.fourier import fft2c

__all__ = ["fourier_mse", "estimate_f_std"]


def fourier_mse(f_obs: torch.Tensor, f_pred: torch.Tensor, weights: torch.Tensor,
                n_images: int | None = None) -> torch.Tensor:
    """Mean over the batch, the full Fourier disc and {Re, Im} of ``|F_obs - F_pred|²``.

    Parameters
    ----------
    f_obs, f_pred : ``(B, M)`` complex values on a half-disc.
    weights : ``(M,)`` pair weights of the half-disc (2 for a {k, -k} pair, 1 if self-paired).
    n_images : the number of images the mean is over (default ``B``).  A process of a
        distributed run passes the global batch size, so that the sum of the processes' values
        is the mean over the global batch, however the batch was split.

    Both inputs are Hermitian on the full disc, so the weighted half-disc sum equals the full-disc
    sum exactly, and the result equals CryoSTAR's ``fmsf`` over the full disc.
    """
    d = f_obs - f_pred
    se = d.real ** 2 + d.imag ** 2
    n = f_obs.shape[0] if n_images is None else n_images
    return (se * weights).sum() / (2.0 * weights.sum() * n)


def estimate_f_std(dataset, n_particles: int = 100) -> float:
    """Standard deviation of all complex centred-FFT coefficients of ~``n_particles`` images.

    Uses evenly spaced star rows (every N//n-th) at the dataset's working box, as CryoSTAR does.
    The images are divided by this number before training; the volumes are in those units.
    """
    n = len(dataset)
    rows = np.unique(np.linspace(0, n - 1, min(n, n_particles)).round().astype(np.int64))
    f = fft2c(dataset.images(rows).to(torch.float64))
    return float(torch.std(f))
