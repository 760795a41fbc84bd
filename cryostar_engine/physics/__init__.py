"""The forward model: Fourier conventions, the CTF and Gaussian bead rendering."""
from .ctf import CtfParams, ctf_centered, ctf_rfft, electron_wavelength_A, evaluate_ctf
from .fourier import (apply_rfft_filter, centered_freqs, fft2c, fft3c, fourier_crop,
                      fourier_crop_volume,
                      gaussian_lowpass_volume, ifft2c, ifft3c, lowpass_mask_rfft, rfft_freqs,
                      shift_images)
from .render import bead_density, grid_coords, project_beads

__all__ = ["CtfParams", "ctf_centered", "ctf_rfft", "electron_wavelength_A", "evaluate_ctf",
           "apply_rfft_filter", "centered_freqs", "fft2c", "fft3c", "fourier_crop",
           "fourier_crop_volume",
           "gaussian_lowpass_volume", "ifft2c", "ifft3c", "lowpass_mask_rfft", "rfft_freqs",
           "shift_images", "bead_density", "grid_coords", "project_beads"]
