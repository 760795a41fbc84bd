"""Stage 1 on a particle stack larger than the memory cap: streamed from a memory-mapped file, with
constant memory, at the cached run's speed, writing z for every particle (issue 17, part 4).

    OMP_NUM_THREADS=1 python benchmarks/stream_bench.py --n 200000 --box 128 --steps 60 \\
        --work bench_out/stream --out bench_out/stream/stream_bench.json

1. A synthetic stack (made once, reused): ``--n`` particles of ``--box`` px in one float16 MRC
   stack (mode 12, 2 bytes a pixel; 200,000 × 128² = 6.6 GB) with a RELION 3.1 star file.  The
   images are projections of the AdK reference beads (``data/adk_models``) at ``--pool`` random
   poses plus Gaussian noise (SNR 0.1), every particle with its own noise; poses and defocus
   are in the star file.  Speed and memory do not depend on the content.
2. ``cryostar-engine train-atom`` twice, same settings (``--threads 1``, batch 64, box and
   low-pass defaults, ``--steps`` steps of training after the reference initialisation):
   * cached: a star file of the first ``--cached-n`` particles of the same stack, which fit in
     the default cache (kept in memory as float32);
   * streamed: all ``--n`` particles with ``--max-cache-gb`` below the stack's size, so the
     images are read from the memory-mapped stack for every batch (read ahead in a thread);
     at the end the run encodes every particle and writes ``z.npy``.
3. While each run goes, its memory is sampled every 0.5 s from ``/proc/PID/status``: the
   anonymous resident memory (``RssAnon``: what the process itself holds) and the file pages of
   the mapped stack (``RssFile``: page cache the kernel reclaims at will).  Constant memory =
   ``RssAnon`` flat over the streamed run, independent of the stack's size.

Reported: training images/s of each run (timed between the trainer's flushes of ``losses.csv``,
every 20 steps, so neither the start nor the final encoding counts), the wall time of the final
encoding of every particle (from the last flush to "wrote z.npy"), ``RssAnon`` peak and its value at 25/50/75/100 %
of the run, ``z.npy``'s shape and finiteness.  The load average is recorded (shared machine).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def make_stack(work: Path, n: int, box: int, apix: float, pool: int, seed: int = 0) -> Path:
    """Write ``work/particles.mrcs`` (float16) and ``work/particles.star`` unless present."""
    import mrcfile
    import pandas as pd
    import starfile
    import torch
    from cryostar_engine.geometry.poses import euler_to_matrix, rotate_points
    from cryostar_engine.io.pdb import read_beads
    from cryostar_engine.physics.render import project_beads

    star = work / "particles.star"
    if star.is_file():
        return star
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    beads = read_beads(REPO / "data" / "adk_models" / "adk_ref_frame048.pdb")
    euler = np.stack([rng.uniform(-180, 180, pool), np.degrees(np.arccos(rng.uniform(-1, 1, pool))),
                      rng.uniform(-180, 180, pool)], 1)
    rot = torch.as_tensor(euler_to_matrix(euler), dtype=torch.float32)
    xyz = torch.as_tensor(beads.coords_A - beads.coords_A.mean(0), dtype=torch.float32)
    views = rotate_points(xyz.expand(pool, -1, -1), rot)
    clean = project_beads(views, torch.as_tensor(beads.amplitudes, dtype=torch.float32), 2.0, box, apix).numpy()
    clean /= clean.std(axis=(1, 2), keepdims=True)
    noise_sd = np.float32(np.sqrt(1 / 0.1))
    path = work / "particles.mrcs"
    t0 = time.perf_counter()
    with mrcfile.new_mmap(path, shape=(n, box, box), mrc_mode=12, overwrite=True) as m:
        m.voxel_size = apix
        for start in range(0, n, 2048):
            k = min(2048, n - start)
            chunk = clean[np.arange(start, start + k) % pool] + noise_sd * rng.standard_normal((k, box, box), np.float32)
            m.data[start:start + k] = chunk.astype(np.float16)
    which = np.arange(n) % pool
    defocus = rng.uniform(1e4, 2.5e4, n)
    optics = pd.DataFrame({"rlnOpticsGroup": [1], "rlnOpticsGroupName": ["opticsGroup1"],
                           "rlnAmplitudeContrast": [0.1], "rlnSphericalAberration": [2.7],
                           "rlnVoltage": [300.0], "rlnImagePixelSize": [apix], "rlnImageSize": [box],
                           "rlnImageDimensionality": [2]})
    parts = pd.DataFrame({"rlnImageName": [f"{i:06d}@particles.mrcs" for i in range(1, n + 1)],
                          "rlnAngleRot": euler[which, 0], "rlnAngleTilt": euler[which, 1],
                          "rlnAnglePsi": euler[which, 2], "rlnOriginXAngst": np.zeros(n),
                          "rlnOriginYAngst": np.zeros(n), "rlnDefocusU": defocus,
                          "rlnDefocusV": defocus - 200, "rlnDefocusAngle": np.full(n, 30.0),
                          "rlnPhaseShift": np.zeros(n), "rlnOpticsGroup": np.ones(n, int)})
    tmp = work / "particles.star.tmp"
    starfile.write({"optics": optics, "particles": parts}, tmp, float_format="%.6f")
    os.replace(tmp, star)
    print(f"wrote {path} ({path.stat().st_size / 1e9:.2f} GB, {n} × {box}² float16) in "
          f"{time.perf_counter() - t0:.0f} s", flush=True)
    return star


def subset_star(star: Path, n: int) -> Path:
    """A star file of the first ``n`` particles of ``star`` (same stack)."""
    import starfile
    out = star.with_name(f"particles_first{n}.star")
    if not out.is_file():
        s = starfile.read(star)
        starfile.write({"optics": s["optics"], "particles": s["particles"].iloc[:n]}, out,
                       float_format="%.6f")
    return out


def _status_kb(pid: int) -> dict:
    out = {}
    try:
        for line in open(f"/proc/{pid}/status"):
            key = line.split(":")[0]
            if key in ("VmRSS", "RssAnon", "RssFile"):
                out[key] = int(line.split()[1])
    except (OSError, ValueError):
        pass
    return out


def run_train(star: Path, out: Path, steps: int, n: int, batch: int, max_cache_gb: float | None,
              threads: int) -> dict:
    """One ``train-atom`` run of ``steps`` training steps; its log figures and memory samples."""
    epochs = steps * batch / n
    cmd = [sys.executable, "-m", "cryostar_engine", "train-atom", "--particles", str(star),
           "--model", str(REPO / "data" / "adk_models" / "adk_ref_frame048.pdb"),
           "--out", str(out), "--overwrite", "--device", "cpu", "--threads", str(threads),
           "--batch", str(batch), "--epochs", f"{epochs:.8g}", "--eval-every-epochs", "1000"]
    if max_cache_gb is not None:
        cmd += ["--max-cache-gb", str(max_cache_gb)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(REPO)}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    samples, lines = [], []

    flushes = []                    # (time, steps in losses.csv) each time the trainer flushes it

    def sample():
        losses = out / "losses.csv"
        while proc.poll() is None:
            s = _status_kb(proc.pid)
            if s:
                samples.append((time.perf_counter() - t0, s))
            try:
                rows = losses.read_text().count("\n") - 1
            except OSError:
                rows = -1
            if rows > 0 and (not flushes or rows != flushes[-1][1]):
                flushes.append((time.perf_counter() - t0, rows))
            time.sleep(0.25)
    th = threading.Thread(target=sample, daemon=True)
    th.start()
    marks = {}
    for line in proc.stdout:
        lines.append(line.rstrip())
        now = time.perf_counter() - t0
        if "reference initialisation" in line:
            marks["init_done_s"] = now
        if re.search(r"finished \d+ steps", line):
            marks["train_done_s"] = now
        if "wrote z.npy" in line:
            marks["z_written_s"] = now
    proc.wait()
    th.join()
    wall = time.perf_counter() - t0
    text = "\n".join(lines)
    if proc.returncode != 0:
        raise SystemExit(f"train-atom failed ({proc.returncode}):\n" + "\n".join(lines[-20:]))
    m = re.search(r"finished (\d+) steps in ([\d.]+) s \((\d+) images/s\)", text)
    # the training loop's own rate: between the first and the last flush of losses.csv before
    # the final one (every 20 steps; the final flush is followed by encoding every particle)
    timed = flushes[:-1] if len(flushes) > 2 else flushes
    loop_rate = ((timed[-1][1] - timed[0][1]) * batch / (timed[-1][0] - timed[0][0])
                 if len(timed) >= 2 and timed[-1][0] > timed[0][0] else float("nan"))
    final_flush = flushes[-1][0] if flushes else marks.get("train_done_s", wall)
    z = np.load(out / "z.npy")
    work_box = int(re.search(r"box (\d+) px", text).group(1))
    anon = np.array([s["RssAnon"] for _, s in samples if "RssAnon" in s]) / 1024
    files = np.array([s["RssFile"] for _, s in samples if "RssFile" in s]) / 1024
    times = np.array([t for t, s in samples if "RssAnon" in s])
    train = (marks.get("init_done_s", 0), final_flush)
    in_train = (times >= train[0]) & (times <= train[1])

    def at(frac):        # RssAnon at a fraction of the training loop
        t = train[0] + frac * (train[1] - train[0])
        return float(anon[np.argmin(abs(times - t))]) if len(anon) else float("nan")
    return {"star": str(star), "particles": n, "steps": int(m.group(1)), "train_s": float(m.group(2)),
            "trainer_images_per_s": float(m.group(3)), "images_per_s": loop_rate,
            "timed_steps": timed[-1][1] - timed[0][1] if len(timed) >= 2 else 0,
            "wall_s": wall, "encode_all_s": marks.get("z_written_s", wall) - final_flush,
            "z_shape": list(z.shape), "z_finite": bool(np.isfinite(z).all()),
            "working_box": work_box, "cache_needed_GB": n * work_box ** 2 * 4 / 1e9,
            "cache_cap_GB": 4.0 if max_cache_gb is None else max_cache_gb,
            # ParticleDataset keeps the images (float32 on the CPU) in memory when they fit the cap
            "streamed": n * work_box ** 2 * 4 > (4.0 if max_cache_gb is None else max_cache_gb) * 1e9,
            "rss_anon_peak_MB": float(anon.max()) if len(anon) else None,
            "rss_anon_train_MB": {f"{int(f * 100)}%": at(f) for f in (0.25, 0.5, 0.75, 1.0)},
            "rss_anon_train_range_MB": [float(anon[in_train].min()), float(anon[in_train].max())]
            if in_train.any() else None,
            "rss_file_peak_MB": float(files.max()) if len(files) else None,
            "rss_anon_peak_by_phase_MB": {
                name: float(anon[(times >= lo) & (times <= hi)].max())
                for name, (lo, hi) in {"setup+init": (0, train[0]), "training": train,
                                       "encode+end": (train[1], wall)}.items()
                if ((times >= lo) & (times <= hi)).any()},
            "rss_samples_MB": [(round(t, 1), round(s.get("RssAnon", 0) / 1024), round(s.get("RssFile", 0) / 1024))
                               for t, s in samples[::max(1, len(samples) // 400)]],
            "log_tail": lines[-6:]}


def _crop_cpu_ms(raw: int, box: int, n: int = 128) -> float:
    """Measured CPU-ms per image of what streaming does per particle: gather float16 images from
    a stack, convert to float32, Fourier-crop ``raw`` → ``box`` (one thread)."""
    import torch
    from cryostar_engine.physics.fourier import fourier_crop
    stack = np.random.default_rng(0).standard_normal((n, raw, raw), np.float32).astype(np.float16)
    fourier_crop(torch.from_numpy(stack[:8].astype(np.float32)), box)
    c = time.process_time()
    for _ in range(3):
        fourier_crop(torch.from_numpy(stack[np.arange(n)].astype(np.float32)), box)
    return 1e3 * (time.process_time() - c) / (3 * n)


def paper(a) -> dict:
    """Memory and time of stage 1 on 10⁶ particles of 256 px on 1, 4 and 8 GPUs (torchrun),
    derived from measured CPU costs and the engine's memory estimate; prints the table."""
    import torch
    from cryostar_engine.atom.memory import estimate_step_bytes
    from cryostar_engine.atom.networks import AtomVAE
    torch.set_num_threads(1)
    rows = json.loads(Path(a.throughput).read_text())["rows"]
    cpu_rate = {r["beads"]: r["images_per_cpu_s"] for r in rows if r["kind"] == "stage1" and r["box"] == 128}
    n_part, raw, beads, images = 1_000_000, 256, a.paper_beads, 20 * 1_000_000   # 20 epochs (default)
    gpu_rate = a.gpu_rate * cpu_rate[beads] / cpu_rate[2000]      # bead scaling measured on the CPU
    by_box = {r["box"]: r["images_per_cpu_s"] for r in json.loads(Path(a.throughput_boxes).read_text())["rows"]
              if r["kind"] == "stage1" and r["beads"] == 2000}
    by_box[128] = cpu_rate[2000]
    box_ratio = {b: by_box[b] / by_box[128] for b in by_box}     # images/s at box b ÷ at 128
    out = {"assumptions": {"particles": n_part, "raw_box": raw, "beads": beads,
                           "images_seen": images, "global_batch": 64,
                           "gpu_rate_2000_beads_128px": a.gpu_rate,
                           "gpu_rate_at_beads": gpu_rate,
                           "scaling_efficiency": {1: 1.0, 4: 0.9, 8: 0.8},
                           "cpu_img_per_cpu_s_128px": cpu_rate,
                           "cpu_rate_ratio_to_128px_2000_beads": box_ratio}, "rows": []}
    print(f"GPU rate assumed {a.gpu_rate:.0f} img/s at 2,000 beads, 128 px → {gpu_rate:.0f} img/s at "
          f"{beads} beads (× the CPU's measured ratio {cpu_rate[beads] / cpu_rate[2000]:.2f})")
    for box in (128, 256):
        crop_ms = _crop_cpu_ms(raw, box) if box != raw else _crop_cpu_ms(raw, raw)
        model = AtomVAE(box, beads, 8, (512, 256, 128, 64, 32), (32, 64, 128, 256, 512),
                        torch.zeros(beads, 3))
        n_params = sum(p.numel() for p in model.parameters())
        cache_gb = n_part * box * box * 2 / 1e9                     # float16 on the GPU
        rate_box = gpu_rate * box_ratio[box]                       # the CPU's measured box scaling
        for gpus in (1, 4, 8):
            eff = out["assumptions"]["scaling_efficiency"][gpus]
            step_gb = estimate_step_bytes(64 // gpus, box, beads, a.paper_pairs, n_params) / 1e9
            stream_rate = gpus * 1e3 / crop_ms                      # one read-ahead thread per rank
            gpu_total = gpus * rate_box * eff
            for mode in ("streamed", "cached"):
                if mode == "cached" and cache_gb + step_gb > 0.9 * 80:
                    continue
                rate = min(gpu_total, stream_rate) if mode == "streamed" else gpu_total
                load_min = 0 if mode == "streamed" else n_part * crop_ms / 1e3 / 60   # every rank in parallel
                encode_min = n_part * crop_ms / 1e3 / 60 if mode == "streamed" else n_part / (10 * rate_box) / 60
                row = {"box": box, "gpus": gpus, "mode": mode, "per_gpu_batch": 64 // gpus,
                       "gpu_memory_GB": round(step_gb + (cache_gb if mode == "cached" else 0), 1),
                       "cache_GB": round(cache_gb, 1) if mode == "cached" else 0,
                       "rate_img_s": round(rate), "bound": "input (crop)" if rate < gpu_total else "GPU",
                       "load_min": round(load_min), "train_h": round(images / rate / 3600, 2),
                       "encode_min": round(encode_min, 1), "crop_cpu_ms": round(crop_ms, 2)}
                out["rows"].append(row)
                print(row, flush=True)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=200_000, help="particles in the streamed stack")
    p.add_argument("--box", type=int, default=128)
    p.add_argument("--apix", type=float, default=1.5)
    p.add_argument("--pool", type=int, default=512, help="distinct clean projections")
    p.add_argument("--cached-n", type=int, default=20_000, help="particles of the cached run")
    p.add_argument("--steps", type=int, default=60, help="training steps of each run (the rate is "
                   "timed between the trainer's flushes of losses.csv, every 20 steps)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--max-cache-gb", type=float, default=1.0, help="the streamed run's cache cap")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--work", default="bench_out/stream")
    p.add_argument("--out", default="bench_out/stream/stream_bench.json")
    p.add_argument("--only", choices=["cached", "streamed"], help="run one of the two")
    p.add_argument("--paper", action="store_true", help="only print the 10⁶-particle projection "
                   "(from --throughput's measured CPU rates and the memory estimate)")
    p.add_argument("--throughput", default="bench_out/h4/throughput_complex_128.json")
    p.add_argument("--throughput-boxes", default="bench_out/h4/throughput_complex_64_256.json",
                   help="measured rates at other boxes (2,000 beads), for the box scaling")
    p.add_argument("--gpu-rate", type=float, default=5000.0, help="assumed images/s of one GPU at "
                   "2,000 beads, 128 px (the issue's H100 target: not measured here)")
    p.add_argument("--paper-beads", type=int, default=5000)
    p.add_argument("--paper-pairs", type=int, default=85_000, help="restraint pairs at --paper-beads")
    a = p.parse_args(argv)
    if a.paper:
        res = paper(a)
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(res, indent=2))
        print(f"wrote {a.out}")
        return
    work = Path(a.work)
    disk = os.statvfs(work.parent if not work.exists() else work)
    need = a.n * a.box * a.box * 2
    print(f"stack {a.n} × {a.box}² float16 = {need / 1e9:.2f} GB; free on disk "
          f"{disk.f_bavail * disk.f_frsize / 1e9:.1f} GB; load average {os.getloadavg()[0]:.2f}", flush=True)
    star = make_stack(work, a.n, a.box, a.apix, a.pool)
    res = {"settings": vars(a), "load_average_start": os.getloadavg(), "stack_GB": need / 1e9,
           "cache_float32_GB": a.n * a.box * a.box * 4 / 1e9}
    if a.only != "streamed":
        res["cached"] = run_train(subset_star(star, a.cached_n), work / "run_cached", a.steps,
                                  a.cached_n, a.batch, None, a.threads)
        print(json.dumps({k: v for k, v in res["cached"].items() if k != "log_tail"}), flush=True)
    if a.only != "cached":
        res["streamed"] = run_train(star, work / "run_streamed", a.steps, a.n, a.batch,
                                    a.max_cache_gb, a.threads)
        print(json.dumps({k: v for k, v in res["streamed"].items() if k != "log_tail"}), flush=True)
    res["load_average_end"] = os.getloadavg()
    if "cached" in res and "streamed" in res:
        c, s = res["cached"], res["streamed"]
        res["streamed_over_cached_speed"] = s["images_per_s"] / c["images_per_s"]
        print(f"images/s cached {c['images_per_s']:.0f}, streamed {s['images_per_s']:.0f} "
              f"({res['streamed_over_cached_speed']:.2f}×); RssAnon peak cached "
              f"{c['rss_anon_peak_MB']:.0f} MB, streamed {s['rss_anon_peak_MB']:.0f} MB; streamed "
              f"run's RssAnon over training {s['rss_anon_train_MB']}; z {s['z_shape']} "
              f"finite={s['z_finite']}; encoding all {s['encode_all_s']:.0f} s", flush=True)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
