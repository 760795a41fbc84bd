"""Devices, threads and seeds: the run-time set-up shared by every training command."""
from __future__ import annotations

import contextlib
import logging
import os
import random

import numpy as np
import torch

from ..errors import InputError

__all__ = ["resolve_device", "configure_cpu", "default_threads", "seed_everything", "autocast",
           "gpu_has_native_bf16", "gpu_amp_dtype"]


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


def configure_cpu(threads: int | None = None) -> int:
    """Flush denormals (Gaussian tails otherwise slow the CPU ~3×) and set the thread count:
    ``threads``, else :func:`default_threads`, and never more than :func:`default_threads` (the
    cores this process was given: more threads than cores only makes them wait for each other,
    e.g. Scipion's default of 4 threads on a 2-core machine).  Returns the count used."""
    torch.set_flush_denormal(True)
    available = default_threads()
    used = max(1, min(int(threads), available) if threads is not None else available)
    if threads is not None and threads > available:
        logging.getLogger("cryostar_engine").warning(
            "--threads %d is more than the %d core(s) this process may use: using %d",
            threads, available, used)
    torch.set_num_threads(used)
    return used


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


def gpu_has_native_bf16(device) -> bool:
    """bf16 tensor cores: NVIDIA compute capability 8.0 (Ampere) and later.  Older GPUs (V100,
    T4, GTX/RTX 20xx) emulate bf16, or refuse it under autocast."""
    return torch.cuda.get_device_capability(torch.device(device)) >= (8, 0)


def gpu_amp_dtype(precision: str, native_bf16: bool, fp16_ok: bool = True) -> torch.dtype | None:
    """Autocast dtype of a stage's networks on a GPU (a pure function: tested without one).

    precision : ``auto`` | ``fp32`` | ``bf16`` | ``fp16``.
    native_bf16 : see :func:`gpu_has_native_bf16`.
    fp16_ok : whether the caller scales its loss for fp16 (``auto`` falls back to fp16 on GPUs
        without bf16 only then; otherwise to fp32).

    Returns ``torch.bfloat16``, ``torch.float16`` or None (fp32).  Asking for ``bf16`` on a GPU
    without it is an :class:`InputError`, raised before any training.
    """
    if precision == "fp32":
        return None
    if precision == "fp16":
        return torch.float16
    if precision == "bf16" and not native_bf16:
        raise InputError("--precision bf16 needs a GPU with bf16 support (compute capability 8.0, "
                         "Ampere, or later); use --precision auto" + (" or fp16" if fp16_ok else ""))
    if native_bf16:
        return torch.bfloat16
    return torch.float16 if fp16_ok else None
