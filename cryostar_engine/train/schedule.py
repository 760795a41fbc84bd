"""Learning-rate schedules defined by the training step (a pure function of the step, so a
resumed run follows the same curve as an uninterrupted one).

The peak learning rate is kept in each optimiser parameter group as ``"lr_peak"``; the
schedule sets ``"lr" = lr_peak × factor(step)``.  The non-finite guard lowers ``lr_peak`` after
a skipped step, so a lowered rate survives the schedule and is saved with the optimiser state.
"""
from __future__ import annotations

import math

import torch

__all__ = ["SCHEDULES", "lr_factor", "final_decay_factor", "apply_lr_factor"]

SCHEDULES = ("constant", "cosine")


def lr_factor(schedule: str, step: int, total_steps: int, final_fraction: float) -> float:
    """Multiplier of the peak learning rate at ``step`` (0-based) of ``total_steps``.

    ``constant``: 1.  ``cosine``: half a cosine from 1 at step 0 to ``final_fraction`` at the
    last step (steps beyond ``total_steps`` stay at ``final_fraction``).
    """
    if schedule == "constant":
        return 1.0
    if schedule != "cosine":
        raise ValueError(f"unknown learning-rate schedule {schedule!r}; choose from {SCHEDULES}")
    return _half_cosine(min(max(step, 0) / max(total_steps - 1, 1), 1.0), final_fraction)


def final_decay_factor(images_seen: int, total_images: int, decay_fraction: float,
                       final_fraction: float) -> float:
    """Multiplier of the peak learning rate for a constant rate that decays at the end: 1 for the
    first ``(1 − decay_fraction) × total_images`` images, then half a cosine down to
    ``final_fraction`` at ``total_images`` (and after).  A function of *images seen*, so a run
    that is resumed, or lengthened with ``--epochs``, follows the curve of its (new) length;
    ``decay_fraction`` 0 is a constant rate."""
    if decay_fraction <= 0 or total_images <= 0:
        return 1.0
    start = (1.0 - min(decay_fraction, 1.0)) * total_images
    if images_seen <= start:
        return 1.0
    return _half_cosine(min((images_seen - start) / max(total_images - start, 1.0), 1.0),
                        final_fraction)


def _half_cosine(t: float, final_fraction: float) -> float:
    """Half a cosine from 1 at ``t`` = 0 to ``final_fraction`` at ``t`` = 1."""
    return final_fraction + (1.0 - final_fraction) * 0.5 * (1.0 + math.cos(math.pi * t))


def apply_lr_factor(optimizer: torch.optim.Optimizer, factor: float) -> None:
    """Set every group's learning rate to its peak (``lr_peak``, recorded on first use) × factor."""
    for group in optimizer.param_groups:
        group.setdefault("lr_peak", group["lr"])
        group["lr"] = group["lr_peak"] * factor
