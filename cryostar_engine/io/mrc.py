"""MRC maps and memory-mapped MRC image stacks (mrcfile).

Array order is mrcfile's: images ``[y, x]``, stacks ``[n, y, x]``, volumes ``[z, y, x]``.
Stacks are opened with ``mrcfile.mmap``: only the images asked for are read from disk, so a
100 GB stack never has to fit in memory.  Map origins are in Å (header ``origin``, plus
``nxstart``-style offsets when ``origin`` is zero), voxel sizes in Å.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import mrcfile
import numpy as np

from ..errors import InputError
from .atomic import atomic_path

__all__ = ["StackCache", "MapData", "read_map", "write_mrc", "stack_shape"]


def _open_mmap(path: Path):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            return mrcfile.mmap(path, mode="r")
    except FileNotFoundError:
        raise InputError(f"{path}: image stack not found") from None
    except (ValueError, RuntimeWarning, OSError) as err:
        raise InputError(f"{path}: unreadable or truncated MRC file ({err}); "
                         "re-export or re-extract this stack") from None


def stack_shape(path) -> tuple[int, int, int]:
    """``(n_images, ny, nx)`` of an MRC file (a single 2-D image counts as one).

    Refuses complex-valued stacks (MRC modes 3 and 4: Fourier transforms, not images)."""
    with _open_mmap(Path(path)) as m:
        shape = m.data.shape
        if m.data.dtype.kind == "c":
            raise InputError(f"{path}: complex-valued MRC (mode {int(m.header.mode)}); give real-space "
                             "particle images (mode 2, float32)")
    return (1, *shape) if len(shape) == 2 else tuple(shape)


class StackCache:
    """Keeps memory-mapped stacks open and reads images by (path, 0-based index).

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self):
        self._open: dict[Path, mrcfile.mrcmemmap.MrcMemmap] = {}

    def _data(self, path: Path) -> np.ndarray:
        if path not in self._open:
            self._open[path] = _open_mmap(path)
        data = self._open[path].data
        return data[None] if data.ndim == 2 else data

    def read(self, paths, indices) -> np.ndarray:
        """Read images ``(len(indices), ny, nx)`` as float32; ``paths``/``indices`` are parallel
        sequences (0-based indices).  Reads each stack's images in one sorted fancy-index."""
        paths = [Path(p) for p in paths]
        indices = np.asarray(indices)
        first = self._data(paths[0])
        out = np.empty((len(indices), *first.shape[1:]), dtype=np.float32)
        by_path: dict[Path, list[int]] = {}
        for row, p in enumerate(paths):
            by_path.setdefault(p, []).append(row)
        for p, rows in by_path.items():
            rows = np.asarray(rows)
            idx = indices[rows]
            order = np.argsort(idx)
            out[rows[order]] = self._data(p)[idx[order]]
        return out

    def close(self):
        for m in self._open.values():
            m.close()
        self._open.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@dataclass
class MapData:
    """A volume ``[z, y, x]`` with its voxel size (Å) and origin (Å, x y z order)."""

    data: np.ndarray
    voxel_size_A: float
    origin_A: np.ndarray


def read_map(path) -> MapData:
    """Read a cubic MRC map with isotropic voxels; raise :class:`InputError` otherwise."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with mrcfile.open(path, mode="r", permissive=True) as m:
                if m.data is None:
                    raise InputError(f"{path}: not a readable MRC map")
                data = np.array(m.data)
                vs = m.voxel_size
                origin = np.array([m.header.origin.x, m.header.origin.y, m.header.origin.z], float)
                start = np.array([m.header.nxstart, m.header.nystart, m.header.nzstart], float)
    except FileNotFoundError:
        raise InputError(f"{path}: map not found") from None
    except ValueError as err:
        raise InputError(f"{path}: unreadable MRC map ({err})") from None
    if np.iscomplexobj(data) or data.dtype.kind not in "iuf":
        raise InputError(f"{path}: the map must hold real numbers (MRC mode 2), got {data.dtype}")
    if data.ndim != 3 or len(set(data.shape)) != 1:
        raise InputError(f"{path}: the map must be a cube, got shape {data.shape} (z, y, x)")
    sizes = np.array([vs.x, vs.y, vs.z], float)
    if np.any(sizes <= 0) or np.ptp(sizes) > 1e-3 * sizes.max():
        raise InputError(f"{path}: voxel size must be positive and isotropic, got {sizes} Å")
    bad = ~np.isfinite(data)
    if bad.any():
        z, y, x = np.argwhere(bad)[0]
        raise InputError(f"{path}: {int(bad.sum())} voxels are NaN or Inf (first at x={x}, y={y}, "
                         f"z={z}); fix the map (e.g. re-run the post-processing) or omit --map")
    data = data.astype(np.float32)
    if not np.any(origin) and np.any(start):
        origin = start * sizes
    return MapData(data=data, voxel_size_A=float(sizes[0]), origin_A=origin)


def write_mrc(path, data: np.ndarray, voxel_size_A: float, origin_A=None) -> None:
    """Write a float32 map ``[z, y, x]`` (or stack ``[n, y, x]``) atomically.

    ``origin_A`` (x, y, z, Å) defaults to ``-(D//2) * voxel_size_A`` on every axis, the frame in
    which voxel ``D//2`` is at 0 — the box-centred frame of the engine's models.
    """
    data = np.ascontiguousarray(data, dtype=np.float32)
    if origin_A is None:
        origin_A = [-(n // 2) * voxel_size_A for n in data.shape[::-1]]
    with atomic_path(path, suffix=Path(path).suffix) as tmp:
        with mrcfile.new(tmp, overwrite=True) as m:
            m.set_data(data)
            m.voxel_size = voxel_size_A
            m.header.origin = tuple(float(o) for o in origin_A)
