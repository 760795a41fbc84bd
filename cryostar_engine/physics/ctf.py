"""The one place that defines the contrast transfer function (CTF).

Convention
----------
``H(s) = -(sqrt(1 - w²) · sin γ - w · cos γ) · scale · exp(-B |s|² / 4)`` with

``γ = 2π(-½ Δf(θ) λ |s|² + ¼ Cs λ³ |s|⁴) - φ``,
``Δf(θ) = ½[ΔfU + ΔfV + (ΔfU - ΔfV) cos 2(θ - θ_ast)]``, ``θ = atan2(s_y, s_x)``.

* This is cryoDRGN's CTF *negated*, the one CryoSTAR uses (spec §3.4).  ``H(0) = +w > 0``: it
  maps positive density to positive low-frequency contrast, i.e. to **white** particles, the
  convention of RELION-extracted (contrast-inverted) particles.  Data with dark particles must be
  negated before use (``invert`` in the data config).
* Units at the call: defocus in Å (RELION ``rlnDefocusU/V``, positive = underfocus),
  astigmatism angle θ_ast in degrees from the x axis (``rlnDefocusAngle``), voltage in kV, Cs in
  mm, amplitude contrast ``w`` as a fraction, phase shift φ in degrees (``rlnPhaseShift``),
  B-factor in Å² (``rlnCtfBfactor``), scale unitless (``rlnCtfScalefactor``).
* ``λ = 12.2639 / sqrt(V + 0.97845e-6 V²)`` Å with V in volts.
* Frequencies come from :mod:`cryostar_engine.physics.fourier` (exact FFT grid, Å⁻¹).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .fourier import centered_freqs, rfft_freqs

__all__ = ["CtfParams", "electron_wavelength_A", "evaluate_ctf", "ctf_rfft", "ctf_centered"]


@dataclass
class CtfParams:
    """Per-particle CTF parameters as tensors of shape ``(B,)``, in the units of the module doc."""

    defocus_u_A: torch.Tensor
    defocus_v_A: torch.Tensor
    defocus_angle_deg: torch.Tensor
    voltage_kv: torch.Tensor
    cs_mm: torch.Tensor
    amplitude_contrast: torch.Tensor
    phase_shift_deg: torch.Tensor
    bfactor_A2: torch.Tensor
    scale: torch.Tensor

    def to(self, device, non_blocking: bool = False) -> "CtfParams":
        return CtfParams(**{k: v.to(device, non_blocking=non_blocking) for k, v in self.__dict__.items()})

    def pin_memory(self) -> "CtfParams":
        """The same parameters in page-locked host memory (for asynchronous copies to a GPU)."""
        return CtfParams(**{k: v.pin_memory() for k, v in self.__dict__.items()})

    def index(self, idx) -> "CtfParams":
        return CtfParams(**{k: v[idx] for k, v in self.__dict__.items()})


def electron_wavelength_A(voltage_kv: torch.Tensor) -> torch.Tensor:
    """Relativistic electron wavelength in Å for an accelerating voltage in kV."""
    volts = voltage_kv * 1e3
    return 12.2639 / torch.sqrt(volts + 0.97845e-6 * volts ** 2)


def evaluate_ctf(sy: torch.Tensor, sx: torch.Tensor, p: CtfParams) -> torch.Tensor:
    """Evaluate the CTF of each of ``B`` particles on a frequency grid.

    Parameters
    ----------
    sy, sx : frequency grids in Å⁻¹, broadcastable to ``(H, W)``.
    p : :class:`CtfParams` with ``(B,)`` tensors.

    Returns
    -------
    ``(B, H, W)`` real tensor, float32 or float64 as the grids.
    """
    def col(t):
        return t.to(sy.dtype)[:, None, None]

    s2 = sx ** 2 + sy ** 2
    theta = torch.atan2(sy, sx)
    lam = electron_wavelength_A(col(p.voltage_kv))
    cs_A = col(p.cs_mm) * 1e7
    du, dv = col(p.defocus_u_A), col(p.defocus_v_A)
    ang = torch.deg2rad(col(p.defocus_angle_deg))
    defocus = 0.5 * (du + dv + (du - dv) * torch.cos(2 * (theta - ang)))
    gamma = 2 * math.pi * (-0.5 * defocus * lam * s2 + 0.25 * cs_A * lam ** 3 * s2 ** 2)
    gamma = gamma - torch.deg2rad(col(p.phase_shift_deg))
    w = col(p.amplitude_contrast)
    h = -(torch.sqrt(1 - w ** 2) * torch.sin(gamma) - w * torch.cos(gamma))
    envelope = col(p.scale) * torch.exp(-col(p.bfactor_A2) * s2 / 4)
    return h * envelope


def ctf_rfft(p: CtfParams, box: int, apix: float, device=None) -> torch.Tensor:
    """CTF on the rfft2 grid, ``(B, D, D//2 + 1)``, for filtering real images."""
    sy, sx = rfft_freqs(box, apix, device=device)
    return evaluate_ctf(sy, sx, p)


def ctf_centered(p: CtfParams, box: int, apix: float, device=None) -> torch.Tensor:
    """CTF on the centred full grid, ``(B, D, D)``, DC at ``[D//2, D//2]``."""
    sy, sx = centered_freqs(box, apix, device=device)
    return evaluate_ctf(sy, sx, p)
