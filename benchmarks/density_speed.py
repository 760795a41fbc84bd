"""Speed of the density generator on this machine: training img/s and seconds per volume, with
the knobs that were tried to make the CPU faster.

Times the trainer's own step (:func:`cryostar_engine.density.step.train_step`: centring, FFT,
CTF, half-disc slice, Fourier MSE, backward, finiteness check, fused AdamW) on random images
and poses (speed does not depend on the content), with the default network (1024 wide,
1 + 3 residual GELU layers) unless told otherwise, and the real volume renderer.  For
comparison it also times the same MLP evaluated CryoSTAR's way: one Hartley value per pixel of
the full D×D square, in fp32 (what the original does on a CPU).

    python benchmarks/density_speed.py --threads 2 --boxes 48 64 --volumes 64 128
    python benchmarks/density_speed.py --threads 1 --cpu-time --boxes 64 --volumes \\
        --precisions fp32 bf16 --compile --pe-dims 64 32 --mask-radii 1 0.85

Variants (each printed on its own line): ``--precisions`` (fp32, bf16 autocast, or
``bf16-matmul``: fp32 tensors with oneDNN's bf16 matrix products), ``--compile``
(``torch.compile`` of the MLP, compile time reported separately), ``--pe-dims`` (random
frequencies / 3; default D′), ``--mask-radii`` (fraction of the Nyquist disc that is fitted).
On a shared machine, ``--cpu-time`` divides by the process CPU time instead of the wall time
(with ``--threads 1`` that is the speed of one idle core).
"""
from __future__ import annotations

import argparse
import time

import torch

from cryostar_engine.data.particles import Batch
from cryostar_engine.density import HartleyField, VolumeRenderer, half_grid
from cryostar_engine.density.step import StepSetup, make_optimizer, train_step
from cryostar_engine.geometry.poses import euler_to_matrix
from cryostar_engine.physics.ctf import CtfParams

CLOCK = time.perf_counter


def _batch(box: int, n: int, gen: torch.Generator) -> Batch:
    images = torch.randn(n, box, box, generator=gen)
    rot = euler_to_matrix(torch.rand(n, 3, generator=gen) * torch.tensor([360.0, 180.0, 360.0]))
    shifts = torch.randn(n, 2, generator=gen)
    ones = torch.ones(n)
    ctf = CtfParams(defocus_u_A=ones * 1.5e4, defocus_v_A=ones * 1.4e4, defocus_angle_deg=ones * 10,
                    voltage_kv=ones * 300, cs_mm=ones * 2.7, amplitude_contrast=ones * 0.1,
                    phase_shift_deg=ones * 0, bfactor_A2=ones * 0, scale=ones)
    return Batch(rows=torch.arange(n), images=images, rotations=rot.float(), shifts_px=shifts, ctf=ctf)


def _model(box, hidden, layers, pe_dim, compile_mlp) -> HartleyField:
    """The field, optionally with a compiled MLP (compiled at its first call)."""
    model = HartleyField(box, 8, hidden=hidden, residual_layers=layers, pe_dim=pe_dim)
    if compile_mlp:
        model.mlp = torch.compile(model.mlp, dynamic=False)
    return model


def train_speed(box: int, hidden: int, layers: int, batch: int, steps: int, precision: str,
                pe_dim=None, mask_radius=1.0, compile_mlp=False) -> tuple[float, float]:
    """(images per second of the trainer's step, seconds spent in the first step)."""
    gen = torch.Generator().manual_seed(0)
    model = _model(box, hidden, layers, pe_dim, compile_mlp)
    grid = half_grid(box, 2, mask_radius * (box // 2))
    amp = torch.bfloat16 if precision == "bf16" else None
    setup = StepSetup(model, make_optimizer(model, 1e-4, 0.01), grid, 2.0, 1.0, amp)
    z = torch.randn(batch, 8, generator=gen)
    data = [_batch(box, batch, gen) for _ in range(steps + 1)]
    previous = torch.backends.mkldnn.matmul.fp32_precision
    if precision == "bf16-matmul":
        torch.backends.mkldnn.matmul.fp32_precision = "bf16"
    try:
        t0 = CLOCK()
        train_step(setup, data[0], z, batch)                # warm-up (and compilation)
        first = CLOCK() - t0
        t0 = CLOCK()
        for b in data[1:]:
            train_step(setup, b, z, batch)
        return steps * batch / (CLOCK() - t0), first
    finally:
        torch.backends.mkldnn.matmul.fp32_precision = previous


def full_square_speed(box: int, hidden: int, layers: int, batch: int, steps: int) -> float:
    """Images per second of the same MLP evaluated on all D² pixels (CryoSTAR's way, fp32)."""
    gen = torch.Generator().manual_seed(0)
    model = HartleyField(box, 8, hidden=hidden, residual_layers=layers)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    f = (torch.arange(box) - box // 2) / box
    k2 = torch.stack(torch.meshgrid(f, f, indexing="xy") + (torch.zeros(box, box),), -1)
    k2 = k2.reshape(-1, 3)
    z = torch.randn(batch, 8, generator=gen)
    t0 = 0.0
    for i in range(steps + 1):
        if i == 1:
            t0 = CLOCK()
        rot = _batch(box, batch, gen).rotations
        k3 = k2 @ rot                                   # (B, D², 3)
        out = model.mlp(model.features(k3), z)[..., 0]  # one Hartley value per pixel
        opt.zero_grad(set_to_none=True)
        (out ** 2).mean().backward()
        opt.step()
    return steps * batch / (CLOCK() - t0)


def volume_seconds(box: int, hidden: int, layers: int, bf16: bool) -> float:
    model = HartleyField(box, 8, hidden=hidden, residual_layers=layers).eval()
    renderer = VolumeRenderer(model, box, autocast_dtype=torch.bfloat16 if bf16 else None)
    z = torch.zeros(8)
    renderer.volume(z) if box <= 64 else None   # warm-up
    t0 = CLOCK()
    renderer.volume(z)
    return CLOCK() - t0


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--boxes", type=int, nargs="*", default=[48, 64])
    p.add_argument("--volumes", type=int, nargs="*", default=[64, 128])
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--precisions", nargs="*", default=["fp32", "bf16"],
                   choices=["fp32", "bf16", "bf16-matmul"])
    p.add_argument("--compile", action="store_true", help="also time a compiled MLP")
    p.add_argument("--pe-dims", type=int, nargs="*", default=[None],
                   help="random frequencies / 3 to try (default D′)")
    p.add_argument("--mask-radii", type=float, nargs="*", default=[1.0],
                   help="fractions of the Nyquist disc to try")
    p.add_argument("--no-reference", action="store_true", help="skip the full-square timing")
    p.add_argument("--cpu-time", action="store_true", help="rates per CPU second, not wall")
    a = p.parse_args()
    global CLOCK
    CLOCK = time.process_time if a.cpu_time else time.perf_counter
    torch.set_num_threads(a.threads)
    torch.set_flush_denormal(True)
    print(f"threads {a.threads}, hidden {a.hidden}, residual layers {a.layers}, batch {a.batch}, "
          f"clock {'CPU' if a.cpu_time else 'wall'}, torch {torch.__version__}")
    for box in a.boxes:
        if not a.no_reference:
            ref = full_square_speed(box, a.hidden, a.layers, a.batch, max(1, a.steps // 2))
            print(f"train {box} px: full-square 1-output fp32 reference {ref:.2f} img/s", flush=True)
        for precision in a.precisions:
            for pe_dim in a.pe_dims:
                for radius in a.mask_radii:
                    for comp in ([False, True] if a.compile else [False]):
                        rate, first = train_speed(box, a.hidden, a.layers, a.batch, a.steps,
                                                  precision, pe_dim, radius, comp)
                        print(f"train {box} px: {precision:11s} pe_dim {pe_dim or box:4d} "
                              f"radius {radius:.2f} {'compiled' if comp else 'eager   '}: "
                              f"{rate:6.2f} img/s (first step {first:.1f} s)", flush=True)
    for box in a.volumes:
        line = f"volume {box}^3: fp32 {volume_seconds(box, a.hidden, a.layers, False):.1f} s"
        line += f", bf16 {volume_seconds(box, a.hidden, a.layers, True):.1f} s"
        print(line, flush=True)


if __name__ == "__main__":
    main()
