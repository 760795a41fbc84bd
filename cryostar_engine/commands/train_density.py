"""Train the density generator (stage 2) on particles with fixed latents z from stage 1.

Writes RUN/config.json, RUN/checkpoints/, RUN/losses.csv, RUN/run.log and, when done,
RUN/weights.pt, RUN/z.npy, volumes at the k-means centres (vol_kmeans_XXX.mrc) and along PCs 1-3
(vol_pca_K_XXX.mrc) with their z tables, RUN/volumes.cxc (ChimeraX volume series) and
RUN/manifest.json (files, box, pixel size, f_std, units, config).  Volumes are at the working box
and pixel size, origin -(D//2)*apix, in the frame of the reference model and consensus map.
Interrupted runs continue with --resume (the saved settings are used; --epochs may be raised,
and --threads, --device, --compile, --keep-checkpoints, --checkpoint-interval-s and
--max-minutes may be given anew).  Every setting is a flag (see the advanced settings) or a key
of a JSON file given with --config; --settings-json lists them all and exits.

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
from ..density.config import RESUMABLE_FIELDS, DensityRunOptions, load_density_config_file
from ..errors import InputError
from ..settings import apply_test_hooks, refuse_changes_on_resume
from ..train.rundir import discard_on_failure
from ._dataclass_args import add_settings_args, given_settings, print_settings_json

PATHS = ("particles", "passthrough", "z_path", "datadir", "map")


def add_args(p):
    p.add_argument("--config", help="JSON file of settings (flags given here override it)")
    add_settings_args(p, DensityConfig, DensityRunOptions)


def _config(args, run: DensityRunOptions) -> DensityConfig:
    given = given_settings(DensityConfig, args)
    if run.resume:
        saved = resume_config(run.out)
        refuse_changes_on_resume(given, saved, RESUMABLE_FIELDS, f"{run.out}/config.json")
        return saved.replace(**{k: v for k, v in given.items() if k in RESUMABLE_FIELDS})
    values = {**(load_density_config_file(args.config) if args.config else {}), **given}
    if not values.get("particles") or not values.get("z_path"):
        raise InputError("--particles and --z are required (unless --resume)")
    values.update({k: str(Path(values[k]).resolve()) for k in PATHS if values.get(k)})
    return DensityConfig(**values)


def main(args):
    if args.settings_json:
        return print_settings_json("train-density", DensityConfig, DensityRunOptions)
    if not args.out:
        raise InputError("--out is required: the folder of the run")
    run = DensityRunOptions(**{"resume": False, "overwrite": False,
                               **given_settings(DensityRunOptions, args)})
    config = apply_test_hooks(_config(args, run))
    with discard_on_failure(run.out, keep=run.resume):     # a failed start leaves nothing behind
        run_dir, finished = train_density(config, run.out, resume=run.resume,
                                          overwrite=run.overwrite)
    status = "done" if finished else "stopped early; continue with --resume"
    if os.environ.get("RANK", "0") != "0":      # torchrun: rank 0 reports
        return
    print(f"density run {run_dir}: {status}; see {run_dir}/manifest.json")
