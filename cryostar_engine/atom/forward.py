"""Stage-1 forward model: beads → rotated → projected → CTF and low-pass; and the matching
target (the particle centred by its shift and low-passed).  All filtering in the rfft layout.

Two filters: the *loss band* (the low-pass of both the target and the rendering, which a
coarse-to-fine schedule widens during training with :meth:`AtomForwardModel.set_low_pass`) and
the *encoder band* (what the encoder sees: fixed for the whole run, so that the encoder's input
statistics, and the data scale they are divided by, never change)."""
from __future__ import annotations

import torch

from ..data.particles import Batch
from ..geometry.poses import rotate_points
from ..physics.ctf import ctf_rfft
from ..physics.fourier import lowpass_mask_rfft, shift_phase_rfft
from ..physics.render import project_beads, splat_window
from .centres import ResidueCentres, scattering_centres
from .losses import circular_mask

__all__ = ["AtomForwardModel"]


class AtomForwardModel:
    """Renders bead structures as particle images and prepares the images they are compared with.

    Parameters
    ----------
    box, apix : working box (px) and pixel size (Å).
    amplitudes : ``(N,)`` bead amplitudes.
    sigma_A : bead width (Å).  low_pass_A : hard low-pass of both images (Å), the loss band.
    mask_radius : image-loss mask radius (fraction of the half box).
    centres : where each bead scatters (:mod:`~cryostar_engine.atom.centres`); None: at the bead.
        Centres with their own ``amplitudes`` (``--bead-centre atoms``: one point per atom) are
        rendered with those instead of ``amplitudes``.
    encoder_low_pass_A : the encoder's fixed band (Å; None: up to the working box's Nyquist);
        ``"loss"`` (default): the encoder sees the loss target itself (one filter; use it only
        when the loss band will not change).
    """

    def __init__(self, box: int, apix: float, amplitudes: torch.Tensor, sigma_A: float,
                 low_pass_A: float, mask_radius: float, device, centres: ResidueCentres | None = None,
                 encoder_low_pass_A: float | None | str = "loss"):
        self.box, self.apix, self.sigma_A = box, apix, sigma_A
        self.centres = None if centres is None else centres.to(device)
        if centres is not None and centres.amplitudes is not None:
            amplitudes = centres.amplitudes
        self.amplitudes = amplitudes.to(device=device, dtype=torch.float32)
        self.low_pass_A = float(low_pass_A)
        self.lowpass = lowpass_mask_rfft(box, apix, low_pass_A, device=device)
        if encoder_low_pass_A == "loss":
            self.encoder_low_pass_A, self.encoder_filter = self.low_pass_A, self.lowpass
        else:
            self.encoder_low_pass_A = None if encoder_low_pass_A is None else float(encoder_low_pass_A)
            self.encoder_filter = lowpass_mask_rfft(box, apix, encoder_low_pass_A, device=device)
        self.mask = circular_mask(box, mask_radius, device=device)

    @property
    def n_points(self) -> int:
        """Scattering points rendered per structure (beads, or atoms with ``--bead-centre atoms``)."""
        return int(self.amplitudes.shape[0])

    @property
    def splat_window(self) -> int | None:
        """The renderer's local window (px), or None when it renders densely."""
        return splat_window(self.box, self.sigma_A, self.apix)

    def set_low_pass(self, low_pass_A: float) -> bool:
        """Change the loss band (Å) in place (the same tensor, so a compiled step keeps its
        graph); a separate encoder band does not change.  Returns whether the mask changed."""
        low_pass_A = float(low_pass_A)
        if low_pass_A == self.low_pass_A:
            return False
        self.low_pass_A = low_pass_A
        if self.encoder_filter is self.lowpass:
            self.encoder_low_pass_A = low_pass_A
        new = lowpass_mask_rfft(self.box, self.apix, low_pass_A, device=self.lowpass.device)
        changed = not torch.equal(new, self.lowpass)
        self.lowpass.copy_(new)
        return changed

    def _centred_fft(self, batch: Batch) -> torch.Tensor:
        """``(B, D, D//2+1)`` rfft of the particles with their content moved by +shift."""
        return torch.fft.rfft2(batch.images.float()) * shift_phase_rfft(self.box, batch.shifts_px)

    def _band(self, f: torch.Tensor, band: torch.Tensor) -> torch.Tensor:
        return torch.fft.irfft2(f * band, s=(self.box, self.box))

    def targets(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """``(loss target, encoder image)``, each ``(B, D, D)``: the particle centred (content
        moved by +shift) and low-passed at the loss band and at the encoder's band (one FFT)."""
        f = self._centred_fft(batch)
        loss = self._band(f, self.lowpass)
        if self.encoder_filter is self.lowpass:        # one band for both (no schedule)
            return loss, loss
        return loss, self._band(f, self.encoder_filter)

    def target(self, batch: Batch) -> torch.Tensor:
        """``(B, D, D)``: the particle centred (content moved by +shift) and low-passed."""
        return self._band(self._centred_fft(batch), self.lowpass)

    def encoder_image(self, batch: Batch) -> torch.Tensor:
        """``(B, D, D)``: the particle centred and low-passed at the encoder's band."""
        return self._band(self._centred_fft(batch), self.encoder_filter)

    def render(self, coords_A: torch.Tensor, batch: Batch, ctf_sign: float = 1.0) -> torch.Tensor:
        """``(B, N, 3)`` box-centred structures → ``(B, D, D)`` CTF-filtered, low-passed images."""
        view = rotate_points(scattering_centres(coords_A.float(), self.centres), batch.rotations)
        proj = project_beads(view, self.amplitudes, self.sigma_A, self.box, self.apix)
        filt = ctf_rfft(batch.ctf, self.box, self.apix, device=proj.device) * self.lowpass
        return torch.fft.irfft2(torch.fft.rfft2(proj) * (ctf_sign * filt), s=(self.box, self.box))
