"""The density field: pair symmetry, real volumes, and slices consistent with projections."""
import numpy as np
import pytest
import torch

from cryostar_engine.data import ParticleDataset
from cryostar_engine.density import (HartleyField, VolumeRenderer, estimate_f_std, half_grid,
                                     predict_slices)
from cryostar_engine.density.hartley import partner_index
from cryostar_engine.geometry.poses import euler_to_matrix
from cryostar_engine.physics import fft2c


def _field(box=12, z_dim=3, seed=1):
    torch.manual_seed(seed)
    return HartleyField(box, z_dim, hidden=32, residual_layers=2, seed=seed).eval()


def test_default_size_matches_the_spec():
    """1024 wide, 1 + 3 residual layers, 3·D′ frequencies: about 4.0 M parameters at D′ = 128."""
    model = HartleyField(128, 8)
    n = sum(p.numel() for p in model.parameters())
    assert 3.9e6 < n < 4.0e6
    assert model.freqs.shape == (3 * 128, 3)
    assert model.n_features == 3 + 6 * 128


def test_one_evaluation_gives_both_members_of_a_pair():
    model = _field()
    k = torch.rand(2, 50, 3) - 0.5
    z = torch.randn(2, 3)
    with torch.no_grad():
        a, b = model(k, z)
        b2, a2 = model(-k, z)
    assert torch.equal(a, a2) and torch.equal(b, b2)
    assert (a - b).abs().max() > 1e-3          # h(k) and h(-k) are different numbers


def test_latent_changes_the_field():
    model = _field()
    k = torch.rand(1, 50, 3) - 0.5
    with torch.no_grad():
        a, _ = model(k, torch.zeros(1, 3))
        b, _ = model(k, torch.ones(1, 3))
    assert (a - b).abs().max() > 1e-3


@pytest.mark.parametrize("box", [12, 13])
def test_volume_transform_is_hermitian_and_zero_outside_the_ball(box):
    model = _field(box)
    renderer = VolumeRenderer(model, box, chunk_points=500)
    f = renderer.fourier(torch.randn(3))
    p = partner_index(box)
    assert torch.allclose(f[p][:, p][:, :, p], f.conj(), atol=1e-6)
    r = torch.arange(box) - box // 2
    outside = r[:, None, None] ** 2 + r[None, :, None] ** 2 + r[None, None, :] ** 2 > (box // 2) ** 2
    assert f[outside].abs().max() == 0
    assert renderer.volume(torch.randn(3)).dtype == np.float32


def _project(volume: np.ndarray, rotation: np.ndarray) -> torch.Tensor:
    """Image of the volume seen with RELION matrix R: image(y) = Σ_{y_z} V(Rᵀy), for a signed
    permutation R (grid points map to grid points; periodic wrap as in the DFT)."""
    box = volume.shape[0]
    c = box // 2
    r = np.arange(box) - c
    yz, yy, yx = np.meshgrid(r, r, r, indexing="ij")
    y = np.stack([yx, yy, yz], -1)                       # (x, y, z) of each image-frame voxel
    x = np.rint(y @ rotation).astype(int)                # row form of Rᵀy
    vals = volume[(x[..., 2] + c) % box, (x[..., 1] + c) % box, (x[..., 0] + c) % box]
    return torch.as_tensor(vals.sum(0), dtype=torch.float64)      # sum along y_z → [y, x]


@pytest.mark.parametrize("convention, agrees", [("RT", True), ("R", False)])
def test_slice_equals_the_transform_of_the_projected_volume(convention, agrees):
    """Projection-slice theorem between the volume renderer and the training slices; the wrong
    rotation convention (R instead of Rᵀ) must disagree."""
    box = 12
    model = _field(box)
    z = torch.randn(1, 3)
    volume = VolumeRenderer(model, box).volume(z[0]).astype(np.float64)
    rot = euler_to_matrix(np.array([90.0, 90.0, 0.0]))
    assert not np.allclose(rot, rot.T)
    image_ft = fft2c(_project(volume, np.rint(rot)))
    grid = half_grid(box, 2, radius_px=box // 2 - 1)
    with torch.no_grad():
        pred = predict_slices(model, grid, torch.tensor(np.rint(rot), dtype=torch.float32)[None],
                              z, torch.ones(1, len(grid.flat)), convention)[0]
    expected = image_ft.flatten()[grid.flat].to(pred.dtype)
    err = (pred - expected).abs().max() / expected.abs().max()
    assert (err < 1e-4) if agrees else (err > 0.1)


def test_f_std_normalises_the_transforms_to_unit_std(adk_meta):
    data = ParticleDataset(adk_meta, box=32)
    f_std = estimate_f_std(data, 100)
    f = fft2c(data.images(np.arange(len(data))) / f_std)
    assert abs(torch.std(f).item() - 1.0) < 0.05
