#!/usr/bin/env python
"""PCA of z against PCA of the decoded structures: which puts a known 1-D motion on PC1?

For each stage-1 run folder given, prints the explained-variance ratios and |Spearman ρ| with the
true frame of PC1-4 of (a) a PCA of z (the analysis before session 6) and (b) a PCA of the
decoded structures (``analysis.pca.fit_structure_pca``, what ``analyze`` does now).  The truth
is ``gt_frame.npy`` next to the run's particles star file (sets made by benchmarks/simulate_*.py).

Example usage::

    .venv/bin/python benchmarks/motion_pca.py bench_runs/s6_default_adk64 bench_runs/protein_rna_small
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from cryostar_engine.analysis import fit_pca
from cryostar_engine.analysis.pca import fit_structure_pca
from cryostar_engine.atom import load_decoder


def rhos(scores: np.ndarray, frame: np.ndarray, k: int = 4) -> list[float]:
    return [round(abs(spearmanr(scores[:, i], frame)[0]), 3) for i in range(min(k, scores.shape[1]))]


def main(runs: list[str]) -> None:
    for run in map(Path, runs):
        cfg = json.loads((run / "config.json").read_text())
        frame = np.load(Path(cfg["particles"]).parent / "gt_frame.npy")
        z = np.load(run / "z.npy")
        decode, _ = load_decoder(run)
        latent, structure = fit_pca(z), fit_structure_pca(z, decode)
        print(f"{run}: {len(z)} particles, zdim {z.shape[1]}")
        for name, pca in (("PCA of z", latent), ("PCA of structures", structure)):
            print(f"  {name:18s} variance {[round(float(v), 3) for v in pca.explained_variance_ratio[:4]]}"
                  f"  |rho| with frame {rhos(pca.scores, frame)}")


if __name__ == "__main__":
    main(sys.argv[1:])
