"""Local splatting (each bead rendered only over the pixels near it) equals the dense rendering
over the whole box: values, gradients, beads near and beyond the edges, both axes."""
import pytest
import torch

from cryostar_engine.physics import render
from cryostar_engine.physics.render import project_beads, splat_half_width, splat_window


def _beads(n, box, apix, seed, spread=0.6):
    g = torch.Generator().manual_seed(seed)
    coords = (torch.rand(3, n, 3, generator=g, dtype=torch.float64) - 0.5) * box * apix * spread * 2
    return coords, torch.rand(n, generator=g, dtype=torch.float64) + 0.5


@pytest.mark.parametrize("n, sigma, box, apix", [(300, 1.0, 48, 2.0), (120, 2.0, 64, 1.5),
                                                 (50, 0.6, 40, 1.0), (80, 3.0, 128, 2.5)])
def test_local_equals_dense_with_gradients(n, sigma, box, apix):
    coords, amps = _beads(n, box, apix, seed=n)
    coords.requires_grad_(True)
    dense = render._project_dense(coords, amps, sigma, box, apix)
    local = render._project_local(coords, amps, sigma, box, apix)
    peak = dense.abs().max()
    assert (local - dense).abs().max() < 1e-3 * peak            # truncation at 4σ: ≤ 3.4e-4 per bead
    weights = torch.randn(dense.shape, generator=torch.Generator().manual_seed(1), dtype=dense.dtype)
    g_dense, = torch.autograd.grad((dense * weights).sum(), coords)
    g_local, = torch.autograd.grad((local * weights).sum(), coords)
    assert (g_local - g_dense).abs().max() < 3e-3 * g_dense.abs().max()


def test_beads_at_and_beyond_the_edges():
    """Beads on the border, half a window outside and far outside (their window is clamped to
    the canvas): the same image as the dense form, which never wraps around."""
    box, apix, sigma = 40, 1.0, 1.0
    edge = box // 2 * apix
    coords = torch.tensor([[[-edge, 0.0, 0], [edge - 1, 3.0, 0], [0.0, edge + 2.0, 0],
                            [edge + 40.0, -edge - 50.0, 0], [-edge - 1.5, -edge - 1.5, 0]]],
                          dtype=torch.float64)
    amps = torch.ones(5, dtype=torch.float64)
    dense = render._project_dense(coords, amps, sigma, box, apix)
    local = render._project_local(coords, amps, sigma, box, apix)
    assert (local - dense).abs().max() < 1e-3


def test_local_splat_is_not_transposed_or_shifted():
    """A lone bead at (x, y) = (+3, -5) px lights pixel [row D/2 - 5, column D/2 + 3]; the check
    fails for a renderer with x and y swapped or the canvas offset by one."""
    box, apix = 48, 1.0
    coords = torch.tensor([[[3.0, -5.0, 7.0]]])
    img = render._project_local(coords, torch.ones(1), 0.7, box, apix)[0]
    assert divmod(int(img.argmax()), box) == (box // 2 - 5, box // 2 + 3)
    swapped = render._project_local(coords[..., [1, 0, 2]], torch.ones(1), 0.7, box, apix)[0]
    assert divmod(int(swapped.argmax()), box) != (box // 2 - 5, box // 2 + 3)


def test_window_covers_four_sigma_and_the_choice_of_form():
    for sigma, apix in [(1.0, 2.0), (2.0, 2.0), (2.0, 1.0), (0.3, 2.0)]:
        h = splat_half_width(sigma, apix)
        assert h + 0.5 >= 4 * sigma / apix > h - 0.5
    assert splat_window(48, 1.0, 2.0) == 5            # atoms at a 5 Å working box
    assert splat_window(24, 2.0, 4.0) is None         # the 10 Å default: W = 5 in a 24 px box
    coords, amps = _beads(30, 48, 2.0, seed=3)
    assert torch.equal(project_beads(coords, amps, 1.0, 48, 2.0),
                       render._project_local(coords, amps, 1.0, 48, 2.0))


def test_a_non_finite_bead_gives_a_non_finite_image_not_an_index_error():
    """A diverged step (NaN coordinates) must reach the loss as a non-finite image, where the
    training's guard reports it in one line (an index error was a traceback); a bead at infinity
    adds nothing, as in the dense form."""
    coords = torch.zeros(2, 3, 3)
    coords[0, 1, 0] = float("nan")
    coords[1, 2, 1] = float("inf")
    img = render._project_local(coords, torch.ones(3), 1.0, 48, 1.0)
    assert img.shape == (2, 48, 48)
    assert not torch.isfinite(img[0]).all() and torch.isfinite(img[1]).all()


def test_a_bead_keeps_its_mass_between_pixels_at_the_minimum_default_width():
    """A bead sampled at pixel centres keeps its summed image within 1 % (0.3 % per axis)
    wherever it sits between pixels once σ ≥ MIN_BEAD_SIGMA_PX (0.6 px), the floor of the
    default widths; at 0.375 px (1 Å beads at a 7 Å band's 2.7 Å pixels) the sum swings by
    over 20 %, which is what the floor is for."""
    from cryostar_engine.atom.config import MIN_BEAD_SIGMA_PX
    from cryostar_engine.physics.render import project_beads

    def swing(sigma_px):
        apix = 2.0
        offsets = torch.linspace(0, 0.5, 6) * apix                 # on a pixel … between two
        coords = torch.stack([offsets, offsets, torch.zeros(6)], 1)[:, None, :]   # (6, 1, 3)
        sums = project_beads(coords, torch.ones(1), sigma_px * apix, 32, apix).sum((1, 2))
        return float(sums.max() / sums.min() - 1)

    assert swing(MIN_BEAD_SIGMA_PX) < 0.01
    assert swing(0.375) > 0.2
