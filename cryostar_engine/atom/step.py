"""One stage-1 optimisation step (spec §3.5), without host–device synchronisation.

A step: the particles centred and low-passed (targets) → encoder → z → decoder → bead
coordinates → rotated, projected, CTF-filtered, low-passed images → the image loss and the
continuity, elastic-network (adaptive relaxation), clash and KL terms → backward → a fused AdamW
update that is skipped on the device when a gradient or the loss is not finite
(:func:`~cryostar_engine.train.optim.guarded_step`).  Nothing reads a value back to the host:
the loss terms and the applied/skipped flag come back as device tensors, and the trainer reads
them every few steps in one transfer.

The trainer (:mod:`~cryostar_engine.atom.training`) and the throughput benchmark both call
:func:`train_step`, so the benchmark times exactly what training does.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..data.particles import Batch
from ..train.optim import guarded_step
from ..train.runtime import autocast
from .evaluate import encoder_input
from .forward import AtomForwardModel
from .graph import RestraintGraph
from .losses import (ElasticGroups, clash_loss, continuity_loss, elastic_network_loss, image_loss,
                     kl_free_bits, pair_distances)

__all__ = ["Restraints", "restraint_tensors", "LossSettings", "AtomStepSetup", "atom_losses",
           "train_step"]


@dataclass
class Restraints:
    """The restraint graph as device tensors: all pairs ``(P, 2)`` gathered in one call, the
    slices of each kind, reference distances (Å) and, for the elastic network, its chain groups
    (:class:`~cryostar_engine.atom.losses.ElasticGroups`: the relaxation's variance quantile is
    taken within each group, all groups in one batched sort)."""

    pairs: torch.Tensor
    continuity: slice
    elastic: slice
    clash: slice
    continuity_d0: torch.Tensor
    elastic_d0: torch.Tensor
    elastic_groups: ElasticGroups


def restraint_tensors(graph: RestraintGraph, device) -> Restraints:
    sizes = np.cumsum([0, len(graph.continuity), len(graph.en), len(graph.clash)])
    groups = ElasticGroups.from_labels(np.asarray(graph.en_group), device)
    return Restraints(
        pairs=torch.as_tensor(np.concatenate([graph.continuity, graph.en, graph.clash]).reshape(-1, 2),
                              dtype=torch.int64, device=device),
        continuity=slice(int(sizes[0]), int(sizes[1])), elastic=slice(int(sizes[1]), int(sizes[2])),
        clash=slice(int(sizes[2]), int(sizes[3])),
        continuity_d0=torch.as_tensor(graph.continuity_d0, dtype=torch.float32, device=device),
        elastic_d0=torch.as_tensor(graph.en_d0, dtype=torch.float32, device=device),
        elastic_groups=groups)


@dataclass(frozen=True)
class LossSettings:
    """Weights and parameters of the loss terms: the fields of the same names of an
    :class:`~cryostar_engine.atom.config.AtomConfig` (its defaults are the only ones)."""

    continuity_weight: float
    en_weight: float
    en_keep_ratio: float
    en_tolerance_A: float
    clash_weight: float
    clash_min_A: float
    kl_free_bits: float

    @classmethod
    def from_config(cls, cfg) -> "LossSettings":
        return cls(**{k: getattr(cfg, k) for k in cls.__dataclass_fields__})


@dataclass
class AtomStepSetup:
    """What a step needs besides the batch.

    net : the :class:`~cryostar_engine.atom.networks.AtomVAE` or its DDP wrapper.
    forward : the forward model (working box, pixel size, low-pass, mask).
    scale : the data's image scale (the encoder sees images / scale).
    amp : ``torch.bfloat16``/``torch.float16`` to run the networks under autocast, or None
        (the trainer gives None on the CPU: FFTs, rendering and losses always run in fp32).
    scaler : with fp16, the dynamic loss scale (:func:`fp16_loss_scaler`): fp16 gradients of a
        loss that is a mean over ~10⁵ pixels fall below fp16's range (a third of them are lost
        unscaled, measured on AdK); None with bf16 or fp32.
    gather : ``(b, P) → (G, P)`` rows of all processes (the relaxation's global batch), or None.
    losses_fn : replaces :func:`atom_losses` (e.g. ``CompiledOrEager(atom_losses)``); None: eager.
    """

    net: nn.Module
    optimizer: torch.optim.Optimizer
    forward: AtomForwardModel
    restraints: Restraints
    losses: LossSettings
    scale: float
    amp: torch.dtype | None = None
    scaler: torch.amp.GradScaler | None = None
    gather: Callable | None = None
    losses_fn: Callable | None = None     # atom_losses, or a compiled version of it
    n_mask: float = field(init=False)

    def __post_init__(self):
        self.n_mask = float(self.forward.mask.sum())


def fp16_loss_scaler(device) -> torch.amp.GradScaler:
    """Dynamic loss scale for fp16 autocast (starts at 2¹⁶, halves on an overflow, doubles after
    2000 clean steps).  The trainer checkpoints its state with the model."""
    return torch.amp.GradScaler(torch.device(device).type)


def atom_losses(s: AtomStepSetup, batch: Batch, eps: torch.Tensor, beta: float):
    """Total loss (0-d), the terms ``{image, continuity, elastic, clash, kl}`` (0-d tensors) and
    ``(target, prediction)`` images ``(B, D, D)`` of one batch; ``eps`` ``(B, zdim)`` is the
    reparameterisation noise, ``beta`` the current KL weight."""
    with autocast(batch.images.device, s.amp):
        target, seen = s.forward.targets(batch)
        mu, logvar, coords = s.net(encoder_input(s.forward, batch, s.scale, seen), eps)
    coords = coords.float()
    pred = s.forward.render(coords, batch)
    r, w = s.restraints, s.losses
    d = pair_distances(coords, r.pairs)
    terms = {
        "image": image_loss(pred, target, s.forward.mask),
        "continuity": continuity_loss(d[:, r.continuity], r.continuity_d0),
        "elastic": elastic_network_loss(d[:, r.elastic], r.elastic_d0, r.elastic_groups,
                                        w.en_keep_ratio, gather=s.gather,
                                        tolerance_A=w.en_tolerance_A),
        "clash": clash_loss(d[:, r.clash], w.clash_min_A, gather=s.gather),
        "kl": kl_free_bits(mu.float(), logvar.float(), w.kl_free_bits),
    }
    total = (terms["image"] + w.continuity_weight * terms["continuity"]
             + w.en_weight * terms["elastic"] + w.clash_weight * terms["clash"]
             + beta * terms["kl"] / s.n_mask)
    return total, terms, (target, pred)


def train_step(s: AtomStepSetup, batch: Batch, eps: torch.Tensor, beta: float, micro: int = 1,
               poison: bool = False):
    """One update in ``micro`` equal chunks (gradient accumulation; under DDP the gradients are
    synchronised on the last chunk only).  ``micro > 1`` is how an out-of-memory GPU backs off
    without changing the batch, and so the schedule: the losses are the same means, except that
    the elastic-network relaxation sees each chunk's variance instead of the whole batch's.

    Returns ``(total, terms, ok, last)``: device tensors (0-d loss, 0-d terms, 0-d bool "the
    step was sound") and the last chunk's ``(target, prediction)``.  ``poison`` multiplies the
    loss by NaN (tests of the non-finite guard only).  Without a loss scaler, sound = the update
    was applied (loss and gradients finite).  With one (fp16), an overflow of the scaled
    gradients skips the update and lowers the scale, as AMP does; the step still counts as sound
    when its loss is finite, so that the non-finite guard does not also cut the learning rate.
    """
    s.optimizer.zero_grad(set_to_none=True)
    n = batch.rows.shape[0]
    chunks = torch.arange(n, device=batch.rows.device).chunk(micro)
    losses = s.losses_fn or atom_losses
    total_sum, term_sums, last = 0.0, {}, None
    for i, idx in enumerate(chunks):
        sync_later = hasattr(s.net, "no_sync") and i < len(chunks) - 1
        with s.net.no_sync() if sync_later else contextlib.nullcontext():
            part = batch if micro == 1 else batch.select(idx)
            total, terms, last = losses(s, part, eps if micro == 1 else eps[idx], beta)
            if poison:
                total = total * float("nan")
            weight = len(idx) / n
            scaled = total * weight
            (s.scaler.scale(scaled) if s.scaler is not None else scaled).backward()
        total_sum = total_sum + total.detach() * weight
        for k, v in terms.items():
            term_sums[k] = term_sums.get(k, 0.0) + v.detach() * weight
    if s.scaler is None:
        return total_sum, term_sums, guarded_step(s.optimizer, total_sum), last
    s.scaler.unscale_(s.optimizer)         # gradients back to true size; records overflows
    guarded_step(s.optimizer, total_sum)
    s.scaler.update()
    return total_sum, term_sums, torch.isfinite(total_sum), last
