"""One optimisation step of the density generator, without host–device synchronisation.

A step is: the batch's centred, normalised transforms on the half-disc, the CTF-modulated
predicted slices, the Fourier MSE, backward, a finiteness check of the gradients and a fused
AdamW update.  Nothing in it reads a value back to the host (no ``.item()``, ``float()`` or
``bool()`` of a device tensor), so on a GPU the host can queue the next steps while the device
works.  Instead:

* the finiteness check is a 0-d bool **on the device** (:func:`~cryostar_engine.train.optim.
  guarded_step`): a step with a non-finite gradient leaves the parameters, the moments and the
  step count unchanged;
* the loss and that flag are returned as device tensors; the caller reads them back together
  every few steps (:class:`~cryostar_engine.density.training.DensityTrainer` does so every
  ``guard_interval_steps`` steps and before each checkpoint).

Distributed runs: each process computes ``fourier_mse`` of its share of the global batch divided
by the *global* batch size, times the number of processes; DistributedDataParallel averages the
gradients over the processes, so the update is that of the mean over the global batch however
it was split (uneven or empty shares included).  The gradients are all-reduced before the
check, so every process takes the same skip decision.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..data.particles import Batch
from ..train.optim import (CompiledOrEager, ensure_fused, finite_gradients,  # noqa: F401 (re-exported)
                           guarded_step, make_optimizer)
from .hartley import HalfGrid
from .loss import fourier_mse
from .network import autocast
from .slicing import ctf_half, observed_slices, predict_slices

__all__ = ["StepSetup", "make_optimizer", "ensure_fused", "batch_loss", "finite_gradients",
           "train_step", "CompiledOrEager"]


@dataclass
class StepSetup:
    """What a step needs besides the batch.

    net : the :class:`~cryostar_engine.density.network.HartleyField` or its DDP wrapper.
    optimizer : from :func:`make_optimizer` (fused AdamW).
    grid : 2-D half-disc on the batch's device.
    apix : working pixel size (Å).  f_std : Fourier normalisation of the images.
    amp : ``torch.bfloat16`` to run the MLP under autocast, None for fp32.
    world_size : processes sharing each global batch (1 without ``torchrun``).
    ctf_sign, rotation : conventions (tests break them on purpose; see DensityConfig).
    """

    net: nn.Module
    optimizer: torch.optim.Optimizer
    grid: HalfGrid
    apix: float
    f_std: float
    amp: torch.dtype | None = None
    world_size: int = 1
    ctf_sign: float = 1.0
    rotation: str = "RT"


def batch_loss(s: StepSetup, batch: Batch, z: torch.Tensor, n_images: int) -> torch.Tensor:
    """This process's share of the global-batch Fourier MSE (see the module docstring).

    Parameters
    ----------
    batch : this process's images ``(b, D, D)``, poses and CTF.
    z : ``(b, z_dim)`` their latents.
    n_images : size of the global batch (``b`` without ``torchrun``).
    """
    if len(batch.images) == 0:      # an empty share of a short last batch: a zero loss that
        return _zero_loss(s, z)     # still passes through the (DDP) network, zero gradients
    f_obs = observed_slices(batch.images, batch.shifts_px, s.f_std, s.grid)
    ctf = ctf_half(s.grid, batch.ctf, s.apix, sign=s.ctf_sign)
    with autocast(batch.images.device, s.amp):
        f_pred = predict_slices(s.net, s.grid, batch.rotations, z, ctf, s.rotation)
    return fourier_mse(f_obs, f_pred, s.grid.weights, n_images=n_images) * s.world_size


def _zero_loss(s: StepSetup, z: torch.Tensor) -> torch.Tensor:
    k = s.grid.coords[:1][None]                                    # (1, 1, 3)
    h_k, h_minus_k = s.net(k, torch.zeros(1, z.shape[1], device=k.device))
    return (h_k.sum() + h_minus_k.sum()) * 0.0


def train_step(s: StepSetup, batch: Batch, z: torch.Tensor, n_images: int,
               poison: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """One update; returns ``(loss, ok)`` as device tensors (this process's loss share, 0-d;
    whether the update was applied).  ``poison`` multiplies the loss by NaN (tests only)."""
    s.optimizer.zero_grad(set_to_none=True)
    loss = batch_loss(s, batch, z, n_images)
    if poison:
        loss = loss * float("nan")
    loss.backward()
    ok = guarded_step(s.optimizer)
    return loss.detach(), ok
