"""Decode latent vectors to bead structures with a trained atom generator.

Writes one model per row of Z (a .npy of shape (M, zdim)) into a multi-model PDB of beads
(CA / C1') with the reference's chain ids, residue numbers and names, in the frame of the input
model and map (the run manifest's "frame": the map it was docked into overlays them as it is).

Example usage
-------------
  cryostar-engine eval-atom --run atom_run --z atom_run/z.npy --out all_particles.pdb
"""
from ..analysis import run_info
from ..atom.evaluate import load_decoder
from ..io.pdb import write_beads_pdb
from ..validate import check_latent_array, check_output_file, load_latent_file


def add_args(p):
    p.add_argument("--run", required=True, help="folder of a train-atom run")
    p.add_argument("--z", required=True, help=".npy of latent vectors, shape (M, zdim)")
    p.add_argument("--out", required=True, help="output multi-model PDB")


def main(args):
    check_output_file(args.out)
    z = load_latent_file(args.z)
    decode, beads = load_decoder(args.run)
    zdim = run_info(args.run).zdim
    if zdim and z.shape == (zdim, 1) and zdim > 1:       # one latent vector given as a 1-D array
        z = z.T
    z = check_latent_array(z, args.z, z_dim=zdim)
    write_beads_pdb(args.out, beads, run_info(args.run).frame.to_user(decode(z)))
    print(f"wrote {len(z)} model(s) of {len(beads)} beads to {args.out}")
