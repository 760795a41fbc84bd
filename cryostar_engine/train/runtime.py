"""Devices, threads and seeds: the run-time set-up shared by every training command."""
from __future__ import annotations

import contextlib
import os
import random

import numpy as np
import torch

from ..errors import InputError

__all__ = ["resolve_device", "configure_cpu", "default_threads", "seed_everything", "autocast"]


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` → ``cuda`` when a GPU is visible, else ``cpu``; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda was asked for but torch sees no GPU "
                         f"(torch {torch.__version__}, CUDA build: {torch.version.cuda}); "
                         "use --device cpu or install a CUDA build of torch")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise InputError(f"--device must be auto, cpu or cuda, got '{name}'")
    return torch.device(name)


def default_threads() -> int:
    """CPU threads of one process: the cores this process may use (``os.sched_getaffinity``)
    shared equally between the processes that ``torchrun`` started on this node
    (``LOCAL_WORLD_SIZE``), so that K ranks on one machine do not oversubscribe its cores."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    local_ranks = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    return max(1, cores // local_ranks)


def configure_cpu(threads: int | None = None) -> None:
    """Flush denormals (Gaussian tails otherwise slow the CPU ~3×) and set the thread count
    (``threads``, else :func:`default_threads`)."""
    torch.set_flush_denormal(True)
    torch.set_num_threads(max(1, int(threads if threads is not None else default_threads())))


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch (all devices); return a CPU generator for data shuffling."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


def autocast(device, dtype=None):
    """A context that runs the networks in ``dtype`` (e.g. ``torch.bfloat16``) on ``device``'s
    type; None → plain fp32.  The callers choose the dtype (None where it does not pay)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)
