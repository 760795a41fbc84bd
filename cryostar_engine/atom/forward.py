"""Stage-1 forward model: beads → rotated → projected → CTF and low-pass; and the matching
target (the particle centred by its shift and low-passed).  All filtering in the rfft layout."""
from __future__ import annotations

import torch

from ..data.particles import Batch
from ..geometry.poses import rotate_points
from ..physics.ctf import ctf_rfft
from ..physics.fourier import lowpass_mask_rfft, shift_phase_rfft
from ..physics.render import project_beads
from .centres import ResidueCentres, scattering_centres
from .losses import circular_mask

__all__ = ["AtomForwardModel"]


class AtomForwardModel:
    """Renders bead structures as particle images and prepares the images they are compared with.

    Parameters
    ----------
    box, apix : working box (px) and pixel size (Å).
    amplitudes : ``(N,)`` bead amplitudes.
    sigma_A : bead width (Å).  low_pass_A : hard low-pass of both images (Å).
    mask_radius : image-loss mask radius (fraction of the half box).
    centres : where each bead scatters (:mod:`~cryostar_engine.atom.centres`); None: at the bead.
    """

    def __init__(self, box: int, apix: float, amplitudes: torch.Tensor, sigma_A: float,
                 low_pass_A: float, mask_radius: float, device, centres: ResidueCentres | None = None):
        self.box, self.apix, self.sigma_A = box, apix, sigma_A
        self.centres = None if centres is None else centres.to(device)
        self.amplitudes = amplitudes.to(device=device, dtype=torch.float32)
        self.lowpass = lowpass_mask_rfft(box, apix, low_pass_A, device=device)
        self.mask = circular_mask(box, mask_radius, device=device)

    def target(self, batch: Batch) -> torch.Tensor:
        """``(B, D, D)``: the particle centred (content moved by +shift) and low-passed."""
        f = torch.fft.rfft2(batch.images.float()) * (shift_phase_rfft(self.box, batch.shifts_px) * self.lowpass)
        return torch.fft.irfft2(f, s=(self.box, self.box))

    def render(self, coords_A: torch.Tensor, batch: Batch, ctf_sign: float = 1.0) -> torch.Tensor:
        """``(B, N, 3)`` box-centred structures → ``(B, D, D)`` CTF-filtered, low-passed images."""
        view = rotate_points(scattering_centres(coords_A.float(), self.centres), batch.rotations)
        proj = project_beads(view, self.amplitudes, self.sigma_A, self.box, self.apix)
        filt = ctf_rfft(batch.ctf, self.box, self.apix, device=proj.device) * self.lowpass
        return torch.fft.irfft2(torch.fft.rfft2(proj) * (ctf_sign * filt), s=(self.box, self.box))
