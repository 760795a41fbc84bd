"""Non-finite steps: report them, lower the learning rate, stop after too many in a row.

The update of a step with a non-finite loss or gradient is skipped on the device
(:func:`~cryostar_engine.train.optim.guarded_step`), so the model stays at its last good state;
the trainers read the flags back every few steps and report each step here.
"""
from __future__ import annotations

import logging

import torch

__all__ = ["SkippedSteps", "TrainingDiverged"]


class TrainingDiverged(RuntimeError):
    """Raised after too many consecutive non-finite steps."""


class SkippedSteps:
    """Counts consecutive skipped steps; after each one multiplies the learning rate (and a
    schedule's peak, ``lr_peak``, see :mod:`~cryostar_engine.train.schedule`) by ``lr_factor``;
    raises :class:`TrainingDiverged` with advice after more than ``max_in_a_row``."""

    def __init__(self, optimizer: torch.optim.Optimizer, log: logging.Logger | None = None,
                 lr_factor: float = 0.5, max_in_a_row: int = 5, advice: str = "lower --lr"):
        self.optimizer, self.log = optimizer, log or logging.getLogger("cryostar_engine")
        self.lr_factor, self.max_in_a_row, self.advice = lr_factor, max_in_a_row, advice
        self.in_a_row = 0
        self.total = 0

    def applied(self) -> None:
        self.in_a_row = 0

    def skipped(self, step: int, loss: float) -> None:
        self.in_a_row += 1
        self.total += 1
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
