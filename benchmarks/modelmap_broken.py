"""Model–map validation of models broken on purpose (the benchmark of docs/validation.rst).

Runs ``cryostar_engine.modelmap.validate_runs`` on a pair of runs with the decoded models made
wrong through the library's test arguments (never a CLI flag):

* ``--case shuffle``: the stage-1 z shuffled across particles before decoding (seed 0);
* ``--case turn``: an extra rigid turn of a domain (default AdK's LID, residues 122-159) by
  ``--degrees`` about its hinge (the axis through the midpoint of the domain's end residues,
  normal to the plane of hinge, domain centre and core centre), at every point;
* ``--case frozen``: every point's model replaced by the mean model (a missing degree of
  freedom: the maps change where the models do not).

Prints one line: verdict, mean local CC, median FSC 0.5, flagged chains (points).

Example usage
-------------
  OMP_NUM_THREADS=1 python benchmarks/modelmap_broken.py --atom-run RUN --density-run RUN2 \\
      --out val_turn --case turn --degrees 20
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.spatial.transform import Rotation

from cryostar_engine.modelmap import validate_runs
from cryostar_engine.train import prepare_run_dir


def domain_turn(first: int, last: int, degrees: float):
    """A model transform (``f(coords (P, N, 3), beads)``): turn residues first..last rigidly."""
    def turn(coords, beads):
        res = np.asarray(beads.res_ids)
        sel = (res >= first) & (res <= last)
        out = coords.copy()
        for x, y in zip(coords, out):
            hinge = 0.5 * (x[res == first][0] + x[res == last][0])
            axis = np.cross(x[sel].mean(0) - hinge, x[~sel].mean(0) - hinge)
            rot = Rotation.from_rotvec(np.deg2rad(degrees) * axis / np.linalg.norm(axis))
            y[sel] = rot.apply(x[sel] - hinge) + hinge
        return out
    return turn


def frozen_models(coords, beads):
    """A model transform: every model replaced by the mean of the models."""
    return np.broadcast_to(coords.mean(0), coords.shape).copy()


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--atom-run", required=True)
    p.add_argument("--density-run", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--case", choices=("none", "shuffle", "turn", "frozen"), required=True)
    p.add_argument("--degrees", type=float, default=20.0)
    p.add_argument("--domain", default="122-159", help="first-last residue of the turned domain")
    args = p.parse_args(argv)
    kw = {}
    if args.case == "shuffle":
        z = np.load(f"{args.atom_run}/z.npy")
        kw["atom_z"] = np.random.default_rng(0).permutation(z)
    elif args.case == "turn":
        first, last = (int(v) for v in args.domain.split("-"))
        kw["model_transform"] = domain_turn(first, last, args.degrees)
    elif args.case == "frozen":
        kw["model_transform"] = frozen_models
    prepare_run_dir(args.out, "validation", overwrite=True)
    t0 = time.perf_counter()
    r = validate_runs(args.atom_run, args.density_run, args.out, **kw)
    flagged = ", ".join(f"{c['chain']} ({c['flag']}: {len(c['points_flagged'][c['flag']])} of "
                        f"{len(r['points'])} points)" for c in r["chains"] if c["flag"]) or "none"
    print(f"{args.case}: verdict {r['verdict']}; mean local CC {r['mean_local_cc']:.3f}; median "
          f"FSC 0.5 {r['median_fsc_0.5_A']:.2f} Å; flagged chains: {flagged}; "
          f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
