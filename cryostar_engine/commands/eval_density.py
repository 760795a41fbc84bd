"""Volumes of a trained density generator for any latent vectors.

Writes DIR/vol_000.mrc, vol_001.mrc, … (one per row of Z, in row order) at the run's working box
and pixel size, with the header origin of the run's frame (they overlay the input model and map),
DIR/volumes.cxc and DIR/manifest.json (files, box, pixel size, frame, f_std, units, the z rows).  An unfinished run is evaluated from its
latest checkpoint.

Example usage
-------------
  cryostar-engine eval-density --run density_run --z my_points.npy --out my_volumes
"""
from ..density import load_latents, load_trained, write_eval_volumes
from ..density.results import eval_frame
from ..train import prepare_run_dir, resolve_device
from ..validate import check_output_folder


def add_args(p):
    p.add_argument("--run", required=True, help="a train-density run folder")
    p.add_argument("--z", dest="z_path", required=True,
                   help=".npy of latents, (n, z_dim) (or (n,) for z_dim 1)")
    p.add_argument("--out", required=True, help="output folder for the volumes")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier output in --out")


def main(args):
    check_output_folder(args.out)
    trained = load_trained(args.run, resolve_device(args.device))
    z = load_latents(args.z_path, z_dim=trained.z_dim)
    out = prepare_run_dir(args.out, "density-eval", overwrite=args.overwrite)
    write_eval_volumes(out, trained, z, source=str(args.run), frame=eval_frame(args.run, trained))
    print(f"wrote {len(z)} volumes of {trained.box}³ at {trained.apix:.4g} Å/px to {out}")
