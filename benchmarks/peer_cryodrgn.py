"""Side-by-side benchmark: cryoDRGN ``train_vae`` on a simulated AdK set, for a fixed wall time.

Runs an existing installation of cryoDRGN (this script neither builds nor installs it; give the
python of its environment, the ``cryodrgn`` command is taken next to it):

1. ``cryodrgn parse_pose_star`` / ``parse_ctf_star`` on the set's RELION 3.1 star;
2. ``cryodrgn train_vae`` (default architecture unless ``--train-args`` says otherwise, a
   checkpoint every epoch, no analysis) stopped after ``--minutes``; the last *complete* epoch
   (its ``z.E.pkl`` fully written) is scored.  The particles are white (RELION-extracted), so
   cryoDRGN's default data inversion is right: no ``--uninvert-data``;
3. its z: |Spearman ρ| of the best PC with the true frame and the 10-NN R²;
4. one ``cryodrgn eval_vol --zfile`` call at the z of ``--n-maps`` particles (same rows for
   every method, see ``peer_common.map_rows``), then AU-FSC against each particle's ground-truth
   volume, the heterogeneity carried and the floors (``peer_common.score_particle_maps``).
   cryoDRGN's volumes need no flip or axis change to overlay the ground truth (checked: the
   mean map correlates best as it is); ``mean_map_corr`` in the JSON guards this on every run;
5. seconds per volume: the data's box from step 4 (model loading included), ``--volume-boxes``
   (default 128) from one volume of the same architecture built for that box (untrained).

Evaluating a 64³ map with the default 3×1024 decoder takes 15–35 s on 2 CPU cores, so 100 maps
add up to about half an hour after the training.

    python benchmarks/peer_cryodrgn.py --peer-python <cryodrgn venv>/bin/python \\
        --data bench_data/adk64 --minutes 20 --out bench_out/cryodrgn_peer

Writes ``OUT/peer_cryodrgn.json`` and prints a table.
"""
from __future__ import annotations

import argparse
import pickle
import re
import shlex
import sys
import time
from pathlib import Path

import mrcfile
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import metrics as bm  # noqa: E402
from peer_common import (add_map_args, check_ok, children_cpu_s, children_peak_rss_gb,  # noqa: E402
                         load_average, load_bench_data, map_rows, run_logged,
                         score_particle_maps, thread_env, write_map_result)

VOLUME_TIMER = """import sys, time, numpy as np, torch
from cryodrgn import config
from cryodrgn.models import HetOnlyVAE
cfg = config.load(sys.argv[1])
cfg["lattice_args"]["D"] = int(sys.argv[2]) + 1
if cfg["model_args"]["enc_mask"] > 0:              # train_vae's default: the image's disc
    cfg["model_args"]["enc_mask"] = int(sys.argv[2]) // 2
torch.set_num_threads(int(sys.argv[3]))
model, lat = HetOnlyVAE.load(cfg, None, device=torch.device("cpu"))
model.eval()
norm = [float(x) for x in cfg["dataset_args"]["norm"]]
z = np.zeros(cfg["model_args"]["zdim"], np.float32)
t0 = time.perf_counter()
with torch.no_grad():
    model.decoder.eval_volume(lat.coords, lat.D, lat.extent, norm, z)
print("VOLUME_SECONDS", time.perf_counter() - t0)
"""

EPOCH_LINE = re.compile(r"=====> Epoch: (\d+) .*Finished in (\d+):(\d+):([\d.]+)")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--peer-python", type=Path, required=True,
                   help="python of the cryoDRGN environment (its `cryodrgn` sits next to it)")
    p.add_argument("--data", type=Path, required=True, help="simulated set (simulate_adk.py)")
    p.add_argument("--minutes", type=float, required=True, help="wall time of train_vae")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--zdim", type=int, default=8)
    add_map_args(p)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--train-args", default="", help="extra train_vae arguments (one string)")
    p.add_argument("--volume-boxes", type=int, nargs="*", default=[128],
                   help="also time one volume at these boxes (px); the data's box is timed by "
                        "the scored maps")
    return p.parse_args(argv)


def read_z(path: Path) -> np.ndarray | None:
    """z means of a cryoDRGN ``z.E.pkl``; None when the file is missing or incomplete."""
    try:
        with open(path, "rb") as f:
            mu = pickle.load(f)
            pickle.load(f)                         # log-variances: written last
        return np.asarray(mu, np.float64)
    except (OSError, EOFError, pickle.UnpicklingError):
        return None


def last_complete_epoch(train_dir: Path) -> tuple[int, np.ndarray]:
    epochs = sorted((int(p.name.split(".")[1]) for p in train_dir.glob("z.[0-9]*.pkl")),
                    reverse=True)
    for e in epochs:
        z = read_z(train_dir / f"z.{e}.pkl")
        if z is not None and (train_dir / f"weights.{e}.pkl").is_file():
            return e, z
    raise SystemExit(f"{train_dir}: no complete epoch within the time budget; give more minutes "
                     "or fewer particles (--max-particles)")


def epoch_seconds(log_text: str) -> dict[int, float]:
    """Training seconds of each finished epoch (cryoDRGN's own "Finished in" stamps)."""
    return {int(m.group(1)): int(m.group(2)) * 3600 + int(m.group(3)) * 60 + float(m.group(4))
            for m in EPOCH_LINE.finditer(log_text)}


def eval_maps(cryodrgn: Path, train_dir: Path, epoch: int, z: np.ndarray, out: Path, apix: float,
              env) -> np.ndarray:
    """``(M, D, D, D)`` maps of cryoDRGN's decoder at the rows of ``z``, ``[z, y, x]``."""
    zfile, vol_dir = out / "z_maps.txt", out / "maps"
    np.savetxt(zfile, z)
    res = run_logged([cryodrgn, "eval_vol", train_dir / f"weights.{epoch}.pkl", "-c",
                      train_dir / "config.yaml", "--zfile", zfile, "-o", vol_dir, "--Apix", apix],
                     out, out / "eval_vol.log", env)
    check_ok(res, "cryodrgn eval_vol", out / "eval_vol.log")
    files = sorted(vol_dir.glob("vol_*.mrc"))
    if len(files) != len(z):
        raise SystemExit(f"{vol_dir}: {len(files)} maps for {len(z)} z")
    return np.stack([mrcfile.read(f).astype(np.float32) for f in files])


def volume_seconds(peer_python: Path, config: Path, box: int, threads: int, out: Path,
                   env) -> float:
    """Seconds to evaluate one ``box``³ volume with cryoDRGN's decoder: the trained run's
    architecture rebuilt for images of ``box`` px (untrained weights; the cost does not depend
    on them), timed in the peer's environment with ``threads`` threads."""
    log = out / f"volume_{box}.log"
    res = run_logged([peer_python, "-c", VOLUME_TIMER, config, box, threads], out, log, env)
    check_ok(res, f"timing a {box}^3 cryoDRGN volume", log)
    return float(log.read_text().split("VOLUME_SECONDS")[-1].split()[0])


def run_training(args, data, cryodrgn: Path, rows: np.ndarray, train_dir: Path, env) -> dict:
    """Parse poses and CTF, then run train_vae until ``args.minutes`` (or its last epoch).

    Returns :func:`run_logged`'s dict plus ``cpu_s``, the CPU seconds train_vae used.
    """
    out, log = train_dir.parent, train_dir.parent / "cryodrgn.log"
    for cmd, name in (("parse_pose_star", "pose.pkl"), ("parse_ctf_star", "ctf.pkl")):
        check_ok(run_logged([cryodrgn, cmd, data.star, "-o", out / name], out, log, env), cmd, log)
    cmd = [cryodrgn, "train_vae", data.star, "--datadir", data.root, "--poses", out / "pose.pkl",
           "--ctf", out / "ctf.pkl", "--zdim", args.zdim, "-n", 100000, "--checkpoint", 1,
           "-o", train_dir, "--no-analysis", "--max-threads", args.threads]
    if len(rows) < data.n:
        with open(out / "ind.pkl", "wb") as f:
            pickle.dump(rows, f)
        cmd += ["--ind", out / "ind.pkl"]
    cmd += shlex.split(args.train_args)
    cpu0 = children_cpu_s()
    train = run_logged(cmd, out, log, env, deadline_s=args.minutes * 60)
    check_ok(train, "cryodrgn train_vae", log)
    return {**train, "cpu_s": round(children_cpu_s() - cpu0, 1)}


def main(argv=None) -> int:
    args = parse_args(argv)
    data = load_bench_data(args.data)
    cryodrgn = args.peer_python.parent / "cryodrgn"
    out = args.out.resolve()
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} is not empty: give a fresh --out")
    out.mkdir(parents=True, exist_ok=True)
    env = thread_env(args.threads)
    load_before = load_average()

    rows, pick = map_rows(data.n, args.max_particles, args.n_maps, args.map_seed)
    t0 = time.monotonic()
    train_dir = out / "train"
    train = run_training(args, data, cryodrgn, rows, train_dir, env)
    epoch, z = last_complete_epoch(train_dir)
    secs = epoch_seconds((train_dir / "run.log").read_text())
    frame = data.frame[rows]
    lat = bm.latent_figures(z, frame)

    t1 = time.monotonic()
    maps = eval_maps(cryodrgn, train_dir, epoch, z[pick], out, data.apix, env)
    eval_s = time.monotonic() - t1
    figs = score_particle_maps(maps, data, frame[pick], args.het_resolution)
    total_s, peak_gb = round(time.monotonic() - t0, 1), children_peak_rss_gb()
    per_volume = {str(data.box): round(eval_s / len(pick), 2)}
    for box in args.volume_boxes:
        per_volume[str(box)] = round(volume_seconds(args.peer_python, train_dir / "config.yaml",
                                                    box, args.threads, out, env), 2)

    n_train = len(rows)
    head = {
        "peer": "cryoDRGN train_vae", "method": "cryoDRGN train_vae", "data": str(data.root),
        "n_particles": int(n_train),
        "box": data.box, "apix": data.apix, "minutes": args.minutes, "threads": args.threads,
        "zdim": args.zdim, "train_args": args.train_args, "epochs_completed": epoch,
        "epoch_train_s": secs,
        "images_per_s": round(n_train * len(secs) / sum(secs.values()), 2) if secs else None,
        "train_wall_s": train["wall_s"], "eval_vol_s": round(eval_s, 1),
        "seconds_per_volume": per_volume,
        "total_wall_s": total_s, "peer_peak_rss_GB": peak_gb,
    }
    write_map_result(out, "peer_cryodrgn.json", head, train["wall_s"], train["cpu_s"], load_before,
                     lat, pick, args.het_resolution, figs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
