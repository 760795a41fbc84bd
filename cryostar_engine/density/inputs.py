"""Load and check the inputs of a density run *before* anything is written or computed."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io.relion import ParticleMetadata, read_particles
from .config import DensityConfig

__all__ = ["DensityInputs", "load_inputs", "load_latents", "working_box"]


@dataclass
class DensityInputs:
    """Checked inputs: particle metadata, latents ``(N, z_dim)`` float32, working box and pixel.

    ``apix`` is the working pixel size in Å, ``meta.apix · meta.box / box``.
    """

    meta: ParticleMetadata
    z: np.ndarray
    box: int
    apix: float


def working_box(box_in: int, requested: int | None) -> int:
    """D′: ``requested`` if given (≤ the particles' box), else 256 when D > 256, else D."""
    if requested is None:
        return 256 if box_in > 256 else box_in
    if requested > box_in:
        raise InputError(f"--box {requested} px is larger than the particles' {box_in} px; "
                         "choose a box ≤ the particle box (Fourier cropping only shrinks)")
    return int(requested)


def load_latents(path, n_rows: int | None = None, star=None, z_dim: int | None = None) -> np.ndarray:
    """Read a ``.npy`` of latents as ``(n, z_dim)`` float32, with one-line errors.

    Parameters
    ----------
    path : the ``.npy`` file; a 1-D array is read as n rows of a 1-D latent.
    n_rows : required row count (the star file's particle count), if any.
    star : the star file named in the row-count message.
    z_dim : required latent dimension (a trained run's), if any.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: latent file not found")
    try:
        z = np.load(path, allow_pickle=False)
    except Exception as err:
        raise InputError(f"{path}: not a readable .npy array ({err})") from None
    if z.ndim == 1:
        z = z[:, None]
    if z.ndim != 2 or not np.issubdtype(z.dtype, np.number) or z.size == 0:
        raise InputError(f"{path}: expected a numeric (rows, latent dim) array, got shape "
                         f"{z.shape} dtype {z.dtype}")
    if n_rows is not None and len(z) != n_rows:
        raise InputError(f"{path}: {len(z)} rows but {star} has {n_rows} particles; z.npy must "
                         "have one row per star-file row (use the z.npy of a run on this star file)")
    if z_dim is not None and z.shape[1] != z_dim:
        raise InputError(f"{path}: latent dimension {z.shape[1]} but the run was trained with "
                         f"{z_dim}")
    bad = np.flatnonzero(~np.isfinite(z).all(1))
    if len(bad):
        raise InputError(f"{path}: row {bad[0]} holds NaN or inf ({len(bad)} rows in all)")
    return z.astype(np.float32)


def load_inputs(config: DensityConfig) -> DensityInputs:
    """Read the star file and the latents and check that they belong together (no output)."""
    meta = read_particles(config.particles, datadir=config.datadir)
    z = load_latents(config.z_path, n_rows=len(meta), star=config.particles)
    box = working_box(meta.box, config.box)
    return DensityInputs(meta=meta, z=z, box=box, apix=meta.apix * meta.box / box)
