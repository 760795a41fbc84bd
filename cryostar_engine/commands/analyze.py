"""Analyse a trained run's latent space: PC trajectories, k-means states, figures, ChimeraX.

Reads RUN/z.npy (one latent per particle, in star-file order) and writes into RUN/analysis/
(or --out): PCA scores and explained variance; trajectories along PC1..--pcs (--points real
particles from the 5th to the 95th percentile, through the mean); --k k-means states in
dendrogram order with a label per particle (labels.npy, clusters 0..k-1, each particle's
nearest state); decoded multi-model PDBs (and one PDB per state / trajectory point) in the frame
of the input model, with ChimeraX .cxc movie scripts over the run's map (or --map), opened at its
own origin; z-point files (z_pca_K.txt, z_pca_K_ind.txt, z_kmeans.txt, z_kmeans_ind.txt); PNG
figures; and manifest.json listing every output.  UMAP only when umap-learn is installed.

Example usage:
  cryostar-engine analyze --run runs/adk
  cryostar-engine analyze --run runs/adk --k 10 --pcs 3 --points 10 --map consensus.mrc
  chimerax runs/adk/analysis/pca_1.cxc
"""
from __future__ import annotations

import sys
from pathlib import Path

from ..analysis import (AnalysisConfig, StructureDecoder, analysis_dir, load_latent,
                        read_manifest, run_analysis, run_info, run_latent_path)
from ..train.rundir import discard_on_failure
from ..validate import check_output_folder, check_positive


def add_args(p):
    p.add_argument("--run", required=True, help="training run folder (holds z.npy, losses.csv)")
    p.add_argument("--z", help="latents to analyse instead of RUN/z.npy (.npy, N x zdim)")
    p.add_argument("--out", help="output folder (default RUN/analysis)")
    p.add_argument("--k", type=int, default=10, help="number of k-means states (default 10)")
    p.add_argument("--pcs", type=int, default=3, help="trajectories along PC1..PCS (default 3)")
    p.add_argument("--points", type=int, default=10, help="points per trajectory (default 10)")
    p.add_argument("--pca-space", choices=("structure", "latent"), default="structure",
                   help="PCA of the decoded structures (Å; a motion comes out as one PC however "
                        "the latent space is curved) or of z itself (default structure; latent "
                        "when the run cannot decode or with --no-structures)")
    p.add_argument("--map", help="map (MRC) to show under the models in the .cxc scripts, opened "
                                 "at its own origin (default: the map the run was trained with)")
    p.add_argument("--seed", type=int, default=0, help="k-means / UMAP random state (default 0)")
    p.add_argument("--no-structures", action="store_true",
                   help="skip decoding: no PDB models or .cxc scripts")
    p.add_argument("--no-umap", action="store_true", help="skip UMAP even if installed")
    p.add_argument("--device", default="cpu", help="device for decoding (default cpu)")


def obtain_decoder(run_dir: Path, device: str) -> StructureDecoder | None:
    """>>> WIRING POINT: the one place ``analyze`` gets structures from a trained run. <<<

    Must return a :class:`StructureDecoder` whose ``decode(z (M, zdim) float32 numpy)`` gives
    ``(M, N_beads, 3)`` numpy Å in the engine's box-centred frame and whose ``beads`` are the
    run's reference beads; or None when the run cannot decode (analysis then skips PDBs).
    """
    try:
        from ..atom.evaluate import load_decoder  # the stage-1 atom generator
    except ImportError:
        return None
    decode, beads = load_decoder(run_dir, device=device)
    return StructureDecoder(decode=decode, beads=beads)


def main(args):
    run = Path(args.run)
    check_positive("--pcs", args.pcs)
    out = check_output_folder(args.out or analysis_dir(run))
    z_path = run_latent_path(run, args.z)
    config = AnalysisConfig(k=args.k, n_pcs=args.pcs, n_points=args.points,
                            pca_space=args.pca_space,
                            random_state=args.seed, umap=not args.no_umap)
    z = load_latent(z_path)
    status = (read_manifest(run) or {}).get("status")
    if args.z is None and status not in (None, "finished"):
        print(f"analyze: the run's status is '{status}': analysing the z.npy of its last "
              "evaluation", file=sys.stderr)
    decoder = None if args.no_structures else obtain_decoder(run, args.device)
    info = run_info(run)
    with discard_on_failure(out):
        man = run_analysis(z, out, config, decoder=decoder, losses_csv=run / "losses.csv",
                           map_path=args.map, z_source=z_path,
                           log=lambda msg: print(f"analyze: {msg}", file=sys.stderr),
                           frame=info.frame, box_px=info.box_px, apix_A=info.apix_A)
    pca = man["pca"]
    ratio, rms = pca["explained_variance_ratio"], pca.get("rms_displacement_A")
    space = ("decoded structures" if pca["space"] == "structure" else "latents")
    print(f"{man['z']['n_particles']} particles, zdim {man['z']['zdim']}; PCA of the {space}, "
          "explained variance: " + ", ".join(
              f"PC{i + 1} {100 * r:.1f}%" + (f" ({rms[i]:.2f} Å rms)" if rms else "")
              for i, r in enumerate(ratio[:5])))
    print("k-means states (particles): "
          + ", ".join(f"{c}: {n}" for c, n in enumerate(man["kmeans"]["counts"])))
    print(f"wrote {len(man['files'])} files to {out} (see {out / 'manifest.json'})")
    return 0
