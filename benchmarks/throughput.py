"""Throughput of both stages on this machine: images/s and peak memory of a full training step,
and seconds per generated volume.  Prints a table and writes JSON.

    python benchmarks/throughput.py --device cpu --quick --out bench_out/throughput_cpu.json
    python benchmarks/throughput.py --device cuda --out bench_out/throughput_cuda.json

Issue 17 (scale): ``--model complex --en-compare`` times stage 1 on packed protein–RNA complexes
of many chains and shows the elastic network's relaxation before (per-chain loop) and after
(one batched operation) in the same process; rows list the pair counts of each restraint.

    OMP_NUM_THREADS=1 python benchmarks/throughput.py --device cpu --threads 1 --model complex \
        --en-compare --s1-boxes 128 --s1-beads 2000 5000 10000 20000 --s2-boxes --volumes

Default grid: stage 1 at boxes 64/128/256 × 214/2,000/10,000 beads (batch 64), stage 2 at boxes
64/128 (batch 16, the 1024-wide default network), volumes at 128³ and 256³.  ``--quick`` (for
the CPU): stage 1 at box 64 with 214 and 2,000 beads, stage 2 at box 64, a volume at 64³ and
128³.  Any part can be chosen with ``--s1-boxes``, ``--s1-beads``, ``--s2-boxes``,
``--volumes`` (an empty list skips it).  Workloads: ``throughput_cases.py`` (synthetic
particles and bead clouds; speed does not depend on the content).

Timing: ``--warmup`` steps first (allocations, kernel selection, cuDNN/cuFFT plans), then as
many steps as fill ``--seconds`` (at least ``--min-steps``), timed as one block between two
``torch.cuda.synchronize`` calls on a GPU; images/s = steps × batch / time.  Stage-1 rows also
give the engine's memory estimate (``atom/memory.py``, plus the resident particle pool) and, on
a GPU, its ratio to the measured peak.  Peak memory:
``torch.cuda.max_memory_allocated`` on a GPU; on the CPU each case runs in a fresh process and
its peak RSS (``ru_maxrss``) is reported together with the RSS before the case was built (the
interpreter and torch).  The machine's load average is recorded at the start and the end: on a
shared machine, wall-clock rates are only as good as the share of the cores the run got.
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import platform
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))    # tests.test_scale (--en-compare)

TARGETS = {  # issue 7, for one H100; printed next to CUDA figures
    ("stage1", 128): "≥ 5,000 img/s (≤ 5,000 beads)", ("stage2", 128): "≥ 1,000 img/s",
    ("volume", 128): "< 1 s"}


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _configure(device: str, threads: int | None, tf32: bool) -> None:
    from cryostar_engine.train import configure_cpu
    configure_cpu(threads)                 # flush denormals; threads from the machine
    if device.startswith("cuda"):          # the trainers leave TF32 off (torch's default)
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32


def time_steps(step, device, warmup: int, seconds: float, min_steps: int, max_steps: int = 10_000):
    """Wall seconds and process CPU seconds (all threads) per step of ``step()`` in steady
    state, and the number of steps timed."""
    for _ in range(warmup):
        step()
    _sync(device)
    t0 = time.perf_counter()
    step()
    _sync(device)
    one = time.perf_counter() - t0
    n = int(min(max(min_steps, math.ceil(seconds / max(one, 1e-6))), max_steps))
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        step()
    _sync(device)
    return (time.perf_counter() - t0) / n, (time.process_time() - c0) / n, n


def run_case(spec: dict) -> dict:
    """Build and time one case (``spec['kind']``: stage1, stage2 or volume); return its row."""
    import throughput_cases as tc
    device, a = spec["device"], spec["args"]
    _configure(device, a["threads"], a["tf32"])
    base_mb = _rss_mb()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    row = {k: spec[k] for k in ("kind", "box", "beads") if k in spec}
    if spec["kind"] == "volume":
        renderer, make, amp = tc.volume_case(spec["box"], device, a["precision"],
                                             chunk_points=a["chunk"])
        if device.startswith("cuda"):
            make()                                       # warm-up at full size on a GPU
        elif spec["box"] > 32:
            tc.volume_case(32, device, a["precision"])[1]()   # kernels warm, cheaply
        n = a["volume_repeats"]
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(n):
            make()                                       # returns numpy: synchronised
        sec = (time.perf_counter() - t0) / n
        row.update(seconds=sec, cpu_seconds=(time.process_time() - c0) / n, repeats=n,
                   points=len(renderer.grid.flat),
                   precision="bf16" if amp else "fp32")
    else:
        if spec["kind"] == "stage1":
            case = tc.Stage1Case(spec["box"], spec["beads"], a["batch1"], device, a["precision"],
                                 compile=a.get("compile", False), model=a.get("model", "cloud"))
            row.update(case.sizes, batch=a["batch1"], precision="bf16" if case.setup.amp else "fp32",
                       compiled=bool(a.get("compile", False)), model=a.get("model", "cloud"),
                       estimate_MB=case.estimate_bytes() / 2**20)

        else:
            case = tc.Stage2Case(spec["box"], a["batch2"], device, a["precision"])
            row.update(points=case.points, batch=a["batch2"], precision="bf16" if case.setup.amp else "fp32")
        if spec["kind"] == "stage1" and a.get("en_compare"):
            sec, cpu, n = _en_compare(case, device, a, row)
        else:
            sec, cpu, n = time_steps(case.step, device, a["warmup"], a["seconds"], a["min_steps"])
        row.update(ms_per_step=1e3 * sec, images_per_s=row["batch"] / sec, steps=n,
                   cpu_ms_per_step=1e3 * cpu, images_per_cpu_s=row["batch"] / cpu)
    if device.startswith("cuda"):
        row["peak_gpu_MB"] = torch.cuda.max_memory_allocated(device) / 2**20
        if "estimate_MB" in row:
            row["estimate_over_peak"] = row["estimate_MB"] / row["peak_gpu_MB"]
    else:
        row.update(peak_rss_MB=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                   base_rss_MB=base_mb)
    return row


def _count_ops(fn) -> int:
    """Tensor operations (ATen calls, forward and backward; on a GPU each is at least one kernel
    launch) that one call of ``fn`` runs."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Count.n += 1
            return func(*args, **(kwargs or {}))
    with Count():
        fn()
    return Count.n


def _en_compare(case, device, a, row: dict):
    """Before/after issue 17's vectorisation in one process: the full step and the elastic-network
    term alone (forward + backward), timed with the per-chain loop and with the batched
    relaxation alternately (per-chain, batched, per-chain, batched, each ``--seconds``/2) so that
    both see the same machine load.  Adds wall and CPU rates of both paths to ``row``; returns
    the batched path's (wall s, CPU s, steps) per step."""
    sums = {}
    for _ in range(a["warmup"]):
        case.step()
    half = max(a["seconds"] / 2, 0.1)
    for _ in range(2):
        for tag in ("per_chain", "batched"):
            case.use_per_chain_relaxation(tag == "per_chain")
            sec, cpu, n = time_steps(case.step, device, 0, half, a["min_steps"])
            en_sec, en_cpu, _ = time_steps(case.relaxation_only(), device, 1, min(half, 2.0), 5)
            for k, v in {"step_s": sec * n, "step_cpu_s": cpu * n, "steps": n,
                         "en_s": en_sec, "en_cpu_s": en_cpu}.items():
                sums[(tag, k)] = sums.get((tag, k), 0.0) + v
    for tag in ("per_chain", "batched"):
        case.use_per_chain_relaxation(tag == "per_chain")
        row[f"en_ops_{tag}"] = _count_ops(case.relaxation_only())
    case.use_per_chain_relaxation(False)
    batch = a["batch1"]
    for tag in ("per_chain", "batched"):
        n = sums[(tag, "steps")]
        row[f"images_per_s_{tag}"] = batch * n / sums[(tag, "step_s")]
        row[f"images_per_cpu_s_{tag}"] = batch * n / sums[(tag, "step_cpu_s")]
        row[f"en_ms_{tag}"] = 1e3 * sums[(tag, "en_s")] / 2
        row[f"en_cpu_ms_{tag}"] = 1e3 * sums[(tag, "en_cpu_s")] / 2
    n = int(sums[("batched", "steps")])
    return sums[("batched", "step_s")] / n, sums[("batched", "step_cpu_s")] / n, n


def _isolated(spec: dict) -> dict:
    """On the CPU: one fresh process per case (clean peak RSS, no forked thread pools)."""
    if spec["device"].startswith("cuda"):
        return run_case(spec)
    with mp.get_context("spawn").Pool(1, maxtasksperchild=1) as pool:
        return pool.apply(run_case, (spec,))


def machine(device: str, threads: int | None) -> dict:
    info = {"torch": torch.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "cpu": _cpu_name(),
            "cores_available": len(os.sched_getaffinity(0)),
            "threads": threads or len(os.sched_getaffinity(0)), "flush_denormal": True,
            "load_average_start": os.getloadavg()}
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                    gpu_memory_GB=round(props.total_memory / 1e9, 1),
                    cudnn=torch.backends.cudnn.version())
    return info


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def cases(a) -> list[dict]:
    out = [{"kind": "stage1", "box": b, "beads": n} for b in a.s1_boxes for n in a.s1_beads]
    out += [{"kind": "stage2", "box": b} for b in a.s2_boxes]
    out += [{"kind": "volume", "box": b} for b in a.volumes]
    return out


def fmt_row(r: dict, cuda: bool) -> str:
    """One table line; on a GPU the last column is the issue's target, on the CPU the rate per
    CPU-second of the process (all threads: the speed of idle cores on a shared machine)."""
    mem = f"{r['peak_gpu_MB']:9.0f}" if cuda else f"{r['peak_rss_MB'] - r['base_rss_MB']:9.0f}"
    if r["kind"] == "volume":
        extra = TARGETS.get(("volume", r["box"]), "") if cuda else f"{r['cpu_seconds']:9.2f} CPU-s/vol"
        return (f"{'volume':7s} {r['box']:4d}³ {'':>7s} {'':>5s} {r['precision']:>5s} "
                f"{r['seconds']:10.2f} s/vol {'':>9s} {mem}  {extra}")
    extra = TARGETS.get((r["kind"], r["box"]), "") if cuda else f"{r['images_per_cpu_s']:9.1f}"
    beads = str(r.get("beads", "—"))
    return (f"{r['kind']:7s} {r['box']:5d} {beads:>7s} {r['batch']:5d} {r['precision']:>5s} "
            f"{r['ms_per_step']:10.1f} ms   {r['images_per_s']:9.1f} {mem}  {extra}")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--quick", action="store_true", help="small CPU subset (see above)")
    p.add_argument("--s1-boxes", type=int, nargs="*")
    p.add_argument("--s1-beads", type=int, nargs="*")
    p.add_argument("--s2-boxes", type=int, nargs="*")
    p.add_argument("--volumes", type=int, nargs="*", help="volume boxes")
    p.add_argument("--batch1", type=int, default=64, help="stage-1 batch (default 64)")
    p.add_argument("--batch2", type=int, default=16, help="stage-2 batch (default 16)")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                   help="auto: the trainers' default (bf16 on CUDA; stage 2 also on CPUs with "
                        "native bf16)")
    p.add_argument("--threads", type=int, help="CPU threads (default: all available)")
    p.add_argument("--tf32", action="store_true", help="allow TF32 for fp32 matrix products "
                   "on the GPU (the trainers do not)")
    p.add_argument("--compile", action="store_true", help="stage 1 with torch.compile (as train-atom "
                   "--compile); give --warmup ≥ 5 so that compilation is not timed")
    p.add_argument("--model", default="cloud", choices=["cloud", "complex"],
                   help="stage-1 beads: one compact chain (earlier sessions), or a packed "
                        "protein–RNA complex of AdK chains and RNA duplexes (issue 17)")
    p.add_argument("--en-compare", action="store_true", help="stage 1: also time the step and the "
                   "elastic-network term with the per-chain relaxation loop of before issue 17 "
                   "(tests/test_scale.py), alternating with the batched one, in the same process")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--seconds", type=float, default=None, help="time per case (default 5 s on "
                   "a GPU, 10 s on the CPU)")
    p.add_argument("--min-steps", type=int, default=3)
    p.add_argument("--volume-repeats", type=int, default=None, help="default 3 (GPU), 1 (CPU)")
    p.add_argument("--chunk", type=int, default=65536, help="volume evaluation chunk (points)")
    p.add_argument("--out", default="bench_out/throughput.json", help="JSON file to write")
    a = p.parse_args(argv)
    cuda = a.device.startswith("cuda")
    quick = a.quick
    defaults = {"s1_boxes": [64] if quick else [64, 128, 256],
                "s1_beads": [214, 2000] if quick else [214, 2000, 10000],
                "s2_boxes": [64] if quick else [64, 128],
                "volumes": [64, 128] if quick else [128, 256]}
    for k, v in defaults.items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    a.seconds = a.seconds if a.seconds is not None else (5.0 if cuda else 10.0)
    a.volume_repeats = a.volume_repeats or (3 if cuda else 1)
    return a


def main(argv=None):
    a = parse_args(argv)
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit(f"--device {a.device}: torch {torch.__version__} sees no GPU")
    cuda = a.device.startswith("cuda")
    args = {k: getattr(a, k) for k in ("batch1", "batch2", "precision", "threads", "tf32", "warmup",
                                       "seconds", "min_steps", "volume_repeats", "chunk", "compile",
                                       "model", "en_compare")}
    info = machine(a.device, a.threads)
    print(f"device {a.device}" + (f" ({info['gpu']}, CUDA {info['cuda']})" if cuda else "")
          + f"; CPU {info['cpu']}, {info['threads']} threads of {info['cores_available']} cores; "
          f"torch {info['torch']}; load average {info['load_average_start'][0]:.2f}", flush=True)
    print(f"{'stage':7s} {'box':>5s} {'beads':>7s} {'batch':>5s} {'prec':>5s} {'time':>13s} "
          f"{'img/s':>9s} {'peak MB':>9s}" + ("  target (H100)" if cuda else "  img/CPU-s"),
          flush=True)
    rows = []
    for spec in cases(a):
        row = _isolated({**spec, "device": a.device, "args": args})
        rows.append(row)
        print(fmt_row(row, cuda), flush=True)
        if row["kind"] == "stage1":
            print(f"{'':14s}pairs: continuity {row['continuity_pairs']}, elastic {row['en_pairs']} "
                  f"in {row['en_groups']} groups, clash {row['clash_pairs']}; {row['chains']} chains, "
                  f"{row['nucleotide_beads']} nucleotide beads", flush=True)
        if "en_ms_batched" in row:
            print(f"{'':14s}relaxation per-chain → batched: step {row['images_per_s_per_chain']:.1f} → "
                  f"{row['images_per_s_batched']:.1f} img/s ({row['images_per_cpu_s_per_chain']:.1f} → "
                  f"{row['images_per_cpu_s_batched']:.1f} img/CPU-s); EN term alone "
                  f"{row['en_cpu_ms_per_chain']:.2f} → {row['en_cpu_ms_batched']:.2f} CPU-ms, "
                  f"{row['en_ops_per_chain']} → {row['en_ops_batched']} tensor ops", flush=True)
    info["load_average_end"] = os.getloadavg()
    mem_note = ("peak MB: torch.cuda.max_memory_allocated" if cuda else
                "peak MB: peak RSS of the case's process minus its RSS before the case was built")
    print(f"{mem_note}; load average at the end {info['load_average_end'][0]:.2f}")
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": info, "settings": {**args, "device": a.device},
                               "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
