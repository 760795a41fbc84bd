"""Atomic checkpoints: write to a temporary file, rename; keep the last few; load safely.

A checkpoint is a plain dict of tensors, numbers, strings and nested dicts/lists (model and
optimiser ``state_dict``s, the step, the RNG states, the resolved config as a dict, the engine
version), so that ``torch.load(..., weights_only=True)`` can read it: no pickled objects.
Files are ``RUN/checkpoints/step_0000123.pt``; the newest one that loads is used on resume.
A process killed while writing one leaves its temporary file (``.step_0000123.pt.XXXX.pt.tmp``,
see :func:`~cryostar_engine.io.atomic.atomic_path`); the resume removes such leftovers.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch

from ..io.atomic import atomic_path

__all__ = ["save_checkpoint", "load_latest_checkpoint", "list_checkpoints",
           "remove_interrupted_writes"]

_NAME = re.compile(r"^step_(\d+)\.pt$")
_TEMPORARY = re.compile(r"^\.step_\d+\.pt\..*\.tmp$")


def list_checkpoints(run_dir) -> list[Path]:
    """Checkpoint files of a run, oldest first (sorted by step number, not by text)."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def save_checkpoint(run_dir, state: dict, step: int, keep: int = 3) -> Path:
    """Write ``state`` as ``checkpoints/step_<step>.pt`` atomically; delete all but the last ``keep``."""
    target = Path(run_dir) / "checkpoints" / f"step_{step:07d}.pt"
    with atomic_path(target, suffix=".pt") as tmp:
        torch.save(state, tmp)
    for old in list_checkpoints(run_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return target


def remove_interrupted_writes(run_dir) -> list[Path]:
    """Delete the temporary files of checkpoint writes that a killed process left behind in
    ``RUN/checkpoints``; return what was removed.  Only one process writes a run's checkpoints,
    so at the start of a resume no write is in flight."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    stale = [p for p in folder.iterdir() if _TEMPORARY.match(p.name)]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def load_latest_checkpoint(run_dir, map_location="cpu", resuming: bool = False) -> dict | None:
    """The newest readable checkpoint of ``run_dir`` (``weights_only=True``), or None.

    ``resuming``: the caller is the run's (only) trainer starting again, so leftovers of
    interrupted writes are removed first (:func:`remove_interrupted_writes`).  Readers such as
    eval-atom may run beside a live training and must leave its in-flight writes alone."""
    if resuming:
        remove_interrupted_writes(run_dir)
    for path in reversed(list_checkpoints(run_dir)):
        try:
            return torch.load(path, map_location=map_location, weights_only=True)
        except Exception:  # a damaged file: fall back to the previous one
            continue
    return None
