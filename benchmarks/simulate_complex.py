#!/usr/bin/env python
"""Simulate a protein–RNA complex whose parts swing rigidly about hinges, with ground truth.

The sibling of ``simulate_adk.py`` for complexes of protein and nucleic-acid chains: the same
independent forward model (``cryojax``: Peng Gaussian-mixture atomic potentials, weak-phase
astigmatic CTF), the same particle draws, noise, star and MRC conventions (all imported from
``simulate_adk.py``; see its docstring), a different motion.  Never our engine's renderer.

The motion.  Each ``--hinge "SELECTION=DEGREES"`` names a rigid part of the structure (an
MDAnalysis selection, e.g. ``"chainID A C"`` or ``"chainID D and resid 582:600"``) that turns
about its own hinge.  The hinge line passes through the centroid of the part's *interface*
(its atoms within 6 Å of an atom outside the part) and runs along the interface's longest
direction (first principal axis, made perpendicular to the line from the pivot to the part's
centre), so the part swings open/closed like a lid rather than spinning in place.  Frame f of
98 turns every part by ``DEGREES * (f - 48) / 97`` about its hinge: frame 48 is the deposited
structure (the reference), frames 0 and 97 the two ends, one 1-D latent for all parts.  Parts
must not overlap.  Every frame is centred on the deposited structure's centre of geometry.

Example (the small set committed under ``tests/data/protein_rna``)::

    .simenv/bin/python benchmarks/simulate_complex.py --structure bench_data/1G1X.pdb \\
        --hinge "chainID A C=30" \\
        --hinge "(chainID D and resid 582:594 649:653) or (chainID E and resid 754:759)=50" \\
        --n 320 --box 48 --apix 2.4 --snr 0.2 --astigmatism 1000 --seed 17 --out tests/data/protein_rna

Outputs in --out: ``particles.mrcs``/``particles.star`` (RELION 3.1, white particles),
``gt_frame.npy`` (int16 frame per particle, star order), ``gt_ca.npy`` ((98, R, 3) float32 Å:
the bead of every residue in every frame, Cα for amino acids and C1′ for nucleotides, in the
order of the reference PDB's residues -- the order ``cryostar_engine.io.read_beads`` reads),
``ref_frame048.pdb`` (the reference, heavy atoms), ``motion.json`` (parts, pivots, axes,
angles per frame, closest contact), ``settings.json``, ``README.md``; optionally
``consensus_frame048.mrc`` and ``gt_volumes.npy``.  ``--render voxel`` projects a pre-rendered
potential of each frame (``--box``³ voxels; fast for large complexes) instead of summing
the atoms' Gaussians per image (exact; the default).

Runs in the simulator's environment (``.simenv``: cryojax, MDAnalysis); no project import.
"""
from __future__ import annotations

import os

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import argparse  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import simulate_adk as sim  # noqa: E402
from rigid_motion import REFERENCE_FRAME, axis_rotation, twist_angles_deg  # noqa: E402

ATOMIC_Z = {"H": 1, "C": 6, "N": 7, "O": 8, "F": 9, "NA": 11, "MG": 12, "P": 15, "S": 16,
            "CL": 17, "K": 19, "CA": 20, "MN": 25, "FE": 26, "ZN": 30, "SE": 34}
AMINO = set("ALA ARG ASN ASP CYS GLN GLU GLY HIS ILE LEU LYS MET PHE PRO SER THR TRP TYR VAL".split())
NUCLEIC = {"A", "C", "G", "U", "DA", "DC", "DG", "DT"}
INTERFACE_A = 6.0


@dataclass(frozen=True)
class Hinge:
    """One rigid part: its atoms (bool mask), pivot (Å), unit axis, rotation end to end (deg)."""

    selection: str
    moving: np.ndarray
    pivot: np.ndarray
    axis: np.ndarray
    degrees: float


def load_complex_atoms(pdb: Path) -> sim.Atoms:
    """Standard amino-acid and nucleotide residues of ``pdb`` (heavy atoms, first altloc).

    Residues without their bead atom (Cα / C1′) are dropped, so that every residue kept has
    exactly one bead in ``cryostar_engine.io.read_beads``.  Waters, ions, ligands and modified
    residues are dropped (the simulated truth is the model written to ``ref_frame048.pdb``).
    Coordinates are shifted by minus the kept atoms' centre of geometry.
    """
    import MDAnalysis as mda

    u = mda.Universe(str(pdb))
    atoms = u.atoms[[r.strip() in AMINO | NUCLEIC for r in u.atoms.resnames]]
    atoms = atoms[[not n.startswith("H") for n in atoms.names]]
    atoms = atoms[np.isin([str(a).strip() for a in atoms.altLocs], ["", "A"])]
    names = np.asarray(atoms.names)
    resnames = np.array([r.strip() for r in atoms.resnames])
    chains = np.asarray(atoms.chainIDs)
    resids = np.asarray(atoms.resids)
    key = list(zip(chains, resids))
    is_bead = names == bead_names(resnames)
    has_bead = {k for k, b in zip(key, is_bead) if b}
    keep = np.array([k in has_bead for k in key])
    atoms = atoms[keep]
    names, resnames, chains, resids = names[keep], resnames[keep], chains[keep], resids[keep]
    elements = np.array([(e or n[0]).strip().upper() for e, n in zip(atoms.elements, names)])
    unknown = sorted(set(elements) - set(ATOMIC_Z))
    if unknown:
        raise SystemExit(f"{pdb}: elements {unknown} have no atomic number here")
    coords = atoms.positions.astype(np.float64)
    coords = np.round(coords - coords.mean(axis=0), 3)
    return sim.Atoms(coords[None], names, resnames, resids, elements,
                     np.array([ATOMIC_Z[e] for e in elements]), chains,
                     f"{pdb.name.split('.')[0].upper()} HINGE MOTION, FRAME {{frame}} OF 98 (48 = DEPOSITED)")


def select(pdb_atoms: sim.Atoms, selection: str) -> np.ndarray:
    """(N,) bool: the atoms of ``pdb_atoms`` that an MDAnalysis ``selection`` picks."""
    import MDAnalysis as mda

    n = len(pdb_atoms.names)
    u = mda.Universe.empty(n, n_residues=n, atom_resindex=np.arange(n), trajectory=True)
    u.add_TopologyAttr("name", pdb_atoms.names)
    u.add_TopologyAttr("resname", pdb_atoms.resnames)
    u.add_TopologyAttr("resid", pdb_atoms.resids)
    u.add_TopologyAttr("chainID", pdb_atoms.chains)
    u.add_TopologyAttr("segid", ["X"])
    u.atoms.positions = pdb_atoms.coords[0]
    mask = np.zeros(n, bool)
    try:
        mask[u.select_atoms(selection).indices] = True
    except Exception as err:
        raise SystemExit(f"--hinge {selection!r}: not a valid MDAnalysis selection ({err})") from None
    if not mask.any() or mask.all():
        raise SystemExit(f"--hinge {selection!r}: selects {int(mask.sum())} of {n} atoms; "
                         "a part must be some but not all of the structure")
    return mask


def make_hinge(coords: np.ndarray, moving: np.ndarray, selection: str, degrees: float,
               kind: str = "swing") -> Hinge:
    """Pivot and axis of a rigid part (see the module docstring); ``coords`` (N, 3) Å.

    ``kind`` "swing": the axis is the interface's longest direction, made perpendicular to
    the arm from the pivot to the part's centre; "swivel": the axis is that arm.
    """
    from scipy.spatial import cKDTree

    dist, _ = cKDTree(coords[~moving]).query(coords[moving], distance_upper_bound=INTERFACE_A)
    contact = coords[moving][np.isfinite(dist)]
    if len(contact) < 3:
        raise SystemExit(f"--hinge {selection!r}: the part touches the rest at {len(contact)} "
                         f"atoms (within {INTERFACE_A} Å); a hinge needs a contact")
    pivot = contact.mean(axis=0)
    if kind == "swivel":
        axis = coords[moving].mean(axis=0) - pivot
    else:
        arm = coords[moving].mean(axis=0) - pivot
        arm /= np.linalg.norm(arm)
        _, _, vt = np.linalg.svd(contact - pivot, full_matrices=False)
        axis = vt[0] - (vt[0] @ arm) * arm
    return Hinge(selection, moving, pivot, axis / np.linalg.norm(axis), degrees)


def hinge_frames(coords: np.ndarray, hinges: list[Hinge]) -> np.ndarray:
    """(98, N, 3) float64 Å, rounded to 0.001 Å: every part turned by its angle of each frame."""
    frames = np.repeat(coords[None], sim.N_FRAMES, axis=0)
    for h in hinges:
        for f, angle in enumerate(np.radians(twist_angles_deg(h.degrees))):
            rot = axis_rotation(h.axis, angle)
            frames[f, h.moving] = (coords[h.moving] - h.pivot) @ rot.T + h.pivot
    return np.round(frames, 3)


def closest_contact(frames: np.ndarray, moving: np.ndarray) -> float:
    """Smallest distance (Å) between a part's atoms and the rest over every 8th frame."""
    from scipy.spatial import cKDTree

    return float(min(cKDTree(x[~moving]).query(x[moving])[0].min() for x in frames[::8]))


def bead_names(resnames: np.ndarray) -> np.ndarray:
    """(N,) the bead atom name of each atom's residue: C1′ for nucleotides, else Cα."""
    return np.where(np.isin(resnames, list(NUCLEIC)), "C1'", "CA")


def bead_frames(atoms: sim.Atoms) -> np.ndarray:
    """(F, R, 3) float32 Å: the Cα / C1′ of every residue, in file order."""
    return atoms.coords[:, atoms.names == bead_names(atoms.resnames)].astype(np.float32)


def parse_hinge(text: str) -> tuple[str, float]:
    selection, sep, degrees = text.rpartition("=")
    try:
        return selection.strip(), float(degrees)
    except ValueError:
        raise SystemExit(f"--hinge {text!r}: write SELECTION=DEGREES, e.g. 'chainID A=15'") from None


def parse_args(argv: list[str]):
    """This script's options; every other option is ``simulate_adk.py``'s (shared parser)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=False,
                                allow_abbrev=False)
    p.add_argument("--structure", type=Path, required=True, help="PDB of the complex")
    p.add_argument("--hinge", action="append", required=True, metavar="SELECTION=DEGREES",
                   help="a rigid part and its rotation from frame 0 to 97 (repeat for several)")
    p.add_argument("--hinge-kind", choices=("swing", "swivel"), default="swing",
                   help="swing: the axis runs along the interface (a lid opening); swivel: the "
                        "axis runs from the interface to the part's centre (a head turning)")
    p.add_argument("--render", choices=("atoms", "voxel"), default="atoms",
                   help="images from the atoms' Gaussians (exact) or from each frame's voxel map")
    p.add_argument("--no-particles", action="store_true", help="write the motion and PDBs only")
    own, rest = p.parse_known_args(argv)
    common = sim.parse_args(rest)
    return own, common


def write_voxel_images(cfg: sim.SimConfig, atoms: sim.Atoms, parts: sim.Particles) -> np.ndarray:
    """Noiseless white images projected from each frame's rendered potential (grouped by frame)."""
    import cryojax.simulator as cxs
    import jax

    def one(volume, phi, theta, psi, ox, oy, df, astig, ang):
        config = cxs.BasicImageConfig((cfg.box, cfg.box), cfg.apix, cfg.voltage)
        pose = cxs.EulerAnglePose(ox, oy, phi, theta, psi)
        ctf = cxs.AstigmaticCTF(defocus_in_angstroms=df, astigmatism_in_angstroms=astig,
                                astigmatism_angle=ang, spherical_aberration_in_mm=cfg.cs)
        theory = cxs.ContrastTransferTheory(ctf, amplitude_contrast_ratio=cfg.amp_contrast)
        return cxs.make_image_model(volume, config, pose, theory).simulate()

    batched = jax.jit(jax.vmap(one, in_axes=(None, 0, 0, 0, 0, 0, 0, 0, 0)))
    u, v = parts.defocus_u, parts.defocus_v
    args = np.stack([parts.phi, parts.theta, parts.psi, parts.offset_x, parts.offset_y,
                     (u + v) / 2, u - v, 90.0 - parts.defocus_angle])
    out = np.zeros((cfg.n, cfg.box, cfg.box), np.float32)
    for f in np.unique(parts.frame):
        real = sim.render_volume(cfg, atoms, int(f))
        volume = cxs.FourierVoxelGridVolume.from_real_voxel_grid(real)
        rows = np.flatnonzero(parts.frame == f)
        for start in range(0, rows.size, cfg.batch):
            sel = rows[start:start + cfg.batch]
            take = np.concatenate([sel, np.full(cfg.batch - sel.size, sel[0])])
            imgs = batched(volume, *args[:, take])
            out[sel] = -np.asarray(imgs)[:sel.size]
    return out


def build_frames(own: argparse.Namespace) -> tuple[sim.Atoms, list[Hinge]]:
    """Every frame's atoms ((98, N, 3) Å in ``coords``) and the hinges, from this script's options."""
    base = load_complex_atoms(own.structure)
    hinges = []
    for text in own.hinge:
        selection, degrees = parse_hinge(text)
        hinges.append(make_hinge(base.coords[0], select(base, selection), selection, degrees,
                                  own.hinge_kind))
    overlap = np.sum([h.moving for h in hinges], axis=0)
    if overlap.max() > 1:
        raise SystemExit("--hinge: parts overlap; give disjoint selections")
    frames = hinge_frames(base.coords[0], hinges)
    return sim.Atoms(frames, base.names, base.resnames, base.resids, base.elements,
                     base.atomic_numbers, base.chains, base.title), hinges


def recorded_argv(command: str) -> list[str]:
    """The argument list of a command line as ``settings.json`` records it (joined by spaces).

    A ``--hinge`` selection holds spaces, so the line is cut before every `` --`` instead of at
    every space: each piece is an option and (when it takes one) its whole value.  No value of
    this script starts with ``--``.
    """
    argv = []
    for piece in re.split(r"\s+(?=--)", command.strip())[1:]:
        option, _, value = piece.partition(" ")
        argv += [option, value.strip()] if value.strip() else [option]
    return argv


def reload_set(folder: Path) -> tuple[sim.SimConfig, sim.Atoms]:
    """Settings and every frame's atoms of a set this script wrote, from its ``settings.json``.

    Relative paths in the recorded command (``--structure``) are relative to the directory the
    script ran in (the repository root for the commands of ``benchmarks/RESULTS.md``).
    """
    command = json.loads((Path(folder) / "settings.json").read_text())["command"]
    own, common = parse_args(recorded_argv(command))
    return sim.config_from_args(common), build_frames(own)[0]


def main(argv: list[str]) -> None:
    own, common = parse_args(argv)
    cfg = sim.config_from_args(common)
    out = common.out
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    atoms, hinges = build_frames(own)
    motion = {"structure": str(own.structure), "n_atoms": int(len(atoms.names)),
              "reference_frame": REFERENCE_FRAME, "parts": []}
    for h in hinges:
        beads = bead_frames(atoms)[:, h.moving[atoms.names == bead_names(atoms.resnames)]]
        shift = np.linalg.norm(beads[[0, -1]] - beads[REFERENCE_FRAME], axis=-1)
        motion["parts"].append({
            "selection": h.selection, "degrees_end_to_end": h.degrees,
            "n_atoms": int(h.moving.sum()), "chains": sorted(set(atoms.chains[h.moving])),
            "pivot_A": np.round(h.pivot, 3).tolist(), "axis": np.round(h.axis, 5).tolist(),
            "bead_shift_at_ends_A": {"mean": round(float(shift.mean()), 2), "max": round(float(shift.max()), 2)},
            "closest_contact_A": round(closest_contact(atoms.coords, h.moving), 2)})
        print(f"part {h.selection!r}: {int(h.moving.sum())} atoms, beads move up to "
              f"{shift.max():.1f} Å (mean {shift.mean():.1f}) at the ends; closest contact "
              f"{motion['parts'][-1]['closest_contact_A']} Å")
    motion["angles_deg"] = [np.round(twist_angles_deg(h.degrees), 4).tolist() for h in hinges]
    (out / "motion.json").write_text(json.dumps(motion, indent=1) + "\n")
    gt = bead_frames(atoms)
    np.save(out / "gt_ca.npy", gt)
    for f in common.ref_pdbs or [REFERENCE_FRAME]:
        sim.write_pdb(out / f"ref_frame{f:03d}.pdb", atoms, f)
    timings = {"setup": round(time.perf_counter() - t0, 1)}
    if not own.no_particles:
        rng = np.random.default_rng(cfg.seed)
        parts = sim.draw_particles(cfg, rng)
        t1 = time.perf_counter()
        clean = (write_voxel_images(cfg, atoms, parts) if own.render == "voxel"
                 else sim.simulate_clean(cfg, atoms, parts))
        timings["particles"] = round(time.perf_counter() - t1, 1)
        images = sim.add_noise(clean, cfg.snr, rng)
        sim.write_mrc(out / "particles.mrcs", images, cfg.apix, None)
        sim.write_star(out / "particles.star", cfg, parts, "particles.mrcs")
        np.save(out / "gt_frame.npy", parts.frame)
    if common.consensus_frame is not None:
        vol = sim.render_volume(cfg, atoms, common.consensus_frame)
        sim.write_mrc(out / f"consensus_frame{common.consensus_frame:03d}.mrc", vol, cfg.apix,
                      -(cfg.box // 2) * cfg.apix)
    if common.gt_volumes:
        sim.write_volumes(out, cfg, atoms)
    timings["total"] = round(time.perf_counter() - t0, 1)
    write_readme(out, cfg, ["benchmarks/simulate_complex.py"] + argv, timings, atoms, gt)
    print(f"wrote {out} in {timings['total']} s ({timings}); {gt.shape[1]} beads")


def write_readme(out: Path, cfg: sim.SimConfig, argv: list[str], timings: dict,
                 atoms: sim.Atoms, gt: np.ndarray) -> None:
    """settings.json (config, command, versions, timings) and a short README.md."""
    import cryojax

    sim.write_readme(out, cfg, argv, timings, atoms.title.format(frame="F"))
    (out / "README.md").write_text(
        f"Simulated particles: {atoms.title.format(frame='F')}\n"
        "(benchmarks/simulate_complex.py; conventions in benchmarks/simulate_adk.py).\n\n"
        f"Command: `{' '.join(argv)}`\n\ncryojax {cryojax.__version__}. {gt.shape[1]} beads "
        f"({len(set(atoms.chains))} chains). Files: particles.mrcs/.star (RELION 3.1, white "
        "particles), gt_frame.npy (int16 frame per particle, star order), gt_ca.npy ((98, R, 3) "
        "float32 Å, the Cα / C1′ bead of every residue of ref_frame048.pdb in every frame), "
        "motion.json (parts, hinges, angles), ref_frame048.pdb (the reference), settings.json.\n")


if __name__ == "__main__":
    main(sys.argv[1:])
