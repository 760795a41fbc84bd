"""benchmarks/metrics.py: each figure scores the truth at its ceiling and a wrong answer low."""
import numpy as np
import pytest

from benchmarks import metrics as bm
from conftest import ADK_DIMS_CA

D, APIX = 24, 2.0


def _blob_volumes(t: np.ndarray) -> np.ndarray:
    """``(M, D, D, D)`` maps: a fixed blob plus a second blob that moves along x with t∈[0,1]."""
    ax = (np.arange(D) - D // 2) * APIX
    zz, yy, xx = np.meshgrid(ax, ax, ax, indexing="ij")
    fixed = np.exp(-((xx + 8) ** 2 + yy ** 2 + zz ** 2) / (2 * 3.0 ** 2))
    out = []
    for ti in t:
        cx = -2.0 + 14.0 * ti
        out.append(fixed + np.exp(-((xx - cx) ** 2 + (yy - 4) ** 2 + zz ** 2) / (2 * 3.0 ** 2)))
    return np.asarray(out, np.float32)


def test_latent_figures_truth_vs_noise():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 98, 600)
    # the frame lives on the 2nd PC: a larger nuisance axis comes first
    z = np.stack([rng.normal(0, 200, 600), frame + rng.normal(0, 2, 600),
                  rng.normal(0, 1, 600)], 1)
    rho, pc = bm.best_pc_spearman(z, frame)
    assert rho > 0.99 and pc == 1
    assert bm.knn_r2(z[:, 1:], frame) > 0.98
    noise = rng.normal(size=(600, 8))
    assert bm.best_pc_spearman(noise, frame)[0] < 0.15
    assert bm.knn_r2(noise, frame) < 0.05


def test_ca_rmsd_summary_ratio():
    gt = np.load(ADK_DIMS_CA).astype(np.float64)
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 98, 50)
    ref = gt[48]
    perfect = bm.ca_rmsd_summary(gt[frame], frame, gt, ref)
    assert perfect["rmsd"] == pytest.approx(0.0, abs=1e-9) and perfect["ratio"] < 1e-9
    stuck = bm.ca_rmsd_summary(np.broadcast_to(ref, gt[frame].shape), frame, gt, ref)
    assert stuck["ratio"] == pytest.approx(1.0)
    half = bm.ca_rmsd_summary(0.5 * (gt[frame] + ref), frame, gt, ref)
    assert half["ratio"] == pytest.approx(0.5, abs=1e-6)
    assert 1.0 < perfect["ref_rmsd"] < 5.0          # AdK frames differ by a few Å from frame 48


def test_residue_rows_match_by_number():
    assert list(bm.residue_rows(np.array([1, 2, 214]))) == [0, 1, 213]


def test_au_fsc_ceiling_and_noise():
    rng = np.random.default_rng(2)
    v = _blob_volumes(np.array([0.3]))[0]
    assert bm.au_fsc(v, v) == pytest.approx(0.5)
    noisy = v + rng.normal(0, 0.05, v.shape)
    pure_noise = bm.au_fsc(rng.normal(size=v.shape), v)
    assert pure_noise < 0.12                         # |FSC| of noise is small, not 0 (few voxels)
    assert pure_noise + 0.1 < bm.au_fsc(noisy, v) < 0.5
    mean, per = bm.mean_au_fsc(np.stack([v, noisy]), np.stack([v, v]))
    assert per.shape == (2,) and mean == pytest.approx(per.mean())


def test_heterogeneity_carried_truth_static_and_reversed():
    t = np.linspace(0, 1, 12)
    gt = _blob_volumes(t)
    mask = bm.envelope_mask(gt, APIX)
    assert 0.05 < mask.mean() < 0.9
    full, per = bm.heterogeneity_carried(gt, gt, mask, APIX)
    assert full == pytest.approx(1.0) and per.shape == (12,)
    rng = np.random.default_rng(3)
    static = _blob_volumes(np.full(12, 0.5)) + rng.normal(0, 0.01, gt.shape).astype(np.float32)
    assert abs(bm.heterogeneity_carried(static, gt, mask, APIX)[0]) < 0.2
    # a map that moves the domain the wrong way must score negative (the figure can fail)
    assert bm.heterogeneity_carried(_blob_volumes(1 - t), gt, mask, APIX)[0] < -0.2


def test_mean_map_correlation_detects_flip():
    gt = _blob_volumes(np.linspace(0, 1, 6))
    mask = np.ones(gt.shape[1:], bool)
    right = bm.mean_map_correlation(gt, gt, mask, APIX)
    flipped = bm.mean_map_correlation(np.ascontiguousarray(gt[:, :, :, ::-1]), gt, mask, APIX)
    assert right == pytest.approx(1.0) and flipped < right - 0.3


def test_pick_particles_reproducible():
    a, b = bm.pick_particles(3000, 100, 0), bm.pick_particles(3000, 100, 0)
    assert np.array_equal(a, b) and len(np.unique(a)) == 100 and a.max() < 3000
