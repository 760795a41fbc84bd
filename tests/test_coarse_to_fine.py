"""Coarse-to-fine stage 1 (``--low-pass-start``): the image loss's band widens on a schedule of
images seen, the run records its box and schedule, and a run stopped mid-schedule resumes at the
band it stopped at and ends exactly as an uninterrupted run.

Runs on the bundled AdK stack at a 32 px box, 12 steps of 64 images (about 10 s on one thread).
"""
import json
import re

import numpy as np
import pytest
import torch

from cryostar_engine.atom import AtomConfig, train_atom
from cryostar_engine.atom.forward import AtomForwardModel
from cryostar_engine.lowpass import BandSchedule
from cryostar_engine.physics.fourier import rfft_freqs

from conftest import ADK_REF, ADK_STAR

START_A, FINAL_A, HOLD, RAMP = 16.0, 7.0, 128, 384     # 2 steps held, 6 steps of ramp
STOP_AT = 5                                            # steps: mid-ramp


def test_band_follows_the_schedule_of_images_seen():
    s = BandSchedule(FINAL_A, START_A, HOLD, RAMP)
    assert s.at(0) == s.at(HOLD) == START_A
    assert s.at(HOLD + RAMP) == s.at(10 ** 9) == FINAL_A
    mid = s.at(HOLD + RAMP // 2)               # linear in spatial frequency, not in Å
    assert mid == pytest.approx(1 / (0.5 / START_A + 0.5 / FINAL_A))
    bands = [s.at(i) for i in range(0, HOLD + RAMP + 64, 16)]
    assert all(a >= b for a, b in zip(bands, bands[1:]))            # only ever widens
    assert s.to_json()["points"] == [[0, START_A], [HOLD, START_A], [HOLD + RAMP, FINAL_A]]
    off = BandSchedule(FINAL_A, FINAL_A / 2, HOLD, RAMP)             # start finer: no schedule
    assert not off.active and off.at(0) == FINAL_A


def test_forward_model_widens_the_loss_band_only():
    torch.manual_seed(0)
    fwd = AtomForwardModel(32, 3.0, torch.ones(4), 2.0, START_A, 0.9, "cpu", encoder_low_pass_A=START_A)
    mask = fwd.lowpass
    images = torch.randn(2, 32, 32)

    class B:            # the two fields target() reads
        pass
    b = B()
    b.images, b.shifts_px = images, torch.zeros(2, 2)
    sy, sx = rfft_freqs(32, 3.0)
    s = torch.sqrt(sy ** 2 + sx ** 2)
    between = (s > 1 / START_A) & (s < 1 / FINAL_A)
    power = lambda img: torch.fft.rfft2(img).abs()[:, between].max()   # noqa: E731
    loss0, enc0 = fwd.targets(b)
    assert power(loss0) < 1e-4
    assert fwd.set_low_pass(FINAL_A)
    loss1, enc1 = fwd.targets(b)
    assert fwd.lowpass is mask                       # same tensor: a compiled step keeps its graph
    assert power(loss1) > 1.0 and torch.equal(enc1, enc0)   # the encoder's band stays fixed
    torch.testing.assert_close(fwd.target(b), loss1)


def _config(out, **kw):
    base = dict(particles=str(ADK_STAR), model=str(ADK_REF), out=str(out), epochs=2, lr=1e-3,
                box=32, low_pass_A=FINAL_A, low_pass_start_A=START_A, band_hold_images=HOLD,
                band_ramp_images=RAMP, seed=2, threads=1, checkpoint_every=3, compile="off",
                eval_every_epochs=100, encoder_band="start")
    base.update(kw)
    return AtomConfig(**base)


def _bands_logged(run):
    """``[(step, images, Å)]`` of the run.log's band lines."""
    return [(int(a), int(b), float(c)) for a, b, c in
            re.findall(r"step (\d+) \((\d+) images\): loss band ([\d.]+) Å", (run / "run.log").read_text())]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("c2f")
    train_atom(_config(root / "whole"))
    train_atom(_config(root / "stopped", stop_after_steps=STOP_AT))
    stopped = json.loads((root / "stopped" / "manifest.json").read_text())
    train_atom(_config(root / "stopped", resume=True))
    return root, stopped


def test_run_records_box_and_schedule(runs):
    root, _ = runs
    manifest = json.loads((root / "whole" / "manifest.json").read_text())
    config = json.loads((root / "whole" / "config.json").read_text())
    assert manifest["box_px"] == 32
    lp = manifest["low_pass"]
    assert (lp["A"], lp["now_A"], lp["encoder_A"]) == (FINAL_A, FINAL_A, START_A)
    assert lp["schedule"]["points"] == [[0, START_A], [HOLD, START_A], [HOLD + RAMP, FINAL_A]]
    assert (config["low_pass_A"], config["low_pass_start_A"], config["band_hold_images"],
            config["band_ramp_images"]) == (FINAL_A, START_A, HOLD, RAMP)
    s = BandSchedule(FINAL_A, START_A, HOLD, RAMP)
    logged = _bands_logged(root / "whole")
    assert logged[0] == (0, 0, START_A) and logged[-1][2] == FINAL_A
    for step, images, band in logged:          # each logged band is the schedule's at its images
        assert images == 64 * step and band == pytest.approx(s.at(images), abs=0.01)


def test_resume_mid_schedule_continues_at_the_same_band(runs):
    root, stopped = runs
    s = BandSchedule(FINAL_A, START_A, HOLD, RAMP)
    images = stopped["images_seen"]
    assert stopped["step"] == STOP_AT and FINAL_A < stopped["low_pass"]["now_A"] < START_A
    assert stopped["low_pass"]["now_A"] == pytest.approx(s.at(images - 64), abs=1e-3)
    resumed = [b for b in _bands_logged(root / "stopped") if b[0] == STOP_AT]
    assert resumed == [(STOP_AT, images, pytest.approx(s.at(images), abs=0.01))]
    np.testing.assert_allclose(np.load(root / "stopped" / "z.npy"), np.load(root / "whole" / "z.npy"),
                               atol=1e-5)


def test_default_schedule_is_a_fraction_of_the_run(tmp_path):
    """Without --band-hold-images / --band-ramp-images the band holds for a fifth of the run's
    images and widens over the next two fifths; config.json records the numbers, so a resumed
    or longer run keeps them."""
    from cryostar_engine.atom.config import BAND_HOLD_FRACTION, BAND_RAMP_FRACTION
    out = tmp_path / "fractions"
    train_atom(_config(out, epochs=5, band_hold_images=None, band_ramp_images=None,
                       stop_after_steps=1))
    total = 30 * 64                                      # ceil(5 × 384 / 64) steps of 64
    config = json.loads((out / "config.json").read_text())
    assert (config["band_hold_images"], config["band_ramp_images"]) == (
        round(BAND_HOLD_FRACTION * total), round(BAND_RAMP_FRACTION * total)) == (384, 768)
    assert AtomConfig().band_hold_images is None and AtomConfig().encoder_band == "final"


def test_auto_rendering_groups_at_least_0p6_pixels_wide(tmp_path):
    """``--bead-centre auto`` (the default) renders atom groups of σ 1 Å, widened to 0.6 pixels of
    the working box (48 px at 2 Å/px: box 48 keeps 1.2 Å, box 24 gives 2.4 Å), and one Gaussian
    per residue (σ 2 Å) for a Cα trace, whose one atom per residue is not the residue's density.
    config.json records what was rendered; a form or width given is kept."""
    from cryostar_engine.atom.config import MIN_BEAD_SIGMA_PX
    assert AtomConfig().bead_centre == "auto" and AtomConfig().bead_sigma_A is None
    trace = tmp_path / "ca_trace.pdb"
    trace.write_text("".join(line for line in ADK_REF.read_text().splitlines(True)
                             if line.startswith("ATOM") and line[12:16].strip() == "CA"))
    cases = [("box48", {"box": 48}, ("groups", 1.2)),
             ("box24", {"box": 24, "low_pass_A": 10.0, "low_pass_start_A": 16.0},
              ("groups", MIN_BEAD_SIGMA_PX * 4.0)),
             ("trace", {"box": 48, "model": str(trace)}, ("residue", 2.0)),
             ("given", {"box": 24, "low_pass_A": 10.0, "low_pass_start_A": 16.0,
                        "bead_centre": "atoms", "bead_sigma_A": 0.9}, ("atoms", 0.9))]
    for name, kw, rendered in cases:
        out = tmp_path / name
        train_atom(_config(out, **{"low_pass_A": 5.0, "low_pass_start_A": 16.0,
                                   "stop_after_steps": 1, **kw}))
        config = json.loads((out / "config.json").read_text())
        assert config["bead_centre"] == rendered[0], name
        assert config["bead_sigma_A"] == pytest.approx(rendered[1]), name
