"""PCA trajectories and k-means states are consistent with z (library level)."""
from pathlib import Path

import numpy as np
import pytest
from scipy.cluster.hierarchy import leaves_list, linkage

from scipy.stats import spearmanr

from cryostar_engine.analysis import fit_pca, kmeans_states, pc_trajectory
from cryostar_engine.analysis.pca import fit_structure_pca
from cryostar_engine.errors import InputError

DATA = Path(__file__).resolve().parents[1] / "data"


def adk_latents(seed=0):
    """z (384, 8) whose first coordinate follows the ground-truth AdK frame, plus noise."""
    frames = np.load(DATA / "adk_sim48" / "gt_frame.npy").astype(float)
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 0.15, (len(frames), 8))
    z[:, 0] = frames / 97 * 2 - 1 + rng.normal(0, 0.03, len(frames))
    return z, frames


def nearest_centre_brute(z, centres):
    return np.argmin(((z[:, None] - centres[None]) ** 2).sum(-1), axis=1)


def test_kmeans_labels_are_nearest_snapped_centres():
    z, _ = adk_latents()
    st = kmeans_states(z, k=10)
    assert st.k == 10 and st.labels.shape == (384,)
    np.testing.assert_array_equal(st.centres, z[st.centre_indices])      # real particles
    assert len(set(st.centre_indices.tolist())) == 10                    # distinct states
    np.testing.assert_array_equal(st.labels, nearest_centre_brute(z, st.centres))
    np.testing.assert_array_equal(st.counts, np.bincount(st.labels, minlength=10))
    assert set(st.labels.tolist()) == set(range(10))
    # numbering = leaf order of an average-linkage dendrogram of the snapped centres
    np.testing.assert_array_equal(leaves_list(linkage(st.centres, "average")), np.arange(10))
    # each snapped centre is the particle nearest to its raw k-means centre
    for raw, snapped in zip(st.kmeans_centres, st.centres):
        assert np.linalg.norm(snapped - raw) <= np.linalg.norm(z - raw, axis=1).min() + 1e-12


def test_nearest_centre_check_can_fail():
    """The consistency check above is not vacuous: the raw k-means labels (unsnapped,
    unordered) disagree with the nearest-snapped-centre labels."""
    from sklearn.cluster import KMeans

    z, _ = adk_latents()
    st = kmeans_states(z, k=10)
    raw = KMeans(n_clusters=10, n_init=10, random_state=0).fit(z).labels_
    assert np.mean(raw == st.labels) < 0.5


def test_kmeans_is_deterministic_and_splits_the_morph():
    z, frames = adk_latents()
    a, b = kmeans_states(z, k=6), kmeans_states(z, k=6)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.centre_indices, b.centre_indices)
    # the states separate the conformations: the ground-truth frame explains most of the
    # spread (between-state variance of the frame / total variance)
    means = np.array([frames[a.labels == c].mean() for c in range(6)])
    explained = (a.counts * (means - frames.mean()) ** 2).sum() / (frames.var() * len(frames))
    assert explained > 0.8, explained


def test_pc_trajectory_points_are_real_particles_on_percentiles():
    z, frames = adk_latents()
    pca = fit_pca(z)
    assert pca.n_components == 8
    np.testing.assert_allclose(pca.explained_variance_ratio.sum(), 1.0)
    assert pca.explained_variance_ratio[0] > 0.6
    t = pc_trajectory(z, pca, pc=1, n_points=10)
    np.testing.assert_array_equal(t.z, z[t.indices])
    lo, hi = np.percentile(pca.scores[:, 0], [5, 95])
    np.testing.assert_allclose(t.target_scores, np.linspace(lo, hi, 10))
    # targets lie on the line through the mean along PC1
    np.testing.assert_allclose(pca.transform(t.target_z)[:, 1:], 0, atol=1e-9)
    # each point is the nearest particle to its target
    d = np.linalg.norm(z[None] - t.target_z[:, None], axis=2)
    np.testing.assert_array_equal(t.indices, d.argmin(1))
    # PC1 follows the ground-truth morph: frames of the snapped particles are monotonic
    r = np.corrcoef(t.target_scores, frames[t.indices])[0, 1]
    assert abs(r) > 0.97, r


def test_bad_latents_and_settings_raise_input_error():
    z, _ = adk_latents()
    bad = z.copy()
    bad[3, 2] = np.nan
    with pytest.raises(InputError, match="row 3"):
        fit_pca(bad)
    with pytest.raises(InputError, match="no variance|same latent"):
        fit_pca(np.ones((10, 4)))
    with pytest.raises(InputError, match="--k"):
        kmeans_states(z[:5], k=6)
    with pytest.raises(InputError, match="points"):
        pc_trajectory(z, fit_pca(z), 1, n_points=1)
    with pytest.raises(InputError, match="PC 9"):
        pc_trajectory(z, fit_pca(z), 9)


def _widening_path(seed=0):
    """A 1-D motion whose latent spread grows 20x towards one end (as seen in real runs).

    z[:, 0] follows the frame t ∈ [0, 1]; z[:, 1] is spread that the decoder ignores, with a
    standard deviation growing from 0.05 to 1.0 along the path.  The decoder moves one bead
    group of AdK by t·8 Å: one motion, one axis.
    """
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, 1, 1500)
    z = rng.normal(0, 0.02, (len(t), 4))
    z[:, 0] = t
    z[:, 1] = rng.normal(0, 1, len(t)) * (0.05 + 0.95 * t ** 3)
    ref = np.load(DATA / "adk_models" / "adk_dims_ca.npy")[48].astype(np.float64)
    move = np.zeros_like(ref)
    move[120:160, 0] = 8.0

    def decode(zz):
        return ref[None] + np.clip(np.asarray(zz, np.float64)[:, :1], 0, 1)[:, :, None] * move[None]
    return z, t, decode


def test_structure_pca_puts_a_one_dimensional_motion_on_pc1():
    z, t, decode = _widening_path()
    latent = fit_pca(z)
    assert abs(spearmanr(latent.scores[:, 0], t)[0]) < 0.7      # the latent PCA mixes it
    pca = fit_structure_pca(z, decode)
    assert pca.space == "structure" and pca.n_components == 4
    assert abs(spearmanr(pca.scores[:, 0], t)[0]) > 0.999
    assert pca.explained_variance_ratio[0] > 0.99
    # the per-bead RMS displacement of one σ along PC1: 40 of 214 beads move 8 Å·σ(t)
    expected = 8.0 * np.std(np.clip(t, 0, 1), ddof=1) * np.sqrt(40 / 214)
    np.testing.assert_allclose(pca.rms_displacement_A[0], expected, rtol=1e-3)
    traj = pc_trajectory(z, pca, pc=1, n_points=6)
    assert np.all(np.diff(t[traj.indices]) * np.sign(pca.components[0, 120 * 3]) > 0)


def test_structure_pca_keeps_a_real_second_motion():
    """Two independent motions: structure PCA shows both, each on its own PC."""
    z, t, decode1 = _widening_path(1)
    u = np.random.default_rng(2).uniform(0, 1, len(t))
    z[:, 2] = u

    def decode(zz):
        out = decode1(zz)
        out[:, 10:40, 1] += 5.0 * np.asarray(zz, np.float64)[:, 2:3]
        return out
    pca = fit_structure_pca(z, decode)
    rho = np.abs([[spearmanr(pca.scores[:, k], v)[0] for k in range(2)] for v in (t, u)])
    assert rho[0].max() > 0.99 and rho[1].max() > 0.99 and rho[0].argmax() != rho[1].argmax()
    assert pca.explained_variance_ratio[1] > 0.1


def test_structure_pca_fits_on_a_subset_when_structures_are_large(monkeypatch):
    import cryostar_engine.analysis.pca as pca_mod
    z, t, decode = _widening_path()
    monkeypatch.setattr(pca_mod, "STRUCTURE_FIT_BYTES", 4 * 642 * 300)
    pca = fit_structure_pca(z, decode)
    assert pca.fit_rows is not None and len(pca.fit_rows) == 300
    assert pca.scores.shape == (1500, 4)
    assert abs(spearmanr(pca.scores[:, 0], t)[0]) > 0.999
