"""Train the density generator (stage 2) on particles with fixed latents z from stage 1.

Writes RUN/config.json, RUN/checkpoints/, RUN/losses.csv, RUN/run.log and, when done,
RUN/weights.pt, RUN/z.npy, volumes at the k-means centres (vol_kmeans_XXX.mrc) and along PCs 1-3
(vol_pca_K_XXX.mrc) with their z tables, RUN/volumes.cxc (ChimeraX volume series) and
RUN/manifest.json (files, box, pixel size, f_std, units, config).  Volumes are at the working box
and pixel size, origin -(D//2)*apix, in the frame of the reference model and consensus map.
Interrupted runs continue with --resume (the saved settings are used; --epochs may be raised).

Example usage
-------------
  cryostar-engine train-density --particles run_data.star --z atom_run/z.npy --out density_run \\
      --box 128 --epochs 20
  cryostar-engine train-density --out density_run --resume          # after an interruption
  torchrun --nproc_per_node=4 -m cryostar_engine train-density ...    # 4 GPUs, global batch split
"""
import os
from pathlib import Path

from ..density import DensityConfig, resume_config, train_density
from ..errors import InputError


def add_args(p):
    p.add_argument("--particles", help="RELION star file with poses and CTF (the stage-1 one)")
    p.add_argument("--datadir", help="folder the image paths in the star file are relative to")
    p.add_argument("--z", dest="z_path", help="latents (N, z_dim) .npy, one row per star row")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--box", type=int, help="working box in px (Fourier crop; default min(D, 256))")
    p.add_argument("--epochs", type=int, help="passes over the particles (default 20)")
    p.add_argument("--batch", type=int, default=16, help="particles per step (default 16)")
    p.add_argument("--lr", type=float, default=1e-4, help="AdamW learning rate (default 1e-4)")
    p.add_argument("--hidden", type=int, default=1024, help="MLP width (default 1024; on a CPU, 256 trains about 10x faster)")
    p.add_argument("--residual-layers", type=int, default=3,
                   help="residual GELU blocks after the first layer (default 3)")
    p.add_argument("--f-std", type=float, help="Fourier normalisation (default: estimated)")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                   help="MLP precision: auto = bf16 on CUDA and on CPUs with native bf16 "
                        "(AVX512-BF16/AMX), else fp32")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the network for training (+5-16%% images/s after up to a "
                        "minute of compiling; falls back when it fails)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    p.add_argument("--threads", type=int, help="CPU threads (default: all available)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--max-minutes", type=float, help="stop cleanly (checkpoint written) after this "
                   "wall time; continue later with --resume")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--overwrite", action="store_true", help="delete an earlier run in --out")
    p.add_argument("--k", type=int, help="k-means states given a volume (default 10)")
    p.add_argument("--pcs", type=int, help="PC trajectories given volumes (default 3)")
    p.add_argument("--points", type=int, help="volumes per PC trajectory (default 10)")


def _config(args) -> DensityConfig:
    if args.max_minutes is not None and args.max_minutes <= 0:
        raise InputError(f"--max-minutes must be positive, got {args.max_minutes:g}")
    if args.resume:
        return resume_config(args.out, epochs=args.epochs).replace(max_minutes=args.max_minutes)
    if not args.particles or not args.z_path:
        raise InputError("--particles and --z are required (unless --resume)")
    return DensityConfig(
        particles=str(Path(args.particles).resolve()), z_path=str(Path(args.z_path).resolve()),
        datadir=str(Path(args.datadir).resolve()) if args.datadir else None, box=args.box,
        epochs=args.epochs or 20, batch_size=args.batch, lr=args.lr, hidden=args.hidden,
        residual_layers=args.residual_layers, f_std=args.f_std, precision=args.precision,
        device=args.device, threads=args.threads, seed=args.seed, compile=args.compile,
        max_minutes=args.max_minutes,
        **{field: value for field, value in (("n_clusters", args.k), ("n_pcs", args.pcs),
                                             ("n_pc_points", args.points)) if value is not None})


def main(args):
    run_dir, finished = train_density(_config(args), args.out, resume=args.resume,
                                      overwrite=args.overwrite)
    status = "done" if finished else "stopped early; continue with --resume"
    if os.environ.get("RANK", "0") != "0":      # torchrun: rank 0 reports
        return
    print(f"density run {run_dir}: {status}; see {run_dir}/manifest.json")
