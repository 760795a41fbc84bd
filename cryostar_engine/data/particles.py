"""Particle images with their poses and CTF, ready for the forward model.

:class:`ParticleDataset` wraps :class:`~cryostar_engine.io.relion.ParticleMetadata`: it reads
images from the memory-mapped stacks, Fourier-crops them to the working box (pixel size
``apix = meta.apix * meta.box / box``), optionally negates them (dark particles → white, the
convention of :mod:`cryostar_engine.physics.ctf`), and keeps them in memory when they fit in
``max_cache_bytes`` (float16 on a GPU, float32 on the CPU); otherwise it streams from disk.
Rows are star-file rows (0-based).  Every image read is checked for NaN/Inf pixels, and the
images (all of them when cached, else a sample) for constant (empty) ones, when the dataset is
built: see :mod:`cryostar_engine.validate.images`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..geometry.poses import euler_to_matrix
from ..io.mrc import StackCache
from ..io.relion import ParticleMetadata
from ..physics.ctf import CtfParams
from ..physics.fourier import fourier_crop
from ..validate.images import check_finite_images, empty_images

__all__ = ["Batch", "ParticleDataset"]

SAMPLE = 256        # images checked when the dataset is built from a stack streamed from disk


@dataclass
class Batch:
    """One mini-batch on a device.

    rows : ``(B,)`` int64 star-file rows.
    images : ``(B, D, D)`` float32 raw (uncentred) images at the working box.
    rotations : ``(B, 3, 3)`` RELION A matrices.
    shifts_px : ``(B, 2)`` (x, y) shifts in working-box pixels; ``shift_images(images, shifts_px)``
        centres the particles.
    ctf : :class:`CtfParams` of ``(B,)`` tensors.
    """

    rows: torch.Tensor
    images: torch.Tensor
    rotations: torch.Tensor
    shifts_px: torch.Tensor
    ctf: CtfParams

    def select(self, idx) -> "Batch":
        """The sub-batch of entries ``idx`` (indices into this batch)."""
        return Batch(rows=self.rows[idx], images=self.images[idx], rotations=self.rotations[idx],
                     shifts_px=self.shifts_px[idx], ctf=self.ctf.index(idx))


class ParticleDataset:
    """Images, poses and CTF of the particles of one star file, at a working box size."""

    def __init__(self, meta: ParticleMetadata, box: int | None = None, invert: bool = False,
                 max_cache_bytes: float = 4e9, cache_device="cpu"):
        self.meta = meta
        self.box = int(box or meta.box)
        if self.box > meta.box:
            raise ValueError(f"box {self.box} px is larger than the particles' {meta.box} px")
        self.apix = meta.apix * meta.box / self.box
        self.invert = invert
        self._stacks = StackCache()
        self._rotations = torch.as_tensor(euler_to_matrix(meta.euler_deg), dtype=torch.float32)
        self._shifts_px = torch.as_tensor(meta.shifts_A / self.apix, dtype=torch.float32)
        self._ctf = CtfParams(**{k: torch.tensor(getattr(meta, k), dtype=torch.float32)
                                 for k in CtfParams.__dataclass_fields__})
        self._cache = None
        self._resident = None          # poses and CTF on the cache's device (device_batch)
        cache_device = torch.device(cache_device)
        dtype = torch.float16 if cache_device.type == "cuda" else torch.float32
        self._empty = [0, 0]          # constant images, images looked at
        if len(meta) * self.box ** 2 * (2 if dtype == torch.float16 else 4) <= max_cache_bytes:
            self._cache = self._load_all(cache_device, dtype)
        else:
            self._read(np.unique(np.linspace(0, len(meta) - 1, min(len(meta), SAMPLE)).astype(int)),
                       count_empty=True)
        note = self._empty_note()
        if note:
            meta.notes.append(note)

    def __len__(self) -> int:
        return len(self.meta)

    def _read(self, rows: np.ndarray, count_empty: bool = False) -> torch.Tensor:
        raw = self._stacks.read([self.meta.image_paths[r] for r in rows], self.meta.image_indices[rows])
        check_finite_images(raw, rows, self.meta)
        if count_empty:
            flat = raw.reshape(len(raw), -1)
            empty = np.flatnonzero(flat.max(1) == flat.min(1))
            if len(empty) and self._empty[0] == 0:
                self._first_empty = int(rows[empty[0]])
            self._empty[0] += len(empty)
            self._empty[1] += len(rows)
        images = fourier_crop(torch.from_numpy(raw), self.box)
        return -images if self.invert else images

    def _load_all(self, device, dtype, chunk: int = 4096) -> torch.Tensor:
        out = torch.empty(len(self), self.box, self.box, dtype=dtype, device=device)
        for start in range(0, len(self), chunk):
            rows = np.arange(start, min(start + chunk, len(self)))
            out[start:start + len(rows)] = self._read(rows, count_empty=True).to(device=device, dtype=dtype)
        return out

    def _empty_note(self) -> str | None:
        n_empty, n_seen = self._empty
        if not n_empty:
            return None
        return empty_images(n_empty, n_seen, self._first_empty, self.meta)

    @property
    def in_memory(self) -> bool:
        return self._cache is not None

    def images(self, rows, device="cpu") -> torch.Tensor:
        """``(B, D, D)`` float32 images of the given star rows on ``device``."""
        rows_t = torch.as_tensor(rows, dtype=torch.long)
        if self._cache is not None:
            return self._cache[rows_t.to(self._cache.device)].to(device=device, dtype=torch.float32)
        return self._read(np.asarray(rows)).to(device)

    def batch(self, rows, device="cpu") -> Batch:
        """A :class:`Batch` of the given star rows on ``device``."""
        rows_t = torch.as_tensor(np.asarray(rows), dtype=torch.long)
        return Batch(rows=rows_t.to(device), images=self.images(rows_t, device),
                     rotations=self._rotations[rows_t].to(device),
                     shifts_px=self._shifts_px[rows_t].to(device),
                     ctf=self._ctf.index(rows_t).to(device))

    def device_batch(self, rows: torch.Tensor) -> Batch:
        """Like :meth:`batch`, for ``rows`` (int64) already on the device the images are cached
        on, with no host–device transfer and so no synchronisation: poses and CTF parameters
        are copied to that device once, at the first call.  Needs :attr:`in_memory`."""
        if self._cache is None:
            raise ValueError("device_batch needs the images cached in memory (in_memory)")
        if self._resident is None:
            dev = self._cache.device
            self._resident = (self._rotations.to(dev), self._shifts_px.to(dev), self._ctf.to(dev))
        rotations, shifts, ctf = self._resident
        return Batch(rows=rows, images=self._cache[rows].float(), rotations=rotations[rows],
                     shifts_px=shifts[rows], ctf=ctf.index(rows))

    def close(self):
        self._stacks.close()
