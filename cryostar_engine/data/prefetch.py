"""Streaming batches of a stack too large for memory: read ahead in a background thread.

When a :class:`~cryostar_engine.data.particles.ParticleDataset` is not cached (its images do not
fit in ``max_cache_gb``), every batch is read from the memory-mapped stacks and Fourier-cropped
on the host.  :class:`BatchPrefetcher` does that for the next ``depth`` steps in a worker thread
(NumPy reads and the FFT crop release the GIL), into page-locked (pinned) host memory when the
device is a GPU, so the copy to the device is asynchronous (``non_blocking``) and overlaps the
GPU's work on the current step.  The rows of each step come from ``rows_of(step)``, a pure
function of the step, so the order is the same as without prefetching.
"""
from __future__ import annotations

import queue
import threading
from typing import Callable

import numpy as np
import torch

from .particles import Batch, ParticleDataset

__all__ = ["BatchPrefetcher"]


class BatchPrefetcher:
    """Batches of steps ``start, start+1, …`` read ahead by one worker thread.

    Parameters
    ----------
    dataset : the (uncached) dataset.
    rows_of : ``step → (B,)`` star rows of that step (this process's share).
    device : where batches are used.  start : first step.  depth : steps read ahead.
    """

    def __init__(self, dataset: ParticleDataset, rows_of: Callable[[int], np.ndarray], device,
                 start: int, depth: int = 3):
        self.dataset, self.rows_of, self.device = dataset, rows_of, torch.device(device)
        self.pin = self.device.type == "cuda"
        self.next_step = start
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, args=(start,), daemon=True)
        self._thread.start()

    def _work(self, step: int) -> None:
        while not self._stop.is_set():
            try:
                rows = np.asarray(self.rows_of(step))
                host = self.dataset.batch(rows, "cpu")
                if self.pin:
                    host = _pinned(host)
                item = (step, host, None)
            except Exception as err:       # noqa: BLE001 - handed to the consumer, raised there
                item = (step, None, err)
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if item[2] is not None:
                return
            step += 1

    def get(self, step: int) -> Batch:
        """The batch of ``step`` on the device (steps must be asked for in order)."""
        if step != self.next_step:
            raise RuntimeError(f"prefetcher expected step {self.next_step}, got {step}")
        _, host, err = self._queue.get()
        if err is not None:
            raise err
        self.next_step = step + 1
        return _to(host, self.device)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _pinned(b: Batch) -> Batch:
    return Batch(rows=b.rows.pin_memory(), images=b.images.pin_memory(),
                 rotations=b.rotations.pin_memory(), shifts_px=b.shifts_px.pin_memory(),
                 ctf=b.ctf.pin_memory())


def _to(b: Batch, device: torch.device) -> Batch:
    nb = device.type == "cuda"
    return Batch(rows=b.rows.to(device, non_blocking=nb), images=b.images.to(device, non_blocking=nb),
                 rotations=b.rotations.to(device, non_blocking=nb),
                 shifts_px=b.shifts_px.to(device, non_blocking=nb), ctf=b.ctf.to(device, non_blocking=nb))
