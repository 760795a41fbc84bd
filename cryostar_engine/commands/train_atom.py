"""Train the atom generator (stage 1) on particles with poses and CTF and a docked model.

Writes RUN/z.npy (latent means, one row per particle in star-file order, updated during
training), RUN/checkpoints/, RUN/config.json, RUN/run.log, RUN/losses.csv, RUN/preview.png and
RUN/manifest.json.  Interrupted runs continue with --resume.  Every setting of the method is a
flag (see the advanced settings) or a key of a JSON file given with --config; --settings-json
lists them all (name, flag, type, unit, default, choices, range, help) and exits.

Example usage
-------------
  cryostar-engine train-atom --particles run_data.star --model docked.pdb --map consensus.mrc \\
      --out atom_run --box 128 --epochs 20 --low-pass 8
  cryostar-engine train-atom --out atom_run --resume          # after an interruption
  torchrun --standalone --nproc_per_node=4 -m cryostar_engine train-atom ...   # 4 GPUs (DDP)
"""
import os
from pathlib import Path

from ..atom.config import AtomConfig, load_config_file, read_run_config
from ..atom.training import INVOCATION_FIELDS, RESUMABLE_FIELDS, train_atom
from ..errors import InputError
from ..settings import apply_test_hooks, refuse_changes_on_resume
from ..train.rundir import discard_on_failure
from ._dataclass_args import (add_settings_args, dataclass_from_args, given_settings,
                              print_settings_json)


def add_args(p):
    p.add_argument("--config", help="JSON file of settings (flags given here override it)")
    add_settings_args(p, AtomConfig)


def main(args):
    if args.settings_json:
        return print_settings_json("train-atom", AtomConfig)
    base = load_config_file(args.config) if args.config else {}
    cfg = apply_test_hooks(dataclass_from_args(AtomConfig, args, base))
    if not cfg.out:
        raise InputError("--out is required: the folder of the run")
    if cfg.resume and (Path(cfg.out) / "config.json").is_file():
        refuse_changes_on_resume({**base, **given_settings(AtomConfig, args)}, read_run_config(cfg.out),
                                 RESUMABLE_FIELDS + INVOCATION_FIELDS, f"{cfg.out}/config.json")
    with discard_on_failure(cfg.out, keep=cfg.resume):     # a failed start leaves nothing behind
        manifest = train_atom(cfg)
    if os.environ.get("RANK", "0") == "0":
        print(f"z: {cfg.out}/z.npy ({manifest['particles']} particles); status {manifest['status']}")
