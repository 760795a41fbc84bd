"""Side-by-side benchmark: the ORIGINAL CryoSTAR's atom stage on a simulated AdK set.

Runs an existing installation of ``bytedance/cryostar`` (this script neither builds nor
installs it, and imports none of its code) for a fixed wall time, then scores its output
against the ground truth with ``benchmarks/metrics.py``:

* from its ``z.npy``: |Spearman ρ| of z's best PC with the true frame, 10-NN R²;
* from every particle's decoded structure: mean Cα RMSD to the true frame (no superposition)
  and its ratio to the reference model's.  The original only writes PCA/k-means structures, so
  every particle's z is decoded with its own decoder by a small helper that lives outside this
  repository (it imports the original's code), run with the original's python:
  ``--decode-script`` (default: ``cryostar_decode.py`` next to ``--peer-src``).

Config: the original's ``projects/star/atom_configs/1ake.py`` with the data, the reference,
``model.ctf`` (v2: astigmatic), the 6 Å low-pass of the atom loss, batch 64, one CPU device,
fp32 and no loader workers, and for nucleotides the restraint cut-offs of the original's own
complex configs (15 Å; a protein-only run ignores them); the training stops after
``--minutes`` (Lightning ``max_time``, counted from the start of the main fit, i.e. after the
original's reference init) and then evaluates once.  Protein (Cα) and RNA (C1′) beads are also
scored apart when the set has both.  Particles are given as they are: the original never inverts, and expects
white (RELION-extracted) particles.

    python benchmarks/peer_cryostar.py --peer-src <original cryostar checkout> \\
        --peer-python <original cryostar venv>/bin/python --data bench_data/adk64 \\
        --minutes 20 --out bench_out/cryostar_peer

Writes ``OUT/peer_cryostar.json`` and prints a table.
"""
from __future__ import annotations

import argparse
import re
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import metrics as bm  # noqa: E402
from peer_common import (check_ok, children_cpu_s,  # noqa: E402
                         children_peak_rss_gb, load_average, load_bench_data,
                         run_logged, thread_env, truth_and_reference_ca, write_json)

CONFIG_TEMPLATE = '''# written by benchmarks/peer_cryostar.py
_base_ = {base!r}
dataset_attr = dict(dataset_dir={data!r}, starfile_path={star!r}, apix={apix!r},
                    side_shape={box!r}, ref_pdb_path={ref!r})
data_process = dict(low_pass_bandwidth={lowpass!r})
data_loader = dict(train_batch_per_gpu={batch!r}, val_batch_per_gpu=128, workers_per_gpu=0)
model = dict(ctf={ctf!r})
seed = {seed!r}
loss = dict(nt_intra_chain_cutoff=15., nt_inter_chain_cutoff=15., nt_intra_chain_res_bound=None)
trainer = dict(max_steps=10**9, max_time={max_time!r}, devices=1, precision="32",
               num_sanity_val_steps=0, val_check_interval=10**9, check_val_every_n_epoch=None)
'''

LOG_TIME = re.compile(r"^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) - cryostar - INFO - (.*)$")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--peer-src", type=Path, required=True, help="checkout of bytedance/cryostar")
    p.add_argument("--peer-python", type=Path, required=True, help="python of its environment")
    p.add_argument("--data", type=Path, required=True, help="simulated set (simulate_adk.py)")
    p.add_argument("--minutes", type=float, required=True, help="wall time of the main fit")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--ref", type=Path, default=None,
                   help="reference model (default: DATA/ref_frame048.pdb)")
    p.add_argument("--gt-ca", type=Path, default=None,
                   help="AdK-numbered Cα path (default: the set's gt_ca.npy, else the bundled one)")
    p.add_argument("--decode-script", type=Path, default=None,
                   help="helper decoding every z (default: PEER_SRC/../cryostar_decode.py)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lowpass", type=float, default=6.0, help="atom-loss low-pass, Å")
    p.add_argument("--ctf", default="v2", choices=["v1", "v2"])
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--cfg-options", nargs="*", default=[],
                   help="extra key=value overrides passed to the original")
    return p.parse_args(argv)


def write_config(args, data, ref: Path, path: Path) -> None:
    total = int(round(args.minutes * 60))
    max_time = f"00:{total // 3600:02d}:{total % 3600 // 60:02d}:{total % 60:02d}"
    text = CONFIG_TEMPLATE.format(
        base=str(args.peer_src.resolve() / "projects/star/atom_configs/1ake.py"),
        data=str(data.root), star=str(data.star), apix=data.apix, box=data.box, ref=str(ref),
        lowpass=args.lowpass, batch=args.batch, ctf=args.ctf, seed=args.seed, max_time=max_time)
    path.write_text(text)


def find_eval_dir(run_cwd: Path) -> tuple[Path, Path]:
    """(work dir, its last evaluation folder holding z.npy and ckpt.pt)."""
    work = sorted((run_cwd / "work_dirs").glob("*"))
    if len(work) != 1:
        raise SystemExit(f"{run_cwd}/work_dirs: expected one run folder, found {len(work)}")
    evals = sorted(d for d in work[0].glob("[0-9][0-9][0-9][0-9]_[0-9]*")
                   if (d / "z.npy").is_file() and (d / "ckpt.pt").is_file())
    if not evals:
        raise SystemExit(f"{work[0]}: no evaluation with z.npy and ckpt.pt")
    return work[0], max(evals, key=lambda d: int(d.name.split("_")[1]))


def log_timings(log_file: Path) -> dict:
    """Seconds of the reference init and of the main fit, from the original's log stamps."""
    stamps = []
    for line in log_file.read_text().splitlines():
        m = LOG_TIME.match(line)
        if m:
            stamps.append((datetime.strptime(m.group(1), "%Y/%m/%d %H:%M:%S"), m.group(2)))
    first = stamps[0][0] if stamps else None

    def when(text, last=False):
        hits = [t for t, msg in stamps if text in msg]
        return (hits[-1] if last else hits[0]) if hits else None

    init_end, fit_start = when("Init finished"), when("load rank 0 model weights")
    fit_end = when("start validation", last=True)
    out = {}
    if first and init_end:
        out["startup_ref_init_s"] = (init_end - first).total_seconds()
    if fit_start and fit_end:
        out["fit_s"] = (fit_end - fit_start).total_seconds()
    return out


def score(data, decoded: Path, z: np.ndarray, ref: Path) -> dict:
    lat = bm.latent_figures(z, data.frame)
    dec = np.load(decoded)
    truth, ref_ca = truth_and_reference_ca(data, ref, dec["chain_id"], dec["res_id"])
    ca = bm.ca_rmsd_summary(dec["coords"], data.frame, truth, ref_ca)
    out = {"abs_spearman_best_pc": lat.rho, "best_pc": lat.best_pc, "knn_r2": lat.knn_r2,
           "ca_rmsd_A": ca["rmsd"], "reference_ca_rmsd_A": ca["ref_rmsd"],
           "rmsd_ratio": ca["ratio"], "n_beads": ca["n_residues"]}
    if "atom_name" in dec.files:          # protein (Cα) and RNA (C1′) beads apart, as for ours
        kinds = bm.bead_kinds(dec["atom_name"] == "C1'")
        if len(set(kinds)) > 1:
            out["rmsd_by_kind"] = bm.rmsd_by_group(dec["coords"], data.frame, truth, ref_ca, kinds)
    return out


def print_table(r: dict) -> None:
    print(bm.format_table({
        f"steps (batch {r['batch']})": r["steps"], "img/s (main fit)": r["images_per_s"],
        "cores used (training)": r["train_cores_used"],
        "|rho| best PC vs frame": r["abs_spearman_best_pc"], "10-NN R2 (5-fold)": r["knn_r2"],
        "Ca RMSD decoded (A)": r["ca_rmsd_A"], "Ca RMSD reference (A)": r["reference_ca_rmsd_A"],
        "ratio": r["rmsd_ratio"],
        **{f"{kind} RMSD / ref / ratio": f"{d['rmsd']:.2f} / {d['ref_rmsd']:.2f} / {d['ratio']:.3f}"
           for kind, d in r.get("rmsd_by_kind", {}).items()},
        "total wall (s)": r["total_wall_s"],
        "load avg before/after": f"{r['load_avg_before'][0]} / {r['load_avg_after'][0]}"}))


def main(argv=None) -> int:
    args = parse_args(argv)
    data = load_bench_data(args.data, args.gt_ca)
    ref = (args.ref or data.root / "ref_frame048.pdb").resolve()
    decode = args.decode_script or args.peer_src.resolve().parent / "cryostar_decode.py"
    if not decode.is_file():
        raise SystemExit(f"{decode}: decode helper not found (see --decode-script)")
    out = args.out.resolve()
    run_cwd = out / "run"
    if run_cwd.exists():
        raise SystemExit(f"{run_cwd} exists: give a fresh --out")
    run_cwd.mkdir(parents=True)
    config, log = out / "atom_config.py", out / "atom.log"
    write_config(args, data, ref, config)
    env = thread_env(args.threads)
    load_before = load_average()

    t0 = time.monotonic()
    script = args.peer_src.resolve() / "projects/star/train_atom.py"
    cmd = [args.peer_python, script, config]
    if args.cfg_options:
        cmd += ["--cfg-options", *args.cfg_options]
    train = run_logged(cmd, run_cwd, log, env)
    check_ok(train, "the original's train_atom.py", log)
    train_cpu_s = children_cpu_s()
    work, eval_dir = find_eval_dir(run_cwd)
    decoded = out / "decoded.npz"
    dec = run_logged([args.peer_python, decode, "--peer-src", args.peer_src.resolve(),
                      "--run-dir", work, "--eval-dir", eval_dir, "--out", decoded],
                     out, out / "decode.log", env)
    check_ok(dec, "decoding", out / "decode.log")
    total_s = time.monotonic() - t0

    steps = int(eval_dir.name.split("_")[1])
    timings = log_timings(next(work.glob("2*.log")))
    fit_s = timings.get("fit_s")
    figures = score(data, decoded, np.load(eval_dir / "z.npy"), ref)
    result = {
        "peer": "bytedance/cryostar (original), atom stage",
        "data": str(data.root), "n_particles": data.n, "box": data.box, "apix": data.apix,
        "reference": str(ref), "minutes": args.minutes, "threads": args.threads,
        "batch": args.batch, "ctf": args.ctf, "lowpass_A": args.lowpass,
        "cfg_options": args.cfg_options, "steps": steps, "images_seen": steps * args.batch,
        "images_per_s": round(steps * args.batch / fit_s, 1) if fit_s else None,
        **timings, "train_wall_s": train["wall_s"], "total_wall_s": round(total_s, 1),
        "peer_peak_rss_GB": children_peak_rss_gb(), "train_cpu_s": train_cpu_s,
        "train_cores_used": round(train_cpu_s / train["wall_s"], 2),
        "load_avg_before": load_before, "load_avg_after": load_average(),
        "eval_dir": str(eval_dir), **figures,
    }
    write_json(out / "peer_cryostar.json", result)
    print_table(result)
    print(f"-> {out / 'peer_cryostar.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
