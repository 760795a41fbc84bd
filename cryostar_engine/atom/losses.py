"""Stage-1 loss terms (cryostar-spec §3.5).  Images ``(B, D, D)``, coordinates ``(B, N, 3)`` Å."""
from __future__ import annotations

import torch

__all__ = ["circular_mask", "image_loss", "pair_distances", "continuity_loss", "elastic_network_loss", "clash_loss",
           "kl_free_bits"]


def circular_mask(box: int, radius: float, device=None) -> torch.Tensor:
    """``(D, D)`` float mask of pixels with u² + v² < radius² on a ``linspace(-1, 1, D)`` grid."""
    u = torch.linspace(-1, 1, box, device=device)
    return ((u[:, None] ** 2 + u[None, :] ** 2) < radius ** 2).float()


def image_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Negative normalised cross-correlation, as the original: ``-Σ(p̃·g̃) / (std(g̃)·std(p̃)) / N_M``
    averaged over the batch, with p̃, g̃ the masked images, std unbiased over all pixels and no
    mean subtraction (≈ −ρ·D²/N_M for zero-mean images)."""
    p = (pred * mask).flatten(1)
    g = (target * mask).flatten(1)
    n_mask = mask.sum()
    score = (p * g).sum(1) / ((g.std(1) + 1e-5) * (p.std(1) + 1e-5))
    return -(score / n_mask).mean()


def pair_distances(coords: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    """``(B, N, 3)`` coordinates, ``(P, 2)`` pairs → ``(B, P)`` distances (Å).  Gather all the
    restraint pairs in one call: each gather costs a scatter in the backward pass."""
    diff = coords.index_select(1, pairs[:, 0]) - coords.index_select(1, pairs[:, 1])
    return torch.sqrt((diff * diff).sum(-1) + 1e-12)


def continuity_loss(d, d0) -> torch.Tensor:
    """Mean squared deviation (Å²) of ``(B, P)`` consecutive-bead distances from the reference."""
    if d.shape[1] == 0:
        return d.new_zeros(())
    return ((d - d0) ** 2).mean()


def elastic_network_loss(d, d0, groups, keep_ratio: float, gather=None,
                         tolerance_A: float = 0.0) -> torch.Tensor:
    """Elastic network with adaptive relaxation, without host–device synchronisation.

    ``d``: ``(B, P)`` distances of the network's pairs, ``d0`` ``(P,)`` reference distances (Å).
    Per pair p and sample b, the penalty is ``e = max(|d − d0| − tolerance_A, 0)²`` (Å²): a
    flat-bottom restraint, free within the tolerance (0: the original's ``(d − d0)²``).  Within
    each chain group (``groups``: a sequence of index tensors into the P pairs), pairs whose
    variance across the batch of the harmonic error ``(d − d0)²`` is at or above the
    ``keep_ratio`` quantile are released for this step (hinges move; local structure stays
    rigid); a group that would release every pair keeps them all.  The ranking uses the harmonic
    error whatever the tolerance, as the original: the flat-bottom penalty is exactly 0 for most
    pairs, and ranking ties at 0 would decide by float rounding.  The loss is the mean of ``e``
    over the kept (sample, pair) entries.  ``gather`` (``(B, P) → (G, P)``) lets a distributed
    run compute the variance over the global batch of all processes.
    """
    if d.shape[1] == 0:
        return d.new_zeros(())
    dev = d - d0
    harmonic = dev ** 2                                                                # (B, P)
    err = harmonic if tolerance_A <= 0 else torch.relu(dev.abs() - tolerance_A) ** 2
    if keep_ratio >= 1.0:
        return err.mean()
    with torch.no_grad():
        every = harmonic.detach().float()
        every = gather(every) if gather is not None else every  # (G, P)
        if every.shape[0] < 2:
            return err.mean()
        var = every.var(0)
        keep = torch.ones_like(var)
        for idx in groups:
            v = var.index_select(0, idx)
            kept = (v < torch.quantile(v, keep_ratio)).float()
            kept = torch.where(kept.sum() > 0, kept, torch.ones_like(kept))
            keep.index_copy_(0, idx, kept)
    return (err * keep).sum() / (keep.sum() * err.shape[0])


def clash_loss(d, min_distance_A: float, gather=None) -> torch.Tensor:
    """Mean of ``(min − d)²`` over the (sample, pair) entries of ``(B, P)`` distances closer than
    ``min_distance_A`` (0 when none are).  ``gather`` (as for the elastic network): under
    several processes the mean is over the contributors of the global batch, so that the
    averaged gradients equal a single process's."""
    if d.shape[1] == 0:
        return d.new_zeros(())
    violation = torch.relu(min_distance_A - d)
    count = (violation > 0).sum().float()
    if gather is not None:
        counts = gather(count.reshape(1))                  # (world_size,)
        count = counts.sum() / counts.shape[0]             # DDP averages the ranks' gradients
    return (violation ** 2).sum() / count.clamp_min(1e-12)


def kl_free_bits(mu: torch.Tensor, logvar: torch.Tensor, free_bits: float) -> torch.Tensor:
    """KL(q(z|x) ‖ N(0, I)) per dimension, clamped below at ``free_bits`` nats, averaged."""
    kl = -0.5 * (1 + logvar - mu ** 2 - logvar.exp())
    return kl.clamp_min(free_bits).mean()
