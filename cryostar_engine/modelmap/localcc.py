"""Local correlation of two maps in a sphere around each point (beads), computed for the whole
grid at once.

For two volumes ``a`` and ``b`` ``(D, D, D)`` ``[z, y, x]`` and a spherical top-hat window ``w``
of radius ``R`` voxels, the local Pearson correlation at voxel ``c`` is

``cc(c) = cov_w(a, b) / sqrt(var_w(a) · var_w(b))`` with ``E_w[f](c) = Σ_r w(r - c) f(r) / Σ w``,

so five convolutions (of ``a``, ``b``, ``a²``, ``b²``, ``ab`` with ``w``) give the field; they are
done with FFTs (circular: the molecule must sit inside the box with a margin of ``R``, which the
particle box guarantees).  The field is read at bead coordinates (Å, box frame: voxel ``D//2`` at
0 Å, coordinates ordered x, y, z) by trilinear interpolation.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import map_coordinates

__all__ = ["sphere_kernel", "local_correlation", "sample_at", "ball_voxels", "correlations_in"]


def sphere_kernel(box: int, radius_vox: float) -> torch.Tensor:
    """``(D, D, D)`` float64 top-hat ball of ``radius_vox`` voxels, centred on voxel 0 (FFT
    layout: wrapped), normalised to sum 1."""
    k = torch.fft.fftfreq(box, dtype=torch.float64) * box
    r2 = k[:, None, None] ** 2 + k[None, :, None] ** 2 + k[None, None, :] ** 2
    ball = (r2 <= radius_vox ** 2).to(torch.float64)
    return ball / ball.sum()


def local_correlation(a, b, radius_vox: float) -> np.ndarray:
    """``(D, D, D)`` float64 local correlation of ``a`` and ``b`` in balls of ``radius_vox``
    voxels around every voxel; 0 where either map is flat in the ball."""
    a = torch.as_tensor(np.asarray(a), dtype=torch.float64)
    b = torch.as_tensor(np.asarray(b), dtype=torch.float64)
    kernel = torch.fft.rfftn(sphere_kernel(a.shape[-1], radius_vox))

    def mean(x):
        return torch.fft.irfftn(torch.fft.rfftn(x) * kernel, s=x.shape)

    ma, mb = mean(a), mean(b)
    cov = mean(a * b) - ma * mb
    va = (mean(a * a) - ma * ma).clamp_min(0)
    vb = (mean(b * b) - mb * mb).clamp_min(0)
    den = torch.sqrt(va * vb)
    floor = 1e-9 * float(den.max()) if float(den.max()) > 0 else 1e-300
    cc = torch.where(den > floor, cov / den.clamp_min(floor), torch.zeros_like(cov))
    return cc.clamp(-1, 1).numpy()


def sample_at(field: np.ndarray, coords_A: np.ndarray, apix: float) -> np.ndarray:
    """Values of a ``(D, D, D)`` field at ``(N, 3)`` box-frame coordinates (Å, x y z), trilinear;
    points outside the box take the nearest edge value."""
    box = field.shape[-1]
    idx = np.asarray(coords_A, dtype=np.float64) / apix + box // 2        # (N, 3) x, y, z voxels
    return map_coordinates(field, idx[:, ::-1].T, order=1, mode="nearest")


def ball_voxels(centres_A: np.ndarray, radius_A: float, box: int, apix: float) -> np.ndarray:
    """Sorted flat indices (into a ``(D, D, D)`` ``[z, y, x]`` volume) of the voxels within
    ``radius_A`` of any of the ``(K, 3)`` box-frame centres (Å, x y z).  A k-d tree of the
    centres keeps memory at the size of the centres' bounding box, for any K."""
    from scipy.spatial import cKDTree

    centres = np.atleast_2d(np.asarray(centres_A, dtype=np.float64)) / apix + box // 2
    r = radius_A / apix
    lo = np.clip(np.floor(centres.min(0) - r), 0, box - 1).astype(int)
    hi = np.clip(np.ceil(centres.max(0) + r), 0, box - 1).astype(int)
    axes = [np.arange(lo[a], hi[a] + 1) for a in range(3)]            # x, y, z voxel ranges
    gx, gy, gz = np.meshgrid(*axes, indexing="ij")
    pts = np.stack([gx.ravel(), gy.ravel(), gz.ravel()], 1)
    dist, _ = cKDTree(centres).query(pts.astype(np.float64), distance_upper_bound=r * (1 + 1e-9))
    keep = pts[np.isfinite(dist)].astype(np.int64)
    return np.sort((keep[:, 2] * box + keep[:, 1]) * box + keep[:, 0])


def correlations_in(volumes, voxels: np.ndarray) -> np.ndarray:
    """``(K, K)`` Pearson correlations of K flattened volumes over the given flat voxels."""
    x = np.stack([np.asarray(v).reshape(-1)[voxels] for v in volumes]).astype(np.float64)
    x = x - x.mean(1, keepdims=True)
    norm = np.sqrt((x * x).sum(1))
    norm[norm == 0] = np.inf
    return (x @ x.T) / np.outer(norm, norm)
