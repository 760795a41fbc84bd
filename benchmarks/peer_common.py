"""Plumbing shared by the peer benchmark drivers (``peer_cryostar.py``, ``peer_cryodrgn.py``).

The drivers never build or install a peer: they take the path of an existing installation
and run it as a subprocess with a fixed number of threads.  This module loads the ground truth
of a simulated set (``benchmarks/simulate_adk.py`` layout), runs a command under a wall-clock
deadline with its output logged, and writes the result JSON atomically.
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

from cryostar_engine.io import read_beads, read_star_tables, write_text_atomic

REPO = Path(__file__).resolve().parents[1]
DEFAULT_GT_CA = REPO / "data" / "adk_models" / "adk_dims_ca.npy"

__all__ = ["BenchData", "load_bench_data", "reference_ca", "thread_env", "run_logged", "check_ok",
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
    gt_ca: np.ndarray     # (F, R, 3) float64 Å, Cα of every frame (residues 1..R in order)

    @property
    def n(self) -> int:
        return len(self.frame)

    def gt_volumes(self) -> np.ndarray:
        """``(F, D, D, D)`` float32 ground-truth volumes ``[z, y, x]`` (memory-mapped)."""
        path = self.root / "gt_volumes.npy"
        if not path.is_file():
            raise SystemExit(f"{path}: missing (simulate with --gt-volumes)")
        return np.load(path, mmap_mode="r")


def load_bench_data(data_dir, gt_ca_path=DEFAULT_GT_CA) -> BenchData:
    """Read ``particles.star`` (optics block) and ``gt_frame.npy`` of a simulated set."""
    root = Path(data_dir).resolve()
    star = root / "particles.star"
    optics, particles = read_star_tables(star)
    if optics is None or "rlnImagePixelSize" not in optics or "rlnImageSize" not in optics:
        raise SystemExit(f"{star}: a RELION 3.1 optics block with pixel and image size is needed")
    frame = np.load(root / "gt_frame.npy").astype(np.int64)
    if len(frame) != len(particles):
        raise SystemExit(f"{root}: gt_frame.npy has {len(frame)} rows, the star {len(particles)}")
    return BenchData(root=root, star=star, apix=float(optics["rlnImagePixelSize"].iloc[0]),
                     box=int(optics["rlnImageSize"].iloc[0]), frame=frame,
                     gt_ca=np.load(gt_ca_path).astype(np.float64))


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
