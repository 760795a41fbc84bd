"""Stage-1 memory: estimate what a training step needs before any GPU time is spent."""
from __future__ import annotations

import torch

from ..errors import InputError

__all__ = ["estimate_step_bytes", "estimate_forward_step_bytes", "check_gpu_memory"]


def estimate_step_bytes(batch: int, box: int, n_beads: int, n_pairs: int, n_params: int,
                        n_points: int | None = None, window: int | None = None) -> int:
    """Peak bytes of one stage-1 training step (float32 tensors), without the particle stack.

    ``n_points``: the scattering points rendered (default ``n_beads``; every atom with
    ``--bead-centre atoms``); ``window``: the local-splatting window in pixels, or None for the
    dense rendering (:func:`~cryostar_engine.physics.render.splat_window`).

    Per image (kept for the backward pass or alive at its peak): the rendering's per-point
    tensors, either the two ``(K, D)`` Gaussian factors and their temporaries (~8 copies,
    dense) or the ``(K, W, W)`` patches, their int64 canvas index and gradient (~3 W² + 40 per
    point, local); ~12 ``D²`` images (projection, spectra, CTF, target, masks), the pair
    distances (~6 ``P``, all restraint pairs) and coordinate temporaries (~36 ``N``).  Per
    parameter: the weights and the two AdamW moments live across steps (12 bytes); the
    gradients (4 bytes) coexist with the activations in the backward pass, and with one more
    parameter-sized temporary in the optimiser update (which sets the peak when the parameters
    dominate: a large box with few beads and a small batch).

    Checked against the tensor memory of real steps measured on the CPU in
    ``tests/test_memory_estimate.py`` (within 20 %; 0.9–1.1 over 500–5,000 beads, boxes
    64–256, both renderings) and against ``torch.cuda.max_memory_allocated`` by
    ``benchmarks/gpu_check.sh``.
    """
    points = n_beads if n_points is None else n_points
    per_point = 8 * box if window is None else 3 * window * window + 40
    per_image = 4 * (points * per_point + 12 * box * box + 6 * n_pairs + 12 * n_beads * 3)
    return int(12 * n_params + max(4 * n_params + batch * per_image, 8 * n_params))



def estimate_forward_step_bytes(forward, batch: int, n_beads: int, n_pairs: int, n_params: int) -> int:
    """:func:`estimate_step_bytes` for the rendering of ``forward`` (an
    :class:`~cryostar_engine.atom.forward.AtomForwardModel`: its working box, rendered points and
    splatting window)."""
    return estimate_step_bytes(batch, forward.box, n_beads, n_pairs, n_params,
                               n_points=forward.n_points, window=forward.splat_window)

def check_gpu_memory(estimate: int, device: torch.device, batch: int, box: int) -> str:
    """Refuse a step that cannot fit in the GPU's free memory, saying what to change; return a
    one-line summary for the log."""
    if device.type != "cuda":
        return f"estimated memory per step: {estimate / 2**30:.2f} GiB"
    free, total = torch.cuda.mem_get_info(device)
    if estimate > 0.9 * free:
        fit = max(1, int(batch * 0.9 * free / estimate))
        raise InputError(
            f"one step at --batch {batch}, box {box} px needs about {estimate / 2**30:.1f} GiB but "
            f"{device} has {free / 2**30:.1f} of {total / 2**30:.1f} GiB free; use --batch {fit} or "
            "a smaller --box (or a larger --low-pass, which lowers the default box)")
    return (f"estimated GPU memory per step: {estimate / 2**30:.2f} GiB of {free / 2**30:.1f} GiB free "
            f"on {torch.cuda.get_device_name(device)}")
