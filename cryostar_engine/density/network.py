"""The density generator: a coordinate MLP giving Hartley values h(k, z) of a volume (spec §4.2).

Representation
--------------
The MLP is evaluated only on the canonical half-space of frequencies ``c`` (``c_z > 0``, or
``c_z = 0`` and ``c_y > 0``, or ``c_z = c_y = 0`` and ``c_x ≥ 0``) and returns **two** Hartley
values, ``h(c)`` and ``h(-c)``.  Any other point ``k`` is served by the evaluation at
``c = -k``.  One evaluation thus gives a whole {k, -k} pair, i.e. (by Hermitian symmetry of a
real volume) the complex Fourier value ``F(k) = ½[h(k)+h(-k)] - (i/2)[h(k)-h(-k)]`` and its
conjugate at ``-k``: the network is evaluated once per pair, half of what a one-output Hartley
field needs (CryoSTAR evaluates the full square), at equal expressiveness.

Input features (``gau2``): ``[c, cos(W c), sin(W c), z]`` with ``W`` ∈ ℝ^{3·pe_dim × 3},
``W_ij ~ N(0, (pe_scale·D′)²)``, drawn once from the run's seed and stored as a buffer.  ``c`` is
in cycles/px (|c| ≤ ½), ordered (x, y, z).  Features are computed in fp32 even under autocast.

MLP: Linear(in, hidden) + GELU, ``residual_layers`` × [x ← x + GELU(Linear(x))], Linear(hidden, 2).
Hidden weights ~ N(0, 1/fan_in) (CryoSTAR's "selu init"); biases and the last layer: PyTorch
defaults.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..train.runtime import autocast  # noqa: F401 (re-exported: the MLP's precision context)

__all__ = ["HartleyField", "canonical_mask", "autocast"]


def canonical_mask(k: torch.Tensor) -> torch.Tensor:
    """``(...,)`` bool: True where ``k`` (``(..., 3)``, x y z) lies in the canonical half-space."""
    kx, ky, kz = k.unbind(-1)
    return (kz > 0) | ((kz == 0) & ((ky > 0) | ((ky == 0) & (kx >= 0))))


class HartleyField(nn.Module):
    """``h(k, z)``: Hartley values of the volume conditioned on a latent ``z``.

    Parameters
    ----------
    box : working box D′ (px); sets the default number and scale of the random frequencies.
    z_dim : latent dimension.
    hidden, residual_layers : MLP width and number of residual blocks.
    pe_dim : random frequencies / 3 (default D′).
    pe_scale : frequency scale relative to D′ (see module docstring).
    seed : seed of the random frequencies.
    """

    def __init__(self, box: int, z_dim: int, hidden: int = 1024, residual_layers: int = 3,
                 pe_dim: int | None = None, pe_scale: float = 0.25, seed: int = 0):
        super().__init__()
        n_freq = 3 * int(pe_dim or box)
        gen = torch.Generator().manual_seed(int(seed))
        self.register_buffer("freqs", torch.randn(n_freq, 3, generator=gen) * (pe_scale * box))
        self.z_dim = int(z_dim)
        self.n_features = 3 + 2 * n_freq
        self.first = nn.Linear(self.n_features + self.z_dim, hidden)
        self.blocks = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(residual_layers))
        self.last = nn.Linear(hidden, 2)
        for layer in [self.first, *self.blocks]:
            nn.init.normal_(layer.weight, std=1.0 / math.sqrt(layer.in_features))

    def features(self, c: torch.Tensor) -> torch.Tensor:
        """``(..., 3)`` cycles/px → ``(..., 3 + 6·pe_dim)`` Fourier features, always fp32."""
        with torch.autocast(device_type=c.device.type, enabled=False):
            c = c.float()
            phase = c @ self.freqs.T
            return torch.cat([c, torch.cos(phase), torch.sin(phase)], -1)

    def mlp(self, feats: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``(B, M, P)`` features and ``(B, z_dim)`` latents → ``(B, M, 2)`` = (h(c), h(-c)).

        The latent's share of the first layer is computed once per batch row, not per point.
        """
        w = self.first.weight
        z_term = F.linear(z, w[:, self.n_features:], self.first.bias)      # (B, hidden)
        x = F.gelu(F.linear(feats, w[:, :self.n_features]) + z_term[:, None, :])
        for block in self.blocks:
            x = x + F.gelu(block(x))
        return self.last(x)

    def forward(self, k: torch.Tensor, z: torch.Tensor):
        """Hartley values at ``k`` and ``-k``.

        Parameters
        ----------
        k : ``(B, M, 3)`` frequencies in cycles/px, ordered (x, y, z).
        z : ``(B, z_dim)`` latents.

        Returns
        -------
        (h_k, h_minus_k) : two ``(B, M)`` float32 tensors.
        """
        flip = ~canonical_mask(k)
        c = torch.where(flip[..., None], -k, k)
        out = self.mlp(self.features(c), z.to(torch.float32)).float()
        h0, h1 = out[..., 0], out[..., 1]
        return torch.where(flip, h1, h0), torch.where(flip, h0, h1)
