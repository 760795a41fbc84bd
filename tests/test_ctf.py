"""The CTF: sign, wavelength, astigmatism direction, phase shift, envelope (golden values)."""
import math

import numpy as np
import torch

from cryostar_engine.physics import CtfParams, electron_wavelength_A, evaluate_ctf


def params(**kw):
    base = dict(defocus_u_A=15000.0, defocus_v_A=15000.0, defocus_angle_deg=0.0, voltage_kv=300.0,
                cs_mm=2.7, amplitude_contrast=0.1, phase_shift_deg=0.0, bfactor_A2=0.0, scale=1.0)
    base.update(kw)
    return CtfParams(**{k: torch.tensor([v], dtype=torch.float64) for k, v in base.items()})


def test_wavelength_300kv():
    assert abs(float(electron_wavelength_A(torch.tensor(300.0, dtype=torch.float64))) - 0.019687) < 1e-5


def test_sign_white_particles_positive_at_dc():
    h = evaluate_ctf(torch.zeros(1, 1, dtype=torch.float64), torch.zeros(1, 1, dtype=torch.float64), params())
    assert abs(float(h) - 0.1) < 1e-12


def test_golden_value_against_hand_formula():
    s = 0.05  # Å⁻¹ along x
    lam = 12.2639 / math.sqrt(300e3 + 0.97845e-6 * 300e3 ** 2)
    gamma = 2 * math.pi * (-0.5 * 15000 * lam * s ** 2 + 0.25 * 2.7e7 * lam ** 3 * s ** 4)
    expected = -(math.sqrt(1 - 0.01) * math.sin(gamma) - 0.1 * math.cos(gamma))
    h = evaluate_ctf(torch.zeros(1, 1, dtype=torch.float64), torch.full((1, 1), s, dtype=torch.float64), params())
    assert abs(float(h) - expected) < 1e-10


def test_astigmatism_angle_is_measured_from_x():
    """Along the direction θ_ast the defocus is ΔfU; perpendicular to it, ΔfV."""
    ang = 30.0
    p = params(defocus_u_A=20000.0, defocus_v_A=10000.0, defocus_angle_deg=ang)
    s = 0.04
    t = math.radians(ang)
    along = evaluate_ctf(torch.tensor([[s * math.sin(t)]], dtype=torch.float64),
                         torch.tensor([[s * math.cos(t)]], dtype=torch.float64), p)
    perp = evaluate_ctf(torch.tensor([[s * math.cos(t)]], dtype=torch.float64),
                        torch.tensor([[-s * math.sin(t)]], dtype=torch.float64), p)
    sy, sx = torch.zeros(1, 1, dtype=torch.float64), torch.full((1, 1), s, dtype=torch.float64)
    assert abs(float(along) - float(evaluate_ctf(sy, sx, params(defocus_u_A=20000.0, defocus_v_A=20000.0)))) < 1e-10
    assert abs(float(perp) - float(evaluate_ctf(sy, sx, params(defocus_u_A=10000.0, defocus_v_A=10000.0)))) < 1e-10


def test_phase_shift_90_gives_strong_low_frequency_contrast_and_bfactor_damps():
    zero = torch.zeros(1, 1, dtype=torch.float64)
    assert abs(float(evaluate_ctf(zero, zero, params(phase_shift_deg=90.0))) - math.sqrt(0.99)) < 1e-10
    s = torch.full((1, 1), 0.1, dtype=torch.float64)
    ratio = evaluate_ctf(zero, s, params(bfactor_A2=100.0)) / evaluate_ctf(zero, s, params())
    assert abs(float(ratio) - math.exp(-100 * 0.01 / 4)) < 1e-10


def test_batch_shape():
    p = CtfParams(**{k: v.repeat(4) for k, v in params().__dict__.items()})
    sy, sx = torch.zeros(6, 1), torch.zeros(1, 5)
    assert evaluate_ctf(sy, sx, p).shape == (4, 6, 5)
