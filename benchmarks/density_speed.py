"""Speed of the density generator on this machine: training img/s and seconds per volume.

Times the real training step (centring, FFT, CTF, half-disc slice, Fourier MSE, backward,
AdamW) on random images and poses (speed does not depend on the content), with the default
network (1024 wide, 1 + 3 residual GELU layers) unless told otherwise, and the real volume
renderer.  For comparison it also times the same MLP evaluated CryoSTAR's way: one Hartley value
per pixel of the full D×D square.

    python benchmarks/density_speed.py --threads 2 --boxes 48 64 --volumes 64 128

On a shared machine, ``--cpu-time`` divides by the process CPU time instead of the wall time
(with ``--threads 1`` that is the speed of one idle core).
"""
from __future__ import annotations

import argparse
import time

import torch

from cryostar_engine.density import HartleyField, VolumeRenderer, fourier_mse, half_grid
from cryostar_engine.density.slicing import ctf_half, observed_slices, predict_slices
from cryostar_engine.geometry.poses import euler_to_matrix
from cryostar_engine.physics.ctf import CtfParams

CLOCK = time.perf_counter


def _batch(box: int, n: int, gen: torch.Generator):
    images = torch.randn(n, box, box, generator=gen)
    rot = euler_to_matrix(torch.rand(n, 3, generator=gen) * torch.tensor([360.0, 180.0, 360.0]))
    shifts = torch.randn(n, 2, generator=gen)
    ones = torch.ones(n)
    ctf = CtfParams(defocus_u_A=ones * 1.5e4, defocus_v_A=ones * 1.4e4, defocus_angle_deg=ones * 10,
                    voltage_kv=ones * 300, cs_mm=ones * 2.7, amplitude_contrast=ones * 0.1,
                    phase_shift_deg=ones * 0, bfactor_A2=ones * 0, scale=ones)
    return images, rot.float(), shifts, ctf


def train_speed(box: int, hidden: int, layers: int, batch: int, steps: int, bf16: bool) -> float:
    """Images per second of the real training step."""
    gen = torch.Generator().manual_seed(0)
    model = HartleyField(box, 8, hidden=hidden, residual_layers=layers)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    grid = half_grid(box, 2)
    z = torch.randn(batch, 8, generator=gen)
    data = [_batch(box, batch, gen) for _ in range(steps + 1)]
    t0 = 0.0
    for i, (images, rot, shifts, ctf) in enumerate(data):
        if i == 1:
            t0 = CLOCK()
        opt.zero_grad(set_to_none=True)
        f_obs = observed_slices(images, shifts, 1.0, grid)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            f_pred = predict_slices(model, grid, rot, z, ctf_half(grid, ctf, 2.0))
        fourier_mse(f_obs, f_pred, grid.weights).backward()
        opt.step()
    return steps * batch / (CLOCK() - t0)


def full_square_speed(box: int, hidden: int, layers: int, batch: int, steps: int) -> float:
    """Images per second of the same MLP evaluated on all D² pixels (CryoSTAR's way)."""
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
        rot = _batch(box, batch, gen)[1]
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
    p.add_argument("--bf16", action="store_true", help="also time bf16 autocast on the CPU")
    p.add_argument("--no-reference", action="store_true", help="skip the full-square timing")
    p.add_argument("--cpu-time", action="store_true", help="rates per CPU second, not wall")
    a = p.parse_args()
    global CLOCK
    CLOCK = time.process_time if a.cpu_time else time.perf_counter
    torch.set_num_threads(a.threads)
    torch.set_flush_denormal(True)
    print(f"threads {a.threads}, hidden {a.hidden}, residual layers {a.layers}, batch {a.batch}, "
          f"clock {'CPU' if a.cpu_time else 'wall'}")
    for box in a.boxes:
        line = f"train {box} px: {train_speed(box, a.hidden, a.layers, a.batch, a.steps, False):.2f} img/s"
        if a.bf16:
            line += f", bf16 {train_speed(box, a.hidden, a.layers, a.batch, a.steps, True):.2f} img/s"
        if not a.no_reference:
            ref = full_square_speed(box, a.hidden, a.layers, a.batch, max(1, a.steps // 2))
            line += f"; full-square 1-output reference {ref:.2f} img/s"
        print(line, flush=True)
    for box in a.volumes:
        line = f"volume {box}^3: {volume_seconds(box, a.hidden, a.layers, False):.1f} s"
        if a.bf16:
            line += f", bf16 {volume_seconds(box, a.hidden, a.layers, True):.1f} s"
        print(line, flush=True)


if __name__ == "__main__":
    main()
