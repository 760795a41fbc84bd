"""Train the atom generator (stage 1) on particles with poses and CTF and a docked model.

Writes RUN/z.npy (latent means, one row per particle in star-file order, updated during
training), RUN/checkpoints/, RUN/config.json, RUN/run.log, RUN/losses.csv, RUN/preview.png and
RUN/manifest.json.  Interrupted runs continue with --resume.  Every setting of the method is a
flag (see the advanced settings) or a key of a JSON file given with --config.

Example usage
-------------
  cryostar-engine train-atom --particles run_data.star --model docked.pdb --map consensus.mrc \\
      --out atom_run --box 128 --epochs 20 --low-pass 8
  cryostar-engine train-atom --out atom_run --resume          # after an interruption
  torchrun --standalone --nproc_per_node=4 -m cryostar_engine train-atom ...   # 4 GPUs (DDP)
"""
import os

from ..atom.config import ESSENTIAL, AtomConfig, load_config_file
from ..atom.training import train_atom
from ._dataclass_args import add_dataclass_args, dataclass_from_args


def add_args(p):
    p.add_argument("--config", help="JSON file of settings (flags given here override it)")
    add_dataclass_args(p, AtomConfig, ESSENTIAL)


def main(args):
    base = load_config_file(args.config) if args.config else {}
    cfg = dataclass_from_args(AtomConfig, args, base)
    manifest = train_atom(cfg)
    if os.environ.get("RANK", "0") == "0":
        print(f"z: {cfg.out}/z.npy ({manifest['particles']} particles); status {manifest['status']}")
