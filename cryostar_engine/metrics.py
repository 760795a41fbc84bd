"""Comparison metrics between maps and structures (one place for each definition)."""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["correlation", "fsc", "resolution_at", "rmsd_per_model"]


def correlation(a, b, mask=None) -> float:
    """Pearson correlation of two arrays (optionally inside a boolean mask)."""
    a = torch.as_tensor(a, dtype=torch.float64).flatten()
    b = torch.as_tensor(b, dtype=torch.float64).flatten()
    if mask is not None:
        m = torch.as_tensor(mask).flatten().bool()
        a, b = a[m], b[m]
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-30))


def fsc(vol_a, vol_b, apix: float = 1.0):
    """Fourier shell correlation of two cubic ``(D, D, D)`` maps.

    Returns
    -------
    (freq, curve) : ``(D//2,)`` arrays; ``freq`` in Å⁻¹ (shell k at k/(D·apix)), ``curve`` the
    FSC of shells 0 … D//2 − 1 (shell 0 is the DC term).
    """
    a = torch.fft.fftn(torch.as_tensor(vol_a, dtype=torch.float64))
    b = torch.fft.fftn(torch.as_tensor(vol_b, dtype=torch.float64))
    d = a.shape[-1]
    k = torch.fft.fftfreq(d, dtype=torch.float64) * d
    r = torch.sqrt(k[:, None, None] ** 2 + k[None, :, None] ** 2 + k[None, None, :] ** 2)
    shell = torch.round(r).long().flatten()
    n = d // 2
    keep = shell < n
    shell = shell[keep]
    cross = torch.zeros(n, dtype=torch.float64).index_add_(0, shell, (a * b.conj()).real.flatten()[keep])
    pa = torch.zeros(n, dtype=torch.float64).index_add_(0, shell, (a.abs() ** 2).flatten()[keep])
    pb = torch.zeros(n, dtype=torch.float64).index_add_(0, shell, (b.abs() ** 2).flatten()[keep])
    curve = cross / torch.sqrt(pa * pb).clamp_min(1e-30)
    freq = np.arange(n) / (d * apix)
    return freq, curve.numpy()


def resolution_at(freq: np.ndarray, curve: np.ndarray, threshold: float) -> float:
    """Resolution (Å) where ``curve`` first falls below ``threshold`` (linear interpolation);
    Nyquist when it never does."""
    below = np.flatnonzero(curve[1:] < threshold) + 1
    if len(below) == 0:
        return float(1.0 / freq[-1]) if freq[-1] > 0 else float("inf")
    i = below[0]
    f0, f1, c0, c1 = freq[i - 1], freq[i], curve[i - 1], curve[i]
    f = f0 + (c0 - threshold) / (c0 - c1) * (f1 - f0) if c0 != c1 else f1
    return float(1.0 / f) if f > 0 else float("inf")


def rmsd_per_model(pred, truth) -> np.ndarray:
    """Root-mean-square deviation (Å) without superposition, per model.

    pred, truth : ``(M, N, 3)`` coordinates in Å, matched atom for atom.
    """
    pred, truth = np.asarray(pred, np.float64), np.asarray(truth, np.float64)
    return np.sqrt(((pred - truth) ** 2).sum(-1).mean(-1))
