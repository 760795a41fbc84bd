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


def test_second_system_twists_one_chain_rigidly():
    """benchmarks/rigid_motion.py: the fixed chain stays put, the moving one turns as a rigid
    body by twist × (f − 48)/97 about the line joining the chains' centres; frame 48 = input."""
    from benchmarks.rigid_motion import twist_angles_deg, twist_frames
    rng = np.random.default_rng(0)
    coords = np.concatenate([rng.normal(0, 8, (60, 3)), rng.normal(0, 8, (50, 3)) + [30, 0, 0]])
    moving = np.arange(110) >= 60
    frames = twist_frames(coords, moving, twist_deg=30.0)
    centred = coords - coords.mean(0)
    assert frames.shape == (98, 110, 3)
    np.testing.assert_allclose(frames[48], centred, atol=1e-3)
    np.testing.assert_allclose(frames[:, ~moving], np.broadcast_to(centred[~moving], (98, 60, 3)), atol=1e-3)
    d = lambda x: np.linalg.norm(x[:, None] - x[None], axis=-1)            # noqa: E731
    np.testing.assert_allclose(d(frames[0, moving]), d(centred[moving]), atol=5e-3)   # rigid
    axis = centred[moving].mean(0) - centred[~moving].mean(0)
    axis /= np.linalg.norm(axis)
    a, b = centred[moving] - centred[moving].mean(0), frames[97, moving] - centred[moving].mean(0)
    perp = lambda v: v - np.outer(v @ axis, axis)                           # noqa: E731
    cos = np.sum(perp(a) * perp(b), 1) / (np.linalg.norm(perp(a), axis=1) * np.linalg.norm(perp(b), axis=1))
    angle = np.degrees(np.arccos(np.clip(np.median(cos), -1, 1)))
    assert angle == pytest.approx(twist_angles_deg(30.0)[97], abs=0.05) and angle == pytest.approx(30 * 49 / 97, abs=0.05)
    np.testing.assert_allclose(a @ axis, b @ axis, atol=1e-3)                 # a twist, no tilt


def test_two_chain_scores_match_beads_on_chain_and_residue(tmp_path):
    """With gt_ca.npy in the reference's order, beads of chains that share residue numbers are
    matched on (chain, residue number), whatever order a method lists them in."""
    from benchmarks.peer_common import BenchData, truth_and_reference_ca
    lines = []
    for i, (chain, res, x) in enumerate([("A", 5, 0.0), ("A", 6, 3.8), ("B", 5, 20.0), ("B", 6, 23.8)], 1):
        lines.append(f"ATOM  {i:5d}  CA  ALA {chain}{res:4d}    {x:8.3f}{0.0:8.3f}{0.0:8.3f}  1.00  0.00           C")
    ref = tmp_path / "ref.pdb"
    ref.write_text("\n".join(lines) + "\nEND\n")
    gt = np.arange(2 * 4 * 3, dtype=float).reshape(2, 4, 3)                # 2 frames, model order
    data = BenchData(root=tmp_path, star=tmp_path / "p.star", apix=1.0, box=8, frame=np.zeros(3, int),
                     gt_ca=gt, gt_in_model_order=True)
    truth, ref_ca = truth_and_reference_ca(data, ref, ["B", "A", "B"], [6, 5, 5])
    np.testing.assert_array_equal(truth, gt[:, [3, 0, 2]])
    np.testing.assert_allclose(ref_ca[:, 0], [23.8, 0.0, 20.0])
    with pytest.raises(SystemExit, match="not in the reference"):
        truth_and_reference_ca(data, ref, ["C"], [5])
