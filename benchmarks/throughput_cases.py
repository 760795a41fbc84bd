"""Synthetic workloads timed by ``benchmarks/throughput.py``: one full training step of stage 1,
one of stage 2, and the generation of one volume, built from the engine's own pieces.

Speed does not depend on the content, so the inputs are random but of the right kind and size:

* particles: a pool of random images resident on the device (fp16 on a GPU, fp32 on the CPU,
  as :class:`~cryostar_engine.data.ParticleDataset` caches them) with uniformly random
  rotations, shifts of a few pixels and random defocus; each step indexes random rows of it and
  moves the rows' poses and CTF from the host, as the training loops do;
* beads (stage 1), ``model="complex"`` (issue 17): a many-chain protein–RNA complex of exactly
  ``N`` beads, packed like a real one (:func:`complex_beads`): copies of the real AdK chain
  (214 Cα beads with their residue centres and amplitudes, randomly rotated) and A-form RNA
  duplexes (C1′ beads, 24 nt per strand, one chain per strand), placed one by one around the
  centre at the first free spot where no bead comes closer than 5 Å to another unit's;
* beads (stage 1), ``model="cloud"`` (earlier sessions' figures): a compact single chain of ``N`` beads on a jittered 4.9 Å lattice inside a
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
from pathlib import Path

import numpy as np
import torch

from cryostar_engine.atom.centres import residue_centres
from cryostar_engine.atom.config import AtomConfig
from cryostar_engine.atom.forward import AtomForwardModel
from cryostar_engine.atom.graph import build_graph
from cryostar_engine.atom.losses import ElasticGroups, pair_distances
from cryostar_engine.atom.networks import AtomVAE
from cryostar_engine.atom.step import AtomStepSetup, LossSettings, atom_losses, restraint_tensors
from cryostar_engine.atom.step import train_step as atom_train_step
from cryostar_engine.data.particles import Batch
from cryostar_engine.density import HartleyField, VolumeRenderer, half_grid
from cryostar_engine.density.step import StepSetup, train_step
from cryostar_engine.train import CompiledOrEager, make_optimizer
from cryostar_engine.geometry.poses import euler_to_matrix
from cryostar_engine.io.pdb import Beads, read_beads
from cryostar_engine.physics.ctf import CtfParams

__all__ = ["ParticlePool", "bead_cloud", "complex_beads", "Stage1Case", "Stage2Case", "volume_case"]

BEAD_SPACING_A = 4.9     # (120 Å³)^(1/3): one Cα per ~120 Å³
ADK_PDB = Path(__file__).resolve().parents[1] / "data" / "adk_models" / "adk_ref_frame048.pdb"
NT_ELECTRONS = {"A": 166.0, "C": 154.0, "G": 174.0, "U": 155.0}   # Σ Z of a heavy-atom nucleotide


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


def _random_rotations(rng, k: int) -> np.ndarray:
    """``(k, 3, 3)`` uniformly random rotation matrices (normalised Gaussian quaternions)."""
    q = rng.normal(size=(k, 4))
    w, x, y, z = (q / np.linalg.norm(q, axis=1, keepdims=True)).T
    return np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
                     2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
                     2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], 1).reshape(k, 3, 3)


def rna_duplex(n_bp: int, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An A-form RNA duplex's C1′ positions ``(2·n_bp, 3)`` Å (strand 1 then strand 2, each
    5′→3′), their residue names and residue-centre offsets ``(2·n_bp, 3)`` Å.

    Idealised A-form: rise 2.81 Å and twist 32.7° per base pair, C1′ at 8.7 Å from the axis, the
    partner's C1′ 74° round the axis (≈ 10.5 Å across the pair, the minor-groove side);
    consecutive C1′ sit 5.6 Å apart.  The residue's electron centre (base + sugar + phosphate)
    is put 1.5 Å from C1′ towards the axis (with 0.5 Å noise)."""
    t = np.arange(n_bp)
    phi, z = np.radians(32.7) * t, 2.81 * t - 2.81 * (n_bp - 1) / 2
    s1 = np.stack([8.7 * np.cos(phi), 8.7 * np.sin(phi), z], 1)
    phi2 = phi + np.radians(74.0)
    s2 = np.stack([8.7 * np.cos(phi2), 8.7 * np.sin(phi2), z], 1)[::-1]   # antiparallel
    xyz = np.concatenate([s1, s2])
    inward = -xyz * np.array([1.0, 1.0, 0.0])
    inward /= np.linalg.norm(inward, axis=1, keepdims=True)
    seq = rng.choice(list("ACGU"), n_bp)
    pair = {"A": "U", "U": "A", "G": "C", "C": "G"}
    names = np.concatenate([seq, [pair[b] for b in seq[::-1]]])
    return xyz, names, 1.5 * inward + rng.normal(0, 0.5, xyz.shape)


def _chain_names(n: int) -> list[str]:
    letters = [chr(c) for c in range(65, 91)] + [chr(c) for c in range(97, 123)] + list("0123456789")
    return (letters + [a + b for a in letters for b in letters])[:n]


def complex_beads(n: int, nt_fraction: float = 0.3, seed: int = 0, min_gap_A: float = 5.0,
                  bp_per_duplex: int = 24, lattice_A: float = 4.0) -> Beads:
    """A protein–RNA complex of exactly ``n`` beads, about ``nt_fraction`` of them nucleotides.

    Units: AdK chains (``data/adk_models``, 214 Cα each) and RNA duplexes (:func:`rna_duplex`,
    two chains of ``bp_per_duplex`` nt), the last of each kind cut short to hit the count.
    Each unit, randomly rotated, is centred at the first free site of a ``lattice_A`` lattice (in order of
    distance from the origin) where none of its beads comes within ``min_gap_A`` of a bead
    already placed (interfaces as tight as real ones, no overlap).  Amino-acid beads come first
    (chain by chain), then nucleotide beads, as the reference reader orders a mixed model.
    Coordinates are box-centred Å (the centroid at the origin)."""
    from scipy.spatial import cKDTree
    rng = np.random.default_rng(seed)
    adk = read_beads(ADK_PDB)
    adk_xyz = adk.coords_A - adk.coords_A.mean(0)
    n_nt = int(round(n * nt_fraction))
    n_aa = n - n_nt
    units = []                        # (kind, xyz, names, offsets, amplitudes, strand lengths)
    left = n_aa
    while left > 0:
        m = min(left, len(adk))
        units.append(("aa", adk_xyz[:m], adk.res_names[:m], adk.centre_offsets_A[:m],
                      adk.amplitudes[:m], [m]))
        left -= m
    left = n_nt
    while left > 0:
        xyz, names, off = rna_duplex(bp_per_duplex, rng)
        m = min(left, len(xyz))
        strands = [min(m, bp_per_duplex)] + ([m - bp_per_duplex] if m > bp_per_duplex else [])
        units.append(("nt", xyz[:m], names[:m], off[:m],
                      np.array([NT_ELECTRONS[b] for b in names[:m]]), strands))
        left -= m
    order = rng.permutation(len(units))          # proteins and RNA mixed through the complex
    k = int((n * 300.0) ** (1 / 3) / lattice_A) + 8
    ax = np.arange(-k, k + 1) * lattice_A
    sites = np.stack(np.meshgrid(ax, ax, ax, indexing="ij"), -1).reshape(-1, 3)
    sites = sites[np.argsort(np.linalg.norm(sites, axis=1), kind="stable")]
    site_tree, free = cKDTree(sites), np.ones(len(sites), bool)
    placed, beads_so_far = [None] * len(units), np.zeros((0, 3))
    for u in order:
        xyz, tree = units[u][1], cKDTree(beads_so_far) if len(beads_so_far) else None
        candidates, cand = np.flatnonzero(free), None
        for lo in range(0, len(candidates), 256):      # 256 sites per query, one rotation each
            chunk = candidates[lo:lo + 256]
            rots = _random_rotations(rng, len(chunk))
            if tree is not None:                     # a cheap first look at 16 of the beads
                few = np.einsum("kij,nj->kni", rots, xyz[::max(1, len(xyz) // 16)]) + sites[chunk][:, None]
                d = tree.query(few.reshape(-1, 3), distance_upper_bound=min_gap_A)[0]
                keep = np.isinf(d.reshape(len(chunk), -1)).all(1)
                chunk, rots = chunk[keep], rots[keep]
            trial = np.einsum("kij,nj->kni", rots, xyz) + sites[chunk][:, None]   # (K, m, 3)
            if tree is None or len(chunk) == 0:
                ok = np.ones(len(chunk), bool)
            else:
                d = tree.query(trial.reshape(-1, 3), distance_upper_bound=min_gap_A)[0]
                ok = np.isinf(d.reshape(len(chunk), -1)).all(1)
            if ok.any():
                first = int(np.argmax(ok))
                cand, rot = trial[first], rots[first]
                break
        if cand is None:
            raise RuntimeError("complex_beads: lattice too small")
        placed[u] = (cand, rot)
        beads_so_far = np.concatenate([beads_so_far, cand])
        for near in site_tree.query_ball_point(cand, min_gap_A):
            free[near] = False
    parts = {"aa": [], "nt": []}
    names_iter = iter(_chain_names(sum(len(u[5]) for u in units)))
    for u, (kind, xyz, names, off, amp, strands) in enumerate(units):
        cand, rot = placed[u]
        start = 0
        for length in strands:
            sl = slice(start, start + length)
            parts[kind].append((cand[sl], off[sl] @ rot.T, names[sl], amp[sl], next(names_iter)))
            start += length
    rows = parts["aa"] + parts["nt"]
    coords = np.concatenate([r[0] for r in rows])
    coords -= coords.mean(0)
    return Beads(coords_A=coords, amplitudes=np.concatenate([r[3] for r in rows]).astype(float),
                 chain_ids=np.concatenate([np.full(len(r[0]), r[4]) for r in rows]),
                 res_ids=np.concatenate([np.arange(1, len(r[0]) + 1) for r in rows]),
                 insertion_codes=np.full(n, ""),
                 res_names=np.concatenate([r[2] for r in rows]),
                 is_nucleotide=np.repeat(np.arange(len(rows)) >= len(parts["aa"]),
                                         [len(r[0]) for r in rows]),
                 centre_offsets_A=np.concatenate([r[1] for r in rows]))


class Stage1Case:
    """One stage-1 training step at ``box`` px with ``n_beads`` beads and batch ``batch``."""

    def __init__(self, box: int, n_beads: int, batch: int, device, precision: str = "auto",
                 pool_size: int = 2048, seed: int = 0, compile: bool = False, model: str = "cloud"):
        self.device, self.batch_size, self.forward_box = torch.device(device), batch, box
        beads = complex_beads(n_beads, seed=seed) if model == "complex" else bead_cloud(n_beads, seed)
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
        restraints = restraint_tensors(self.graph, d)
        restraints.elastic_groups = ElasticGroups.from_labels(self.graph.en_group, d)   # batched
        self.setup = AtomStepSetup(model, make_optimizer(model, 5e-4, 0.01), forward, restraints,
                                   LossSettings.from_config(AtomConfig()), scale, amp=amp)
        if compile:
            self.setup.losses_fn = CompiledOrEager(atom_losses)

    @property
    def sizes(self) -> dict:
        b = self.beads
        return {"continuity_pairs": len(self.graph.continuity), "en_pairs": len(self.graph.en),
                "clash_pairs": len(self.graph.clash), "apix_A": round(self.apix, 3),
                "chains": len(set(b.chain_ids)), "nucleotide_beads": int(b.is_nucleotide.sum()),
                "en_groups": len(np.unique(self.graph.en_group))}

    def estimate_bytes(self) -> int:
        """The trainer's memory estimate of one step (:func:`estimate_forward_step_bytes`) plus this
        case's particle pool resident on the device: what ``max_memory_allocated`` should see."""
        from cryostar_engine.atom.memory import estimate_forward_step_bytes
        n_params = sum(p.numel() for p in self.setup.net.parameters())
        pool = self.pool.images.numel() * self.pool.images.element_size()
        return estimate_forward_step_bytes(self.setup.forward, self.batch_size, len(self.beads),
                                           len(self.setup.restraints.pairs), n_params) + pool

    def use_per_chain_relaxation(self, per_chain: bool) -> None:
        """Time the step with the elastic network's relaxation as the per-chain Python loop it
        was before issue 17 (``tests/test_scale.py``'s reference, patched into the step of this
        process) or as the engine's batched operation."""
        import cryostar_engine.atom.step as step_module
        from cryostar_engine.atom.losses import elastic_network_loss
        r = self.setup.restraints
        if per_chain:
            from tests.test_scale import per_chain_elastic_loss
            r.elastic_groups = tuple(torch.as_tensor(np.flatnonzero(self.graph.en_group == g), device=self.device)
                                     for g in np.unique(self.graph.en_group))
            step_module.elastic_network_loss = (
                lambda d, d0, groups, keep, gather=None, tolerance_A=0.0:
                per_chain_elastic_loss(d, d0, groups, keep, tolerance_A))
        else:
            r.elastic_groups = ElasticGroups.from_labels(self.graph.en_group, self.device)
            step_module.elastic_network_loss = elastic_network_loss

    def relaxation_only(self):
        """A function that runs the elastic-network term alone (forward and backward) on this
        case's pairs at its batch, with the path chosen by :meth:`use_per_chain_relaxation`."""
        import cryostar_engine.atom.step as step_module
        r, w = self.setup.restraints, self.setup.losses
        coords = (torch.as_tensor(self.beads.coords_A, dtype=torch.float32, device=self.device)
                  + 0.5 * torch.randn(self.batch_size, len(self.beads), 3, device=self.device)).requires_grad_()
        pairs = r.pairs[r.elastic]

        def run():
            d = pair_distances(coords, pairs)
            step_module.elastic_network_loss(d, r.elastic_d0, r.elastic_groups, w.en_keep_ratio,
                                             tolerance_A=w.en_tolerance_A).backward()
        return run

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
