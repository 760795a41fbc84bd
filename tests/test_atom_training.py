"""Stage 1 on the bundled AdK stack (384 particles, 48 px, SNR 0.1): a short CPU run recovers the
closed→open motion, and each broken variant (no restraints, wrong CTF sign, shuffled z) fails
the same bars.

Bars: |Spearman ρ| of z's best PC with the true frame ≥ 0.7, and mean decoded Cα RMSD to each
particle's true frame ≤ 0.85 × the reference model's.  A correct 120-epoch run (720 steps)
reaches about ρ 0.95 and a ratio of 0.53; without restraints the ratio is about 1.55, with the
CTF sign flipped ρ is about 0.2 and the ratio above 8.  (The latent takes a few hundred steps
to start carrying the motion: after 40 epochs the same run is not there yet, ρ 0.07; after 80
it reaches ρ 0.92 / ratio 0.64.)
"""
import numpy as np
import pytest

from cryostar_engine.atom import AtomConfig, train_atom
from cryostar_engine.errors import InputError

from atom_figures import figures
from conftest import ADK_REF, ADK_STAR

RHO_BAR, RATIO_BAR = 0.7, 0.85


def config(out, **kw):
    base = dict(particles=str(ADK_STAR), model=str(ADK_REF), out=str(out), epochs=120, lr=1e-3,
                low_pass_A=6.0, seed=0, checkpoint_every=100)
    base.update(kw)
    return AtomConfig(**base)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("atom") / "run"
    train_atom(config(out))
    return out


def test_correct_model_recovers_the_motion(trained_run):
    rho, ratio = figures(trained_run)
    assert rho >= RHO_BAR and ratio <= RATIO_BAR, (rho, ratio)


def test_shuffled_z_fails_the_bars(trained_run):
    z = np.load(trained_run / "z.npy")
    rho, ratio = figures(trained_run, np.random.default_rng(0).permutation(z))
    assert rho < RHO_BAR and ratio > RATIO_BAR, (rho, ratio)


def test_without_restraints_the_structures_are_worse_than_the_reference(tmp_path):
    out = tmp_path / "nores"
    train_atom(config(out, continuity_weight=0.0, en_weight=0.0, clash_weight=0.0))
    rho, ratio = figures(out)
    assert ratio > RATIO_BAR, (rho, ratio)


def test_wrong_ctf_sign_is_refused_and_would_fail_the_bars(tmp_path):
    with pytest.raises(InputError, match="anti-correlate.*look dark"):
        train_atom(config(tmp_path / "refused", invert_contrast=True))
    assert not (tmp_path / "refused").exists()
    out = tmp_path / "forced"
    train_atom(config(out, invert_contrast=True, skip_signal_check=True))
    rho, ratio = figures(out)
    assert rho < RHO_BAR and ratio > RATIO_BAR, (rho, ratio)


def test_run_outputs(trained_run):
    z = np.load(trained_run / "z.npy")
    assert z.shape == (384, 8) and np.isfinite(z).all()
    for name in ["config.json", "run.log", "losses.csv", "preview.png", "manifest.json",
                 "reference_beads.pdb"]:
        assert (trained_run / name).stat().st_size > 0, name
    header = (trained_run / "losses.csv").read_text().splitlines()[0].split(",")
    assert header[:2] == ["step", "images_seen"]
    assert {"image", "continuity", "elastic", "clash", "kl"} <= set(header)
    assert len(list((trained_run / "checkpoints").glob("step_*.pt"))) <= 3
    import json
    manifest = json.loads((trained_run / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["images_seen"] == 720 * 64


def test_existing_run_folder_is_protected(trained_run):
    with pytest.raises(InputError, match="already holds a atom run; pass --resume"):
        train_atom(config(trained_run))
