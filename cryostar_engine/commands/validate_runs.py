"""Model–map validation: check the models of a stage-1 run against the maps of a stage-2 run.

The density generator (train-density) never saw the atomic model, so its maps can check the
models the atom generator decodes: is a motion in the data, or only in the prior?  At each
k-means state and PC trajectory point of the density run (the z it wrote volumes for), the model
decoded by --atom-run is rendered as Gaussian beads on the map's grid and compared with the map
of --density-run at the same z: the model–map FSC in a soft mask around the model (resolution
at 0.5), a local correlation in a ball around every residue, and a per-chain summary.  Residues
and chains are flagged where the model moves but the map does not, and where the map changes
but the model is rigid (docs/validation.rst says how the thresholds are set).

Writes DIR/report.json (verdict, thresholds, every point, per-chain summary), one model (.pdb,
local CC in the B-factor column), map (.mrc), FSC table and per-residue figure per point (in
the frame of the input model and map), validation.png (overview), validation.cxc (ChimeraX:
models coloured by local agreement over the maps) and manifest.json.

The density run must have been trained on this atom run's z.npy (train-density --z RUN/z.npy).

Example usage
-------------
  cryostar-engine validate --atom-run atom_run --density-run density_run --out validation
  chimerax validation/validation.cxc
"""
from __future__ import annotations

import sys

from ..modelmap import validate_runs
from ..modelmap.runs import load_run_pair
from ..train import configure_cpu, prepare_run_dir, resolve_device
from ..train.rundir import discard_on_failure
from ..validate import check_output_folder, check_positive


def add_args(p):
    p.add_argument("--atom-run", required=True, help="a train-atom run folder (stage 1)")
    p.add_argument("--density-run", required=True,
                   help="a finished train-density run trained on the atom run's z.npy (stage 2)")
    p.add_argument("--out", required=True, help="output folder of the validation")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads (default: the cores this process was given; never more)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier validation in --out")


def main(args):
    out = check_output_folder(args.out)
    check_positive("--threads", args.threads)
    load_run_pair(args.atom_run, args.density_run)          # one-line errors before any work
    device = resolve_device(args.device)
    configure_cpu(args.threads)
    with discard_on_failure(out):
        prepare_run_dir(out, "validation", overwrite=args.overwrite)
        report = validate_runs(args.atom_run, args.density_run, out, device=device,
                               log=lambda msg: print(f"validate: {msg}", file=sys.stderr))
    flagged = [f"{c['chain']} ({c['flag']}, {len(c['points_flagged'][c['flag']])} points)"
               for c in report["chains"] if c["flag"]]
    print(f"verdict: {report['verdict']}; mean local CC {report['mean_local_cc']:.3f}, median "
          f"model–map FSC 0.5 {report['median_fsc_0.5_A']:.2f} Å over {len(report['points'])} "
          f"points" + (f"; flagged chains: {', '.join(flagged)}" if flagged else ""))
    print(f"wrote {out} (report.json, validation.png, validation.cxc)")
    return 0
