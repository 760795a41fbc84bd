"""Hartley ↔ Fourier on the centred grid and the half grid (density generator, spec §4.2)."""
import pytest
import torch

from cryostar_engine.density import (assemble_full, fourier_from_pair, fourier_mse,
                                     fourier_to_hartley, half_grid, hartley_to_fourier,
                                     partner_index)
from cryostar_engine.physics import fft2c, fft3c, ifft2c, ifft3c


def _ft(x, ndim):
    return fft2c(x) if ndim == 2 else fft3c(x)


def _ift(f, ndim):
    return ifft2c(f) if ndim == 2 else ifft3c(f)


def test_partner_index_pairs_frequencies_and_nyquist_with_itself():
    assert partner_index(6).tolist() == [0, 5, 4, 3, 2, 1]     # f = -3..2: -3 ≡ +3 pairs with itself
    assert partner_index(5).tolist() == [4, 3, 2, 1, 0]        # f = -2..2: mirror


@pytest.mark.parametrize("box", [8, 9])
@pytest.mark.parametrize("ndim", [2, 3])
def test_hartley_round_trip_is_exact_and_real(box, ndim):
    x = torch.randn(*([box] * ndim), dtype=torch.float64)
    f = _ft(x, ndim)
    h = fourier_to_hartley(f)
    f_back = hartley_to_fourier(h, ndim)
    assert torch.allclose(f_back, f, atol=1e-12)
    img = _ift(f_back, ndim)
    assert img.imag.abs().max() < 1e-12
    assert torch.allclose(img.real, x, atol=1e-12)


def test_hartley_of_a_real_signal_is_its_discrete_hartley_transform():
    """H = Re F - Im F equals Σ x(r) cas(2π k·r / D) computed directly (centred grid, 1-D)."""
    box = 8
    x = torch.randn(box, box, dtype=torch.float64)
    r = torch.arange(box, dtype=torch.float64) - box // 2
    ang = 2 * torch.pi * (r[:, None, None, None] * r[None, None, :, None]
                          + r[None, :, None, None] * r[None, None, None, :]) / box
    direct = ((torch.cos(ang) + torch.sin(ang)) * x[None, None]).sum((-2, -1))  # [ky, kx]
    assert torch.allclose(fourier_to_hartley(fft2c(x)), direct, atol=1e-10)


def test_breaking_the_nyquist_pairing_breaks_exactness():
    """Pairing index 0 with D-1 (a plain flip) is wrong for even D: the test above can fail."""
    x = torch.randn(8, 8, dtype=torch.float64)
    f = fft2c(x)
    h = fourier_to_hartley(f)
    wrong = fourier_from_pair(h, h.flip(-1).flip(-2))
    assert (wrong - f).abs().max() > 1e-2 * f.abs().max()


@pytest.mark.parametrize("box", [8, 9])
@pytest.mark.parametrize("ndim", [2, 3])
def test_half_grid_covers_each_pair_once(box, ndim):
    g = half_grid(box, ndim)
    members = torch.cat([g.flat, g.partner_flat[~g.self_paired]])
    assert len(members.unique()) == len(members)                 # no point twice
    f = torch.arange(box) - box // 2
    axes = torch.meshgrid(*([f] * ndim), indexing="ij")
    inside = (sum(a ** 2 for a in axes) <= (box // 2) ** 2).flatten()
    assert set(members.tolist()) == set(torch.nonzero(inside).flatten().tolist())
    assert g.weights.sum().item() == inside.sum().item()
    # coordinates are (x, y, z) in cycles/px and belong to the listed flat index
    idx = torch.stack(torch.meshgrid(*([torch.arange(box)] * ndim), indexing="ij"), -1)
    idx = idx.reshape(-1, ndim)[g.flat]
    expected = ((idx - box // 2).flip(-1) / box).float()
    assert torch.allclose(g.coords[:, :ndim], expected)


@pytest.mark.parametrize("box", [8, 9])
def test_pairs_on_the_half_ball_rebuild_the_transform(box):
    """Hartley values at k and -k on the half ball give back the full transform in the ball."""
    x = torch.randn(box, box, box, dtype=torch.float64)
    f = fft3c(x)
    h = fourier_to_hartley(f).flatten()
    g = half_grid(box, 3, radius_px=10 * box)   # the whole cube
    full = assemble_full(g, fourier_from_pair(h[g.flat], h[g.partner_flat]))
    assert torch.allclose(full, f, atol=1e-10)


def test_weighted_half_disc_loss_equals_the_full_disc_mean():
    box = 12
    g = half_grid(box, 2)
    a, b = fft2c(torch.randn(3, box, box)), fft2c(torch.randn(3, box, box))
    a_half, b_half = a.flatten(1)[:, g.flat], b.flatten(1)[:, g.flat]
    ff = torch.arange(box) - box // 2
    disc = (ff[:, None] ** 2 + ff[None, :] ** 2 <= (box // 2) ** 2)
    d = (a - b)[:, disc]
    full_mean = (d.real ** 2 + d.imag ** 2).sum() / (2 * d.numel())
    assert torch.allclose(fourier_mse(a_half, b_half, g.weights), full_mean, rtol=1e-5)
