"""Load and check the inputs of a density run *before* anything is written or computed."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..io.relion import ParticleMetadata, read_particles
from ..validate.arrays import load_latent_file
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
    """Read a ``.npy`` of latents as ``(n, z_dim)`` float32, with one-line errors
    (:func:`~cryostar_engine.validate.arrays.load_latent_file`).

    Parameters
    ----------
    path : the ``.npy`` file; a 1-D array is read as n rows of a 1-D latent.
    n_rows : required row count (the star file's particle count), if any.
    star : the star file named in the row-count message.
    z_dim : required latent dimension (a trained run's), if any.
    """
    return load_latent_file(path, n_rows=n_rows, z_dim=z_dim, star=star)


def load_inputs(config: DensityConfig) -> DensityInputs:
    """Read the star file and the latents and check that they belong together (no output)."""
    meta = read_particles(config.particles, datadir=config.datadir,
                          amplitude_contrast=getattr(config, "amplitude_contrast", None),
                          passthrough=getattr(config, "passthrough", None))
    z = load_latents(config.z_path, n_rows=len(meta), star=config.particles)
    box = working_box(meta.box, config.box)
    return DensityInputs(meta=meta, z=z, box=box, apix=meta.apix * meta.box / box)
