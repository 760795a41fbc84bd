"""Plumbing shared by the benchmark drivers (``peer_cryostar.py``, ``peer_cryodrgn.py``,
``bench_density.py``).

The peer drivers never build or install a peer: they take the path of an existing installation
and run it as a subprocess with a fixed number of threads.  This module loads the ground truth
of a simulated set (``benchmarks/simulate_adk.py`` layout), picks the particles whose maps are
scored and scores them (the same rows and figures for every method), runs a command under a
wall-clock deadline with its output logged, and writes the result JSON atomically.
"""
from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cryostar_engine.io import read_beads, read_map, read_star_tables, write_text_atomic

try:                                    # imported as benchmarks.peer_common or as peer_common
    from . import metrics as bm
except ImportError:
    import metrics as bm

REPO = Path(__file__).resolve().parents[1]
DEFAULT_GT_CA = REPO / "data" / "adk_models" / "adk_dims_ca.npy"

__all__ = ["BenchData", "load_bench_data", "map_rows", "score_particle_maps", "map_table",
           "reference_ca", "truth_and_reference_ca",
           "thread_env", "run_logged", "check_ok",
           "children_peak_rss_gb", "children_cpu_s", "load_average", "write_json", "REPO",
           "DEFAULT_GT_CA"]


@dataclass(frozen=True)
class BenchData:
    """A simulated set: star file, pixel size, box and the true frame of every particle."""

    root: Path
    star: Path
    apix: float           # Å/px of the particle images
    box: int              # px
    frame: np.ndarray     # (N,) int64, true DIMS frame of each particle, star order
    gt_ca: np.ndarray     # (F, R, 3) float64 Å, Cα of every frame (see gt_in_model_order)
    gt_in_model_order: bool = False   # True: gt_ca rows follow the reference PDB's residues
                                      # (gt_ca.npy of simulate_adk.py); False: AdK residues 1..R

    @property
    def n(self) -> int:
        return len(self.frame)

    def gt_volumes(self) -> np.ndarray:
        """``(F, D, D, D)`` float32 ground-truth volumes ``[z, y, x]`` (memory-mapped)."""
        path = self.root / "gt_volumes.npy"
        if not path.is_file():
            raise SystemExit(f"{path}: missing (simulate with --gt-volumes)")
        return np.load(path, mmap_mode="r")

    def consensus_map(self) -> np.ndarray | None:
        """``(D, D, D)`` float32 ``consensus_frameXXX.mrc`` of the set (noiseless map of one
        frame, the floor of the map figures), or None when the set has none."""
        found = sorted(self.root.glob("consensus_frame*.mrc"))
        return read_map(found[0]).data if found else None


def load_bench_data(data_dir, gt_ca_path=None) -> BenchData:
    """Read ``particles.star`` (optics block) and ``gt_frame.npy`` of a simulated set.

    The Cα ground truth is ``gt_ca_path`` (AdK residue numbering), else the set's own
    ``gt_ca.npy`` (the reference PDB's residue order), else the bundled AdK path.
    """
    root = Path(data_dir).resolve()
    star = root / "particles.star"
    optics, particles = read_star_tables(star)
    if optics is None or "rlnImagePixelSize" not in optics or "rlnImageSize" not in optics:
        raise SystemExit(f"{star}: a RELION 3.1 optics block with pixel and image size is needed")
    frame = np.load(root / "gt_frame.npy").astype(np.int64)
    if len(frame) != len(particles):
        raise SystemExit(f"{root}: gt_frame.npy has {len(frame)} rows, the star {len(particles)}")
    in_model_order = gt_ca_path is None and (root / "gt_ca.npy").exists()
    gt_path = root / "gt_ca.npy" if in_model_order else (gt_ca_path or DEFAULT_GT_CA)
    return BenchData(root=root, star=star, apix=float(optics["rlnImagePixelSize"].iloc[0]),
                     box=int(optics["rlnImageSize"].iloc[0]), frame=frame,
                     gt_ca=np.load(gt_path).astype(np.float64), gt_in_model_order=in_model_order)


def truth_and_reference_ca(data: BenchData, ref_pdb, chain_ids, res_ids) -> tuple[np.ndarray, np.ndarray]:
    """Ground truth and reference Cα for the beads ``(chain_ids[i], res_ids[i])`` of a method.

    Returns ``(gt (F, M, 3), ref (M, 3))`` Å, row i matching bead i.  With ``gt_ca.npy`` in the
    reference's residue order, beads are matched on (chain, residue number), so a complex whose
    chains share residue numbers is scored correctly; otherwise on the AdK residue number.
    """
    res_ids = np.asarray(res_ids, np.int64)
    if not data.gt_in_model_order:
        return data.gt_ca[:, bm.residue_rows(res_ids)], reference_ca(ref_pdb, res_ids)
    beads = read_beads(ref_pdb)
    where = {(str(c), int(r)): i for i, (c, r) in enumerate(zip(beads.chain_ids, beads.res_ids))}
    keys = [(str(c), int(r)) for c, r in zip(chain_ids, res_ids)]
    missing = [k for k in keys if k not in where]
    if missing or len(beads) != data.gt_ca.shape[1]:
        raise SystemExit(f"{ref_pdb}: beads {missing[:5]} not in the reference, or its "
                         f"{len(beads)} beads do not match gt_ca.npy's {data.gt_ca.shape[1]} rows")
    rows = np.array([where[k] for k in keys])
    return data.gt_ca[:, rows], beads.coords_A[rows]


def map_rows(n_total: int, max_particles: int | None, n_maps: int, seed: int):
    """Rows a method trains on and the particles whose maps are scored, for every driver alike.

    Returns
    -------
    (rows, pick) : ``rows`` = the first ``max_particles`` star rows (all when None);
    ``pick`` = ``n_maps`` sorted positions in ``rows`` (:func:`metrics.pick_particles`), which
    equal star rows since ``rows`` starts at 0.
    """
    rows = np.arange(n_total if max_particles is None else min(max_particles, n_total))
    return rows, bm.pick_particles(len(rows), n_maps, seed)


def score_particle_maps(maps: np.ndarray, data: BenchData, frames: np.ndarray,
                        resolution_A: float = 8.0) -> dict:
    """Map figures of ``(M, D, D, D)`` maps of M particles whose true frames are ``frames``.

    :func:`metrics.score_maps` against each particle's ground-truth volume (mask:
    :func:`metrics.envelope_mask` of all frames), plus two floors scored the same way on the same
    particles: ``consensus_*`` (the set's consensus map for every particle) and ``gt_mean_*``
    (the population-weighted mean of the ground-truth volumes: the best single map).
    """
    all_gt = data.gt_volumes()
    gt = np.asarray(all_gt[np.asarray(frames)], np.float32)
    mask = bm.envelope_mask(all_gt, data.apix)
    out = bm.score_maps(maps, gt, mask, data.apix, resolution_A)
    consensus = data.consensus_map()
    if consensus is not None:
        out.update({f"consensus_{k}": v for k, v in bm.single_map_floor(consensus, gt).items()})
    weights = np.bincount(data.frame, minlength=len(all_gt)).astype(np.float64)
    mean_gt = np.tensordot(weights / weights.sum(), np.asarray(all_gt, np.float64), axes=1)
    out.update({f"gt_mean_{k}": v for k, v in bm.single_map_floor(mean_gt, gt).items()})
    return out


def map_table(r: dict) -> str:
    """The table printed by the drivers that score maps (same rows for every method)."""
    per_volume = " / ".join(f"{b}^3 {s}" for b, s in r["seconds_per_volume"].items())
    return bm.format_table({
        "particles / epochs done": f"{r['n_particles']} / {r['epochs_completed']}",
        "img/s (training)": r["images_per_s"], "cores used (training)": r["train_cores_used"],
        "|rho| best PC vs frame": r["abs_spearman_best_pc"], "10-NN R2 (5-fold)": r["knn_r2"],
        f"AU-FSC ({len(r['map_rows'])} maps, max 0.5)": r["au_fsc"],
        "heterogeneity carried": r["het_carried"],
        "floor: consensus map AU-FSC": r.get("consensus_au_fsc", "-"),
        "floor: mean GT map AU-FSC": r["gt_mean_au_fsc"],
        "mean map corr (registration)": r["mean_map_corr"], "s per volume": per_volume,
        "train wall (s)": r["train_wall_s"], "total wall (s)": r["total_wall_s"],
        "load avg before/after": f"{r['load_avg_before'][0]} / {r['load_avg_after'][0]}"})


def add_map_args(p) -> None:
    """The options shared by the map benchmarks' drivers (ours and the peers')."""
    p.add_argument("--max-particles", type=int, default=None,
                   help="train on the first N particles only (short checks)")
    p.add_argument("--n-maps", type=int, default=100, help="particles whose map is scored")
    p.add_argument("--map-seed", type=int, default=0)
    p.add_argument("--het-resolution", type=float, default=8.0,
                   help="low-pass (Å) before the heterogeneity-carried correlation")


def write_map_result(out: Path, name: str, head: dict, train_wall_s: float, train_cpu_s: float,
                     load_before, lat, pick, het_resolution_A: float, figs: dict) -> dict:
    """Complete a map benchmark's result (CPU use, load, latent figures, scored maps), write it
    as ``out/name`` and print the table; the same tail for our driver and the peers'."""
    result = {
        **head, "train_cpu_s": round(train_cpu_s, 1),
        "train_cores_used": round(train_cpu_s / train_wall_s, 2),
        "load_avg_before": load_before, "load_avg_after": load_average(),
        "abs_spearman_best_pc": lat.rho, "best_pc": lat.best_pc, "knn_r2": lat.knn_r2,
        "map_rows": pick, "het_resolution_A": het_resolution_A, **figs,
    }
    write_json(out / name, result)
    print(map_table(result))
    print(f"-> {out / name}")
    return result


def reference_ca(pdb, res_ids: np.ndarray) -> np.ndarray:
    """``(len(res_ids), 3)`` Å: the Cα of residues ``res_ids`` of a model file (chain ignored)."""
    beads = read_beads(pdb)
    where = {int(r): i for i, r in enumerate(beads.res_ids)}
    missing = [int(r) for r in res_ids if int(r) not in where]
    if missing:
        raise SystemExit(f"{pdb}: residues {missing[:5]} missing from the reference model")
    return beads.coords_A[[where[int(r)] for r in res_ids]]


def thread_env(threads: int) -> dict:
    """Environment limiting a peer to ``threads`` CPU threads."""
    env = dict(os.environ)
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "NUMEXPR_NUM_THREADS"):
        env[key] = str(threads)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_logged(cmd, cwd, log_path, env, deadline_s: float | None = None) -> dict:
    """Run ``cmd`` with stdout+stderr appended to ``log_path``.

    With ``deadline_s`` the command's process group is sent SIGTERM (then SIGKILL after 20 s)
    when it is still running that many seconds after the start.

    Returns
    -------
    dict with ``rc`` (exit status, None when stopped), ``wall_s`` and ``stopped`` (bool).
    """
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with open(log_path, "a") as log:
        log.write(f"\n$ {' '.join(map(str, cmd))}\n")
        log.flush()
        proc = subprocess.Popen([str(c) for c in cmd], cwd=cwd, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = proc.wait(timeout=deadline_s)
            stopped = False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            rc, stopped = None, True
    return {"rc": rc, "wall_s": round(time.monotonic() - t0, 1), "stopped": stopped}


def check_ok(result: dict, what: str, log_path) -> None:
    """Exit with the log's tail when a step failed."""
    if result["rc"] not in (0, None):
        tail = Path(log_path).read_text().splitlines()[-15:]
        raise SystemExit(f"{what} failed (exit {result['rc']}); end of {log_path}:\n"
                         + "\n".join(tail))


def children_peak_rss_gb() -> float:
    """Largest peak resident memory (GB) of the subprocesses run so far (Linux: KiB units)."""
    return round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e6, 2)


def children_cpu_s() -> float:
    """CPU seconds (user + system) used so far by the finished subprocesses.  Divided by their
    wall time it gives the cores they actually got on a shared machine."""
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return round(use.ru_utime + use.ru_stime, 1)


def load_average() -> list[float]:
    """The 1-, 5- and 15-minute load averages (how busy the shared cores were)."""
    return [round(x, 2) for x in os.getloadavg()]


def write_json(path, obj) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    write_text_atomic(path, json.dumps(obj, indent=1, default=_plain) + "\n")


def _plain(x):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(type(x))
