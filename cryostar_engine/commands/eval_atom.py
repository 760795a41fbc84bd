"""Decode latent vectors to bead structures with a trained atom generator.

Writes one model per row of Z (a .npy of shape (M, zdim)) into a multi-model PDB of beads
(CA / C1') with the reference's chain ids, residue numbers and names, in the frame of the input
model and map (the run manifest's "frame": the map it was docked into overlays them as it is).

Example usage
-------------
  cryostar-engine eval-atom --run atom_run --z atom_run/z.npy --out all_particles.pdb
"""
import numpy as np

from ..analysis import run_info
from ..atom.evaluate import load_decoder
from ..errors import InputError
from ..io.pdb import write_beads_pdb


def add_args(p):
    p.add_argument("--run", required=True, help="folder of a train-atom run")
    p.add_argument("--z", required=True, help=".npy of latent vectors, shape (M, zdim)")
    p.add_argument("--out", required=True, help="output multi-model PDB")


def main(args):
    try:
        z = np.load(args.z)
    except (OSError, ValueError) as err:
        raise InputError(f"{args.z}: cannot read latent vectors ({err})") from None
    decode, beads = load_decoder(args.run)
    if z.ndim == 1:
        z = z[None]
    write_beads_pdb(args.out, beads, run_info(args.run).frame.to_user(decode(z)))
    print(f"wrote {len(z)} model(s) of {len(beads)} beads to {args.out}")
