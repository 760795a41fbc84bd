"""Fourier conventions: shifts, cropping, centred transforms."""
import torch

from cryostar_engine.physics import fft2c, fourier_crop, ifft2c, shift_images
from cryostar_engine.physics.render import bead_density, project_beads


def test_integer_shift_moves_content_by_plus_t():
    img = torch.zeros(1, 16, 16)
    img[0, 5, 3] = 1.0  # row y=5, col x=3
    out = shift_images(img, torch.tensor([[2.0, -1.0]]))
    assert torch.argmax(out[0]).item() == 4 * 16 + 5


def test_centred_fft_round_trip_and_dc_position():
    x = torch.randn(2, 10, 10)
    assert torch.allclose(ifft2c(fft2c(x)).real, x, atol=1e-5)
    assert torch.allclose(fft2c(torch.ones(1, 10, 10))[0, 5, 5].real, torch.tensor(100.0))


def test_fourier_crop_keeps_a_smooth_image():
    coords = torch.tensor([[[3.0, -4.0, 0.0], [-6.0, 2.0, 1.0]]])
    amps = torch.tensor([1.0, 2.0])
    big = project_beads(coords, amps, 4.0, 64, 1.0)
    small = project_beads(coords, amps, 4.0, 32, 2.0)
    assert torch.allclose(fourier_crop(big, 32), small, atol=2e-3 * small.max())


def test_projection_equals_summed_density():
    """The analytic projection equals the 3-D density summed along z (up to sqrt(2π)σ/apix)."""
    coords = torch.tensor([[2.0, -3.0, 1.5], [-5.0, 4.0, -2.0], [0.5, 0.0, 6.0]], dtype=torch.float64)
    amps = torch.tensor([1.0, 0.5, 2.0], dtype=torch.float64)
    sigma, box, apix = 2.0, 32, 1.0
    vol = bead_density(coords, amps, sigma, box, apix)
    proj = project_beads(coords[None], amps, sigma, box, apix)[0]
    factor = (2 * torch.pi) ** 0.5 * sigma / apix
    assert torch.allclose(vol.sum(0), proj * factor, atol=1e-6 * proj.max())
