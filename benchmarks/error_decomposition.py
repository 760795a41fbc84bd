"""Where a stage-1 run's structure error sits, on a simulated set with ground truth.

Decodes every particle's z, then splits the Cα error (Å, no fit) against its true frame into:

* **bias** per true frame f: the mean decoded structure of the particles of frame f against
  frame f (rms over residues and frames), and **spread** around that mean;
* the part of the bias **common** to all frames (the same displacement whatever the state: the
  particles whose true structure is the reference itself decode away from it);
* **off-path**: each decoded structure against the nearest frame of the true path, and the
  mean |nearest frame − true frame|, per fifth of the path (pull of the ends to the reference).

    .venv/bin/python benchmarks/error_decomposition.py --run RUN --data bench_data/adk64

Figures only (RESULTS.md, "Stage 1 at the information limit (session 7)").
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_atom import load_bench_data, truth_and_reference_ca  # noqa: E402

from cryostar_engine.atom import load_decoder  # noqa: E402


def _rms(x: np.ndarray) -> float:
    """rms length of (…, 3) displacement vectors."""
    return float(np.sqrt((x ** 2).sum(-1).mean()))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, required=True, help="a train-atom run folder")
    p.add_argument("--data", type=Path, required=True, help="folder made by simulate_adk.py")
    p.add_argument("--ref", default="ref_frame048.pdb", help="the run's reference, inside --data")
    args = p.parse_args(argv)
    bench = load_bench_data(args.data, None)
    decode, beads = load_decoder(args.run)
    path, ref = truth_and_reference_ca(bench, args.data / args.ref, beads.chain_ids, beads.res_ids)
    path = np.asarray(path, np.float64)                                  # (F, R, 3) true path
    frame = np.asarray(bench.frame, np.int64)
    dec = np.asarray(decode(np.load(args.run / "z.npy")), np.float64)   # (N, R, 3)
    own = np.sqrt(((dec - path[frame]) ** 2).sum(-1).mean(-1))
    ref_err = np.sqrt(((ref[None] - path[frame]) ** 2).sum(-1).mean(-1))
    to_path = np.stack([np.sqrt(((dec - f[None]) ** 2).sum(-1).mean(-1)) for f in path], 1)
    nearest = to_path.argmin(1)
    print(f"RMSD ratio {own.mean() / ref_err.mean():.3f} (decoded {own.mean():.3f} Å, "
          f"reference {ref_err.mean():.3f} Å)")
    print(f"off-path {to_path.min(1).mean():.3f} Å; mean |nearest frame - true frame| "
          f"{np.abs(nearest - frame).mean():.2f}")
    bias, spread = [], []
    for f in np.unique(frame):
        rows = frame == f
        if rows.sum() >= 3:
            mean = dec[rows].mean(0)
            bias.append(mean - path[f])
            spread.append(_rms(dec[rows] - mean))
    bias = np.stack(bias)
    common = bias.mean(0)
    print(f"bias {_rms(bias):.3f} Å, spread {np.sqrt(np.mean(np.square(spread))):.3f} Å; "
          f"common to all frames {_rms(common):.3f} Å, frame-specific {_rms(bias - common):.3f} Å")
    edges = np.quantile(frame, np.linspace(0, 1, 6))
    for lo, hi in zip(edges[:-1], edges[1:]):
        rows = (frame >= lo) & (frame <= hi)
        print(f"true frames {lo:4.0f}-{hi:4.0f}: mean true {frame[rows].mean():5.1f}, nearest decoded "
              f"{nearest[rows].mean():5.1f}; RMSD {own[rows].mean():.3f} Å (reference "
              f"{ref_err[rows].mean():.3f} Å), off-path {to_path.min(1)[rows].mean():.3f} Å")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
