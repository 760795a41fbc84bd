"""Write a RELION STAR file of selected particles, ready for RELION 3D auto-refine or cryoSPARC.

The output is the input STAR with only the selected particle lines, copied verbatim and in the
original order: every column, the optics table and the RELION version (3.0 stays 3.0) are kept,
so the subset re-refines at the original box and pixel size.  Select by k-means state
(--labels RUN/analysis/labels.npy --keep 2,5 or 7-9), by a list of 0-based particle rows or a
boolean mask (--indices idx.npy | idx.txt), or by a range of PC scores (--pc 1 --range LO HI
--run RUN, or --analysis DIR for the scores of one analyze output, in the units of the
analysis figures' axes).  --invert takes the complement;
--per-cluster writes one file per state, OUT_STEM_clusterNN.star.

A cryoSPARC .cs input gives a .cs subset instead (--out *.cs): the selected rows of the
structured array with every field unchanged (blob/path stays relative to the project folder).

Image paths (rlnImageName): kept as they are when the new STAR is in the input's folder;
otherwise rewritten as ABSOLUTE paths (found as the engine finds them: --datadir, the input
STAR's folder and its parents, the current folder), so they resolve from anywhere.  Use
--image-paths relative (relative to the new STAR's folder) or keep (never rewrite) to change.

Example usage:
  cryostar-engine export-subset --particles run_data.star --labels runs/adk/analysis/labels.npy \\
      --keep 2,5 --out subsets/states_2_5.star
  cryostar-engine export-subset --particles run_data.star --pc 1 --range -1.5 0 --run runs/adk \\
      --out subsets/pc1_low.star
  cryostar-engine export-subset --particles run_data.star --labels labels.npy --per-cluster \\
      --out subsets/state.star
"""
from __future__ import annotations

from pathlib import Path

from ..analysis import (IMAGE_PATH_MODES, load_analysis_scores, load_indices, load_labels,
                        load_pc_scores, parse_cluster_list, read_manifest, read_star_rows, select_clusters,
                        select_pc_range, write_star_subsets)
from ..atom.run_decoder import run_decoder
from ..errors import InputError
from ..io.cryosparc import load_cs, write_cs_subsets
from ..validate import check_output_file


def add_args(p):
    p.add_argument("--particles", required=True,
                   help="input RELION .star or cryoSPARC .cs (the one trained on)")
    p.add_argument("--out", required=True, help="output .star (the stem, with --per-cluster)")
    sel = p.add_argument_group("selection (exactly one of --labels, --indices, --pc)")
    sel.add_argument("--labels", help="labels.npy from analyze (one state per particle)")
    sel.add_argument("--keep", help="states to keep, e.g. 2,5 or 0-3 (with --labels)")
    sel.add_argument("--per-cluster", action="store_true",
                     help="one STAR per state (all, or those in --keep)")
    sel.add_argument("--indices", help="0-based particle rows (.npy/.txt) or a boolean .npy mask")
    sel.add_argument("--pc", type=int, help="select by the score on this PC (1-based)")
    sel.add_argument("--range", nargs=2, type=float, metavar=("LO", "HI"),
                     help="inclusive PC score range (with --pc)")
    sel.add_argument("--run", help="training run whose z.npy gives the PC scores (with --pc)")
    sel.add_argument("--z", help="latents instead of RUN/z.npy (with --pc)")
    sel.add_argument("--analysis", help="an analyze output folder: select on the PC scores it "
                                        "wrote, the axes of its figures (with --pc; instead of "
                                        "--run/--z)")
    p.add_argument("--invert", action="store_true", help="keep the particles NOT selected")
    p.add_argument("--image-paths", choices=IMAGE_PATH_MODES, default="auto",
                   help="rlnImageName rewriting (default auto: absolute when the folder changes)")
    p.add_argument("--datadir", help="folder the stacks are in, for rewriting their paths")


def _n_clusters(labels_path: Path):
    man = read_manifest(labels_path.parent)
    return man["kmeans"]["k"] if man and man.get("kmeans", {}).get("labels") == labels_path.name \
        else None


def _selection(args, n: int) -> dict:
    """``{out_path: mask}`` from the selection arguments."""
    chosen = [a for a in ("labels", "indices", "pc") if getattr(args, a) is not None]
    if len(chosen) != 1:
        raise InputError("give exactly one selection: --labels, --indices or --pc")
    out = Path(args.out)
    if args.labels:
        labels = load_labels(args.labels, n)
        k = _n_clusters(Path(args.labels)) or int(labels.max()) + 1
        keep = parse_cluster_list(args.keep) if args.keep else None
        if args.per_cluster:
            keep = keep if keep is not None else [c for c in range(k) if (labels == c).any()]
            width = max(2, len(str(k - 1)))
            return {out.with_name(f"{out.stem}_cluster{c:0{width}d}{out.suffix or '.star'}"):
                    select_clusters(labels, [c], k) for c in keep}
        if keep is None:
            raise InputError("--labels needs --keep (e.g. --keep 2,5) or --per-cluster")
        return {out: select_clusters(labels, keep, k)}
    if args.per_cluster or args.keep:
        raise InputError("--keep and --per-cluster go with --labels")
    if args.indices:
        return {out: load_indices(args.indices, n)}
    if args.range is None or (args.run is None and args.z is None and args.analysis is None):
        raise InputError("--pc needs --range LO HI and --run RUN (or --z z.npy, or --analysis DIR)")
    if args.analysis is not None:
        if args.run is not None or args.z is not None:
            raise InputError("--analysis gives the PC scores: leave out --run and --z")
        scores, _ = load_analysis_scores(args.analysis)
    else:
        folder = Path(args.run) if args.run else Path(args.z).parent
        scores, _ = load_pc_scores(args.run, args.z, decode=run_decoder(folder))
    if len(scores) != n:
        raise InputError(f"the latents have {len(scores)} rows but {args.particles} has {n} "
                         "particles; use the star file the run was trained on")
    return {out: select_pc_range(scores, args.pc, *args.range)}


def _inverted(args, subsets: dict) -> dict:
    if not args.invert:
        return subsets
    if args.per_cluster:
        raise InputError("--invert cannot be combined with --per-cluster")
    return {k: ~m for k, m in subsets.items()}


def _cs_main(args) -> int:
    """A cryoSPARC .cs input gives .cs subsets: the selected rows, every field unchanged."""
    if args.image_paths != "auto":
        raise InputError("--image-paths applies to STAR files; a .cs subset keeps blob/path "
                         "relative to the cryoSPARC project")
    subsets = _inverted(args, _selection(args, len(load_cs(args.particles))))
    for out, k, n in write_cs_subsets(args.particles, subsets):
        print(f"selected {k} of {n} particles ({100 * k / n:.1f}%) -> {out} (.cs, blob/path unchanged)")
    return 0


def main(args):
    check_output_file(args.out)
    if Path(args.particles).suffix.lower() == ".cs":
        return _cs_main(args)
    star = read_star_rows(args.particles)
    subsets = _inverted(args, _selection(args, len(star)))
    results = write_star_subsets(args.particles, subsets, args.image_paths, args.datadir, star)
    for r in results:
        print(f"selected {r.n_selected} of {r.n_total} particles "
              f"({100 * r.n_selected / r.n_total:.1f}%) -> {r.path} (image paths: {r.image_paths})")
    return 0
