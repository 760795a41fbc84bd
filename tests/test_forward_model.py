"""The forward model against the independently simulated data (cryojax, checked by RELION).

Render the reference beads with each particle's pose, shift and CTF and correlate with the
low-passed particle.  The correct conventions must score clearly better than each plausible
wrong one (transposed rotation, opposite shift sign, opposite CTF sign).
"""
import numpy as np
import pytest
import torch

from cryostar_engine.data import ParticleDataset
from cryostar_engine.geometry import rotate_points
from cryostar_engine.io import read_beads
from cryostar_engine.physics import apply_rfft_filter, ctf_rfft, lowpass_mask_rfft, project_beads, shift_images

from conftest import ADK_REF

LOW_PASS_A = 6.0


def mean_correlation(meta, transpose=False, shift_sign=1.0, ctf_sign=1.0):
    ds = ParticleDataset(meta)
    b = ds.batch(np.arange(len(ds)))
    beads = read_beads(ADK_REF)
    rot = b.rotations.transpose(1, 2) if transpose else b.rotations
    coords = rotate_points(torch.as_tensor(beads.coords_A, dtype=torch.float32), rot)
    proj = project_beads(coords, torch.as_tensor(beads.amplitudes, dtype=torch.float32), 2.0, ds.box, ds.apix)
    lp = lowpass_mask_rfft(ds.box, ds.apix, LOW_PASS_A)
    pred = apply_rfft_filter(proj, ctf_sign * ctf_rfft(b.ctf, ds.box, ds.apix) * lp)
    target = apply_rfft_filter(shift_images(b.images, shift_sign * b.shifts_px), lp)
    p = pred - pred.mean((1, 2), keepdim=True)
    t = target - target.mean((1, 2), keepdim=True)
    return float(((p * t).sum((1, 2)) / (p.norm(dim=(1, 2)) * t.norm(dim=(1, 2)))).mean())


def test_correct_conventions_correlate_positively(adk_meta):
    assert mean_correlation(adk_meta) > 0.25


@pytest.mark.parametrize("wrong", [dict(transpose=True), dict(shift_sign=-1.0), dict(ctf_sign=-1.0)],
                         ids=["transposed-rotation", "opposite-shift", "opposite-ctf-sign"])
def test_each_wrong_convention_scores_clearly_worse(adk_meta, wrong):
    right = mean_correlation(adk_meta)
    assert mean_correlation(adk_meta, **wrong) < right - 0.05


ASTIG_STAR = ADK_REF.parents[1] / "adk_astig48" / "particles.star"


@pytest.mark.parametrize("wrong_angle", [lambda a: 90 - a, lambda a: a + 90, lambda a: -a],
                         ids=["90-minus-angle", "U-V-swapped", "mirrored-angle"])
def test_astigmatism_angle_convention(wrong_angle):
    """On strongly astigmatic data (|U−V| 2000–4000 Å) the RELION angle, measured from x, fits
    clearly better than each plausible wrong mapping."""
    from cryostar_engine.io import read_particles
    meta = read_particles(ASTIG_STAR)
    right = mean_correlation(meta)
    assert right > 0.9
    meta.defocus_angle_deg = wrong_angle(meta.defocus_angle_deg)
    assert mean_correlation(meta) < right - 0.03
