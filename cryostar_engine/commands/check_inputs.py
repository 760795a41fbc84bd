"""Check particles, poses, CTF, model and map before training; write a report.

Validates everything a training run needs and writes DIR/report.json, DIR/report.txt and a quick
CTF-corrected back-projection from the given poses (DIR/backprojection.mrc) with its correlation
to the map (or to the model's bead density when no map is given).

Example usage
-------------
  cryostar-engine check-inputs --particles Refine3D/job010/run_data.star \\
      --model docked.pdb --map Refine3D/job010/run_class001.mrc --out check
"""
from ..checks import CheckConfig, check_inputs, format_report
from ..errors import InputError
from ..train.rundir import discard_on_failure
from ..validate.options import check_output_folder, check_positive


def add_args(p):
    p.add_argument("--particles", required=True,
                   help="RELION star file (or cryoSPARC .cs file) with poses and CTF")
    p.add_argument("--passthrough", help="the cryoSPARC job's passthrough .cs (with a .cs --particles)")
    p.add_argument("--datadir", help="folder the image paths in the star file are relative to")
    p.add_argument("--apix", type=float, help="pixel size in Å (overrides the star file)")
    p.add_argument("--amplitude-contrast", type=float,
                   help="amplitude contrast in [0, 1) (overrides the star file's; default: the star "
                        "file's, or 0.1 as in RELION when it has none)")
    p.add_argument("--model", required=True, help="atomic model (PDB or mmCIF) docked into the map")
    p.add_argument("--map", help="consensus map the model was docked into (MRC)")
    p.add_argument("--out", required=True, help="output folder for the report and maps")
    p.add_argument("--max-particles", type=int, default=5000,
                   help="particles used for the back-projection (default 5000)")


def _check_args(args) -> None:
    """Option checks made before any file is read."""
    check_output_folder(args.out)
    if args.apix is not None and not args.apix > 0:
        raise InputError(f"--apix must be a positive pixel size in Å, got {args.apix:g}")
    check_positive("--max-particles", args.max_particles)
    q0 = args.amplitude_contrast
    if q0 is not None and not 0 <= q0 < 1:
        raise InputError(f"--amplitude-contrast must lie in [0, 1), got {q0:g}")


def main(args):
    _check_args(args)
    cfg = CheckConfig(particles=args.particles, model=args.model, map=args.map, datadir=args.datadir,
                      apix=args.apix, out=args.out, max_particles=args.max_particles,
                      amplitude_contrast=args.amplitude_contrast, passthrough=args.passthrough)
    with discard_on_failure(args.out):
        report = check_inputs(cfg)
    print(format_report(report), end="")
