"""Stage 2 side by side with the ORIGINAL CryoSTAR on this machine: training images/s of its
``train_density.py`` and of our ``train_density``, same particles, same batch, same threads, in
one run.

Each program trains for ``S1`` and for ``S2`` optimisation steps (four runs, interleaved so that
both see the same machine load); the steady-state cost of a step is the difference of the two
runs divided by ``S2 - S1``, so start-up (imports, data loading, the Fourier normalisation
estimate) cancels.  Reported per wall second and per CPU second of the process (user + sys of
the child, all threads; on a shared machine the CPU-second figure is the speed of idle cores).

The original runs from ``--peer-src`` with ``--peer-python`` (its own environment; see
../shared/docs/data-and-peers.md §3 for the CPU workarounds), with its ``density_configs/1ake.py``
overridden by: the data, white particles as they are, ``ctf="v2"``, f_mu/f_std estimated,
batch ``--batch``, one CPU device, fp32 (``precision="32"``), no loader workers, ``max_steps``.
Ours runs with its defaults (``precision="auto"``: bf16 MLP on CPUs with native bf16) unless
``--precision`` is given.  Latents: random ``(N, 8)`` (speed does not depend on them).

    python benchmarks/density_side_by_side.py --peer-src <original cryostar checkout> \\
        --peer-python <original cryostar venv>/bin/python --data bench_data/adk64 \\
        --threads 1 --out bench_out/density_side_by_side

Writes ``OUT/density_side_by_side.json`` and prints a table.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

CONFIG = '''# written by benchmarks/density_side_by_side.py
_base_ = {base!r}
dataset_attr = dict(dataset_dir={data!r}, starfile_path={star!r}, apix={apix!r},
                    side_shape={box!r}, f_mu=None, f_std=None)
data_process = dict(down_side_shape={box!r})
data_loader = dict(train_batch_per_gpu={batch!r}, val_batch_per_gpu=64, workers_per_gpu=0)
model = dict(ctf="v2")
trainer = dict(max_steps={steps!r}, max_epochs=10**6, devices=1, precision="32",
               num_sanity_val_steps=0, val_check_interval=None, check_val_every_n_epoch=10**6)
'''

OURS = '''import sys
from cryostar_engine.density import DensityConfig, train_density
cfg = DensityConfig(particles=sys.argv[1], z_path=sys.argv[2], batch=int(sys.argv[4]),
                    epochs=1000, device="cpu", threads=int(sys.argv[5]), precision=sys.argv[6],
                    debug_stop_after_steps=int(sys.argv[7]),
                    compile="on" if sys.argv[8] == "1" else "off")
train_density(cfg, sys.argv[3], overwrite=True)
'''


def _env(threads: int) -> dict:
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[k] = str(threads)
    return env


def timed(cmd, cwd: Path, log: Path, env: dict) -> dict:
    """Run ``cmd``; return its wall and CPU seconds (user + sys of the waited-for child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.run([str(c) for c in cmd], cwd=cwd, stdout=f, stderr=subprocess.STDOUT,
                              env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} … failed (exit {proc.returncode}); see {log}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "load": os.getloadavg()[0]}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--peer-src", type=Path, required=True, help="checkout of bytedance/cryostar")
    p.add_argument("--peer-python", type=Path, required=True, help="python of its environment")
    p.add_argument("--data", type=Path, required=True,
                   help="folder with particles.star (+ stack) and settings.json (apix, box)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, nargs=2, default=[2, 10], metavar=("S1", "S2"))
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                   help="ours (the original runs in fp32)")
    p.add_argument("--compile", action="store_true", help="ours with DensityConfig.compile "
                   "(its compilation is start-up, which cancels in the difference)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    a = parse_args(argv)
    out = a.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    settings = json.loads((a.data / "settings.json").read_text())["config"]
    star = (a.data / "particles.star").resolve()
    n = _count_particles(star)
    z = out / "z.npy"
    np.save(z, np.random.default_rng(0).standard_normal((n, 8)).astype(np.float32))
    env, runs = _env(a.threads), {"original": {}, "ours": {}}
    if a.compile:      # fill the compiler's cache first, so that both timed runs find it warm
        timed([sys.executable, "-c", OURS, star, z, out / "ours_warmup", a.batch, a.threads,
               a.precision, 1, 1], REPO, out / "ours_warmup.log", env)
    for steps in a.steps:
        cfg = out / f"original_{steps}.py"
        cfg.write_text(CONFIG.format(
            base=str(a.peer_src.resolve() / "projects/star/density_configs/1ake.py"),
            data=str(a.data.resolve()), star=str(star), apix=settings["apix"],
            box=settings["box"], batch=a.batch, steps=steps))
        cwd = out / f"original_{steps}"
        cwd.mkdir(exist_ok=True)
        runs["original"][steps] = timed(
            [a.peer_python, a.peer_src.resolve() / "projects/star/train_density.py", cfg,
             "--cfg-options", f"extra_input_data_attr.given_z={z}"], cwd,
            out / f"original_{steps}.log", env)
        print(f"original, {steps} steps: {runs['original'][steps]}", flush=True)
        runs["ours"][steps] = timed(
            [sys.executable, "-c", OURS, star, z, out / f"ours_{steps}", a.batch, a.threads,
             a.precision, steps, int(a.compile)], REPO, out / f"ours_{steps}.log", env)
        print(f"ours, {steps} steps: {runs['ours'][steps]}", flush=True)
    s1, s2 = a.steps
    rates = {}
    for name, r in runs.items():
        images = (s2 - s1) * a.batch
        rates[name] = {"images_per_s": images / (r[s2]["wall_s"] - r[s1]["wall_s"]),
                       "images_per_cpu_s": images / (r[s2]["cpu_s"] - r[s1]["cpu_s"])}
    ratio = {k: rates["ours"][k] / rates["original"][k] for k in rates["ours"]}
    result = {"data": str(a.data), "n_particles": n, "box": settings["box"],
              "apix": settings["apix"], "batch": a.batch, "threads": a.threads,
              "steps": a.steps, "ours_precision": a.precision, "ours_compile": a.compile,
              "runs": runs, "rates": rates,
              "ratio_ours_over_original": ratio, "cpu": _cpu_name(),
              "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}
    (out / "density_side_by_side.json").write_text(json.dumps(result, indent=2))
    print(f"{'':10s} {'img/s (wall)':>13s} {'img/CPU-s':>10s}")
    for name in ("original", "ours"):
        print(f"{name:10s} {rates[name]['images_per_s']:13.2f} {rates[name]['images_per_cpu_s']:10.2f}")
    print(f"{'ratio':10s} {ratio['images_per_s']:13.2f} {ratio['images_per_cpu_s']:10.2f}")
    print(f"-> {out / 'density_side_by_side.json'}")
    return 0


def _count_particles(star: Path) -> int:
    from cryostar_engine.io import read_particles
    return len(read_particles(star))


def _cpu_name() -> str:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return ""


if __name__ == "__main__":
    raise SystemExit(main())
