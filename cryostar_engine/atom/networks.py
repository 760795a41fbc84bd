"""The atom generator: an MLP encoder (image → latent) and an MLP decoder (latent → bead
displacements in Å).  Defaults follow the spec: encoder 512-256-128-64-32, decoder mirrored."""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["Encoder", "Decoder", "AtomVAE"]


def _mlp(sizes, final_activation: bool) -> nn.Sequential:
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if final_activation or i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    """``(B, D*D)`` flattened images → ``(mu, logvar)``, each ``(B, zdim)``."""

    def __init__(self, n_pixels: int, hidden, zdim: int):
        super().__init__()
        self.body = _mlp([n_pixels, *hidden], final_activation=True)
        self.mu = nn.Linear(hidden[-1], zdim)
        self.logvar = nn.Linear(hidden[-1], zdim)

    def forward(self, x):
        h = self.body(x)
        return self.mu(h), self.logvar(h)


class Decoder(nn.Module):
    """``(B, zdim)`` latents → ``(B, N, 3)`` displacements in Å."""

    def __init__(self, zdim: int, hidden, n_beads: int, zero_output: bool = True):
        super().__init__()
        self.n_beads = n_beads
        self.body = _mlp([zdim, *hidden, 3 * n_beads], final_activation=False)
        if zero_output:
            # every latent decodes exactly to the reference, but no gradient reaches the encoder
            # until this layer has grown (see reference_init.py for the trainer's default)
            nn.init.zeros_(self.body[-1].weight)
            nn.init.zeros_(self.body[-1].bias)

    def forward(self, z):
        return self.body(z).view(z.shape[0], self.n_beads, 3)


class AtomVAE(nn.Module):
    """Encoder + decoder + the fixed reference coordinates ``(N, 3)`` (a buffer, Å).
    ``zero_output``: start the decoder's output layer at zero (else PyTorch's default init)."""

    def __init__(self, box: int, n_beads: int, zdim: int, encoder_hidden, decoder_hidden,
                 reference_A: torch.Tensor, zero_output: bool = True):
        super().__init__()
        self.zdim = zdim
        self.encoder = Encoder(box * box, list(encoder_hidden), zdim)
        self.decoder = Decoder(zdim, list(decoder_hidden), n_beads, zero_output)
        self.register_buffer("reference_A", reference_A.clone().float())

    def forward(self, images: torch.Tensor, eps: torch.Tensor):
        """One VAE pass: ``(B, D*D)`` encoder inputs and ``(B, zdim)`` standard-normal noise →
        ``(mu, logvar, coords)`` with coords ``(B, N, 3)`` Å decoded from ``z = mu + eps·σ``."""
        mu, logvar, z = self.sample(images, eps)
        return mu, logvar, self.structures(z)

    def sample(self, images: torch.Tensor, eps: torch.Tensor):
        """``(mu, logvar, z)``, each ``(B, zdim)``: the posterior of ``(B, D*D)`` encoder inputs
        and its reparameterised sample ``z = mu + eps·σ`` for ``(B, zdim)`` noise ``eps``."""
        mu, logvar = self.encoder(images)
        return mu, logvar, mu + eps * torch.exp(0.5 * logvar)

    def structures(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, zdim)`` → ``(B, N, 3)`` bead coordinates in Å (reference + displacement)."""
        return self.reference_A + self.decoder(z)
