"""Atomic checkpoints: write to a temporary file, rename; keep the last few; load safely.

A checkpoint is a plain dict of tensors, numbers, strings and nested dicts/lists (model and
optimiser ``state_dict``s, the step, the RNG states, the resolved config as a dict, the engine
version), so that ``torch.load(..., weights_only=True)`` can read it: no pickled objects.
Files are ``RUN/checkpoints/step_0000123.pt``; the newest one that loads is used on resume.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch

from ..io.atomic import atomic_path

__all__ = ["save_checkpoint", "load_latest_checkpoint", "list_checkpoints"]

_NAME = re.compile(r"^step_(\d+)\.pt$")


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


def load_latest_checkpoint(run_dir, map_location="cpu") -> dict | None:
    """The newest readable checkpoint of ``run_dir`` (``weights_only=True``), or None."""
    for path in reversed(list_checkpoints(run_dir)):
        try:
            return torch.load(path, map_location=map_location, weights_only=True)
        except Exception:  # a damaged file: fall back to the previous one
            continue
    return None
