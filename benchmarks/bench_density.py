"""Stage-2 benchmark (our density generator) on a simulated AdK set, comparable with
``peer_cryodrgn.py``: same particles scored, same figures, same JSON keys where they mean the
same.

1. ``cryostar_engine.density.train_density`` with the stage-1 latents fixed (``--z RUN/z.npy``)
   for ``--minutes`` of wall time: at the deadline the run is interrupted as by Ctrl-C (the
   engine then writes a checkpoint), and the maps come from that checkpoint, as ``eval-density``
   does for an unfinished run;
2. volumes at the z of the ``--n-maps`` particles that ``peer_cryodrgn.py`` scores
   (``peer_common.map_rows``, same ``--map-seed``) with ``write_eval_volumes`` (the library
   function of ``eval-density``); AU-FSC, heterogeneity carried and the two floors
   (``peer_common.score_particle_maps``);
3. seconds per volume: the data's box from the scored maps; ``--volume-boxes`` (default 128)
   from one volume of an untrained field of the same architecture (the cost does not depend
   on the weights).

The stage-1 wall time is read from ``bench_atom.json`` next to ``--z`` when it is there (written
by ``bench_atom.py``); give stage 2 ``--minutes`` = (the peer's minutes − that time) so that both
methods get the same total wall time.

    python benchmarks/bench_density.py --data bench_data/adk64 \\
        --z bench_runs/atom_mid/z.npy --minutes 10 --threads 1 --out bench_runs/density_ours

Writes ``OUT/bench_density.json`` and prints a table.
"""
from __future__ import annotations

import argparse
import json
import re
import resource
import signal
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import metrics as bm  # noqa: E402
from peer_common import (add_map_args, load_average, load_bench_data, map_rows,  # noqa: E402
                         score_particle_maps, write_map_result)

from cryostar_engine.analysis.subset import write_star_subsets  # noqa: E402
from cryostar_engine.density import DensityConfig, load_trained, train_density  # noqa: E402
from cryostar_engine.density.model import TrainedDensity, build_model  # noqa: E402
from cryostar_engine.density.results import renderer_for, write_eval_volumes  # noqa: E402
from cryostar_engine.io import read_map  # noqa: E402
from cryostar_engine.train import load_latest_checkpoint  # noqa: E402

LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*?(density generator:|"
                      r"interrupted at step)", re.M)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="simulated set (simulate_adk.py)")
    p.add_argument("--z", type=Path, required=True, help="stage-1 z.npy (one row per particle)")
    p.add_argument("--minutes", type=float, required=True, help="wall time of train_density")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--threads", type=int, default=None)
    add_map_args(p)
    p.add_argument("--volume-boxes", type=int, nargs="*", default=[128],
                   help="also time one volume at these boxes (px)")
    p.add_argument("--extra", default="{}", help="JSON dict of further DensityConfig fields")
    return p.parse_args(argv)


def training_inputs(data, z_path: Path, rows: np.ndarray, out: Path) -> tuple[Path, Path]:
    """Star file and z of the training rows: the set's own when all rows are used, else a
    subset star (every column and the optics table kept) and ``z_train.npy`` in ``out``."""
    if len(rows) == data.n:
        return data.star, z_path
    mask = np.zeros(data.n, bool)
    mask[rows] = True
    star = write_star_subsets(data.star, {out / "train.star": mask}, image_paths="absolute")[0].path
    np.save(out / "z_train.npy", np.load(z_path)[rows])
    return star, out / "z_train.npy"


def train_for(config: DensityConfig, run_dir: Path, minutes: float) -> bool:
    """Train until done or ``minutes`` of wall time; True when the run finished its epochs.

    At the deadline a SIGALRM raises KeyboardInterrupt in the trainer, which writes a checkpoint
    (its Ctrl-C path); the maps are then rendered from that checkpoint.
    """
    previous = signal.signal(signal.SIGALRM, signal.default_int_handler)
    signal.setitimer(signal.ITIMER_REAL, minutes * 60.0)
    try:
        train_density(config, run_dir, overwrite=True)
        return True
    except KeyboardInterrupt:
        return False
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def loop_seconds(log_text: str) -> float | None:
    """Seconds of the training loop: from the start line to the interruption line of run.log."""
    stamps = {m.group(2): datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f")
              for m in LOG_TIME.finditer(log_text)}
    if len(stamps) < 2:
        return None
    return (stamps["interrupted at step"] - stamps["density generator:"]).total_seconds()


def volume_seconds(trained: TrainedDensity, box: int) -> float:
    """Seconds for one ``box``³ volume of a field of ``trained``'s architecture at that box."""
    model = build_model(trained.config, box, trained.z_dim).to(next(trained.model.parameters()).device)
    big = TrainedDensity(model, trained.config, box, trained.apix, trained.f_std, trained.z_dim)
    renderer = renderer_for(big)
    t0 = time.perf_counter()
    renderer.volume(np.zeros(trained.z_dim, np.float32))
    return time.perf_counter() - t0


def stage1_wall(z_path: Path) -> float | None:
    bench = z_path.parent / "bench_atom.json"
    return json.loads(bench.read_text()).get("wall_s") if bench.is_file() else None


def main(argv=None) -> int:
    args = parse_args(argv)
    data = load_bench_data(args.data)
    out = args.out.resolve()
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} is not empty: give a fresh --out")
    out.mkdir(parents=True, exist_ok=True)
    load_before = load_average()
    rows, pick = map_rows(data.n, args.max_particles, args.n_maps, args.map_seed)
    star, z_path = training_inputs(data, args.z.resolve(), rows, out)
    config = DensityConfig(particles=str(star), z_path=str(z_path), epochs=10**6, device="cpu",
                           threads=args.threads, **json.loads(args.extra))

    t0, cpu0 = time.monotonic(), time.process_time()
    run_dir = out / "train"
    finished = train_for(config, run_dir, args.minutes)
    train_wall, train_cpu = time.monotonic() - t0, time.process_time() - cpu0
    ckpt = None if finished else load_latest_checkpoint(run_dir)
    if not finished and ckpt is None:
        raise SystemExit(f"{run_dir}: no checkpoint within {args.minutes} min; give more minutes")
    images = config.epochs * len(rows) if finished else int(ckpt["images_seen"])
    loop_s = loop_seconds((run_dir / "run.log").read_text())

    z = np.load(z_path).astype(np.float32)
    frame = data.frame[rows]
    lat = bm.latent_figures(z, frame)
    trained = load_trained(run_dir, "cpu")
    t1 = time.monotonic()
    write_eval_volumes(out / "maps", trained, z[pick], source=str(run_dir))
    eval_s = time.monotonic() - t1
    maps = np.stack([read_map(out / "maps" / f"vol_{i:03d}.mrc").data for i in range(len(pick))])
    figs = score_particle_maps(maps, data, frame[pick], args.het_resolution)
    total_s = round(time.monotonic() - t0, 1)
    peak_gb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2)
    per_volume = {str(trained.box): round(eval_s / len(pick), 2)}
    for box in args.volume_boxes:
        per_volume[str(box)] = round(volume_seconds(trained, box), 2)

    s1 = stage1_wall(args.z)
    head = {
        "method": "cryostar_engine train_density", "data": str(data.root),
        "n_particles": int(len(rows)), "box": data.box, "apix": data.apix,
        "minutes": args.minutes, "threads": args.threads or torch.get_num_threads(),
        "zdim": int(z.shape[1]), "z": str(args.z.resolve()), "extra": json.loads(args.extra),
        "epochs_completed": round(images / len(rows), 3), "images_seen": images,
        "images_per_s": round(images / (loop_s or train_wall), 2),
        "train_wall_s": round(train_wall, 1), "eval_vol_s": round(eval_s, 1),
        "seconds_per_volume": per_volume, "total_wall_s": total_s,
        "stage1_wall_s": s1,
        "stage1_plus_stage2_train_wall_s": round(s1 + train_wall, 1) if s1 else None,
        "peak_rss_GB": peak_gb,
    }
    write_map_result(out, "bench_density.json", head, train_wall, train_cpu, load_before, lat, pick,
                     args.het_resolution, figs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
