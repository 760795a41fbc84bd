"""Stage-2 learning curve: AU-FSC and heterogeneity carried against images seen, per MLP width,
and the same figures for maps reconstructed from the particles grouped by their true frame.

Stage 2 trains at a constant learning rate (AdamW, no schedule), so the state of one long run
after K images *is* the state of a run of K images: one run per width, evaluated at its
checkpoints, gives the whole curve.  Three sub-commands:

``train``  one ``train_density`` run (``--hidden W``, ``--minutes M`` wall time, then a clean
           stop) that keeps every checkpoint: one per epoch and one every ``--checkpoint-s``;
``score``  for every checkpoint of a run not scored yet (or those nearest ``--at`` images): the
           maps at the z of the ``--n-maps`` scored particles (``peer_common.map_rows``, the
           same particles as ``bench_density.py``), scored with
           ``peer_common.score_particle_maps`` (AU-FSC, heterogeneity carried, floors); appends
           one row per checkpoint to ``RUN/curve.json`` (safe to run beside the training);
``frames`` the reference the issue sets: the particles grouped into ``--groups`` bins of their
           true frame (equal-width bins over the frame range), one CTF-corrected Wiener
           reconstruction per group (``cryostar_engine.recon.backproject``, the images at their
           true poses) and every scored particle given its group's map; same scoring.
``table``  prints the curve(s) and the group reference as a markdown table.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/density_curve.py train --data bench_data/adk64 \\
        --z bench_runs/s6_default_adk64/z.npy --hidden 256 --minutes 60 --threads 1 \\
        --out bench_runs/s6_curve_adk64_h256
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/density_curve.py score --data bench_data/adk64 \\
        --run bench_runs/s6_curve_adk64_h256 --threads 1
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/density_curve.py frames --data bench_data/adk64 \\
        --out bench_runs/s6_frames_adk64 --threads 1
    .venv/bin/python benchmarks/density_curve.py table bench_runs/s6_curve_adk64_h* \\
        --frames bench_runs/s6_frames_adk64

Every row records the load average before and after it (the machine is shared).
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peer_common import (add_map_args, load_average, load_bench_data, map_rows,  # noqa: E402
                         score_particle_maps, write_json)

from cryostar_engine.analysis.pca import fit_pca  # noqa: E402
from cryostar_engine.data.particles import ParticleDataset  # noqa: E402
from cryostar_engine.density import DensityConfig, train_density  # noqa: E402
from cryostar_engine.density.model import TrainedDensity, build_model  # noqa: E402
from cryostar_engine.density.results import renderer_for  # noqa: E402
from cryostar_engine.io import read_particles  # noqa: E402
from cryostar_engine.recon.backproject import Backprojector  # noqa: E402
from cryostar_engine.train import list_checkpoints  # noqa: E402

CURVE = "curve.json"
FRAMES = "frames.json"


# -- train --------------------------------------------------------------------------------------

def train(args) -> int:
    """One long run at constant lr, every checkpoint kept, stopped cleanly after ``--minutes``."""
    data = load_bench_data(args.data)
    extra = json.loads(args.extra)
    config = DensityConfig(particles=str(data.star), z_path=str(args.z.resolve()),
                           hidden=args.hidden, epochs=args.epochs, device="cpu",
                           threads=args.threads, keep_checkpoints=10 ** 6,
                           checkpoint_interval_s=args.checkpoint_s, max_minutes=args.minutes,
                           **extra)
    meta = {"data": str(data.root), "z": str(args.z.resolve()), "hidden": args.hidden,
            "minutes": args.minutes, "threads": args.threads, "extra": extra,
            "load_avg_before": load_average(), "start": time.strftime("%H:%M:%S")}
    t0 = time.monotonic()
    _, finished = train_density(config, args.out, resume=args.resume, overwrite=not args.resume)
    meta.update(train_wall_s=round(time.monotonic() - t0, 1), finished=finished,
                load_avg_after=load_average(), end=time.strftime("%H:%M:%S"))
    write_json(Path(args.out) / "curve_train.json", meta)
    print(json.dumps(meta))
    return 0


# -- score ---------------------------------------------------------------------------------------

def _trained_from(state: dict) -> TrainedDensity:
    config = DensityConfig.from_dict(state["config"])
    model = build_model(config, int(state["box"]), int(state["z_dim"]))
    model.load_state_dict(state["model"])
    model.eval()
    return TrainedDensity(model, config, int(state["box"]), float(state["apix"]),
                          float(state["f_std"]), int(state["z_dim"]))


def _figures(figs: dict) -> dict:
    keep = ("au_fsc", "het_carried", "mean_map_corr", "consensus_au_fsc", "gt_mean_au_fsc")
    return {k: round(float(figs[k]), 4) for k in keep if k in figs}


def _nearest(paths: list[Path], images: list[int], wanted: list[int]) -> list[Path]:
    """The checkpoint nearest each wanted images-seen count, if within 10 % of it."""
    picked = set()
    for w in wanted:
        i = int(np.argmin([abs(i - w) for i in images])) if images else None
        if i is not None and abs(images[i] - w) <= 0.1 * w:
            picked.add(i)
    return [paths[i] for i in sorted(picked)]


def score(args) -> int:
    """Score the run's checkpoints not in ``RUN/curve.json`` yet (or those nearest ``--at``)."""
    data = load_bench_data(args.data)
    run = Path(args.run)
    rows, pick = map_rows(data.n, None, args.n_maps, args.map_seed)
    frame = data.frame[rows][pick]
    path = run / CURVE
    done = json.loads(path.read_text()) if path.is_file() else []
    seen = {(r["images_seen"], r["n_maps"]) for r in done}
    paths = list_checkpoints(run)[:-1] if args.skip_newest else list_checkpoints(run)
    states = {}
    for p in paths:
        s = torch.load(p, map_location="cpu", weights_only=True)
        states[p] = int(s["images_seen"])
    if args.at:
        paths = _nearest(paths, [states[p] for p in paths], args.at)
    for p in paths:
        if (states[p], args.n_maps) in seen:
            continue
        load0, t0 = load_average(), time.monotonic()
        state = torch.load(p, map_location="cpu", weights_only=True)
        trained = _trained_from(state)
        z = np.load(trained.config.z_path).astype(np.float32)[rows][pick]
        renderer = renderer_for(trained)
        with torch.no_grad():
            maps = np.stack([renderer.volume(zi) for zi in z])
        figs = score_particle_maps(maps, data, frame, args.het_resolution)
        row = {"checkpoint": p.name, "images_seen": states[p], "step": int(state["step"]),
               "epochs": round(states[p] / data.n, 3), "hidden": trained.config.hidden,
               "n_maps": args.n_maps, **_figures(figs),
               "score_s": round(time.monotonic() - t0, 1), "load_avg_before": load0,
               "load_avg_after": load_average()}
        done.append(row)
        done.sort(key=lambda r: (r["n_maps"], r["images_seen"]))
        write_json(path, done)
        print(json.dumps(row), flush=True)
    return 0


# -- frames --------------------------------------------------------------------------------------

def frame_groups(frame: np.ndarray, groups: int) -> np.ndarray:
    """``(N,)`` group index of each particle: ``groups`` equal-width bins over the frame range."""
    lo, hi = int(frame.min()), int(frame.max())
    return np.minimum((frame - lo) * groups // (hi - lo + 1), groups - 1)


def latent_groups(z: np.ndarray, groups: int) -> np.ndarray:
    """``(N,)`` group index of each particle: ``groups`` equal-count bins of the first principal
    component of its latent ``z`` (N, zdim), the ordering a method's own latent gives."""
    pc1 = fit_pca(z).scores[:, 0]
    return np.minimum(np.argsort(np.argsort(pc1)) * groups // len(pc1), groups - 1)


def frames(args) -> int:
    """Maps reconstructed from the particles of each true-frame group (or, with ``--by-z``, of
    each bin of the latent's first PC), scored like a method's."""
    data = load_bench_data(args.data)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    load0, t0 = load_average(), time.monotonic()
    meta = read_particles(data.star)
    ds = ParticleDataset(meta, box=meta.box, max_cache_bytes=0)
    group = (latent_groups(np.load(args.by_z), args.groups) if args.by_z
             else frame_groups(data.frame, args.groups))
    volumes = []
    for g in range(args.groups):
        rows = np.flatnonzero(group == g)
        bp = Backprojector(ds.box, ds.apix)
        for start in range(0, len(rows), 256):
            b = ds.batch(rows[start:start + 256])
            bp.add(b.images, b.rotations, b.shifts_px, b.ctf)
        volumes.append(bp.volume(args.wiener).numpy())
        print(f"group {g}: {len(rows)} particles, frames {data.frame[rows].min()}-"
              f"{data.frame[rows].max()}", flush=True)
    volumes = np.stack(volumes)
    np.save(out / "group_maps.npy", volumes)
    result = {"data": str(data.root), "groups": args.groups, "wiener_fraction": args.wiener,
              "grouped_by": f"PC1 of {args.by_z}" if args.by_z else "true frame",
              "group_sizes": np.bincount(group, minlength=args.groups).tolist(), "rows": []}
    for n_maps in args.n_maps_list:
        rows, pick = map_rows(data.n, None, n_maps, args.map_seed)
        maps = volumes[group[rows][pick]]
        figs = score_particle_maps(maps, data, data.frame[rows][pick], args.het_resolution)
        result["rows"].append({"n_maps": n_maps, **_figures(figs)})
    result.update(wall_s=round(time.monotonic() - t0, 1), load_avg_before=load0,
                  load_avg_after=load_average())
    write_json(out / FRAMES, result)
    print(json.dumps(result))
    return 0


# -- table ---------------------------------------------------------------------------------------

def table(args) -> int:
    lines = ["| width | lr | images seen | epochs | maps | AU-FSC | het. carried | score s | load |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for run in args.runs:
        path = Path(run) / CURVE
        if not path.is_file():
            continue
        lr = json.loads((Path(run) / "config.json").read_text())["lr"]
        for r in json.loads(path.read_text()):
            lines.append(f"| {r['hidden']} | {lr:g} | {r['images_seen']:,} | {r['epochs']:g} | "
                         f"{r['n_maps']} | {r['au_fsc']:.3f} | {r['het_carried']:.3f} | "
                         f"{r['score_s']:g} | {r['load_avg_before'][0]:.1f} |")
    if args.frames and (Path(args.frames) / FRAMES).is_file():
        f = json.loads((Path(args.frames) / FRAMES).read_text())
        for r in f["rows"]:
            lines.append(f"| true-frame groups ({f['groups']}) | - | all | - | {r['n_maps']} | "
                         f"{r['au_fsc']:.3f} | {r['het_carried']:.3f} | - | "
                         f"{f['load_avg_before'][0]:.1f} |")
    print("\n".join(lines))
    return 0


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train")
    t.add_argument("--data", type=Path, required=True)
    t.add_argument("--z", type=Path, required=True, help="stage-1 z.npy")
    t.add_argument("--hidden", type=int, required=True)
    t.add_argument("--minutes", type=float, required=True, help="wall time, then a clean stop")
    t.add_argument("--epochs", type=float, default=1000.0, help="longer than the time allows")
    t.add_argument("--checkpoint-s", type=float, default=300.0,
                   help="seconds between checkpoints (one is also written per epoch)")
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--resume", action="store_true", help="continue the run in --out")
    t.add_argument("--extra", default="{}", help="JSON dict of further DensityConfig fields")
    t.add_argument("--out", type=Path, required=True)
    s = sub.add_parser("score")
    s.add_argument("--data", type=Path, required=True)
    s.add_argument("--run", type=Path, required=True)
    s.add_argument("--threads", type=int, default=1)
    s.add_argument("--at", type=int, nargs="*", default=None,
                   help="score only the checkpoints nearest these images-seen counts")
    s.add_argument("--skip-newest", action="store_true",
                   help="leave the newest checkpoint (the run may still be writing it)")
    add_map_args(s)
    f = sub.add_parser("frames")
    f.add_argument("--data", type=Path, required=True)
    f.add_argument("--out", type=Path, required=True)
    f.add_argument("--groups", type=int, default=10)
    f.add_argument("--by-z", default=None,
                   help="group by equal-count bins of this z.npy's first PC instead of the true frame")
    f.add_argument("--wiener", type=float, default=0.05, help="Wiener ε, fraction of mean ΣH²")
    f.add_argument("--n-maps-list", type=int, nargs="+", default=[50, 100])
    f.add_argument("--threads", type=int, default=1)
    add_map_args(f)
    b = sub.add_parser("table")
    b.add_argument("runs", nargs="+")
    b.add_argument("--frames", default=None)
    s.set_defaults(n_maps=50)        # the curve's points: 50 maps each (100 at the end point)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    signal.signal(signal.SIGTERM, signal.default_int_handler)   # a kill stops cleanly
    return {"train": train, "score": score, "frames": frames, "table": table}[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
