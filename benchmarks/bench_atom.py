"""Stage-1 benchmark on a simulated AdK set with ground truth: train for a wall-time budget,
then print |Spearman ρ| of z's best PC with the true frame, kNN R² of the frame from z, the mean
per-particle Cα RMSD of the decoded structures and its ratio to the reference's, images/s and
peak memory.  Writes the same figures as JSON.

Make the data first (independent simulator, see benchmarks/simulate_adk.py), e.g.::

    .simenv/bin/python benchmarks/simulate_adk.py --n 3000 --box 64 --apix 1.5 --snr 0.05 \\
        --astigmatism 1000 --frames all --seed 64 --gt-volumes --consensus-frame 48 \\
        --ref-pdbs 0 48 --out bench_data/adk64
    .venv/bin/python benchmarks/bench_atom.py --data bench_data/adk64 --ref ref_frame048.pdb \\
        --minutes 20 --out bench_runs/atom_mid
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
from metrics import ca_rmsd_summary, format_table, latent_figures  # noqa: E402
from peer_common import load_bench_data, truth_and_reference_ca  # noqa: E402

from cryostar_engine.atom import AtomConfig, load_decoder, train_atom  # noqa: E402



def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="folder made by simulate_adk.py")
    p.add_argument("--ref", default="ref_frame048.pdb", help="reference PDB inside --data")
    p.add_argument("--gt-ca", default=None,
                   help="AdK-numbered Cα path (default: the set's gt_ca.npy, else the bundled one)")
    p.add_argument("--minutes", type=float, default=20.0, help="wall-time budget of the training")
    p.add_argument("--out", required=True)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--low-pass", type=float, default=None,
                   help="final low-pass, Å (default: the engine's, auto from --map)")
    p.add_argument("--map", default=None,
                   help="consensus map inside --data (default: the set's consensus_*.mrc; "
                        "'none' for no map)")
    p.add_argument("--epochs", type=float, default=None,
                   help="training length (default: the engine's; --minutes still stops it)")
    p.add_argument("--extra", default="{}", help="JSON dict of further AtomConfig fields")
    args = p.parse_args(argv)
    data = Path(args.data)
    maps = sorted(data.glob("consensus_*.mrc"))
    map_path = (None if args.map == "none" else data / args.map if args.map
                else maps[0] if maps else None)
    settings = dict(particles=str(data / "particles.star"), model=str(data / args.ref), out=args.out,
                    map=str(map_path) if map_path else None, epochs=args.epochs, batch=args.batch,
                    max_minutes=args.minutes, threads=args.threads, overwrite=True,
                    eval_every_epochs=1e9, **json.loads(args.extra))
    if args.low_pass is not None:
        settings["low_pass_A"] = args.low_pass
    if args.lr:
        settings["lr"] = args.lr
    cfg = AtomConfig(**settings)
    t0 = time.perf_counter()
    manifest = train_atom(cfg)
    wall = time.perf_counter() - t0
    z = np.load(Path(args.out) / "z.npy")
    bench = load_bench_data(data, args.gt_ca)
    decode, beads = load_decoder(args.out)
    truth, ref_ca = truth_and_reference_ca(bench, data / args.ref, beads.chain_ids, beads.res_ids)
    rmsd = ca_rmsd_summary(decode(z), bench.frame, truth, ref_ca)
    lat = latent_figures(z, bench.frame)
    figures = {
        "method": "scipion-em-cryostar (cryostar_engine)", "data": str(data), "reference": args.ref,
        "wall_s": round(wall, 1), "images_seen": manifest["images_seen"],
        "images_per_s": round(manifest["images_seen"] / wall, 1),
        "peak_rss_GB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2),
        "abs_spearman_best_pc": round(lat.rho, 3), "knn_r2": round(lat.knn_r2, 3),
        "ca_rmsd_A": round(rmsd["rmsd"], 3), "reference_ca_rmsd_A": round(rmsd["ref_rmsd"], 3),
        "rmsd_ratio": round(rmsd["ratio"], 3), "map": str(map_path) if map_path else None,
        "low_pass": manifest.get("low_pass"), "box_px": manifest.get("box_px"),
        "settings": {k: v for k, v in cfg.to_json().items()
                     if k in ("lr", "batch", "low_pass_A", "threads")},
    }
    print(format_table({k: v for k, v in figures.items() if k != "settings"}))
    (Path(args.out) / "bench_atom.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
