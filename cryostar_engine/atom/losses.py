"""Stage-1 loss terms (cryostar-spec §3.5).  Images ``(B, D, D)``, coordinates ``(B, N, 3)`` Å."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["circular_mask", "image_loss", "pair_distances", "continuity_loss", "ElasticGroups",
           "group_quantiles", "elastic_network_loss", "clash_loss", "kl_free_bits"]


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


@dataclass(frozen=True)
class ElasticGroups:
    """The chain groups of the elastic network's P pairs, for one batched relaxation.

    labels : ``(P,)`` int64 group of each pair, dense ``0 … G-1``.
    counts : ``(G,)`` int64 pairs per group (every group has at least one).
    starts : ``(G,)`` int64 first position of each group once the pairs are ordered by group.
    Built once from :attr:`~cryostar_engine.atom.graph.RestraintGraph.en_group` (any integer
    labels; a label with no pair is simply absent).
    """

    labels: torch.Tensor
    counts: torch.Tensor
    starts: torch.Tensor

    @classmethod
    def from_labels(cls, labels, device=None) -> "ElasticGroups":
        """``(P,)`` integer group labels (numpy or torch) → the groups on ``device``."""
        lab = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels).astype(np.int64)
        _, dense, counts = np.unique(lab, return_inverse=True, return_counts=True)
        starts = (np.cumsum(counts) - counts).astype(np.int64)
        as_t = lambda a: torch.as_tensor(np.ascontiguousarray(a, dtype=np.int64), device=device)  # noqa: E731
        return cls(as_t(dense.reshape(-1)), as_t(counts), as_t(starts))

    @property
    def n_groups(self) -> int:
        return int(self.counts.shape[0])


def group_quantiles(values: torch.Tensor, groups: ElasticGroups, q: float) -> torch.Tensor:
    """The ``q`` quantile of ``values`` ``(P,)`` within each group → ``(G,)``, in one batched
    sort, with exactly :func:`torch.quantile`'s definition (linear interpolation between the
    sorted values at ``q·(n−1)``, computed in the values' dtype; NaN when the group holds a NaN).

    The pairs are ordered by value (stable sort), then stably by group, so each group's values
    sit sorted and contiguous at ``starts[g] … starts[g] + counts[g] − 1``.
    """
    by_value = torch.argsort(values, stable=True)
    by_group = torch.argsort(groups.labels.index_select(0, by_value), stable=True)
    ordered = values.index_select(0, by_value.index_select(0, by_group))          # (P,)
    rank = torch.tensor(q, dtype=values.dtype, device=values.device) * (groups.counts - 1).to(values.dtype)
    lower, upper = rank.floor(), rank.ceil()
    below = ordered.index_select(0, groups.starts + lower.long())
    above = ordered.index_select(0, groups.starts + upper.long())
    out = torch.lerp(below, above, rank - lower)
    has_nan = ordered.index_select(0, groups.starts + groups.counts - 1).isnan()   # NaNs sort last
    return torch.where(has_nan, torch.full_like(out, float("nan")), out)


def elastic_network_loss(d, d0, groups, keep_ratio: float, gather=None,
                         tolerance_A: float = 0.0) -> torch.Tensor:
    """Elastic network with adaptive relaxation, without host–device synchronisation.

    ``d``: ``(B, P)`` distances of the network's pairs, ``d0`` ``(P,)`` reference distances (Å).
    Per pair p and sample b, the penalty is ``e = max(|d − d0| − tolerance_A, 0)²`` (Å²): a
    flat-bottom restraint, free within the tolerance (0: the original's ``(d − d0)²``).  Within
    each chain group, pairs whose variance across the batch of the harmonic error ``(d − d0)²``
    is at or above the group's ``keep_ratio`` quantile are released for this step (hinges move;
    local structure stays rigid); a group that would release every pair keeps them all.  The
    ranking uses the harmonic error whatever the tolerance, as the original: the flat-bottom
    penalty is exactly 0 for most pairs, and ranking ties at 0 would decide by float rounding.
    The loss is the mean of ``e`` over the kept (sample, pair) entries.  ``gather``
    (``(B, P) → (G, P)``) lets a distributed run compute the variance over the global batch of
    all processes.

    ``groups``: an :class:`ElasticGroups` (all groups' quantiles in one batched sort, a fixed
    number of kernels however many chains; build it once per run).
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
        var = every.var(0)                                                             # (P,)
        threshold = group_quantiles(var, groups, keep_ratio)                           # (G,)
        kept = (var < threshold.index_select(0, groups.labels)).float()
        kept_per_group = torch.zeros_like(threshold).index_add_(0, groups.labels, kept)
        none_kept = (kept_per_group == 0).index_select(0, groups.labels)
        keep = torch.where(none_kept, torch.ones_like(kept), kept)
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
