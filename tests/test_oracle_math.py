"""Band-limited Gaussian posterior of benchmarks/oracle_ceiling.py (numpy only, seconds).

Synthetic data: a path of F images (a fixed blob and a sharp one that moves 0.25 px per frame),
white noise of known σ = 1, a known scale. Checks: the rfft bookkeeping equals the real-space
projection; at high SNR the posterior picks the true frame; a lower band limit leaves a broader
posterior; the posterior is calibrated with the right noise normalisation and caught when wrong.
"""
from __future__ import annotations

import numpy as np
import pytest

from benchmarks.oracle_ceiling import (
    ALL, band_dof, band_gram, band_masks, check_calibration, fourier, log_likelihood,
    noise_calibration, posterior, posterior_mean,
)

D, APIX, F = 32, 2.0, 30


def path_frames() -> np.ndarray:
    """(F, D, D) noiseless frames: a wide blob at rest, a sharp blob moving along x."""
    y, x = np.mgrid[:D, :D].astype(float)
    rest = np.exp(-((x - 12) ** 2 + (y - 16) ** 2) / (2 * 2.5 ** 2))
    moving = [np.exp(-((x - 17 - 0.25 * f) ** 2 + (y - 15) ** 2) / (2 * 0.7 ** 2)) for f in range(F)]
    return np.stack([rest + m for m in moving])


def observe(n: int, scale: float, seed: int, noise_sd: float = 1.0):
    """n images of uniformly drawn frames: scale·frame + N(0, noise_sd²) per pixel."""
    rng = np.random.default_rng(seed)
    frames = path_frames()
    truth = rng.integers(0, F, n)
    images = scale * frames[truth] + noise_sd * rng.standard_normal((n, D, D))
    return images, truth, np.broadcast_to(frames, (n,) + frames.shape)


def oracle_loglik(images, cands, scale, resolutions, noise_var=1.0, norm="ortho"):
    masks = band_masks(D, APIX, resolutions)
    yy, yc, cc = band_gram(fourier(images, norm), fourier(cands, norm), masks)
    return log_likelihood(yy, yc, cc, scale, noise_var)


def test_bands_equal_the_real_space_projection():
    rng = np.random.default_rng(0)
    y, c = rng.standard_normal((3, D, D)), rng.standard_normal((3, 2, D, D))
    resolutions = [10.0, 2 * APIX, ALL]
    ll = oracle_loglik(y, c, 0.7, resolutions)
    masks = band_masks(D, APIX, resolutions)
    assert band_dof(masks)[-1] == D * D
    for b, mask in enumerate(masks):
        r = y[:, None] - 0.7 * c
        proj = np.fft.irfft2(np.fft.rfft2(r) * mask, s=(D, D))        # P r, real
        np.testing.assert_allclose(ll[:, :, b], -0.5 * (proj ** 2).sum((-2, -1)), rtol=1e-10)
        # P is an orthogonal projection: idempotent, and its trace is the band's dof
        np.testing.assert_allclose(np.fft.irfft2(np.fft.rfft2(proj) * mask, s=(D, D)), proj, atol=1e-12)
    np.testing.assert_allclose(ll[:, :, -1], -0.5 * ((y[:, None] - 0.7 * c) ** 2).sum((-2, -1)), rtol=1e-10)


def test_high_snr_posterior_picks_the_true_frame():
    images, truth, cands = observe(40, scale=40.0, seed=1)
    post = posterior(oracle_loglik(images, cands, 40.0, [ALL])[:, :, 0])
    assert np.array_equal(post.argmax(1), truth)
    assert post[np.arange(len(truth)), truth].min() > 0.99


def test_band_limit_removes_information():
    images, truth, cands = observe(300, scale=3.0, seed=2)
    resolutions = [20.0, 10.0, 6.0, 2 * APIX]
    ll = oracle_loglik(images, cands, 3.0, resolutions)
    sd, err = [], []
    for b in range(len(resolutions)):
        post = posterior(ll[:, :, b])
        f = np.arange(F, dtype=float)
        mean = posterior_mean(post, f)
        sd.append(np.sqrt(posterior_mean(post, f ** 2) - mean ** 2).mean())
        err.append(np.abs(mean - truth).mean())
    assert np.all(np.diff(sd) < 0), sd           # higher resolution -> sharper posterior
    assert err[-1] < 0.5 * err[0], err             # and a better frame estimate
    assert sd[0] > 4.0 and sd[-1] < 2.0, sd        # 20 Å barely resolves the 0.25 px steps


def _calibration_gap(noise_var: float) -> float:
    """E[p(true | y)] − E[Σ_f p_f²]: 0 (within noise) for a correctly scaled likelihood."""
    images, truth, cands = observe(600, scale=2.0, seed=3)
    post = posterior(oracle_loglik(images, cands, 2.0, [6.0], noise_var=noise_var)[:, :, 0])
    return float(post[np.arange(len(truth)), truth].mean() - (post ** 2).sum(1).mean())


def test_posterior_is_calibrated_only_with_the_right_noise_variance():
    assert abs(_calibration_gap(1.0)) < 0.03
    assert _calibration_gap(0.25) < -0.08         # overconfident: told σ² = 0.25, it is 1


def test_noise_calibration_catches_a_wrong_fourier_normalisation():
    rng = np.random.default_rng(4)
    noise = rng.standard_normal((50, D, D))
    masks = band_masks(D, APIX, [20.0, 6.0, 2 * APIX, ALL])
    ratio = noise_calibration(fourier(noise), masks)
    check_calibration(ratio, len(noise), band_dof(masks))
    np.testing.assert_allclose(ratio, 1.0, atol=0.1)
    unnormalised = noise_calibration(fourier(noise, norm="backward"), masks)
    np.testing.assert_allclose(unnormalised / ratio, D * D, rtol=1e-10)
    with pytest.raises(ValueError, match="noise calibration off"):
        check_calibration(unnormalised, len(noise), band_dof(masks))
    with pytest.raises(ValueError, match="noise calibration off"):   # σ = 1.1, claimed 1
        check_calibration(noise_calibration(fourier(1.1 * noise), masks), len(noise), band_dof(masks))


def test_fit_scale_recovers_the_simulators_scale_from_a_few_particles():
    """image − re-drawn noise regressed on the clean renders gives the scale the simulator used
    (to float32 rounding); with noise that is not the particles' own it is visibly off."""
    from benchmarks.oracle_ceiling import fit_scale

    clean = path_frames()[:8]
    noise = np.random.default_rng(3).standard_normal(clean.shape)
    images = (0.2722 * clean + noise).astype(np.float32)
    assert fit_scale(images, noise, clean) == pytest.approx(0.2722, rel=1e-6)
    other = np.random.default_rng(4).standard_normal(clean.shape)
    assert abs(fit_scale(images, other, clean) / 0.2722 - 1) > 1e-3


def test_a_recorded_complex_command_is_read_back_with_its_hinge_selections():
    """settings.json joins the command with spaces; the selections hold spaces, so reading it
    back splits before each option, not at each space (a plain split loses the selections)."""
    import json
    from pathlib import Path

    from benchmarks.simulate_complex import parse_args, recorded_argv

    command = json.loads((Path(__file__).parent / "data/protein_rna/settings.json").read_text())["command"]
    own, common = parse_args(recorded_argv(command))
    assert own.hinge == ["chainID A C=30",
                         "(chainID D and resid 582:594 649:653) or (chainID E and resid 754:759)=50"]
    assert (common.n, common.box, common.apix, common.seed) == (320, 48, 2.4, 17)
    with pytest.raises(SystemExit):     # the selections' words left over as stray arguments
        parse_args(command.split()[1:])


def test_two_render_outputs_are_joined_by_star_row_and_a_particle_twice_is_refused(tmp_path):
    """score --also: rows and likelihoods of two render folders line up (each with its own
    scale); the same particle rendered into both folders stops the score."""
    import json

    from benchmarks.oracle_ceiling import read_stats

    rng = np.random.default_rng(0)

    def write(folder, rows, scale):
        folder.mkdir()
        n = len(rows)
        header = {"scale": scale, "noise_var": 1.0, "resolutions_A": [10.0, 0.0], "n_total": 50}
        arrays = {"rows": np.asarray(rows), "yy": rng.random((n, 2)), "yc": rng.random((n, 3, 2)),
                  "cc": rng.random((n, 3, 2)), "resid_band_sq": rng.random((n, 2))}
        np.savez(folder / "oracle_stats.npz", header=np.array(json.dumps(header)), **arrays)
        return arrays

    a = write(tmp_path / "a", [0, 1, 2], 0.5)
    b = write(tmp_path / "b", [10, 11], 0.25)
    header, stats, ll = read_stats([tmp_path / "a", tmp_path / "b"])
    assert stats["rows"].tolist() == [0, 1, 2, 10, 11]
    assert np.allclose(ll[3:], log_likelihood(b["yy"], b["yc"], b["cc"], 0.25))
    assert np.allclose(ll[:3], log_likelihood(a["yy"], a["yc"], a["cc"], 0.5))
    write(tmp_path / "c", [2, 3], 0.5)
    with pytest.raises(SystemExit, match="twice"):
        read_stats([tmp_path / "a", tmp_path / "c"])
