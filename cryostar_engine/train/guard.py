"""Non-finite steps: report them, lower the learning rate, stop after too many in a row.

The update of a step with a non-finite loss or gradient is skipped on the device
(:func:`~cryostar_engine.train.optim.guarded_step`), so the model stays at its last good state;
the trainers read the flags back every few steps and report each step here.
"""
from __future__ import annotations

import logging

import torch

__all__ = ["SkippedSteps", "PendingSteps", "TrainingDiverged"]


class TrainingDiverged(RuntimeError):
    """Raised after too many consecutive non-finite steps."""


class SkippedSteps:
    """Counts consecutive skipped steps; after each one multiplies the learning rate (and a
    schedule's peak, ``lr_peak``, see :mod:`~cryostar_engine.train.schedule`) by ``lr_factor``;
    raises :class:`TrainingDiverged` with advice after more than ``max_in_a_row``, and also when a
    run ends (``last_step`` reached, or :meth:`require_progress` called) without a single applied
    step in this invocation: a short run whose every step was non-finite must not end "finished"
    with untrained networks."""

    def __init__(self, optimizer: torch.optim.Optimizer, log: logging.Logger | None = None,
                 lr_factor: float = 0.5, max_in_a_row: int = 5, advice: str = "lower --lr",
                 last_step: int | None = None):
        self.optimizer, self.log = optimizer, log or logging.getLogger("cryostar_engine")
        self.lr_factor, self.max_in_a_row, self.advice = lr_factor, max_in_a_row, advice
        self.last_step = last_step
        self.in_a_row = self.applied_total = self.skipped_total = 0

    def applied(self) -> None:
        self.in_a_row = 0
        self.applied_total += 1

    def require_progress(self) -> None:
        """Raise :class:`TrainingDiverged` at the end of a run when no step of it was applied,
        or when its last two or more steps were skipped: skipped steps leave the parameters
        unchanged, so the final networks then fail on every batch they were last shown."""
        if self.skipped_total and not self.applied_total:
            raise TrainingDiverged(
                f"training diverged: all {self.skipped_total} steps of this run had a non-finite "
                f"loss or gradient, so nothing was trained; {self.advice}")
        if self.in_a_row >= 2:
            raise TrainingDiverged(
                f"training diverged: the last {self.in_a_row} steps had a non-finite loss or "
                f"gradient with the final networks; {self.advice}")

    def skipped(self, step: int, loss: float) -> None:
        self.in_a_row += 1
        self.skipped_total += 1
        if self.last_step is not None and step >= self.last_step:
            self.require_progress()
        if self.in_a_row > self.max_in_a_row:
            raise TrainingDiverged(
                f"training diverged: non-finite loss at step {step} after {self.max_in_a_row} "
                f"skipped steps in a row; {self.advice}")
        for group in self.optimizer.param_groups:
            group["lr"] *= self.lr_factor
            if "lr_peak" in group:
                group["lr_peak"] *= self.lr_factor
        self.log.warning("non-finite loss at step %d (loss %s; a non-finite gradient counts too): "
                         "the step was skipped, parameters unchanged; learning rate now %.3g",
                         step, loss, self.optimizer.param_groups[0]["lr"])


class PendingSteps:
    """Device-side results of the steps not yet read back (0-d loss tensors and the
    applied/skipped flag of :func:`~cryostar_engine.train.optim.guarded_step`), read back in one
    transfer: applied steps become ``losses.csv`` rows, skipped ones go to :class:`SkippedSteps`.
    The first value of each step is its total loss."""

    def __init__(self, skipped: SkippedSteps):
        self.skipped, self.rows, self.names = skipped, [], ()

    def add(self, step: int, images: int, values: dict, ok: torch.Tensor) -> None:
        self.names = tuple(values)
        self.rows.append((step, images, torch.stack([*values.values(), ok.float()])))

    def read_back(self, progress=None, reduce=None) -> None:
        """``progress``: the :class:`~cryostar_engine.train.progress.Progress` writing the csv
        (None on ranks that do not write).  ``reduce``: ``(R, K) → (R, K)`` applied to the
        losses first, e.g. their mean over the processes (then every rank must call it)."""
        if not self.rows:
            return
        table = torch.stack([r[2] for r in self.rows]).float()
        losses = reduce(table[:, :-1].contiguous()) if reduce is not None else table[:, :-1]
        for (step, images, _), vals, ok in zip(self.rows, losses.tolist(), table[:, -1].tolist()):
            if ok > 0.5:
                self.skipped.applied()
                if progress is not None:
                    progress.record(step, images, dict(zip(self.names, vals)))
            else:
                self.skipped.skipped(step, vals[0])
        self.rows = []
