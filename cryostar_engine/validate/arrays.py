"""Latent (z) arrays: shape, dtype, NaN rows, row counts — one-line errors naming the file."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError

__all__ = ["check_latent_array", "load_latent_file"]


def check_latent_array(z, what, n_rows: int | None = None, z_dim: int | None = None,
                       min_rows: int = 1, star=None, dtype=np.float32) -> np.ndarray:
    """Return ``z`` as ``(N, D)`` ``dtype`` (float32), or raise :class:`InputError` naming ``what``.

    A 1-D array is read as N rows of a 1-D latent.  Refused: other shapes, non-real dtypes
    (text, bool, complex, objects), fewer than ``min_rows`` rows, a row count other than
    ``n_rows`` (the particles of ``star``), a latent dimension other than ``z_dim`` and rows with
    NaN or Inf (the first one is named, 0-based).
    """
    z = np.asarray(z)
    if z.ndim == 1:
        z = z[:, None]
    kind = z.dtype.kind
    if kind not in "iuf":
        raise InputError(f"{what}: latents must be real numbers, got dtype {z.dtype}")
    if z.ndim != 2 or z.shape[1] < 1:
        raise InputError(f"{what}: expected a (rows, latent dim) array, got shape {z.shape}")
    if len(z) < min_rows:
        raise InputError(f"{what}: holds {len(z)} latent rows, at least {min_rows} needed")
    if n_rows is not None and len(z) != n_rows:
        raise InputError(f"{what}: {len(z)} rows but {star or 'the star file'} has {n_rows} "
                         "particles; give the z.npy of a run on this star file (one row per particle)")
    if z_dim is not None and z.shape[1] != z_dim:
        raise InputError(f"{what}: latent dimension {z.shape[1]} but the run was trained with "
                         f"{z_dim}; give latents of this run")
    bad = np.flatnonzero(~np.isfinite(z).all(1))
    if len(bad):
        raise InputError(f"{what}: row {bad[0]} holds NaN or inf ({len(bad)} rows in all)")
    return z.astype(dtype)


def load_latent_file(path, **checks) -> np.ndarray:
    """Read latents from ``.npy`` (or whitespace-separated ``.txt``) and check them
    (:func:`check_latent_array` keyword arguments)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: latent file not found" if not path.is_dir()
                         else f"{path}: is a folder; give a .npy file of latents")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the latent file is empty")
    try:
        if path.suffix == ".txt":
            z = np.loadtxt(path, ndmin=2)
        else:
            z = np.load(path, allow_pickle=False)
    except Exception as err:  # numpy raises ValueError, OSError, EOFError, UnpicklingError ...
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(f"{path}: not a readable latent array ({reason}); give a .npy "
                         "(rows, latent dim) array") from None
    if isinstance(z, np.lib.npyio.NpzFile):
        raise InputError(f"{path}: a .npz archive; give a .npy array of latents")
    return check_latent_array(z, str(path), **checks)
