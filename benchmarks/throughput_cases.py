"""Synthetic workloads timed by ``benchmarks/throughput.py``: one full training step of stage 1,
one of stage 2, and the generation of one volume, built from the engine's own pieces.

Speed does not depend on the content, so the inputs are random but of the right kind and size:

* particles: a pool of random images resident on the device (fp16 on a GPU, fp32 on the CPU,
  as :class:`~cryostar_engine.data.ParticleDataset` caches them) with uniformly random
  rotations, shifts of a few pixels and random defocus; each step indexes random rows of it and
  moves the rows' poses and CTF from the host, as the training loops do;
* beads (stage 1): a compact single chain of ``N`` beads on a jittered 4.9 Å lattice inside a
  ball (one bead per ~120 Å³, the density of Cα atoms in a protein), in snake order so that
  consecutive beads are mostly neighbours; the restraint graph is built from it by
  :func:`cryostar_engine.atom.build_graph` with the default cut-offs.  The pixel size is chosen
  so that the ball fills ~40 % of the box.

Stage-1 step: :func:`cryostar_engine.atom.step.train_step`, the trainer's own step (target,
encoder, reparameterisation, decoder, rotate, separable projection, CTF, the five loss terms,
backward, guarded fused AdamW).  Under CUDA the networks run in bf16 autocast unless
``precision="fp32"`` (the trainer's ``auto``).  Stage-2 step:
:func:`cryostar_engine.density.step.train_step`, the trainer's own step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from cryostar_engine.atom.centres import residue_centres
from cryostar_engine.atom.config import AtomConfig
from cryostar_engine.atom.forward import AtomForwardModel
from cryostar_engine.atom.graph import build_graph
from cryostar_engine.atom.networks import AtomVAE
from cryostar_engine.atom.step import AtomStepSetup, LossSettings, atom_losses, restraint_tensors
from cryostar_engine.atom.step import train_step as atom_train_step
from cryostar_engine.data.particles import Batch
from cryostar_engine.density import HartleyField, VolumeRenderer, half_grid
from cryostar_engine.density.step import StepSetup, train_step
from cryostar_engine.train import CompiledOrEager, make_optimizer
from cryostar_engine.geometry.poses import euler_to_matrix
from cryostar_engine.io.pdb import Beads
from cryostar_engine.physics.ctf import CtfParams

__all__ = ["ParticlePool", "bead_cloud", "Stage1Case", "Stage2Case", "volume_case"]

BEAD_SPACING_A = 4.9     # (120 Å³)^(1/3): one Cα per ~120 Å³


@dataclass
class ParticlePool:
    """Random particles: images ``(P, D, D)`` on the device, poses and CTF on the host."""

    images: torch.Tensor
    rotations: torch.Tensor
    shifts_px: torch.Tensor
    ctf: CtfParams

    def batch(self, rows: torch.Tensor, device) -> Batch:
        """The rows' images (float32, on the device) with their poses and CTF moved there."""
        return Batch(rows=rows.to(device), images=self.images[rows.to(self.images.device)].float(),
                     rotations=self.rotations[rows].to(device),
                     shifts_px=self.shifts_px[rows].to(device), ctf=self.ctf.index(rows).to(device))


def make_pool(box: int, n: int, device, seed: int = 0) -> ParticlePool:
    """``n`` random particles of ``box`` px (see the module docstring)."""
    gen = torch.Generator().manual_seed(seed)
    dtype = torch.float16 if torch.device(device).type == "cuda" else torch.float32
    images = torch.randn(n, box, box, generator=gen).to(device=device, dtype=dtype)
    q = torch.nn.functional.normalize(torch.randn(n, 4, generator=gen), dim=1)   # uniform rotations
    w, x, y, z = q.unbind(1)
    rot = torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
                       2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
                       2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], 1)
    ones = torch.ones(n)
    defocus = 1e4 + 2e4 * torch.rand(n, generator=gen)
    ctf = CtfParams(defocus_u_A=defocus, defocus_v_A=defocus - 300, defocus_angle_deg=ones * 30,
                    voltage_kv=ones * 300, cs_mm=ones * 2.7, amplitude_contrast=ones * 0.1,
                    phase_shift_deg=ones * 0, bfactor_A2=ones * 0, scale=ones)
    return ParticlePool(images, rot.reshape(n, 3, 3), 3 * torch.randn(n, 2, generator=gen), ctf)


def bead_cloud(n: int, seed: int = 0) -> Beads:
    """``n`` beads of one chain filling a ball at protein Cα density (see module docstring)."""
    rng = np.random.default_rng(seed)
    radius = BEAD_SPACING_A * (3 * n / (4 * math.pi)) ** (1 / 3) * 1.05
    k = int(math.ceil(radius / BEAD_SPACING_A)) + 1
    axis = np.arange(-k, k + 1) * BEAD_SPACING_A
    zz, yy, xx = np.meshgrid(axis, axis, axis, indexing="ij")
    # snake order: alternate the direction of x per row and of y per plane
    xx = np.where((np.arange(len(axis))[None, :, None] % 2) == 1, xx[:, :, ::-1], xx)
    yy = np.where((np.arange(len(axis))[:, None, None] % 2) == 1, yy[:, ::-1, :], yy)
    pts = np.stack([xx, yy, zz], -1).reshape(-1, 3)
    inside = np.flatnonzero(np.linalg.norm(pts, axis=1) <= radius)
    keep = inside[np.argsort(np.linalg.norm(pts[inside], axis=1), kind="stable")[:n]]
    coords = pts[np.sort(keep)] + rng.normal(0, 0.3, (n, 3))
    return Beads(coords_A=coords, amplitudes=np.full(n, 60.0), chain_ids=np.full(n, "A"),
                 res_ids=np.arange(1, n + 1), insertion_codes=np.full(n, ""),
                 res_names=np.full(n, "ALA"), is_nucleotide=np.zeros(n, bool),
                 centre_offsets_A=rng.normal(0, 0.75, (n, 3)))   # residue centres ~1.3 Å off


class Stage1Case:
    """One stage-1 training step at ``box`` px with ``n_beads`` beads and batch ``batch``."""

    def __init__(self, box: int, n_beads: int, batch: int, device, precision: str = "auto",
                 pool_size: int = 2048, seed: int = 0, compile: bool = False):
        self.device, self.batch_size = torch.device(device), batch
        beads = bead_cloud(n_beads, seed)
        extent = float(np.linalg.norm(beads.coords_A, axis=1).max())
        self.apix = 2.5 * extent / box
        self.beads = beads
        self.graph = build_graph(beads)
        d = self.device
        forward = AtomForwardModel(box, self.apix, torch.as_tensor(beads.amplitudes), 2.0,
                                   2.5 * self.apix, 0.9375, d,
                                   centres=residue_centres(beads, self.graph.continuity))
        model = AtomVAE(box, n_beads, 8, (512, 256, 128, 64, 32), (32, 64, 128, 256, 512),
                        torch.as_tensor(beads.coords_A, dtype=torch.float32)).to(d)
        self.pool = make_pool(box, min(pool_size, max(4 * batch, 256)), d, seed)
        amp = torch.bfloat16 if self.device.type == "cuda" and precision != "fp32" else None
        self.gen = torch.Generator().manual_seed(seed + 1)
        self.noise = torch.Generator(device=d).manual_seed(seed + 2)
        with torch.no_grad():
            b = self.pool.batch(torch.arange(min(256, len(self.pool.images))), d)
            t = forward.target(b) * forward.mask
            scale = float(t.flatten(1).std(1).mean().clamp_min(1e-12))
        self.setup = AtomStepSetup(model, make_optimizer(model, 5e-4, 0.01), forward,
                                   restraint_tensors(self.graph, d), LossSettings.from_config(AtomConfig()),
                                   scale, amp=amp)
        if compile:
            self.setup.losses_fn = CompiledOrEager(atom_losses)

    @property
    def sizes(self) -> dict:
        return {"continuity_pairs": len(self.graph.continuity), "en_pairs": len(self.graph.en),
                "clash_pairs": len(self.graph.clash), "apix_A": round(self.apix, 3)}

    def step(self) -> None:
        rows = torch.randint(len(self.pool.images), (self.batch_size,), generator=self.gen)
        batch = self.pool.batch(rows, self.device)
        eps = torch.randn((self.batch_size, 8), generator=self.noise, device=self.device)
        atom_train_step(self.setup, batch, eps, 0.5)


class Stage2Case:
    """One stage-2 training step (the trainer's :func:`train_step`) at ``box`` px."""

    def __init__(self, box: int, batch: int, device, precision: str = "auto", hidden: int = 1024,
                 layers: int = 3, pool_size: int = 1024, seed: int = 0):
        from cryostar_engine.density.model import cpu_has_native_bf16
        self.device, self.batch_size = torch.device(device), batch
        self.model = HartleyField(box, 8, hidden=hidden, residual_layers=layers).to(self.device)
        self.amp = _amp(precision, self.device, cpu_has_native_bf16())
        grid = half_grid(box, 2).to(self.device)
        self.setup = StepSetup(self.model, make_optimizer(self.model, 1e-4, 0.01), grid, 2.0, 1.0,
                               self.amp)
        self.points = len(grid.flat)
        self.pool = make_pool(box, min(pool_size, max(4 * batch, 64)), self.device, seed)
        self.z = torch.randn(len(self.pool.images), 8, device=self.device)
        self.gen = torch.Generator().manual_seed(seed + 1)

    def step(self) -> None:
        rows = torch.randint(len(self.pool.images), (self.batch_size,), generator=self.gen)
        batch = self.pool.batch(rows, self.device)
        train_step(self.setup, batch, self.z[batch.rows], self.batch_size)


def _amp(precision: str, device: torch.device, cpu_bf16: bool):
    if precision == "bf16" or (precision == "auto" and (device.type == "cuda" or cpu_bf16)):
        return torch.bfloat16
    return None


def volume_case(box: int, device, precision: str = "auto", hidden: int = 1024, layers: int = 3,
                chunk_points: int = 65536):
    """A renderer and a function generating one ``box³`` volume (numpy on the host)."""
    from cryostar_engine.density.model import cpu_has_native_bf16
    device = torch.device(device)
    model = HartleyField(box, 8, hidden=hidden, residual_layers=layers).to(device).eval()
    amp = _amp(precision, device, cpu_has_native_bf16())
    renderer = VolumeRenderer(model, box, chunk_points=chunk_points, autocast_dtype=amp)
    z = torch.randn(8)
    return renderer, (lambda: renderer.volume(z)), amp
