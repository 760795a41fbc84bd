"""Stage 1 on a large protein–RNA complex with a known hinge motion: train, then score.

The set comes from ``benchmarks/simulate_complex.py`` (cryojax; ``gt_frame.npy``, ``gt_ca.npy``
with Cα / C1′ beads in the reference's order, ``motion.json``).  Two steps::

    # train at the engine's defaults on one thread (the contract for shared machines)
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/large_complex.py train \\
        --data bench_data/pherst128 --out bench_runs/pherst128_default --threads 1
    # figures of any stage-1 run on that set (ours, or a z.npy + decoded models from elsewhere)
    .venv/bin/python benchmarks/large_complex.py score --data bench_data/pherst128 \\
        --run bench_runs/pherst128_default

Figures (one definition each, ``benchmarks/metrics.py``):

* |Spearman ρ| of z's best principal component with the true frame, and 10-NN R²;
* the RMSD ratio (decoded / reference, per particle against its true frame, no fit) for the
  protein Cα beads and the RNA C1′ beads separately, and for each chain of the moving parts;
* what the first PCs carry: |ρ| of PC1–3 with the frame, with |frame − reference frame| (the
  distance from the reference when the motion runs both ways), with the mean defocus, the
  astigmatism, the three Euler angles, the shift; the variance each PC explains; and the kNN R²
  of the frame from each PC alone (a PC can carry the motion along a curved path, which ρ misses);
* the same |ρ| with the frame and variance for PC1–3 of the decoded structures (the PCA that
  ``analyze`` shows a user, ``analysis.pca.fit_structure_pca``).

Writes ``large_complex.json`` in the run folder and prints a table.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from metrics import (bead_kinds, format_table, latent_figures, pc_correlations,  # noqa: E402
                     rmsd_by_group)
from motion_pca import rhos  # noqa: E402
from peer_common import load_bench_data, load_average, truth_and_reference_ca  # noqa: E402

from cryostar_engine.analysis.pca import fit_structure_pca  # noqa: E402
from cryostar_engine.io import read_star_tables  # noqa: E402

REFERENCE = "ref_frame048.pdb"


def nuisances(star: Path, frame: np.ndarray, ref_frame: int) -> dict:
    """Per-particle quantities (star order) that a latent axis might carry instead of the motion."""
    _, p = read_star_tables(star)
    u, v = p["rlnDefocusU"].to_numpy(float), p["rlnDefocusV"].to_numpy(float)
    shift = np.hypot(p["rlnOriginXAngst"].to_numpy(float), p["rlnOriginYAngst"].to_numpy(float))
    return {"frame": frame, "|frame - ref|": np.abs(frame - ref_frame),
            "defocus": (u + v) / 2, "astigmatism": np.abs(u - v),
            "rot": p["rlnAngleRot"].to_numpy(float), "tilt": p["rlnAngleTilt"].to_numpy(float),
            "psi": p["rlnAnglePsi"].to_numpy(float),
            "|shift|": shift}


def _rounded(groups: dict) -> dict:
    return {k: {kk: (round(vv, 3) if vv is not None else None) for kk, vv in d.items()}
            for k, d in groups.items()}


def score(data: Path, run: Path) -> dict:
    """All figures of the run in ``run`` (z.npy + its decoder) on the set in ``data``."""
    from cryostar_engine.atom import load_decoder

    bench = load_bench_data(data)
    motion = json.loads((data / "motion.json").read_text())
    z = np.load(run / "z.npy")
    decode, beads = load_decoder(run)
    truth, ref = truth_and_reference_ca(bench, data / REFERENCE, beads.chain_ids, beads.res_ids)
    decoded = decode(z)
    lat = latent_figures(z, bench.frame)
    kinds = rmsd_by_group(decoded, bench.frame, truth, ref, bead_kinds(beads.is_nucleotide))
    moving_chains = sorted({c for part in motion["parts"] for c in part["chains"]})
    labels = np.where(np.isin(beads.chain_ids, moving_chains), beads.chain_ids, "fixed")
    chains = rmsd_by_group(decoded, bench.frame, truth, ref, labels)
    pcs = pc_correlations(z, nuisances(bench.star, bench.frame, motion["reference_frame"]),
                          frame=bench.frame)
    structure = fit_structure_pca(z, decode)       # the PCA that `analyze` shows (Å of structure)
    structure_rho = rhos(structure.scores, bench.frame, k=3)
    return {"data": str(data), "run": str(run), "n_particles": int(len(z)),
            "n_beads": int(len(beads)), "n_nucleotides": int(beads.is_nucleotide.sum()),
            "n_chains": int(len(set(beads.chain_ids))),
            "abs_spearman_best_pc": round(lat.rho, 3), "best_pc": lat.best_pc + 1,
            "knn_r2": round(lat.knn_r2, 3),
            "rmsd_by_kind": _rounded(kinds), "rmsd_by_chain": _rounded(chains),
            "pc_correlations": {k: [round(x, 3) for x in v] for k, v in pcs.items()},
            "structure_pca": {"abs_spearman_frame": structure_rho,
                              "variance": [round(float(v), 3) for v in structure.explained_variance_ratio[:3]]}}


def train(data: Path, out: Path, threads: int | None, max_minutes: float | None) -> dict:
    """Stage 1 at the engine's defaults (only the inputs, threads and a wall-time cap set)."""
    from cryostar_engine.atom import AtomConfig, train_atom

    cfg = AtomConfig(particles=str(data / "particles.star"), model=str(data / REFERENCE),
                     out=str(out), threads=threads, max_minutes=max_minutes, overwrite=True)
    load0, t0 = load_average(), time.perf_counter()
    manifest = train_atom(cfg)
    wall = time.perf_counter() - t0
    return {"wall_s": round(wall, 1), "images_seen": manifest["images_seen"],
            "images_per_s": round(manifest["images_seen"] / wall, 1), "load_start": load0,
            "load_end": load_average(),
            "peak_rss_GB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="stage 1 at the engine's defaults, then score")
    t.add_argument("--data", type=Path, required=True)
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--max-minutes", type=float, default=None)
    s = sub.add_parser("score", help="figures of an existing run")
    s.add_argument("--data", type=Path, required=True)
    s.add_argument("--run", type=Path, required=True)
    a = p.parse_args(argv)
    timing = {}
    if a.cmd == "train":
        timing = train(a.data, a.out, a.threads, a.max_minutes)
        a.run = a.out
    figures = {**score(a.data, a.run), **timing}
    flat = {k: v for k, v in figures.items() if not isinstance(v, dict)}
    for group in ("rmsd_by_kind", "rmsd_by_chain"):
        for name, d in figures[group].items():
            ratio = "-" if d["ratio"] is None else f"{d['ratio']:.3f}"
            flat[f"{name} RMSD / ref / ratio"] = f"{d['rmsd']:.2f} / {d['ref_rmsd']:.2f} / {ratio}"
    for name, v in figures["pc_correlations"].items():
        flat[f"PC1-3 {name}"] = " ".join(f"{x:.2f}" for x in v)
    for name, v in figures["structure_pca"].items():
        flat[f"structure PC1-3 {name}"] = " ".join(f"{x:.2f}" for x in v)
    print(format_table(flat))
    (a.run / "large_complex.json").write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
