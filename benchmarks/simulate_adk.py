#!/usr/bin/env python
"""Simulate a heterogeneous adenylate-kinase (AdK) particle stack with ground truth.

An independent forward model for benchmarks and convention tests: it uses ``cryojax``
(Peng Gaussian-mixture atomic potentials, weak-phase CTF) as a library, never our engine,
so our engine is not tested against its own renderer ("inverse crime").

Example usage (in its own environment, not the project's; torch is not needed)::

    python3 -m venv .simenv
    .simenv/bin/pip install "jax[cpu]" cryojax==0.6.0 MDAnalysisTests mrcfile starfile
    .simenv/bin/python benchmarks/simulate_adk.py --n 3000 --box 64 --apix 1.5 \
        --snr 0.05 --astigmatism 1000 --frames all --seed 64 --gt-volumes \
        --consensus-frame 48 --ref-pdbs 0 48 --out bench_data/adk64

Outputs in --out: particles.mrcs, particles.star, gt_frame.npy (int16 DIMS frame per particle,
star order), gt_ca.npy ((98, R, 3) float32 Cα of every frame in Å, in the PDB's residue order),
settings.json, README.md; with options gt_volumes.npy (98, D, D, D) plus
gt_volumes/frame_XXX.mrc, consensus_frameXXX.mrc, ref_frameXXX.pdb. The same arguments give
byte-identical particles, star and volumes (all randomness comes from numpy's ``--seed``
generator, drawn in star order; the batch size does not change the result).

Structures: the 98-frame DIMS closed->open transition ``adk.psf`` + ``adk_dims.dcd`` from the
PyPI package ``MDAnalysisTests``. Heavy atoms only, every frame shifted by minus the
frame-0 centre of geometry (of the heavy atoms) -- the frame of reference of
``data/adk_models/*.pdb``. The PDB origin projects to pixel (D//2, D//2) before the shift.
With ``--structure PDB``, the second system instead: one chain of a crystal structure twisting
rigidly against the rest (``rigid_motion.py``; same 98 frames, frame 48 = the crystal).

Conventions written to the star file (RELION 3.1):

* cryojax ``EulerAnglePose(phi, theta, psi)`` (zyz extrinsic, generates the image) is written
  as ``rlnAngleRot, rlnAngleTilt, rlnAnglePsi = -phi, -theta, -psi`` (degrees).
* cryojax offset (Å, moves the particle) is written as ``rlnOriginX/YAngst = -offset``.
* RELION ``DefocusU/V/Angle`` (U, V in Å, angle α in degrees from the x axis) is simulated as
  cryojax ``AstigmaticCTF(defocus=(U+V)/2, astigmatism=U-V, astigmatism_angle=90-α)``;
  cryojax measures the azimuth from the ky axis.
* Images are white particles (RELION-extracted contrast): minus the cryojax image, whose CTF
  is negative at low frequency.

Scale: images are scaled so that the white noise has σ = 1 (or, noiseless, so that the mean
per-image signal variance is 1); SNR = mean per-image signal variance / noise variance.
Ground-truth volumes are the cryojax potential in its own units, float32, indexed [z, y, x],
voxel D//2 at PDB (0, 0, 0); MRC header origin -(D//2)*apix.
"""
from __future__ import annotations

import os

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict, dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

N_FRAMES = 98
ELEMENT_Z = {"C": 6, "N": 7, "O": 8, "S": 16}


@dataclass(frozen=True)
class SimConfig:
    """Settings of one simulated set (lengths in Å, angles in degrees)."""

    n: int
    box: int
    apix: float
    snr: float
    defocus_range: tuple[float, float]
    astigmatism: tuple[float, float]
    frames: tuple[int, ...]
    shift_sigma: float
    voltage: float
    cs: float
    amp_contrast: float
    seed: int
    batch: int


@dataclass(frozen=True)
class Atoms:
    """Heavy atoms of every DIMS frame.

    coords: (F, N, 3) float64 Å, rounded to 0.001 Å (what the PDB files hold); the rest are
    per-atom (N,) arrays: names, resnames, resids, elements, atomic_numbers.
    """

    coords: np.ndarray
    names: np.ndarray
    resnames: np.ndarray
    resids: np.ndarray
    elements: np.ndarray
    atomic_numbers: np.ndarray
    chains: np.ndarray
    title: str

    def ca_frames(self) -> np.ndarray:
        """(F, R, 3) Å: the Cα of every frame, in file order (the order of the PDB's beads)."""
        return self.coords[:, self.names == "CA"].astype(np.float32)


@dataclass(frozen=True)
class Particles:
    """Per-particle parameters, star order; each field is an (n,) array."""

    frame: np.ndarray
    phi: np.ndarray
    theta: np.ndarray
    psi: np.ndarray
    offset_x: np.ndarray
    offset_y: np.ndarray
    defocus_u: np.ndarray
    defocus_v: np.ndarray
    defocus_angle: np.ndarray
    subset: np.ndarray


def parse_frames(spec: str) -> tuple[int, ...]:
    """``all`` | ``48`` | ``10-20`` | ``0,48,97`` -> sorted tuple of frame indices."""
    if spec == "all":
        return tuple(range(N_FRAMES))
    out: set[int] = set()
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    if not out or min(out) < 0 or max(out) >= N_FRAMES:
        raise SystemExit(f"--frames {spec!r}: frames must lie in 0..{N_FRAMES - 1}")
    return tuple(sorted(out))


def load_dims_atoms() -> Atoms:
    """Read the DIMS trajectory: heavy atoms, HSD->HIS, minus the frame-0 centre of geometry."""
    import MDAnalysis as mda
    from MDAnalysisTests.datafiles import DCD, PSF

    u = mda.Universe(PSF, DCD)
    heavy = u.select_atoms("not name H*")
    frames = []
    for _ in u.trajectory:
        frames.append(heavy.positions.astype(np.float64))
    coords = np.stack(frames)
    coords = np.round(coords - coords[0].mean(axis=0), 3)
    names = np.asarray(heavy.names)
    elements = np.array([nm[0] for nm in names])
    resnames = np.array(["HIS" if r in ("HSD", "HSE", "HSP") else r for r in heavy.resnames])
    return Atoms(coords, names, resnames, np.asarray(heavy.resids), elements,
                 np.array([ELEMENT_Z[e] for e in elements]), np.full(len(names), "A"),
                 "ADENYLATE KINASE DIMS TRANSITION FRAME {frame} OF 98 (0=CLOSED,97=OPEN)")


def load_twist_atoms(pdb: Path, moving_chain: str, twist_deg: float) -> Atoms:
    """The second system (``rigid_motion.py``): ``moving_chain`` of ``pdb`` twisting rigidly."""
    from rigid_motion import closest_contact_A, load_protein_heavy_atoms, twist_frames

    coords, names, resnames, resids, chains, elements = load_protein_heavy_atoms(pdb)
    moving = chains == moving_chain
    if not moving.any() or moving.all():
        raise SystemExit(f"--moving-chain {moving_chain!r}: need a chain of {pdb} that is not its only one")
    frames = twist_frames(coords, moving, twist_deg)
    contact = closest_contact_A(frames[::8], moving)
    print(f"closest contact between chain {moving_chain} and the rest: {contact.min():.2f} Å")
    return Atoms(frames, names, resnames, resids, elements,
                 np.array([ELEMENT_Z[e] for e in elements]), chains,
                 f"{pdb.name.split('.')[0].upper()} CHAIN {moving_chain} TWISTED, FRAME {{frame}} OF 98 "
                 f"({twist_deg:g} DEG END TO END, 48 = CRYSTAL)")


def write_pdb(path: Path, atoms: Atoms, frame: int) -> None:
    """Write one frame as a PDB file (chain ids kept, elements set)."""
    lines = [f"TITLE     {atoms.title.format(frame=frame)}"]
    for i, (name, res, rid, chain, el, xyz) in enumerate(zip(
            atoms.names, atoms.resnames, atoms.resids, atoms.chains, atoms.elements,
            atoms.coords[frame]), 1):
        nm = f" {name:<3s}" if len(name) < 4 else name
        lines.append(f"ATOM  {i:5d} {nm:4s} {res:3s} {chain}{rid:4d}    {xyz[0]:8.3f}{xyz[1]:8.3f}"
                     f"{xyz[2]:8.3f}{1.0:6.2f}{0.0:6.2f}          {el:>2s}")
    lines.append("END")
    path.write_text("\n".join(lines) + "\n")


def draw_particles(cfg: SimConfig, rng: np.random.Generator) -> Particles:
    """Draw every particle's parameters, in star order.

    Parameters
    ----------
    cfg : settings; frames are drawn uniformly from ``cfg.frames``.
    rng : the run's generator (the noise is drawn from it afterwards).

    Returns
    -------
    Particles in cryojax conventions: phi, psi ~ U(-180, 180) and theta = arccos U(-1, 1)
    (degrees; uniform on SO(3)); offsets ~ N(0, shift_sigma) Å; mean defocus (U+V)/2 ~
    U(defocus_range) Å, U - V ~ U(astigmatism) Å, RELION angle α ~ U(0, 180) degrees; random
    half-sets 1/2 of equal size.
    """
    n = cfg.n
    frame = rng.choice(np.asarray(cfg.frames), size=n)
    phi = rng.uniform(-180.0, 180.0, n)
    theta = np.degrees(np.arccos(rng.uniform(-1.0, 1.0, n)))
    psi = rng.uniform(-180.0, 180.0, n)
    offset = rng.normal(0.0, cfg.shift_sigma, (2, n))
    mean_df = rng.uniform(*cfg.defocus_range, n)
    astig = rng.uniform(*cfg.astigmatism, n)
    angle = rng.uniform(0.0, 180.0, n)
    subset = 1 + rng.permutation(np.arange(n) % 2)
    return Particles(frame.astype(np.int16), phi, theta, psi, offset[0], offset[1],
                     mean_df + astig / 2, mean_df - astig / 2, angle, subset)


def make_volume(atoms: Atoms, frame: int):
    """cryojax GaussianMixtureVolume (Peng tables, no B-factor) of one frame, uncentred."""
    import cryojax.simulator as cxs
    from cryojax.constants import PengScatteringFactorParameters

    params = PengScatteringFactorParameters(atoms.atomic_numbers)
    return cxs.GaussianMixtureVolume.from_tabulated_parameters(atoms.coords[frame], params)


def image_model(cfg: SimConfig, volume, phi, theta, psi, ox, oy, df, astig, ang):
    """cryojax image model of one particle: ``volume`` (any cryojax volume) at the pose
    (``EulerAnglePose(ox, oy, phi, theta, psi)``, Å and degrees) and astigmatic CTF (mean
    defocus ``df``, ``astig`` = U − V in Å, ``ang`` azimuth in degrees from ky) of ``cfg``.
    ``.simulate()`` gives the dark (cryojax-sign) image; the arguments are those of
    :func:`pose_ctf_args`, one column."""
    import cryojax.simulator as cxs

    config = cxs.BasicImageConfig((cfg.box, cfg.box), cfg.apix, cfg.voltage)
    pose = cxs.EulerAnglePose(ox, oy, phi, theta, psi)
    ctf = cxs.AstigmaticCTF(defocus_in_angstroms=df, astigmatism_in_angstroms=astig,
                            astigmatism_angle=ang, spherical_aberration_in_mm=cfg.cs)
    theory = cxs.ContrastTransferTheory(ctf, amplitude_contrast_ratio=cfg.amp_contrast)
    return cxs.make_image_model(volume, config, pose, theory)


def pose_ctf_args(parts: Particles) -> np.ndarray:
    """(8, n) float64: phi, theta, psi, offset x, offset y, mean defocus, U − V and the cryojax
    astigmatism azimuth (90 − RELION angle) of every particle, the inputs of :func:`image_model`."""
    u, v = parts.defocus_u, parts.defocus_v
    return np.stack([parts.phi, parts.theta, parts.psi, parts.offset_x, parts.offset_y,
                     (u + v) / 2, u - v, 90.0 - parts.defocus_angle])


def make_batch_simulator(cfg: SimConfig, atoms: Atoms):
    """Return jitted f(positions, phi, theta, psi, ox, oy, df, astig, ang) -> (B, D, D) dark images.

    ``positions`` is (B, N, 3) Å (each particle's frame); the other arguments are (B,) arrays
    in cryojax conventions (see module docstring and :func:`pose_ctf_args`).
    """
    import cryojax.simulator as cxs
    import jax

    template = make_volume(atoms, 0)
    amplitudes, variances = template.amplitudes, template.variances

    def one(positions, *pose_ctf):
        volume = cxs.GaussianMixtureVolume(positions, amplitudes, variances)
        return image_model(cfg, volume, *pose_ctf).simulate()

    return jax.jit(jax.vmap(one))


def simulate_clean(cfg: SimConfig, atoms: Atoms, parts: Particles) -> np.ndarray:
    """Noiseless white particles, (n, D, D) float32 in star order, in batches of ``cfg.batch``.

    The last batch is padded to full size (one compilation); padding images are discarded.
    """
    return render_images(cfg, atoms, parts, np.arange(cfg.n), parts.frame)


def render_images(cfg: SimConfig, atoms: Atoms, parts: Particles, rows: np.ndarray,
                  frames: np.ndarray, sim=None) -> np.ndarray:
    """Noiseless white images of frame ``frames[j]`` at particle ``rows[j]``'s pose and CTF.

    Parameters
    ----------
    rows, frames : (M,) int arrays (star rows into ``parts``; frame indices into
        ``atoms.coords``). ``frames = parts.frame[rows]`` gives those particles' clean images.
    sim : a function from :func:`make_batch_simulator` (made once and reused when None is
        not wanted: jitting costs seconds).

    Returns
    -------
    (M, D, D) float32, unscaled (cryojax potential units, sign flipped to white particles),
    computed in batches of ``cfg.batch``; the last batch is padded with its first entry.
    """
    sim = make_batch_simulator(cfg, atoms) if sim is None else sim
    rows, frames = np.asarray(rows), np.asarray(frames)
    args = pose_ctf_args(parts)
    out = np.zeros((rows.size, cfg.box, cfg.box), np.float32)
    for start in range(0, rows.size, cfg.batch):
        sel = np.arange(start, min(start + cfg.batch, rows.size))
        take = np.concatenate([sel, np.full(cfg.batch - sel.size, sel[0])])
        imgs = sim(atoms.coords[frames[take]], *args[:, rows[take]])
        out[sel] = -np.asarray(imgs)[:sel.size]
    return out


def signal_scale(clean: np.ndarray, snr: float) -> float:
    """Factor that :func:`add_noise` multiplies the ``(n, D, D)`` clean images by.

    sqrt(snr / mean per-image signal variance), or 1 / sqrt(that variance) when ``snr`` is inf.
    """
    var = float(np.mean(np.var(clean, axis=(1, 2), dtype=np.float64)))
    return float(np.sqrt(1.0 / var)) if not np.isfinite(snr) else float(np.sqrt(snr / var))


def draw_noise(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """The white noise of :func:`add_noise`: float64 N(0, 1) fields, one per image in star order.

    Called with the run's generator right after :func:`draw_particles`, it returns exactly the
    noise of the written particles (``benchmarks/oracle_ceiling.py`` relies on this).
    """
    return rng.standard_normal(shape)


def add_noise(clean: np.ndarray, snr: float, rng: np.random.Generator) -> np.ndarray:
    """Scale the images and add white Gaussian noise.

    Parameters
    ----------
    clean : (n, D, D) noiseless images.
    snr : mean per-image signal variance over noise variance; ``inf`` for no noise.
    rng : generator for the noise, one (D, D) field per image in star order.

    Returns
    -------
    (n, D, D) float32: noise σ = 1 and mean signal variance ``snr``; or, noiseless, mean
    signal variance 1 (the factor is :func:`signal_scale`).
    """
    var = float(np.mean(np.var(clean, axis=(1, 2), dtype=np.float64)))
    if not np.isfinite(snr):
        return (clean / np.sqrt(var)).astype(np.float32)
    scaled = clean * np.sqrt(snr / var)
    return (scaled + draw_noise(rng, clean.shape)).astype(np.float32)


def render_volume(cfg: SimConfig, atoms: Atoms, frame: int) -> np.ndarray:
    """Noiseless potential of one frame, (D, D, D) float32 [z, y, x], voxel D//2 at PDB 0."""
    import cryojax.simulator as cxs

    fn = cxs.GaussianMixtureRenderFn((cfg.box,) * 3, cfg.apix)
    return np.asarray(fn(make_volume(atoms, frame), outputs_real_space=True), np.float32)


def write_mrc(path: Path, data: np.ndarray, apix: float, origin: float | None) -> None:
    """Float32 MRC; ``origin`` Å on every axis (None: leave 0, as for image stacks)."""
    import mrcfile

    tmp = path.with_name(path.name + ".tmp")
    with mrcfile.new(tmp, overwrite=True) as m:
        m.set_data(np.ascontiguousarray(data, np.float32))
        if data.ndim == 3 and origin is None:
            m.set_image_stack()
        m.voxel_size = apix
        if origin is not None:
            m.header.origin = (origin, origin, origin)
        m.header.label[0] = b"benchmarks/simulate_adk.py"  # no timestamp: reproducible bytes
    os.replace(tmp, path)


def write_star(path: Path, cfg: SimConfig, parts: Particles, stack_name: str) -> None:
    """RELION 3.1 star (optics + particles) with the columns of data/adk_sim48."""
    import pandas as pd
    import starfile

    optics = pd.DataFrame({
        "rlnOpticsGroup": [1], "rlnOpticsGroupName": ["opticsGroup1"],
        "rlnAmplitudeContrast": [cfg.amp_contrast], "rlnSphericalAberration": [cfg.cs],
        "rlnVoltage": [cfg.voltage], "rlnImagePixelSize": [cfg.apix],
        "rlnImageSize": [cfg.box], "rlnImageDimensionality": [2]})
    n = cfg.n
    particles = pd.DataFrame({
        "rlnImageName": [f"{i:06d}@{stack_name}" for i in range(1, n + 1)],
        "rlnAngleRot": -parts.phi, "rlnAngleTilt": -parts.theta, "rlnAnglePsi": -parts.psi,
        "rlnOriginXAngst": -parts.offset_x, "rlnOriginYAngst": -parts.offset_y,
        "rlnDefocusU": parts.defocus_u, "rlnDefocusV": parts.defocus_v,
        "rlnDefocusAngle": parts.defocus_angle, "rlnPhaseShift": np.zeros(n),
        "rlnCtfBfactor": np.zeros(n), "rlnOpticsGroup": np.ones(n, int),
        "rlnRandomSubset": parts.subset, "rlnClassNumber": np.ones(n, int)})
    tmp = path.with_name(path.name + ".tmp")
    starfile.write({"optics": optics, "particles": particles}, tmp, float_format="%.6f")
    body = tmp.read_text().split("\n", 1)[1]  # drop starfile's timestamped comment line
    tmp.write_text("# RELION 3.1 star written by benchmarks/simulate_adk.py\n" + body)
    os.replace(tmp, path)


def write_readme(out: Path, cfg: SimConfig, argv: list[str], timings: dict, title: str) -> None:
    """settings.json (config, command, versions, timings) and a short README.md."""
    import cryojax

    config = asdict(cfg)
    config["snr"] = cfg.snr if np.isfinite(cfg.snr) else "inf"  # strict JSON has no Infinity
    settings = {"config": config, "command": " ".join(argv),
                "cryojax_version": cryojax.__version__, "timings_s": timings}
    (out / "settings.json").write_text(json.dumps(settings, indent=1) + "\n")
    (out / "README.md").write_text(
        f"Simulated particles: {title}\n(benchmarks/simulate_adk.py; conventions in its docstring).\n\n"
        f"Command: `{settings['command']}`\n\ncryojax {cryojax.__version__}. "
        "Files: particles.mrcs/.star (RELION 3.1, white particles), gt_frame.npy (int16 DIMS "
        "frame per particle, star order), settings.json; optional gt_volumes.npy "
        "(F, D, D, D) float32 [z, y, x] + gt_volumes/frame_XXX.mrc, consensus_frameXXX.mrc, "
        "ref_frameXXX.pdb.\n")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, required=True, help="number of particles")
    p.add_argument("--box", type=int, default=64, help="box size D in px (even)")
    p.add_argument("--apix", type=float, default=1.5, help="pixel size in Å")
    p.add_argument("--snr", type=float, default=0.05, help="signal/noise variance; inf = noiseless")
    p.add_argument("--defocus-range", type=float, nargs=2, default=(8000.0, 20000.0),
                   metavar=("MIN", "MAX"), help="mean defocus (U+V)/2 range in Å")
    p.add_argument("--astigmatism", type=float, nargs="+", default=[0.0], metavar="Å",
                   help="MAX, or MIN MAX, of |U-V| in Å (uniform); angle uniform in [0, 180)")
    p.add_argument("--frames", default="all", help="'all', '48', '10-20' or '0,48,97'")
    p.add_argument("--shift-sigma", type=float, default=1.5, help="σ of x/y shifts in Å")
    p.add_argument("--voltage", type=float, default=300.0, help="kV")
    p.add_argument("--cs", type=float, default=2.7, help="spherical aberration in mm")
    p.add_argument("--amp-contrast", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=128, help="images per jitted call")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--gt-volumes", action="store_true",
                   help="also write the noiseless volume of every DIMS frame")
    p.add_argument("--consensus-frame", type=int, default=None,
                   help="also write consensus_frameXXX.mrc (noiseless volume of that frame)")
    p.add_argument("--ref-pdbs", type=int, nargs="*", default=[],
                   help="also write ref_frameXXX.pdb for these frames")
    p.add_argument("--structure", type=Path, default=None,
                   help="instead of AdK's DIMS path: this PDB with --moving-chain twisting rigidly "
                        "(benchmarks/rigid_motion.py)")
    p.add_argument("--moving-chain", default="B", help="with --structure: the chain that turns")
    p.add_argument("--twist", type=float, default=30.0,
                   help="with --structure: degrees the chain turns from frame 0 to frame 97")
    return p.parse_args(argv)


def config_from_args(a: argparse.Namespace) -> SimConfig:
    astig = tuple(a.astigmatism) if len(a.astigmatism) == 2 else (0.0, a.astigmatism[0])
    if len(a.astigmatism) > 2 or a.box % 2 or a.n < 1 or a.snr <= 0:
        raise SystemExit("need --n >= 1, an even --box, --snr > 0, and 1 or 2 --astigmatism values")
    return SimConfig(a.n, a.box, a.apix, a.snr, tuple(a.defocus_range), astig,
                     parse_frames(a.frames), a.shift_sigma, a.voltage, a.cs, a.amp_contrast,
                     a.seed, a.batch)


def load_atoms(args: argparse.Namespace) -> Atoms:
    """The atoms of the set ``args`` describe: AdK's DIMS path, or ``--structure`` twisting."""
    if args.structure:
        return load_twist_atoms(args.structure, args.moving_chain, args.twist)
    return load_dims_atoms()


def reload_set(folder: Path) -> tuple[SimConfig, argparse.Namespace]:
    """Settings and parsed arguments of a set this script wrote, from its ``settings.json``.

    Relative paths in the recorded command (``--structure``) are relative to the directory the
    script ran in (the repository root for the commands of ``benchmarks/RESULTS.md``).
    """
    command = json.loads((Path(folder) / "settings.json").read_text())["command"].split()
    args = parse_args(command[1:])
    return config_from_args(args), args


def write_volumes(out: Path, cfg: SimConfig, atoms: Atoms) -> None:
    """gt_volumes.npy (F, D, D, D) and gt_volumes/frame_XXX.mrc for every DIMS frame."""
    vols = np.stack([render_volume(cfg, atoms, f) for f in range(N_FRAMES)])
    (out / "gt_volumes").mkdir(exist_ok=True)
    for f, vol in enumerate(vols):
        write_mrc(out / "gt_volumes" / f"frame_{f:03d}.mrc", vol, cfg.apix, -(cfg.box // 2) * cfg.apix)
    np.save(out / "gt_volumes.npy", vols)


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    cfg = config_from_args(args)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    atoms = load_atoms(args)
    rng = np.random.default_rng(cfg.seed)
    parts = draw_particles(cfg, rng)
    clean = simulate_clean(cfg, atoms, parts)
    t_sim = time.perf_counter() - t0
    images = add_noise(clean, cfg.snr, rng)
    write_mrc(out / "particles.mrcs", images, cfg.apix, None)
    write_star(out / "particles.star", cfg, parts, "particles.mrcs")
    np.save(out / "gt_frame.npy", parts.frame)
    np.save(out / "gt_ca.npy", atoms.ca_frames())
    for f in args.ref_pdbs:
        write_pdb(out / f"ref_frame{f:03d}.pdb", atoms, f)
    if args.consensus_frame is not None:
        vol = render_volume(cfg, atoms, args.consensus_frame)
        write_mrc(out / f"consensus_frame{args.consensus_frame:03d}.mrc", vol, cfg.apix,
                  -(cfg.box // 2) * cfg.apix)
    t1 = time.perf_counter()
    if args.gt_volumes:
        write_volumes(out, cfg, atoms)
    timings = {"particles": round(t_sim, 1), "volumes": round(time.perf_counter() - t1, 1),
               "total": round(time.perf_counter() - t0, 1)}
    write_readme(out, cfg, ["benchmarks/simulate_adk.py"] + argv, timings,
                 atoms.title.format(frame="F"))
    print(f"wrote {cfg.n} particles to {out} in {timings['total']} s ({timings})")


if __name__ == "__main__":
    main(sys.argv[1:])
